"""The mempool's check state after a block copies the node's execution books on first use
(`Books.copy_from`, brought up to date with the writes it keeps on its fast path) instead of
building them from the store. Over random order / cancel / modify streams, with
blocks that are the mempool's own prefix (fast path) and blocks that are not (recheck):
* the copied books always equal a rebuild from the check state's view;
* every CheckTx result and every eviction is the same as with books rebuilt from the store.
"""

import random

from hypothesis import HealthCheck, given, settings, strategies as st

from node.mempool import Mempool, MempoolLimits
from state.book import Side
from state.books import Books
from state.machine import next_ctx
from state.orders import account_order_ids
from state.tx import decode_tx
from tests.chain_helpers import BTC_PERP, Chain, trading_genesis
from tests.property.test_trading_props import KEYS, N, build


def orders_of(book) -> list[tuple]:
    return [(o.order_id, o.owner, o.side, o.price_ticks, o.size_lots, o.info)
            for side in (Side.BUY, Side.SELL) for o in book.orders(side)]


def check_books_equal_a_rebuild(mp: Mempool) -> int:
    """The check state's books (copied on first use, as the next checked order would) equal a
    rebuild from its view; returns how many orders the BTC-USD book holds."""
    books = mp.check_state.derived.books
    books.book(mp.check_state, BTC_PERP)
    for market, book in books.books.items():
        assert orders_of(book) == orders_of(Books().build(mp.check_state, market))
        book.check_invariants()
    return len(books.books[BTC_PERP])


def submit(mp: Mempool, raws) -> list[int]:
    codes = []
    for raw in raws:
        try:
            codes.append(int(mp.admit(mp.precheck(raw)).code))
        except Exception as e:  # precheck raises TxError for duplicates and the like
            codes.append(-int(getattr(e, "code", 1)))
    return codes


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10**6))
def test_copied_books_equal_a_rebuild_and_change_no_check_result(seed):
    rng = random.Random(seed)
    chain = Chain(trading_genesis(N), warm=True)
    limits = MempoolLimits(10_000, 1 << 24, 4096)
    copied = Mempool(limits, chain.kv, next_ctx(chain.kv), lambda h: False)
    rebuilt = Mempool(limits, chain.kv, next_ctx(chain.kv), lambda h: False)
    fast_paths = resting = 0
    for _ in range(12):
        ids = sorted(i for k in KEYS[:2] for _, i in account_order_ids(chain.kv, k.pub_key))
        spec = [(rng.choice(["order", "order", "order", "cancel", "modify"]), rng.randrange(N),
                 rng.random() < 0.5, rng.randint(-8, 8), rng.randint(1, 5),
                 rng.choice([0, 0, 1, 2, 3])) for _ in range(rng.randint(1, 15))]
        raws = build(spec, chain.time_ms, ids or [1])
        assert submit(copied, raws) == submit(rebuilt, raws)
        # The block: the mempool's own prefix (its fast path), or the same txs shuffled.
        pending = [t.raw for t in copied.reap(10_000, 1 << 24)]
        if rng.random() < 0.5:
            block = pending[:rng.randint(0, len(pending))]
        else:
            block = rng.sample(pending, len(pending))
        res = chain.block(block)
        hashes = [decode_tx(t).hash for t in block]
        ok = all(r.code == 0 for r in res.tx_results)
        fast_paths += ok and block == pending[:len(block)]
        execution_books = chain.cache
        assert chain.cache.app_hash == res.app_hash
        ev_copied = copied.update(hashes, chain.kv, next_ctx(chain.kv), True, res,
                                  execution_books)
        ev_rebuilt = rebuilt.update(hashes, chain.kv, next_ctx(chain.kv), True, res)
        assert [t.raw for t in ev_copied] == [t.raw for t in ev_rebuilt]
        resting = max(resting, check_books_equal_a_rebuild(copied))
    assert fast_paths and resting  # the kept-writes path was taken, over non-empty books


def test_a_copy_is_never_taken_from_a_cache_that_moved_on():
    """Books.copy_from names the state by the cache's app hash: once the cache has applied
    another block, the book is built from the view instead of copied."""
    from state.kv import MemoryKV, Overlay
    from tests.chain_helpers import BTC_LOT, PRICE, order

    chain = Chain(trading_genesis(N), warm=True)
    a = KEYS[0]
    chain.block([order(a, chain.time_ms + 1, BTC_PERP, True, 59_000 * PRICE, 10 * BTC_LOT)])
    view = Overlay(MemoryKV(chain.kv.data))  # a snapshot of the state after block 1
    books = Books()
    books.copy_from(chain.cache)
    chain.block([order(a, chain.time_ms + 2, BTC_PERP, True, 58_000 * PRICE, 10 * BTC_LOT)])
    assert len(chain.cache.derived.books.books[BTC_PERP]) == 2
    assert orders_of(books.book(view, BTC_PERP)) == orders_of(Books().build(view, BTC_PERP))
    assert len(books.book(view, BTC_PERP)) == 1
