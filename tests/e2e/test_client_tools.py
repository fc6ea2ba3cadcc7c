"""The client tools against one real node with its price feeder: a full trade through the
`perpchain` trading commands, the examples/ scripts, and a short `perpchain bench` run.
The tests share one localnet and run in file order (the bench last: it fills the book)."""

import json
import subprocess
import sys
from decimal import Decimal

import pytest

from localnet.feeder import start_feeder
from node.keys import load_key
from rpc.client import Client
from tests.e2e.conftest import ROOT, Net, perpchain, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    net = Net(tmp_path_factory.mktemp("clients") / "localnet")
    feeder = start_feeder(net.node.home, net.url, interval_s=0.5)
    try:
        c = Client(net.url)
        wait_until(lambda: all(not a["stale"] and a["updates"] for a in c.oracle()["assets"]),
                   what="the feeder's first prices")
        yield net
    finally:
        feeder.terminate()
        feeder.wait(timeout=10)
        net.down()


def cli(net, *args, check=True):
    return perpchain(*args, f"--node={net.url}", check=check)


def test_a_full_trade_through_the_cli(node, tmp_path):
    alice, bob = str(tmp_path / "alice.json"), str(tmp_path / "bob.json")
    for k in (alice, bob):
        perpchain("keys", "new", "--out", k, check=True)
        assert "committed at height" in cli(node, "tx", "faucet", "--key", k).stdout
    mark = Decimal(Client(node.url).market("BTC-USD")["mark_price"])
    ask = str(int(mark) + 20)
    out = cli(node, "tx", "order", "--key", alice, "--market", "BTC-USD", "--side", "sell",
              "--size", "0.01", "--price", ask, "--cloid", "1").stdout
    assert "order:" in out and "status=open" in out
    far = json.loads(cli(node, "order", "--key", alice, "--market", "BTC-USD", "--side", "sell",
                         "--size", "0.01", "--price", str(int(mark) + 500), "--cloid", "2",
                         "--json").stdout)    # the older name, JSON out
    assert far["code"] == 0 and far["events"][0]["attributes"]["status"] == "open"
    book = cli(node, "query", "book", "BTC-USD").stdout.splitlines()
    assert [ln.split()[:3] for ln in book[2:]] == [["ask", str(int(mark) + 500), "0.01"],
                                                   ["ask", ask, "0.01"]]
    assert "cancel" in cli(node, "tx", "cancel", "--key", alice, "--market", "BTC-USD",
                           "--cloid", "2").stdout
    assert len(json.loads(cli(node, "query", "orders", "--key", alice, "--json").stdout)
               ["orders"]) == 1
    cli(node, "tx", "set-leverage", "--key", bob, "--market", "BTC-USD", "--leverage", "10")
    out = cli(node, "tx", "order", "--key", bob, "--market", "BTC-USD", "--side", "buy",
              "--size", "0.01").stdout      # a market order
    assert "fill:" in out and f"price={ask}" in out
    pos = cli(node, "query", "positions", "--key", bob).stdout.splitlines()
    assert pos[2].split()[:4] == ["BTC-USD", "long", "0.01", ask] and pos[2].split()[7] == "10"
    fills = json.loads(cli(node, "query", "fills", "--key", alice, "--json").stdout)
    assert fills["total"] == 1 and fills["fills"][0]["price"] == ask
    row = cli(node, "query", "fills", load_key(bob).address).stdout.splitlines()[2].split()
    assert row[1:6] == ["BTC-USD", "buy", "taker", ask, "0.01"]
    assert "BTC-USD" in cli(node, "query", "markets").stdout
    assert "equity" in cli(node, "query", "margin", "--key", bob).stdout


@pytest.mark.parametrize("args, code, message", [
    (["--price", "60000.1234567"], 2, "more than 6 decimal places"),
    (["--price", "abc"], 2, "is not a non-negative decimal number"),
    (["--market", "NOPE-USD"], 2, "unknown market 'NOPE-USD'"),
    (["--size", "0.00001", "--price", "60000"], 1, "rejected"),
])
def test_cli_errors_are_one_line(node, tmp_path, args, code, message):
    k = str(tmp_path / "k.json")
    perpchain("keys", "new", "--out", k, check=True)
    base = {"--market": "BTC-USD", "--side": "buy", "--size": "0.01", "--price": "1000"}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    p = cli(node, "tx", "order", "--key", k, *[x for kv in base.items() for x in kv],
            check=False)
    assert p.returncode == code and message in p.stderr and p.stderr.count("\n") == 1, p.stderr
    assert p.stdout == ""


def test_cli_says_when_the_node_is_unreachable():
    p = perpchain("query", "book", "BTC-USD", "--node", "http://127.0.0.1:9")
    assert p.returncode == 1 and "cannot reach the node at http://127.0.0.1:9" in p.stderr


def example(name: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "examples" / name), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)


def test_the_examples_run(node):
    url = ["--node", node.url]
    sub = example("subscribe_book.py", *url, "--seconds", "8")
    mm = example("market_maker.py", *url, "--seconds", "4", "--interval", "1", "--levels", "2")
    mark = Decimal(Client(node.url).market("BTC-USD")["mark_price"])
    po = example("place_order.py", *url, "--side", "buy", "--size", "0.001", "--price",
                 str(int(mark) - 1000))
    outs = {}
    for name, p in (("place", po), ("mm", mm), ("sub", sub)):
        out, _ = p.communicate(timeout=90)
        assert p.returncode == 0, f"{name}:\n{out}"
        outs[name] = out
    assert "order #" in outs["place"] and "open:" in outs["place"]
    assert "quoting 0.001" in outs["mm"] and "quotes cancelled" in outs["mm"]
    assert "snapshot at height" in outs["sub"]
    assert "rebuilt book matches the orderbook query" in outs["sub"]


def test_bench_runs_and_writes_its_summary(node, tmp_path):
    out = tmp_path / "bench.json"
    p = perpchain("bench", "--node", node.url, "--dir", str(node.dir), "--duration", "3",
                  "--rate", "40", "--accounts", "8", "--json-out", str(out), timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    s = json.loads(out.read_text())
    for field in ("submitted", "skipped", "accepted", "committed", "accepted_tps", "committed_tps",
                  "latency_ms", "block_interval_ms", "mempool_depth", "memory", "mix"):
        assert field in s, field
    assert s["submitted"] == sum(s["mix"].values()) > 0
    assert s["accepted"] + s["refused"] == s["submitted"]
    assert s["committed"] + s["uncommitted"] == s["accepted"]
    assert set(s["latency_ms"]) >= {"p50", "p90", "p99"}
    mem = s["memory"]["node0"]
    assert mem["pid"] == node.node.pid() and mem["rss_start_mib"] > 0
    assert "submit-to-commit latency: p50" in p.stdout and "resident memory" in p.stdout
