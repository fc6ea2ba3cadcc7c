"""What node/gc_tuning.py relies on: the state machine's garbage is freed by reference
counting alone. After blocks full of every feature (triggers that fire and fail, rejected
txs, batches, expiries), mempool check states replaced block after block, and books dropped
with `release`, the cycle collector finds nothing."""

import gc
import itertools

from node.mempool import Mempool, MempoolLimits
from state.books import Books
from state.derived import derived_of
from state.machine import next_ctx
from state.tx import decode_tx
from tests.chain_helpers import (BTC_LOT, BTC_PERP, PRICE, Chain, key, oracle_tx, order,
                                 trading_genesis)
from tests.unit.test_trading_golden import RecChain, _digest, feature_blocks


def cycles_left_by(fn) -> int:
    """Objects the cycle collector frees after `fn()` (run once before, to warm up imports
    and module-level caches, which are not garbage)."""
    fn()
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        fn()
        return gc.collect()
    finally:
        if enabled:
            gc.enable()


def test_blocks_of_every_feature_leave_no_cycles():
    def apply_blocks():
        genesis, blocks = feature_blocks(5)
        chain = RecChain(genesis(), warm=True)
        _digest(chain, blocks)
        chain.cache.derived.release()  # the node's derived cache, dropped with the chain

    assert cycles_left_by(apply_blocks) == 0


def test_a_trigger_rejected_at_the_end_of_a_block_leaves_no_cycles():
    """The end-block step keeps the TxError of a trigger that cannot execute (for its event)."""
    a, b, c = key(0), key(1), key(2)

    def reject_a_trigger():
        chain = Chain(trading_genesis(), warm=True)
        n = itertools.count(chain.time_ms)
        lots = 10 * BTC_LOT
        chain.block([order(b, next(n), BTC_PERP, False, 60_000 * PRICE, lots),
                     order(a, next(n), BTC_PERP, True, 60_000 * PRICE, lots, tif=1)])
        chain.block([order(a, next(n), BTC_PERP, False, 50_000 * PRICE, lots, kind=2, tif=1,
                           reduce_only=True, trigger=58_000 * PRICE)])
        # a's position is closed before its reduce-only stop fires: the stop is rejected
        chain.block([order(c, next(n), BTC_PERP, True, 60_000 * PRICE, lots),
                     order(a, next(n), BTC_PERP, False, 60_000 * PRICE, lots, tif=1)])
        res = chain.block(oracle_tx(next(n), [("BTC", 57_000 * PRICE)]))
        assert [e.type for e in res.block_events if e.type.startswith("trigger")] == \
            ["trigger_rejected"]
        chain.cache.derived.release()

    assert cycles_left_by(reject_a_trigger) == 0


def test_mempool_check_states_and_dropped_books_leave_no_cycles():
    a, b = key(0), key(1)

    def trade():
        chain = Chain(trading_genesis(), warm=True)
        n = itertools.count(chain.time_ms)
        mp = Mempool(MempoolLimits(1000, 1 << 20, 4096), chain.kv, next_ctx(chain.kv),
                     lambda h: False)
        for i in range(6):
            txs = [order(a, next(n), BTC_PERP, True, (59_000 + i) * PRICE, 20 * BTC_LOT),
                   order(b, next(n), BTC_PERP, False, (59_000 + i) * PRICE, 10 * BTC_LOT),
                   order(b, next(n), BTC_PERP, False, (61_000 + i) * PRICE, 10 * BTC_LOT)]
            for raw in txs:
                assert mp.admit(mp.precheck(raw)).code == 0
            res = chain.block(txs)
            mp.update([decode_tx(t).hash for t in txs], chain.kv, next_ctx(chain.kv),
                      result=res)
            Books().build(chain.kv, BTC_PERP).release()  # an RPC query's book of a height
        derived_of(mp.check_state).release()
        chain.cache.derived.release()

    assert cycles_left_by(trade) == 0
