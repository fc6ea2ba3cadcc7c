"""Lending on a real localnet (its genesis has USDC, BTC and ETH pools), then a replay.

Alice deposits BTC (the localnet's stand-in for a bridge), trades a BTC-USD perp with it as
her only collateral (her taker fee is an automatic USDC borrow), withdraws USDC beyond her
balance (another borrow), and her debt grows block by block while Bob, who supplies USDC,
earns. The queries show it (`lending_pools`, `account`), and `perpchain replay` re-executes
every block from genesis and reproduces every app hash. And the README's lending commands run
as written (a deposit of BTC, a perp trade on it as collateral, the interest accruing).
"""

import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

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
    q = perpchain("query", "pools", "--json", "--node", net.url)
    pools = {p["asset"]: p for p in json.loads(q.stdout)["pools"]}
    assert pools["ETH"]["supplied"] == "2" and pools["USDC"]["borrow_apr"] == "0.05"
    top = a.height()
    net.down()
    for e in net.entries:
        rep = perpchain("replay", "--home", str(e.home), timeout=300)
        assert rep.returncode == 0 and "OK:" in rep.stdout, rep.stdout + rep.stderr
    assert top > 0


README = Path(__file__).resolve().parents[2] / "README.md"


def readme_lending_commands() -> list[str]:
    """The commands of the README's lending block, comments stripped."""
    text = README.read_text()
    block = text[text.index("Lending (docs/LENDING.md)"):]
    block = block[block.index("```sh\n") + 6:]
    block = block[:block.index("```")]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def _shell(cwd: Path, url: str, line: str) -> subprocess.CompletedProcess:
    """Run one README line: `perpchain ...`, `$(perpchain keys show F)` expanded, no shell."""
    env = {**os.environ, "PERPCHAIN_NODE": url}

    def run(args: list[str]) -> subprocess.CompletedProcess:
        assert args[0] == "perpchain", args
        return subprocess.run([sys.executable, "-m", "cli", *args[1:]], capture_output=True,
                              text=True, cwd=cwd, env=env, timeout=120)

    def show(m: re.Match) -> str:
        out = run(m.group(1).split())
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()
    return run(re.sub(r"\$\(([^)]*)\)", show, line).split())


def test_the_readme_lending_commands_run_as_written(net):
    v = net.client(load_key(net.entries[0].home / "config" / "priv_validator_key.json"))
    v.oracle_update({"BTC": "60000", "ETH": "3000"})
    wait_until(lambda: v.call("oracle")["assets"][0]["price"] == "60000", timeout=30,
               what="the oracle at 60000")
    cwd = net.dir
    for line in ("perpchain keys new --out alice.json", "perpchain tx faucet --key alice.json",
                 "perpchain keys new --out bob.json", "perpchain tx faucet --key bob.json"):
        out = _shell(cwd, net.url, line)          # (the README's trade above made them)
        assert out.returncode == 0, out.stdout + out.stderr
    cmds = readme_lending_commands()
    assert any("deposit --key carol.json --asset BTC" in c for c in cmds)
    outs = {}
    for line in cmds:
        out = _shell(cwd, net.url, line)
        assert out.returncode == 0, f"{line}\n{out.stdout}{out.stderr}"
        outs.setdefault(line, []).append(out.stdout)
    fill = outs[[c for c in cmds if "carol.json --market BTC-USD" in c][0]][0]
    assert "fill: market=BTC-USD price=61000 size=0.01" in fill
    account = [c for c in cmds if c.startswith("perpchain query account")][0]
    assert re.search(r"USDC: -0\.2745\d* \(borrowed", outs[account][0]), outs[account][0]
    # the README's two lines: the borrow limit at the initial weight (BTC 0.65), the
    # liquidation threshold at the maintenance weight (BTC 0.75), so the threshold is higher
    limit = re.search(r"borrow limit ([\d.]+), borrowed [\d.]+ \(at borrow weight\), equity "
                      r"[-\d.]+, initial margin [\d.]+\n", outs[account][0])
    threshold = re.search(r"liquidation threshold ([\d.]+), borrowed [\d.]+ \(at maintenance "
                          r"borrow weight\), equity [-\d.]+, maintenance margin [\d.]+: healthy",
                          outs[account][0])
    assert limit and threshold, outs[account][0]
    assert float(limit[1]) * 75 / 65 == pytest.approx(float(threshold[1]), rel=1e-3)
    assert "withdrawal:" in outs[[c for c in cmds if "tx withdraw" in c][0]][0]
    assert "USDC" in outs["perpchain query pools"][0] and "dust" in outs["perpchain query pools"][0]
    # the interest accrues: carol's USDC interest goes negative within a few blocks
    wait_until(lambda: re.search(r"USDC: -100\.\d+ \(borrowed; interest -0\.0000\d+\)",
                                 _shell(cwd, net.url, account).stdout),
               timeout=90, what="interest on carol's USDC borrow")
    assert "set_lending:" in outs["perpchain tx lending off --key alice.json"][0]
