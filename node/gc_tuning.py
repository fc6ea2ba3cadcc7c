"""The garbage collector's settings for a node process (start, replay, bench).

A node keeps many long-lived objects (order books, decoded-record caches, the recent-tx
index) and allocates tens of thousands of short-lived containers per block. Under CPython's
defaults the collector walks the young generation every 700 allocations and the older ones
often after that: `bench/bench_matching.py` spends about a fifth of block execution in it.
Nearly all of this garbage is freed by reference counting the moment it dies (the state
machine builds no reference cycles: a book order's links are cleared when it leaves the book,
caught TxErrors are dropped at the end of their `except` block), so the collector, which only
exists to find cycles, can run far less often:

* `gc.freeze()` once the node has loaded its state: what is alive then moves to a permanent
  generation that later collections never walk;
* the young generation is collected every `YOUNG_THRESHOLD` allocations instead of 700 (the
  older generations keep their ratios to it).

The collector stays enabled, so a cycle made by a bug is still freed, later. Consensus does
not depend on any of this: collection never changes what the state machine computes.
"""

import gc

YOUNG_THRESHOLD = 500_000
OLDER_THRESHOLDS = (20, 50)  # collections of the younger generation between older ones


def tune_gc() -> None:
    """Freeze what is alive now and collect rarely (see the module docstring)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
