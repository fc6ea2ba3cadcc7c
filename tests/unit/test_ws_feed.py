"""Websocket feeds in one process: the L2 diff and sequence rules (node/book_feed.py), the hub's
fan-out on a real one-validator chain (rpc/ws_hub.py), its limits and its request errors."""

import json
import random

import pytest

from node.book_feed import BookFeed, apply_changes, diff_levels
from rpc.errors import RPCCode
from rpc.ws_client import L2Book, SequenceGap
from rpc.ws_hub import CLOSE_TOO_SLOW, Hub, Refused
from rpc.ws_server import answer
from state.book import OrderBook, Side
from tests.protocol_chain import MAKER, PX, USER, VALIDATOR, RPCChain, order_action


# -- diffs and sequences ---------------------------------------------------------------------

def _random_levels(rng, n):
    return {rng.randrange(1, 60): (rng.randrange(1, 9), rng.randrange(1, 4)) for _ in range(n)}


def test_diff_then_apply_gives_the_new_levels():
    rng = random.Random(7)
    for _ in range(500):
        old, new = _random_levels(rng, rng.randrange(0, 20)), _random_levels(rng, rng.randrange(0, 20))
        changes = diff_levels(old, new)
        got = dict(old)
        apply_changes(got, changes)
        assert got == new
        assert [c.price_ticks for c in changes] == sorted({c.price_ticks for c in changes})
        # only what differs is sent: unchanged levels never appear
        assert all(old.get(c.price_ticks) != new.get(c.price_ticks) for c in changes)


def _book(orders):
    b = OrderBook()
    for oid, (side, px, sz) in enumerate(orders, start=1):
        b.add(oid, b"o", side, px, sz)
    return b


def test_sequence_moves_only_when_the_view_changes_and_the_depth_bounds_the_view():
    feed = BookFeed(depth=2, max_markets=4)
    b = _book([(Side.BUY, 10, 1), (Side.BUY, 9, 1), (Side.SELL, 12, 1)])
    v = feed.track(1, b, 5)
    assert (v.sequence, v.height, v.bids, v.asks) == (0, 5, {10: (1, 1), 9: (1, 1)}, {12: (1, 1)})
    assert feed.advance(lambda m: b, 6) == []            # nothing changed: no update
    b.add(9, b"o", Side.BUY, 11, 3)                      # a new best bid pushes 9 out of depth 2
    (u,) = feed.advance(lambda m: b, 7)
    assert (u.sequence, u.height) == (1, 7)
    assert [tuple(c) for c in u.bids] == [(9, 0, 0), (11, 3, 1)] and u.asks == ()
    assert feed.advance(lambda m: b, 7) == []            # a height is published once
    feed.untrack(1)
    assert feed.track(1, b, 8).sequence == 1             # sequences never go back
    with pytest.raises(ValueError, match="limit 4"):
        for m in range(2, 7):
            feed.track(m, b, 8)


def test_the_client_book_detects_a_gap():
    book = L2Book.from_snapshot({"market": "X", "sequence": 4, "height": "9",
                                 "bids": [{"price": "10.5", "size": "2", "orders": 1}],
                                 "asks": []})
    book.apply({"sequence": 5, "height": "10", "bids": [{"price": "10.5", "size": "0",
                                                          "orders": 0}], "asks": []})
    assert book.levels() == {"bids": [], "asks": []}
    with pytest.raises(SequenceGap, match="sequence 7 after 5"):
        book.apply({"sequence": 7, "height": "12", "bids": [], "asks": []})


# -- the hub on a real chain -----------------------------------------------------------------

class Chain:
    def __init__(self, path, **rpc):
        self.c = RPCChain(path)
        for k, v in rpc.items():
            setattr(self.c.app.cfg.rpc, k, v)
        self.hub = Hub(self.c.app)
        self.n = self.c.time_ms

    def block(self, *txs):
        """Commit a block and run the hub's publisher pass, as its task would."""
        out = []
        for k, a in txs:
            self.n = max(self.n + 1, self.c.time_ms)
            out.append(self.c.tx(k, self.n, a))
        r = self.c.block(out)
        assert not [x.log for x in r.tx_results if x.code]
        blocks, lost = self.hub.feed.drain()
        assert lost == 0
        self.hub.publish(blocks)

    def ask(self, conn, method, id_=1, **params) -> dict:
        return json.loads(answer(self.hub, conn, json.dumps(
            {"jsonrpc": "2.0", "id": id_, "method": method, "params": params})))


def _drain(conn) -> list[dict]:
    out = []
    while True:
        try:
            out.append(json.loads(conn.recv_ch.receive_nowait()))
        except Exception:
            return out


@pytest.fixture
def chain(tmp_path):
    ch = Chain(tmp_path)
    ch.block((USER, ["faucet"]), (MAKER, ["faucet"]))
    ch.block((VALIDATOR, ["oracle", [["BTC", 60_000 * PX], ["ETH", 3_000 * PX]]]))
    yield ch
    ch.c.close()


def test_book_rebuilt_from_snapshot_and_updates_equals_the_orderbook_query(chain):
    conn = chain.hub.open("10.0.0.1")
    chain.block((MAKER, order_action(1, False, 60_010, 0.002)))
    sub = chain.ask(conn, "subscribe", topic="book", market="BTC-USD")["result"]
    book = L2Book.from_snapshot(sub["snapshot"])
    rng = random.Random(3)
    for i in range(12):
        txs = [(MAKER, order_action(1, rng.random() < 0.5, 59_900 + 10 * rng.randrange(-8, 8)
                                    + (200 if i % 2 else -200), 0.001 * rng.randrange(1, 4)))
               for _ in range(3)]
        txs.append((USER, order_action(1, True, 60_500, 0.001, tif=1)))  # IOC: takes asks
        chain.block(*txs[:2] if i % 4 == 3 else txs)
        for msg in _drain(conn):
            book.apply(msg["params"]["result"])
        q = chain.c.call("orderbook", {"market": "BTC-USD", "depth": 100})
        assert book.height == int(q["height"]) or book.sequence == sub["snapshot"]["sequence"]
        assert book.levels() == {"bids": q["bids"], "asks": q["asks"]}, i
    assert book.sequence > 5


def test_account_trades_and_blocks_notifications(chain):
    conn = chain.hub.open("10.0.0.1")
    for params in ({"topic": "blocks"}, {"topic": "account", "address": USER.address},
                   {"topic": "trades", "market": 1}, {"topic": "funding"}):
        assert "result" in chain.ask(conn, "subscribe", **params)
    chain.block((MAKER, order_action(1, False, 60_010, 0.001)), (USER, ["set_leverage", 1, 10]))
    chain.block((USER, order_action(1, True, 60_010, 0.0005, tif=1)))
    msgs = [m["params"] for m in _drain(conn)]
    blocks = [p["result"] for p in msgs if p["topic"] == {"topic": "blocks"}]
    assert [b["height"] for b in blocks] == [str(chain.c.app.tip.height - 1),
                                             str(chain.c.app.tip.height)]
    assert blocks[-1]["app_hash"] == chain.c.app.tip.app_hash.hex().upper()
    assert blocks[-1]["num_txs"] == 1
    (fill_note,) = [p["result"] for p in msgs if p["topic"]["topic"] == "account"
                    and p["result"]["fills"]]
    (fill,) = fill_note["fills"]
    assert (fill["taker"], fill["price"], fill["size"]) == (USER.address, "60010", "0.0005")
    assert fill_note["positions"][0]["size"] == "0.0005"
    (trades,) = [p["result"] for p in msgs if p["topic"]["topic"] == "trades"]
    assert trades["trades"][0]["maker"] == MAKER.address and trades["market"] == "BTC-USD"


def test_a_full_queue_drops_only_that_subscriber(tmp_path):
    ch = Chain(tmp_path, ws_queue_messages=3)
    slow, fast = ch.hub.open("10.0.0.1"), ch.hub.open("10.0.0.2")
    ch.ask(slow, "subscribe", topic="blocks")
    ch.ask(fast, "subscribe", topic="blocks")
    _drain(fast)
    for _ in range(4):
        ch.block((USER, ["faucet"]) if False else (VALIDATOR, ["oracle", [["BTC", 60_000 * PX]]]))
        _drain(fast)             # the fast one reads as it goes
    assert slow.close_reason == (CLOSE_TOO_SLOW, "subscriber too slow: queue of 3 messages "
                                                 "full")
    assert fast.close_reason is None
    ch.hub.close(slow)
    assert ch.hub.topics[next(iter(ch.hub.topics))] == {fast: "1"}
    ch.c.close()


def test_connection_and_subscription_limits(tmp_path):
    ch = Chain(tmp_path, ws_max_connections=3, ws_max_connections_per_ip=2,
               ws_max_subscriptions=2)
    a, _ = ch.hub.open("10.0.0.1"), ch.hub.open("10.0.0.1")
    with pytest.raises(Refused, match="ws_max_connections_per_ip = 2"):
        ch.hub.open("10.0.0.1")
    c = ch.hub.open("10.0.0.2")
    with pytest.raises(Refused, match="ws_max_connections = 3"):
        ch.hub.open("10.0.0.3")
    ch.hub.close(c)
    ch.hub.close(ch.hub.open("10.0.0.3"))                   # a slot is free again
    assert "result" in ch.ask(a, "subscribe", topic="blocks")
    assert "result" in ch.ask(a, "subscribe", topic="book", market=1)
    err = ch.ask(a, "subscribe", topic="trades", market=1)["error"]
    assert err["code"] == RPCCode.SUBSCRIPTION_LIMIT and "ws_max_subscriptions = 2" in err["message"]
    assert ch.ask(a, "unsubscribe_all")["result"] == {"unsubscribed": ["1", "2"]}
    assert ch.hub.topics == {} and ch.hub.books.views == {}
    ch.c.close()


@pytest.mark.parametrize("frame, code, text", [
    ("not json", RPCCode.PARSE_ERROR, "not valid JSON"),
    ('[{"jsonrpc": "2.0", "id": 1, "method": "subscribe"}]', RPCCode.INVALID_REQUEST, "no batches"),
    ('{"jsonrpc": "2.0", "id": 1, "method": "status"}', RPCCode.METHOD_NOT_FOUND, "HTTP POST"),
    ('{"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": ["blocks"]}',
     RPCCode.INVALID_PARAMS, "must be an object"),
    ('{"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": {}}', RPCCode.INVALID_PARAMS,
     "params.topic must be one of blocks, account, book"),
    ('{"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": {"topic": "book"}}',
     RPCCode.INVALID_PARAMS, "needs params.market"),
    ('{"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": {"topic": "book", '
     '"market": "DOGE-USD"}}', RPCCode.INVALID_PARAMS, "unknown market 'DOGE-USD'"),
    ('{"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": {"topic": "blocks", '
     '"market": 1}}', RPCCode.INVALID_PARAMS, "unexpected: market"),
    ('{"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": {"topic": "account", '
     '"address": "xyz"}}', RPCCode.INVALID_PARAMS, "64 hex characters"),
    ('{"jsonrpc": "2.0", "id": 1, "method": "unsubscribe", "params": {"subscription": "9"}}',
     RPCCode.INVALID_PARAMS, "no subscription '9' on this connection"),
    ('{"jsonrpc": "2.0", "id": 1, "method": "unsubscribe"}', RPCCode.INVALID_PARAMS,
     "needs params.subscription"),
])
def test_bad_requests_get_clear_errors(chain, frame, code, text):
    conn = chain.hub.open("10.0.0.1")
    err = json.loads(answer(chain.hub, conn, frame))["error"]
    assert err["code"] == code and text in err["message"], err


def test_a_topic_is_subscribed_once_per_connection(chain):
    conn = chain.hub.open("10.0.0.1")
    chain.ask(conn, "subscribe", topic="book", market="BTC-USD")
    err = chain.ask(conn, "subscribe", topic="book", market=1)["error"]
    assert "already subscribed to book BTC-USD as subscription 1" in err["message"]


def test_the_protocol_doc_example_is_what_the_node_sends(tmp_path):
    """docs/PROTOCOL.md 8.5: every `<` line is the node's frame for the `>` line before it,
    and `# block` commits the fill whose notifications follow."""
    from tests.unit.test_protocol_doc import doc_section

    sec = doc_section("### 8.5 Websocket subscriptions", "\n---")
    lines = sec.split("**Example**")[1].split("```")[1].strip().splitlines()
    ch = Chain(tmp_path)
    ch.block((USER, ["faucet"]), (MAKER, ["faucet"]))
    ch.block((VALIDATOR, ["oracle", [["BTC", 60_000 * PX], ["ETH", 3_000 * PX]]]))
    ch.block((MAKER, order_action(1, False, 60_010, 0.001, cloid=7)),
             (MAKER, order_action(1, True, 59_990, 0.001, cloid=8)), (USER, ["set_leverage", 1, 10]))
    conn = ch.hub.open("10.0.0.1")
    got: list[str] = []
    for line in lines:
        if line.startswith("> "):
            conn.push(answer(ch.hub, conn, line[2:]))
        elif line.startswith("# block"):
            ch.block((USER, order_action(1, True, 60_010, 0.0005, tif=1, cloid=1)))
        if not line.startswith("< "):
            got += ["< " + json.dumps(m, separators=(",", ":")) for m in _drain(conn)]
    got += ["< " + json.dumps(m, separators=(",", ":")) for m in _drain(conn)]
    assert got == [x for x in lines if x.startswith("< ")]
    assert len(got) == 11
    ch.c.close()


def test_websocket_requests_share_the_ip_request_rate(tmp_path):
    ch = Chain(tmp_path, max_requests_per_s_per_ip=3)
    conn = ch.hub.open("10.0.0.1")
    answers = [ch.ask(conn, "unsubscribe_all") for _ in range(5)]
    assert ["result" in a for a in answers] == [True] * 3 + [False] * 2
    assert answers[-1]["error"]["code"] == RPCCode.RATE_LIMITED
    assert "max_requests_per_s_per_ip = 3" in answers[-1]["error"]["message"]
    ch.c.close()


def test_funding_settlements_reach_market_and_all_market_subscribers(chain):
    from node.read_model import CommittedBlock
    from state.events import Event

    one, every = chain.hub.open("10.0.0.1"), chain.hub.open("10.0.0.2")
    chain.ask(one, "subscribe", topic="funding", market="ETH-USD")
    chain.ask(every, "subscribe", topic="funding")
    ev = lambda sym: Event("funding", (("market", sym), ("rate", "0.0000125")))  # noqa: E731
    chain.hub.publish([CommittedBlock(9, 5, b"\1" * 32, (), (ev("BTC-USD"), ev("ETH-USD")),
                                      b"\2" * 32)])
    got_one = [m["params"]["result"] for m in _drain(one)]
    got_every = [m["params"]["result"] for m in _drain(every)]
    assert [r["market"] for r in got_one] == ["ETH-USD"]
    assert [r["market"] for r in got_every] == ["BTC-USD", "ETH-USD"]
    assert got_one[0]["funding"] == [{"type": "funding", "tx_index": 0, "market": "ETH-USD",
                                      "rate": "0.0000125"}]
