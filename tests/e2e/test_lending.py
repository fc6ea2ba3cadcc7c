"""Lending on a real localnet (its genesis has USDC, BTC and ETH pools), then a replay.

Alice deposits BTC (the localnet's stand-in for a bridge), trades a BTC-USD perp with it as
her only collateral (her taker fee is an automatic USDC borrow), withdraws USDC beyond her
balance (another borrow), and her debt grows block by block while Bob, who supplies USDC,
earns. The queries show it (`lending_pools`, `account`), and `perpchain replay` re-executes
every block from genesis and reproduces every app hash.
"""

from decimal import Decimal

import pytest

import json

from node.keys import KeyPair, load_key, save_key
from tests.e2e.conftest import perpchain, wait_until

pytestmark = pytest.mark.e2e


def _usdc(acct: dict) -> Decimal:
    return Decimal(acct["balances"].get("USDC", "0"))


def test_btc_collateral_borrows_pay_interest_and_replay(net):
    v = net.client(load_key(net.entries[0].home / "config" / "priv_validator_key.json"))
    v.oracle_update({"BTC": "60000", "ETH": "3000"})
    wait_until(lambda: v.call("oracle")["assets"][0]["price"] == "60000", timeout=30,
               what="the oracle at 60000")
    alice, bob = KeyPair.generate(), KeyPair.generate()
    a, b = net.client(alice), net.client(bob)
    b.faucet()                                       # 10,000 USDC, supplied to the pool
    a.deposit("BTC", "1")
    assert a.account()["balances"] == {"BTC": "1"}
    b.place_order("BTC-USD", False, "60000", "0.01")
    out = a.place_order("BTC-USD", True, "60000", "0.01", tif="ioc")
    assert out.code == 0
    assert _usdc(a.account()) < 0                    # the taker fee: an automatic borrow
    w = a.withdraw("USDC", "1000")
    ev = [e for e in w.events if e["type"] == "withdrawal"][0]
    attrs = {x["key"]: x["value"] for x in ev["attributes"]}
    assert attrs["asset"] == "USDC" and Decimal(attrs["borrowed"]) == Decimal("1000")
    debt = _usdc(a.account())
    assert debt < Decimal("-1000")
    pool = {p["asset"]: p for p in a.lending_pools()["pools"]}["USDC"]
    assert Decimal(pool["borrowed"]) > 1000 and Decimal(pool["borrow_apr"]) == Decimal("0.05")
    lending = a.account()["lending"]
    assert lending["healthy"] and Decimal(lending["borrow_limit"]) == Decimal("39000")
    # interest, block by block (1,000 at 5% is ~1.6 quantums a second: a few blocks)
    wait_until(lambda: _usdc(a.account()) < debt, timeout=60, what="the debt to grow")
    later = a.account()
    assert Decimal([r for r in later["lending"]["assets"]
                    if r["asset"] == "USDC"][0]["interest"]) < 0
    # the command line: deposit ETH, read the pools
    save_key(net.dir / "alice.json", alice)
    dep = perpchain("tx", "deposit", "--key", str(net.dir / "alice.json"), "--asset", "ETH",
                    "--amount", "2", "--node", net.url)
    assert dep.returncode == 0 and "deposit: " in dep.stdout, dep.stdout + dep.stderr
    q = perpchain("query", "pools", "--node", net.url)
    pools = {p["asset"]: p for p in json.loads(q.stdout)["pools"]}
    assert pools["ETH"]["supplied"] == "2" and pools["USDC"]["borrow_apr"] == "0.05"
    top = a.height()
    net.down()
    for e in net.entries:
        rep = perpchain("replay", "--home", str(e.home), timeout=300)
        assert rep.returncode == 0 and "OK:" in rep.stdout, rep.stdout + rep.stderr
    assert top > 0
