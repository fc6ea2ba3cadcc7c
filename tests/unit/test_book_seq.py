"""Websocket book sequences continue across a node restart (node/book_seq.py): the hub of a
restarted node, on the same store, starts each market's view at the last published
sequence + 1, never back at 0; a store without saved sequences starts at 0."""

from node.book_feed import BookFeed
from node.book_seq import BookSequences
from state.book import OrderBook
from tests.protocol_chain import MAKER, VALIDATOR, order_action
from tests.unit.test_ws_feed import PX, USER, Chain, _drain


def _book_notes(conn) -> list[dict]:
    return [m["params"]["result"] for m in _drain(conn)
            if m.get("method") == "subscription" and m["params"]["topic"]["topic"] == "book"]


def test_a_restarted_node_goes_on_from_the_last_sequence(tmp_path):
    ch = Chain(tmp_path)
    ch.block((USER, ["faucet"]), (MAKER, ["faucet"]))
    ch.block((VALIDATOR, ["oracle", [["BTC", 60_000 * PX], ["ETH", 3_000 * PX]]]))
    conn = ch.hub.open("10.0.0.1")
    snap = ch.ask(conn, "subscribe", topic="book", market="BTC-USD")["result"]["snapshot"]
    assert snap["sequence"] == 0                    # nothing saved yet: a fresh store
    for i in range(3):
        ch.block((MAKER, order_action(1, False, 60_010 + i, 0.001)))
    seqs = [u["sequence"] for u in _book_notes(conn)]
    assert seqs == [1, 2, 3]
    ch.c.close()

    ch = Chain(tmp_path)                            # the node restarts on its store
    conn = ch.hub.open("10.0.0.1")
    snap = ch.ask(conn, "subscribe", topic="book", market="BTC-USD")["result"]["snapshot"]
    assert snap["sequence"] == 4                    # one past the last published
    assert len(snap["asks"]) == 3
    ch.block((MAKER, order_action(1, False, 60_020, 0.001)))
    assert [u["sequence"] for u in _book_notes(conn)] == [5]
    ch.c.close()

    ch = Chain(tmp_path)                            # a restart with no update since
    conn = ch.hub.open("10.0.0.1")
    assert ch.ask(conn, "subscribe", topic="book",
                  market="BTC-USD")["result"]["snapshot"]["sequence"] == 6
    ch.c.close()


class _Saved:
    def __init__(self):
        self.d: dict[int, int] = {}

    def last(self, mid):
        return self.d.get(mid)

    def save(self, seqs):
        self.d.update(seqs)


def test_the_feed_saves_each_sequence_before_returning_it():
    saved = _Saved()
    feed = BookFeed(10, 10, saved)
    book = OrderBook()
    assert feed.track(1, book, 5).sequence == 0 and saved.d == {1: 0}
    feed.untrack(1)
    assert feed.track(1, book, 6).sequence == 0       # same process: no jump
    feed2 = BookFeed(10, 10, saved)
    assert feed2.track(1, book, 7).sequence == 1 and saved.d == {1: 1}
    assert BookFeed(10, 10).track(1, book, 7).sequence == 0   # nothing kept: 0


def test_sequences_are_stored_per_market(tmp_path):
    import plyvel
    db = plyvel.DB(str(tmp_path / "db"), create_if_missing=True)
    s = BookSequences(db)
    assert s.last(1) is None
    s.save({1: 7, 2: 2**40})
    assert (s.last(1), s.last(2), s.last(3)) == (7, 2**40, None)
    db.close()
