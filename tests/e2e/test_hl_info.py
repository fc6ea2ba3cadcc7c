"""The official Hyperliquid Python SDK, unchanged, against a 4-node localnet's Hyperliquid API
(rpc/hl_server.py): Info.meta, l2_snapshot, user_state, open_orders, user_fills, all_mids and
a websocket subscription, each answer checked against the native JSON-RPC of the same node."""

import threading
from decimal import Decimal

import pytest

from localnet.feeder import start_feeder
from node.keys import KeyPair
from tests.e2e.conftest import wait_until

pytestmark = pytest.mark.e2e
hyperliquid_info = pytest.importorskip("hyperliquid.info")
hyperliquid_error = pytest.importorskip("hyperliquid.utils.error")


class Inbox:
    """What the SDK's websocket thread hands the callbacks."""

    def __init__(self):
        self.lock, self.msgs = threading.Lock(), []

    def __call__(self, msg):
        with self.lock:
            self.msgs.append(msg)

    def of(self, channel: str) -> list[dict]:
        with self.lock:
            return [m["data"] for m in self.msgs if m["channel"] == channel]


def _levels(native: dict) -> list[list[tuple]]:
    return [[(Decimal(lv["price"]), Decimal(lv["size"]), lv["orders"]) for lv in native[side]]
            for side in ("bids", "asks")]


def _hl_levels(book: dict) -> list[list[tuple]]:
    return [[(Decimal(lv["px"]), Decimal(lv["sz"]), lv["n"]) for lv in side]
            for side in book["levels"]]


def test_the_official_sdk_reads_a_localnet_and_follows_its_fills(net4):
    net = net4
    feeders = [start_feeder(e.home, e.rpc_url, interval_s=0.5) for e in net.entries]
    ws = None
    try:
        alice, bob = KeyPair.generate(), KeyPair.generate()
        ca, cb = net.client(alice), net.client(bob)
        ca.faucet()
        cb.faucet()
        wait_until(lambda: all(not a["stale"] for a in ca.oracle()["assets"]),
                   what="oracle prices")
        info = hyperliquid_info.Info(net.entries[0].hl_url, skip_ws=True)
        markets = {m["symbol"]: m for m in ca.markets()["markets"]}
        meta = info.meta()
        assert [u["name"] for u in meta["universe"]] == ["BTC", "ETH"]
        for u, sym in zip(meta["universe"], ("BTC-USD", "ETH-USD")):
            assert u["maxLeverage"] == markets[sym]["max_leverage"]
            assert Decimal(1).scaleb(-u["szDecimals"]) == Decimal(markets[sym]["lot_size"])

        inbox = Inbox()   # the websocket of another node
        ws = hyperliquid_info.Info(net.entries[1].hl_url, skip_ws=False)
        user = "0x" + alice.address
        for sub in ({"type": "l2Book", "coin": "BTC"}, {"type": "trades", "coin": "BTC"},
                    {"type": "userFills", "user": user}):
            ws.subscribe(sub, inbox)
        wait_until(lambda: inbox.of("userFills"), what="the userFills snapshot")

        ca.set_leverage("BTC-USD", 10)
        ca.place_order("BTC-USD", True, "59000", "0.05", cloid=7)
        out = cb.place_order("BTC-USD", False, "59000", "0.01")
        assert any(e["type"] == "fill" for e in out.events)

        # l2_snapshot: the native book, on every node
        for e in net.entries:
            c = net.client(k=e.index)
            sdk = hyperliquid_info.Info(e.hl_url, skip_ws=True, meta=meta)
            wait_until(lambda: _hl_levels(sdk.l2_snapshot("BTC")) ==
                       _levels(c.orderbook("BTC-USD", 20)) ==
                       [[(Decimal(59000), Decimal("0.04"), 1)], []],
                       what=f"node{e.index}'s l2Book equal to its orderbook")

        (order,) = info.open_orders(user)
        (native_order,) = ca.open_orders()["orders"]
        assert (order["oid"], Decimal(order["limitPx"]), Decimal(order["sz"]), order["side"]) \
            == (int(native_order["order_id"]), Decimal(native_order["price"]),
                Decimal(native_order["size"]), "B")
        assert order["cloid"] == "0x" + "0" * 31 + "7"

        (fill,) = info.user_fills(user)
        (native_fill,) = ca.fills(alice.address)["fills"]
        assert (Decimal(fill["px"]), Decimal(fill["sz"]), fill["time"], fill["oid"]) == \
            (Decimal(native_fill["price"]), Decimal(native_fill["size"]),
             int(native_fill["time_ms"]), int(native_fill["maker_order_id"]))
        assert (fill["side"], fill["dir"], fill["crossed"]) == ("B", "Open Long", False)
        assert Decimal(fill["fee"]) == Decimal(native_fill["maker_fee"])

        state = info.user_state(user)
        (pos,) = state["assetPositions"]
        (native_pos,) = ca.positions()["positions"]
        assert (Decimal(pos["position"]["szi"]), Decimal(pos["position"]["entryPx"])) == \
            (Decimal(native_pos["size"]), Decimal(native_pos["entry_price"])) == \
            (Decimal("0.01"), Decimal(59000))
        assert pos["position"]["leverage"] == {"type": "cross", "value": 10}

        def same_equity():
            before = ca.margin_account()
            hl = info.user_state(user)["marginSummary"]["accountValue"]
            after = ca.margin_account()
            return before == after and Decimal(hl) == Decimal(after["equity"])
        wait_until(same_equity, what="accountValue equal to the native equity")

        # no ask: the mid falls back to the last trade, as Hyperliquid's does
        assert info.all_mids()["BTC"] == "59000.0"

        # the websocket of node1 saw the fill and the new book
        wait_until(lambda: any(not d.get("isSnapshot") and d["fills"]
                               for d in inbox.of("userFills")), what="userFills on the ws")
        (ws_fill,) = [f for d in inbox.of("userFills") if not d.get("isSnapshot")
                      for f in d["fills"]]
        assert ws_fill == fill
        trades = [t for d in inbox.of("trades") for t in d]
        assert [(t["px"], t["sz"], t["side"], t["tid"]) for t in trades] == \
            [("59000.0", "0.01", "A", fill["tid"])]
        wait_until(lambda: any(_hl_levels(b) == [[(Decimal(59000), Decimal("0.04"), 1)], []]
                               for b in inbox.of("l2Book")), what="the l2Book update")

        # a bad request is the SDK's ClientError with our code and message
        with pytest.raises(hyperliquid_error.ClientError) as e:
            info.post("/info", {"type": "nope"})
        assert e.value.status_code == 422 and e.value.error_code == "unknown_type"
    finally:
        if ws is not None:
            ws.disconnect_websocket()
        for f in feeders:
            f.terminate()
            f.wait()
