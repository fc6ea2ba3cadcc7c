"""Liquidation through the spot market on a real localnet (USDC, BTC and ETH pools and a
BTC/USDC spot market in its genesis), then a replay from genesis.

Alice deposits 0.15 BTC (5,850 of collateral at 60,000 x 0.65, the BTC borrow limit) and
withdraws 5,500 USDC she does not have: a borrow from Bob's and Carol's faucet USDC. Carol bids
50,000 for 0.15 BTC. At 55,000 her BTC is 6,187.5 at the liquidation weight 0.75: not
liquidated. The validator's price falls to 45,000: 5,062.5 is below her debt, so the node
sells part of her BTC to Carol's bid; the `liquidations` query shows the step, her debt shrinks
and `perpchain replay` reproduces every app hash.
"""

from decimal import Decimal

import pytest

from node.keys import KeyPair, load_key
from tests.e2e.conftest import perpchain, wait_until

pytestmark = pytest.mark.e2e


def _bal(c, asset: str) -> Decimal:
    return Decimal(c.account()["balances"].get(asset, "0"))


def test_btc_collateral_is_sold_in_the_spot_market_and_replays(net):
    v = net.client(load_key(net.entries[0].home / "config" / "priv_validator_key.json"))
    v.oracle_update({"BTC": "60000", "ETH": "3000"}, wait=True)
    alice, bob, carol = KeyPair.generate(), KeyPair.generate(), KeyPair.generate()
    a, b, c = net.client(alice), net.client(bob), net.client(carol)
    b.faucet()
    c.faucet()                                           # 10,000 USDC each, supplied
    a.deposit("BTC", "0.15")
    w = a.withdraw("USDC", "5500")
    assert w.code == 0, w
    assert c.place_order("BTC/USDC", True, "50000", "0.15").code == 0
    debt = _bal(a, "USDC")
    assert debt <= Decimal("-5500")
    v.oracle_update({"BTC": "55000", "ETH": "3000"}, wait=True)
    assert a.account()["lending"]["healthy"]
    v.oracle_update({"BTC": "45000", "ETH": "3000"}, wait=True)
    events = wait_until(lambda: [e for e in a.liquidations(alice.address)["events"]
                                 if e["type"] == "collateral_liquidation"],
                        timeout=30, what="a collateral_liquidation event")
    step = events[-1]
    assert (step["market"], step["asset"], step["side"]) == ("BTC/USDC", "BTC", "sell")
    assert Decimal(step["equity"]) < 0 and step["filled"] == step["size"]
    sold = Decimal(step["filled"])
    assert 0 < sold < Decimal("0.15")
    assert _bal(a, "BTC") == Decimal("0.15") - sold
    assert _bal(c, "BTC") == sold
    # (what is still borrowed pays interest: below a quantum a second at 5%)
    after = Decimal(step["quote_balance"])
    assert debt < after and after - Decimal("0.001") <= _bal(a, "USDC") <= after
    assert Decimal(a.insurance_fund()["balance"]) >= Decimal(step["fee"]) > 0
    top = a.height()
    net.down()
    rep = perpchain("replay", "--home", str(net.entries[0].home), timeout=300)
    assert rep.returncode == 0 and "OK:" in rep.stdout, rep.stdout + rep.stderr
    assert top > 0
