"""The official Hyperliquid Python SDK, unchanged, against a 4-node localnet's Hyperliquid API
(rpc/hl_server.py): Info.meta, l2_snapshot, user_state, open_orders, user_fills, all_mids and
websocket subscriptions, each answer checked against the native JSON-RPC; then SDK-signed
orders (rpc/hl_exchange.py) whose fill reaches another node's websocket."""

import threading
from decimal import Decimal

import pytest

from localnet import cluster
from node.keys import KeyPair
from rpc.client import Client
from tests.e2e.conftest import free_base_port, perpchain, wait_until

pytestmark = pytest.mark.e2e
hyperliquid_info = pytest.importorskip("hyperliquid.info")
hyperliquid_error = pytest.importorskip("hyperliquid.utils.error")
eth_account = pytest.importorskip("eth_account")

ALICE_0X = eth_account.Account.from_key("0x" + "d4" * 32)
BOB_0X = eth_account.Account.from_key("0x" + "e5" * 32)


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    """`perpchain localnet up` with 4 nodes, their price feeders, and the two 0x keys funded
    at genesis (--fund); node K's Hyperliquid API on base - 2 + 10K (--hl-port)."""
    d, base = tmp_path_factory.mktemp("hl") / "localnet", free_base_port(4)
    perpchain("localnet", "up", "-n", "4", "--dir", str(d), "--base-port", str(base),
              "--hl-port", str(base - 2), "--timeout-commit", "100ms",
              "--fund", f"{ALICE_0X.address}=100000", "--fund", f"{BOB_0X.address}=100000",
              check=True, timeout=180)
    try:
        entries = cluster.load(d)
        c = Client(entries[0].rpc_url)
        wait_until(lambda: all(not a["stale"] for a in c.oracle()["assets"]), timeout=60,
                   what="a fresh oracle price")
        yield entries
    finally:
        perpchain("localnet", "down", "--dir", str(d), timeout=60)


def btc_oracle(c: Client) -> Decimal:
    return Decimal(next(a["price"] for a in c.oracle()["assets"] if a["asset"] == "BTC"))


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


def test_the_official_sdk_reads_a_localnet_and_follows_its_fills(nodes):
    ws = None
    try:
        alice, bob = KeyPair.generate(), KeyPair.generate()
        ca, cb = Client(nodes[0].rpc_url, alice), Client(nodes[0].rpc_url, bob)
        ca.faucet()
        cb.faucet()
        px = int(btc_oracle(ca) * Decimal("0.97"))   # below the market: only bob takes it
        info = hyperliquid_info.Info(nodes[0].hl_url, skip_ws=True)
        markets = {m["symbol"]: m for m in ca.markets()["markets"]}
        meta = info.meta()
        assert [u["name"] for u in meta["universe"]] == ["BTC", "ETH"]
        for u, sym in zip(meta["universe"], ("BTC-USD", "ETH-USD")):
            assert u["maxLeverage"] == markets[sym]["max_leverage"]
            assert Decimal(1).scaleb(-u["szDecimals"]) == Decimal(markets[sym]["lot_size"])

        inbox = Inbox()   # the websocket of another node
        ws = hyperliquid_info.Info(nodes[1].hl_url, skip_ws=False)
        user = "0x" + alice.address
        for sub in ({"type": "l2Book", "coin": "BTC"}, {"type": "trades", "coin": "BTC"},
                    {"type": "userFills", "user": user}):
            ws.subscribe(sub, inbox)
        wait_until(lambda: inbox.of("userFills"), what="the userFills snapshot")

        ca.set_leverage("BTC-USD", 10)
        ca.place_order("BTC-USD", True, str(px), "0.05", cloid=7)
        out = cb.place_order("BTC-USD", False, str(px), "0.01")
        assert any(e["type"] == "fill" for e in out.events)

        # l2_snapshot: the native book, on every node
        bids = [(Decimal(px), Decimal("0.04"), 1)]
        for e in nodes:
            c = Client(e.rpc_url)
            sdk = hyperliquid_info.Info(e.hl_url, skip_ws=True, meta=meta)
            wait_until(lambda: _hl_levels(sdk.l2_snapshot("BTC")) ==
                       _levels(c.orderbook("BTC-USD", 20)) == [bids, []],
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
            (Decimal("0.01"), Decimal(px))
        assert pos["position"]["leverage"] == {"type": "cross", "value": 10}

        def same_equity():
            before = ca.margin_account()
            hl = info.user_state(user)["marginSummary"]["accountValue"]
            after = ca.margin_account()
            return before == after and Decimal(hl) == Decimal(after["equity"])
        wait_until(same_equity, what="accountValue equal to the native equity")

        # no ask: the mid falls back to the last trade, as Hyperliquid's does
        assert info.all_mids()["BTC"] == f"{px}.0"

        # the websocket of node1 saw the fill and the new book
        wait_until(lambda: any(not d.get("isSnapshot") and d["fills"]
                               for d in inbox.of("userFills")), what="userFills on the ws")
        (ws_fill,) = [f for d in inbox.of("userFills") if not d.get("isSnapshot")
                      for f in d["fills"]]
        assert ws_fill == fill
        trades = [t for d in inbox.of("trades") for t in d]
        assert [(t["px"], t["sz"], t["side"], t["tid"]) for t in trades] == \
            [(f"{px}.0", "0.01", "A", fill["tid"])]
        wait_until(lambda: any(_hl_levels(b) == [bids, []] for b in inbox.of("l2Book")),
                   what="the l2Book update")

        # a bad request is the SDK's ClientError with our code and message
        with pytest.raises(hyperliquid_error.ClientError) as e:
            info.post("/info", {"type": "nope"})
        assert e.value.status_code == 422 and e.value.error_code == "unknown_type"
    finally:
        if ws is not None:
            ws.disconnect_websocket()


def test_an_sdk_order_fill_reaches_the_websocket_of_another_node(nodes):
    """An SDK Exchange.order (signed by a 0x key, sent to node0) fills a resting SDK order
    (sent to node1), and node2's websocket delivers the fill to the SDK's userFills and
    orderUpdates subscriptions, as /info and the native RPC show it."""
    from hyperliquid.exchange import Exchange

    alice, bob = ALICE_0X, BOB_0X
    ws = None
    try:
        c = Client(nodes[0].rpc_url)
        px = int(btc_oracle(c) * Decimal("1.01"))   # above the first test's bid
        user = alice.address.lower()
        inbox = Inbox()
        ws = hyperliquid_info.Info(nodes[2].hl_url, skip_ws=False)
        ws.subscribe({"type": "userFills", "user": alice.address}, inbox)
        ws.subscribe({"type": "orderUpdates", "user": alice.address}, inbox)
        wait_until(lambda: inbox.of("userFills"), what="the userFills snapshot")

        resting = Exchange(bob, nodes[1].hl_url).order("BTC", False, 0.01, px,
                                                       {"limit": {"tif": "Gtc"}})
        assert "resting" in resting["response"]["data"]["statuses"][0], resting
        taken = Exchange(alice, nodes[0].hl_url).order("BTC", True, 0.01, px,
                                                       {"limit": {"tif": "Ioc"}})
        (status,) = taken["response"]["data"]["statuses"]
        assert status["filled"]["totalSz"] == "0.01", taken

        wait_until(lambda: [f for d in inbox.of("userFills") if not d.get("isSnapshot")
                            for f in d["fills"]], what="alice's fill on node2's websocket")
        (ws_fill,) = [f for d in inbox.of("userFills") if not d.get("isSnapshot")
                      for f in d["fills"]]
        info = hyperliquid_info.Info(nodes[0].hl_url, skip_ws=True)
        assert info.user_fills(user) == [ws_fill]
        (native,) = c.fills("00" * 12 + user[2:])["fills"]
        assert (Decimal(ws_fill["px"]), Decimal(ws_fill["sz"]), ws_fill["oid"]) == \
            (Decimal(native["price"]), Decimal(native["size"]), int(native["taker_order_id"]))
        assert (ws_fill["side"], ws_fill["crossed"], ws_fill["dir"]) == ("B", True, "Open Long")
        assert ws_fill["oid"] == status["filled"]["oid"]
        wait_until(lambda: any(u["status"] == "filled" and u["order"]["oid"] == ws_fill["oid"]
                               for d in inbox.of("orderUpdates") for u in d),
                   what="the order's filled update")
    finally:
        if ws is not None:
            ws.disconnect_websocket()
