"""Trading on a real localnet: price feeders, two accounts trading over JSON-RPC, and every
node agreeing on positions, balances, fees and the L2 book."""

import pytest

from localnet.feeder import start_feeder
from node.keys import KeyPair
from rpc.client import Client, TxRejected
from state.errors import Code
from tests.e2e.conftest import wait_until

pytestmark = pytest.mark.e2e




def snapshot(c: Client, addrs: list[str], fee_account: str) -> dict:
    """Everything the nodes must agree on, read at one height (retried until it is one)."""
    while True:
        h = c.height()
        snap = {"book": {k: v for k, v in c.orderbook("BTC-USD", 10).items() if k != "height"
                         and k != "sequence"},
                "margin": [c.margin_account(a) for a in addrs],
                "fees": c.account(fee_account)["balances"],
                "height": h}
        if all(m["height"] == str(h) for m in snap["margin"]) and c.height() == h:
            for m in snap["margin"]:
                del m["height"]
            return snap


def test_two_accounts_trade_and_every_node_agrees(net4):
    net = net4
    feeders = [start_feeder(e.home, e.rpc_url, interval_s=0.5) for e in net.entries]
    try:
        alice, bob = KeyPair.generate(), KeyPair.generate()
        ca, cb = net.client(alice), net.client(bob)
        ca.faucet()
        cb.faucet()
        # the feeders' updates reach the oracle (every validator's update is recorded)
        n_vals = len(net.entries)
        wait_until(lambda: all(len(a["updates"]) == n_vals and not a["stale"]
                               for a in ca.oracle()["assets"]), what="oracle updates")
        markets = ca.markets()
        fee_account = markets["fee_account"]
        assert [m["symbol"] for m in markets["markets"]] == ["BTC-USD", "ETH-USD", "BTC/USDC"]

        ca.set_leverage("BTC-USD", 10)
        out = ca.place_order("BTC-USD", True, "59000", "0.05", cloid=7)
        (placed,) = [e for e in out.events if e["type"] == "order"]
        attrs = {a["key"]: a["value"] for a in placed["attributes"]}
        assert attrs["status"] == "open"
        oid = int(attrs["order_id"])
        assert ca.order(cloid=7)["order_id"] == str(oid)
        book = ca.orderbook("BTC-USD")
        assert book["bids"] == [{"price": "59000", "size": "0.05", "orders": 1}]
        assert book["asks"] == []
        # a second open order with the same client id is refused, with its own code
        with pytest.raises(TxRejected) as e:
            ca.place_order("BTC-USD", True, "58000", "0.01", cloid=7)
        assert e.value.code == Code.DUPLICATE_CLIENT_ID
        # bob sells into alice's bid: 0.02 BTC at her price, he pays taker, she maker fees
        out = cb.place_order("BTC-USD", False, "58000", "0.02", tif="ioc")
        (fill,) = [{a["key"]: a["value"] for a in e["attributes"]}
                   for e in out.events if e["type"] == "fill"]
        assert (fill["price"], fill["size"], fill["taker_fee"], fill["maker_fee"]) == \
            ("59000", "0.02", "0.531", "0.177")
        assert fill["maker"] == alice.address and fill["taker"] == bob.address

        pa = ca.positions()["positions"][0]
        pb = cb.positions()["positions"][0]
        assert (pa["size"], pa["side"], pa["entry_price"], pa["leverage"]) == \
            ("0.02", "long", "59000", 10)
        assert (pb["size"], pb["side"], pb["entry_price"]) == ("-0.02", "short", "59000")
        assert ca.account()["balances"]["USDC"] == "9999.823"
        assert cb.account()["balances"]["USDC"] == "9999.469"
        assert ca.account(fee_account)["balances"]["USDC"] == "0.708"
        assert ca.orderbook("BTC-USD")["bids"] == [{"price": "59000", "size": "0.03",
                                                    "orders": 1}]
        fills = ca.fills(alice.address)["fills"]
        assert [(f["price"], f["size"]) for f in fills] == [("59000", "0.02")]
        m = ca.margin_account()
        assert m["equity"] and float(m["free_collateral"]) > 0

        # every node: the same book, positions, balances and fees. The feeders stop first, so
        # the state stops changing (the mark settles on the last oracle price) while blocks go
        # on: on a loaded machine four snapshots rarely fall in one block, so each node's
        # snapshot is compared without its height, until all four agree.
        for p in feeders:
            p.kill()
            p.wait()
        addrs = [alice.address, bob.address]
        clients = [Client(e.rpc_url) for e in net.entries]

        def agree():
            snaps = [snapshot(c, addrs, fee_account) for c in clients]
            for s in snaps:
                del s["height"]
            return snaps if all(s == snaps[0] for s in snaps) else None
        snaps = wait_until(agree, 60, "all nodes agreeing once the feeders stopped")
        assert snaps[0]["margin"][0]["total_notional"] != "0", "the compared state holds the trade"

        ca.cancel_by_cloid("BTC-USD", 7)
        assert ca.orderbook("BTC-USD")["bids"] == []
        assert ca.open_orders()["orders"] == []
    finally:
        for p in feeders:
            p.kill()
            p.wait()
