"""Liquidation on a real localnet: the validator's price falls until a leveraged account is
below maintenance margin, and the node liquidates it in the book; the events, the insurance
fund and the ADL queue are visible over JSON-RPC."""

import time

import pytest

from node.keys import KeyPair, load_key
from tests.e2e.conftest import wait_until

pytestmark = pytest.mark.e2e


def test_a_falling_price_liquidates_an_account_and_rpc_shows_it(net):
    validator = net.client(load_key(net.node.home / "config" / "priv_validator_key.json"))
    validator.oracle_update({"BTC": "60000", "ETH": "3000"}, wait=True)
    alice, bob, carol = KeyPair.generate(), KeyPair.generate(), KeyPair.generate()
    ca, cb, cc = net.client(alice), net.client(bob), net.client(carol)
    for c in (ca, cb, cc):
        c.faucet()  # 10,000 USDC each
    # alice: long 4 BTC at 60,000 at 40x (taker fee 108); carol's bids will absorb it.
    cb.place_order("BTC-USD", False, "60000", "4")
    ca.place_order("BTC-USD", True, "60000", "4", tif="ioc")
    cc.place_order("BTC-USD", True, "58000", "4")
    assert ca.adl_queue()["positions"][0]["side"] == "long"
    # At 58,200: equity 9,892 - 7,200 = 2,692 < MM 2,910 (1.25%), above the backstop 1,940:
    # notional 232,800 is above 100,000, so 20% (0.8 BTC) goes to the book, at most 57,527.
    validator.oracle_update({"BTC": "58200", "ETH": "3000"}, wait=True)
    events = wait_until(lambda: ca.liquidations(alice.address)["events"], timeout=10,
                        what="a liquidation event")
    liq = events[-1]
    assert (liq["type"], liq["account"], liq["size"], liq["filled"]) == \
        ("liquidation", alice.address, "0.8", "0.8")
    assert (liq["equity"], liq["maintenance_margin"]) == ("2692", "2910")
    fund = ca.insurance_fund()
    # 0.5% of 0.8 BTC at the mark 58,200
    assert fund["balance"] == "232.8"
    pos = ca.positions()["positions"][0]
    assert pos["size"] == "3.2"
    # the 30 s cooldown: no second step yet
    time.sleep(1.0)
    assert len(ca.liquidations(alice.address)["events"]) == 1


def test_the_price_feeder_drives_the_price_down_until_a_long_is_liquidated(net, tmp_path):
    """The validator's real feeder process (localnet/feeder.py) publishes a falling series
    from a CSV; the node liquidates the long when the mark crosses its liquidation price,
    which `positions` showed beforehand."""
    from localnet.feeder import start_feeder

    validator = net.client(load_key(net.node.home / "config" / "priv_validator_key.json"))
    validator.oracle_update({"BTC": "60000", "ETH": "3000"}, wait=True)
    alice, bob = KeyPair.generate(), KeyPair.generate()
    ca, cb = net.client(alice), net.client(bob)
    ca.faucet()
    cb.faucet()
    cb.place_order("BTC-USD", False, "60000", "1")
    ca.place_order("BTC-USD", True, "60000", "1", tif="ioc")   # 1 BTC long, 6x
    cb.place_order("BTC-USD", True, "40000", "1")              # a bid far below absorbs it
    liq_px = float(ca.positions()["positions"][0]["liquidation_price"])
    assert 50_000 < liq_px < 51_000
    # 60,000 down to 49,000 in $500 steps (the feeder cycles through its rows)
    rows = [f"{i},{60_000 - 500 * i},3000" for i in range(23)]
    csv = tmp_path / "falling.csv"
    csv.write_text("step,BTC,ETH\n" + "\n".join(rows) + "\n")
    feeder = start_feeder(net.node.home, net.url, tmp_path / "feeder.log", 0.3, csv)
    try:
        events = wait_until(lambda: [e for e in ca.liquidations(alice.address)["events"]
                                     if e["type"] in ("liquidation", "insurance_takeover")],
                            timeout=60, what="the feeder's prices to liquidate the long")
    finally:
        feeder.kill()
        feeder.wait()
    mark = float(events[-1]["mark"])
    assert mark <= liq_px, (mark, liq_px)   # never before the price `positions` showed
    assert ca.positions()["positions"] == [] or \
        ca.positions()["positions"][0]["size"] != "1"
