"""Operators and clients on real node processes: websocket subscriptions (a fill within one
block, the L2 book rebuilt from snapshot + updates equal to `orderbook`, a slow subscriber
dropped while the chain goes on), `/metrics` in the Prometheus text format, JSON log lines."""

import json
import socket
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed

from localnet import cluster
from localnet.feeder import start_feeder
from node.keys import KeyPair
from rpc.ws_client import L2Book, Subscriptions
from tests.e2e.conftest import Net, fast_timeouts, free_base_port
from tests.e2e.conftest import wait_until

pytestmark = pytest.mark.e2e




@pytest.fixture
def trading(net):
    """(net, alice, bob): both funded, oracle prices flowing."""
    feeder = start_feeder(net.node.home, net.url, interval_s=0.5)
    try:
        alice, bob = KeyPair.generate(), KeyPair.generate()
        ca, cb = net.client(alice), net.client(bob)
        ca.faucet()
        cb.faucet()
        wait_until(lambda: all(not a["stale"] for a in ca.oracle()["assets"]), what="oracle")
        yield net, ca, cb
    finally:
        feeder.terminate()
        feeder.wait(10)


def _until_block(ws, height: int, book: L2Book | None, seen: list) -> None:
    """Read notifications up to and including the `blocks` one of `height` (the last of that
    height), applying book updates to `book` and keeping every notification in `seen`."""
    done = [int(n.result["height"]) for n in seen if n.topic["topic"] == "blocks"]
    if done and done[-1] >= height:
        assert done[-1] == height, "that height is already behind the stream"
        return
    while True:
        n = ws.next(timeout=10)
        seen.append(n)
        if n.topic["topic"] == "book" and book is not None:
            book.apply(n.result)
        if n.topic["topic"] == "blocks" and int(n.result["height"]) >= height:
            assert int(n.result["height"]) == height
            return


def test_fill_within_one_block_and_the_book_rebuilt_from_updates(trading):
    net, ca, cb = trading
    with Subscriptions(net.url) as ws:
        ws.subscribe("blocks")
        ws.subscribe("account", address=ca.key.address)
        book = L2Book.from_snapshot(ws.subscribe("book", market="BTC-USD").snapshot)
        seen: list = []
        cb.place_order("BTC-USD", False, "60100", "0.02")
        out = ca.place_order("BTC-USD", True, "60100", "0.01", tif="ioc")
        _until_block(ws, out.height, book, seen)
        # the fill's notification came with its own block, before any later block's
        (note,) = [n.result for n in seen if n.topic["topic"] == "account" and n.result["fills"]]
        assert note["height"] == str(out.height)
        (fill,) = note["fills"]
        assert (fill["taker"], fill["maker"], fill["size"]) == (ca.key.address, cb.key.address,
                                                                "0.01")
        assert note["positions"][0]["size"] == "0.01"
        # more orders over several blocks (not waited for), then the book at a height
        for i in range(30):
            c = ca if i % 2 else cb
            c.place_order("BTC-USD", i % 2 == 1, str(59_000 + 37 * i if i % 2 else 60_200 + 41 * i),
                          "0.001", wait=False)
            if i % 10 == 9:
                q = ca.orderbook("BTC-USD", 100)
                _until_block(ws, int(q["height"]), book, seen)
                assert book.levels() == {"bids": q["bids"], "asks": q["asks"]}, q["height"]
                assert book.height <= int(q["height"])
        # (on a loaded machine the orders may land after the three looks above: wait for them)
        deadline = time.time() + 60
        while book.sequence < 3 and time.time() < deadline:
            time.sleep(0.3)
            q = ca.orderbook("BTC-USD", 100)
            _until_block(ws, int(q["height"]), book, seen)
            assert book.levels() == {"bids": q["bids"], "asks": q["asks"]}, q["height"]
        assert book.sequence >= 3


def test_book_sequences_go_on_across_a_node_restart(trading):
    """A restarted node's book snapshot continues from the last sequence it published (one
    past it), so a client tells a restart from a gap: sequences never go back."""
    net, ca, cb = trading
    with Subscriptions(net.url) as ws:
        book = L2Book.from_snapshot(ws.subscribe("book", market="BTC-USD").snapshot)
        seen: list = []
        ws.subscribe("blocks")
        out = cb.place_order("BTC-USD", False, "60500", "0.001")
        _until_block(ws, out.height, book, seen)
        assert book.sequence >= 1
        last = book.sequence
    net.down()
    net.restart()
    with Subscriptions(net.url) as ws:
        snap = ws.subscribe("book", market="BTC-USD").snapshot
    assert snap["sequence"] == last + 1, (snap["sequence"], last)
    assert {"price": "60500", "size": "0.001", "orders": 1} in snap["asks"]


def test_a_slow_subscriber_is_dropped_and_the_chain_goes_on(tmp_path):
    def configure(cfg):
        cfg.rpc.ws_queue_messages = 8
        cfg.rpc.timeout_send = "60s"   # (it reads again in time to see why it was closed)
    net = Net(tmp_path / "ln", configure=configure)
    try:
        slow = _non_reader(net)
        fast = Subscriptions(net.url)
        slow.subscribe("blocks")
        fast.subscribe("blocks")
        start = net.client().height()
        # the slow one stops reading; the node must not wait for it
        got = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            got.append(int(fast.next(timeout=10).result["height"]))
            drops = _metric(net.url, "perpchain_ws_dropped_total")
            if drops.get((("code", "4000"),)):
                break
        print(f"dropped after {len(got)} blocks")
        assert _metric(net.url, "perpchain_ws_dropped_total")[(("code", "4000"),)] == 1
        assert got == list(range(got[0], got[-1] + 1))      # the fast one missed nothing
        # the slow one, reading again, gets what was in flight, then the reason
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                slow.next(timeout=10)
        assert closed.value.rcvd.code == 4000
        assert closed.value.rcvd.reason == "subscriber too slow: queue of 8 messages full"
        h = net.client().height()
        wait_until(lambda: net.client().height() > h + 3, what="blocks after the drop")
        assert h > start
        fast.close()
    finally:
        net.down()


def _non_reader(net: Net) -> Subscriptions:
    """A client with a tiny receive buffer that stops reading its socket after one message
    (and sends no keepalive pings) until told to read."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.connect(("127.0.0.1", net.node.rpc_port))
    return Subscriptions(net.url, sock=sock, max_queue=1, ping_interval=None, compression=None)


def test_a_client_that_reads_nothing_is_cut_off_and_cannot_hold_the_node(tmp_path):
    def configure(cfg):
        cfg.rpc.timeout_send = "4s"
        cfg.rpc.ws_queue_messages = 16
    net = Net(tmp_path / "ln", configure=configure)
    try:
        stuck = _non_reader(net)
        stuck.subscribe("blocks")
        wait_until(lambda: _metric(net.url, "perpchain_ws_connections")[()] == 1, what="open")
        # once its buffers are full, the kernel aborts the connection that takes nothing for
        # timeout_send, and the node forgets it
        wait_until(lambda: _metric(net.url, "perpchain_ws_connections")[()] == 0, timeout=60,
                   what="the stuck connection to be closed")
        # a second one floods requests without reading the replies: the node's writer blocks
        # on it, its queue fills (dropped, code 4000); the node is stopped right then
        stuck2 = _non_reader(net)
        for i in range(40):   # each error reply repeats the 2 KB topic: ~80 KB unread
            stuck2.ws.send(json.dumps({"jsonrpc": "2.0", "id": i, "method": "subscribe",
                                       "params": {"topic": "no such topic " + "x" * 2000}}))
        wait_until(lambda: _metric(net.url, "perpchain_ws_dropped_total")
                   .get((("code", "4000"),)) == 1, what="the flooder dropped")
        t0 = time.monotonic()
    finally:
        net.down()
    # (cluster.down sends SIGKILL after 10 s)
    assert time.monotonic() - t0 < 9.5, "SIGTERM waited for a client that reads nothing"
    assert net.node.pid() is None
    assert "received SIGTERM" in net.node.log_file.read_text()


def _metric(url: str, name: str) -> dict:
    """{labels: value} of the samples called `name` in /metrics."""
    r = httpx.get(url + "/metrics", timeout=5)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    out = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_metrics_parse_and_advance_and_logs_are_json_lines(tmp_path):
    d = tmp_path / "ln"
    entries = cluster.up(d, 1, free_base_port(1), timeout_commit="100ms",
                         configure=fast_timeouts, feeders=False, log_format="json")
    try:
        url = entries[0].rpc_url
        h1 = _metric(url, "perpchain_height")[()]
        httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "nope"})
        httpx.get(url + "/status")
        wait_until(lambda: _metric(url, "perpchain_height")[()] >= h1 + 3, what="height metric")
        assert _metric(url, "perpchain_rpc_requests_total")[(("method", "status"),)] >= 1
        assert _metric(url, "perpchain_rpc_errors_total")[(("code", "-32601"),
                                                           ("method", "unknown"))] == 1
        assert _metric(url, "perpchain_block_interval_seconds_count")[()] >= 2
        assert _metric(url, "perpchain_peers")[()] == 0
    finally:
        cluster.down(d)
    lines = entries[0].log_file.read_text().splitlines()
    assert len(lines) >= 3
    records = [json.loads(line) for line in lines]
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    assert any(r["logger"] == "perpchain.node" and "shutting down" in r["message"]
               for r in records)
