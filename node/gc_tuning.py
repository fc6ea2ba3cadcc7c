"""The garbage collector's settings for a node process (start, replay, bench).

A node keeps many long-lived objects (order books, decoded-record caches, the recent-tx
index) and allocates tens of thousands of short-lived containers per block. Under CPython's
defaults the collector walks the young generation every 700 allocations and the older ones
often after that: `bench/bench_matching.py` spends about a fifth of block execution in it.

The collector only exists to free reference cycles, and the state machine is written so that
what it drops is freed by reference counting alone, the moment it dies:
* no Overlay refers to itself (state/kv.py), so a tx's overlay and a block's write set go at
  once;
* a TxError kept after it was caught loses its traceback (state/machine.py
  `sub_transaction`): its frames would otherwise point back at the caller holding it;
* order books being dropped are emptied first (`Books.release`, `OrderBook.release`: the
  mempool's check state after each block, the RPC's books of the previous height, a book
  cache built on another state), since the links between resting orders are cycles.

So the collector can run far less often:
* `gc.freeze()` once the node has loaded its state: what is alive then moves to a permanent
  generation that later collections never walk;
* the young generation is collected every `YOUNG_THRESHOLD` allocations instead of 700, the
  middle one after 20 of those and the oldest after 50 of the middle one's (defaults 10, 10;
  CPython also skips a full collection until the long-lived objects grew by a quarter).

The collector stays enabled, so a cycle made elsewhere (the RPC server, trio) is still freed,
later. tests/unit/test_gc_tuning.py checks that applying blocks, rolling back and dropping
books leave nothing for the collector. Consensus does not depend on any of this: collection
never changes what the state machine computes.
"""

import gc

YOUNG_THRESHOLD = 500_000
OLDER_THRESHOLDS = (20, 50)  # collections of the younger generation between older ones


def tune_gc() -> None:
    """Freeze what is alive now and collect rarely (see the module docstring)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
