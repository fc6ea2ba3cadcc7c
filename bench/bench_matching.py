"""Benchmark: the full apply path per order, in one process (no network, no signatures).

Run with ``python -m bench.bench_matching`` (``--orders N`` for the book size, ``--block N`` for
txs per block).

Each order tx goes through everything `apply_block` does for it: lookup of the pre-verified Tx
(`known`, as the node passes the mempool's verified txs), chain id, nonce, decode of the action,
validation (market, tick, lot, size, oracle freshness, client id), margin check, matching,
settlement of fills (positions, realised PnL, fees, volume), events and every state write, plus
the per-block steps (oracle, marks, triggers). Signatures are skipped: they are verified once, in
the mempool, on other cores; the target is 3x one core's verify rate.

Workloads on a book of N resting orders (BTC-USD perp, 100 maker accounts):
  1. resting adds    - GTC orders that do not cross
  2. crossing        - IOC orders sized to take 1-3 makers
  3. cancels         - cancels of resting orders
  4. mixed           - 50% adds, 30% crossing, 20% cancels (a market maker's flow)
Books are carried across blocks (DerivedCache), as a running node would.

On a shared or noisy machine, ``--repeat N`` runs the whole sequence N times on fresh chains and
reports the best time of each row; ``--cpu`` times with this thread's CPU clock instead of the
wall clock (other processes then cost nothing; memory and cache contention still do).
"""

from __future__ import annotations

import argparse
import random
import time

from node.gc_tuning import tune_gc
from state.derived import DerivedCache
from state.codec import encode
from state.genesis import genesis_writes
from state.kv import MemoryKV
from state.machine import BlockInput, apply_block
from state.tx import Tx, check_action, tx_hash
from localnet.fixtures import BTC_LOT, BTC_PERP, CHAIN_ID, USDC, key, trading_genesis

TICK = 100_000
MID = 600_000  # ticks: $60,000
N_MAKERS = 100
CLOCK = time.perf_counter  # --cpu: time.thread_time


class Bench:
    def __init__(self, n_orders: int, block_size: int, seed: int = 7):
        self.rng = random.Random(seed)
        self.block_size = block_size
        self.keys = [key(i) for i in range(N_MAKERS + 1)]
        g = trading_genesis(N_MAKERS + 1, amount=10_000_000 * USDC)
        self.kv = MemoryKV()
        writes, self.app_hash = genesis_writes(g)
        self.kv.apply(writes)
        self.height, self.time_ms = 0, g.genesis_time_ms
        self.nonce = g.genesis_time_ms
        self.cache = DerivedCache()
        self.resting: dict[int, int] = {}  # order id -> owner index
        self.next_id = 1
        self.fills = 0
        self.planned: dict[int, int] = {}  # order id -> lots the block's takers will take
        self.block_first_id = 1

    def tx(self, who: int, action: list) -> Tx:
        """A Tx as the mempool hands it over (decoded, verified): signature bytes are zero."""
        self.nonce += 1
        k = self.keys[who]
        raw = encode([CHAIN_ID, k.pub_key, self.nonce, action, bytes(64)])
        return Tx(CHAIN_ID, k.pub_key, self.nonce, check_action(action), bytes(64), raw,
                  tx_hash(raw))

    def order(self, who, is_buy, ticks, lots, tif=0) -> Tx:
        return self.tx(who, ["order", BTC_PERP, is_buy, 0, ticks * TICK, lots * BTC_LOT, tif,
                             False, 0, 0, 0])

    def resting_add(self) -> Tx:
        who = self.rng.randrange(N_MAKERS)
        if self.rng.random() < 0.5:
            t = self.order(who, True, MID - self.rng.randint(1, 100), self.rng.randint(1, 10) * 10)
        else:
            t = self.order(who, False, MID + self.rng.randint(1, 100), self.rng.randint(1, 10) * 10)
        self.resting[self.next_id] = who
        self.next_id += 1
        return t

    def run(self, make, n: int) -> float:
        """Apply `n` txs made by `make()` in blocks (made just before each block, so they see
        the book as it is); return the seconds spent inside apply_block."""
        spent = 0.0
        while n > 0:
            k = min(n, self.block_size)
            self.block_first_id = self.next_id  # orders placed from here on are this block's
            spent += self.apply([make() for _ in range(k)])
            n -= k
        return spent

    def apply(self, txs: list[Tx]) -> float:
        """Apply in blocks; return seconds spent inside apply_block (writes applied after)."""
        spent = 0.0
        for i in range(0, len(txs), self.block_size):
            chunk = txs[i:i + self.block_size]
            self.planned = {}
            self.height += 1
            self.time_ms += 250
            known = {t.hash: t for t in chunk}
            blk = BlockInput(self.height, self.time_ms, tuple(t.raw for t in chunk), (),
                             tuple(t.hash for t in chunk))  # as consensus computed them
            t0 = CLOCK()
            res = apply_block(self.kv, blk, self.app_hash, known, self.cache)
            spent += CLOCK() - t0
            bad = [r for r in res.tx_results if r.code != 0]
            assert not bad, bad[:3]
            self.kv.apply(res.writes)
            self.app_hash = res.app_hash
            self.after(res)
        return spent

    def after(self, res) -> None:
        """Track which resting orders left the book (fills and cancels)."""
        for r in res.tx_results:
            for e in r.events:
                if e.type == "fill":
                    self.fills += 1
                    a = dict(e.attrs)
                    if a["maker_remaining"] == "0":
                        self.resting.pop(int(a["maker_order_id"]), None)
                elif e.type == "cancel":
                    self.resting.pop(int(dict(e.attrs)["order_id"]), None)
                elif e.type == "order":
                    a = dict(e.attrs)
                    if a["status"] not in ("open", "partially_filled_open"):
                        self.resting.pop(int(a["order_id"]), None)

    def crossing(self) -> Tx:
        """An IOC taker sized to trade with exactly 1-3 makers (planned against the book as
        the previous block left it, skipping makers already planned away in this block)."""
        book = self.cache.derived.books.books[BTC_PERP]
        is_buy = self.rng.random() < 0.5
        side = 1 if is_buy else 0
        k = self.rng.randint(1, 3)
        sizes, last_px = [], None
        for o in book.orders(side):
            left = o.size_lots - self.planned.get(o.order_id, 0)
            if left <= 0:
                continue
            # Whole multiples of 10 lots (the minimum order size), so the taker's size is
            # exactly what it plans to take.
            take = left if len(sizes) < k - 1 else self.rng.randint(1, left // 10) * 10
            sizes.append(take)
            self.planned[o.order_id] = self.planned.get(o.order_id, 0) + take
            last_px = o.price_ticks
            if len(sizes) == k:
                break
        if not sizes:
            raise SystemExit("the book ran out of makers on one side: use more --orders")
        self.next_id += 1
        return self.order(N_MAKERS, is_buy, last_px, sum(sizes), tif=1)

    def cancel(self) -> Tx:
        """A cancel of a resting order that no taker of this block plans to fill, placed
        before this block (a taker may also fill newer, better-priced orders first)."""
        ids = sorted(i for i in self.resting
                     if i < self.block_first_id and i not in self.planned)[:5000]
        if not ids:
            return self.resting_add()
        oid = self.rng.choice(ids)
        who = self.resting.pop(oid)
        return self.tx(who, ["cancel", BTC_PERP, oid])


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>10,.0f} orders/s  ({seconds * 1e6 / n:.1f} us/order)"


def run_rows(a) -> list[tuple[str, int, float, str]]:
    """One pass over the workloads on a fresh chain: (row, ops, seconds, note) per row."""
    b = Bench(a.orders, a.block)
    tune_gc()  # the collector as `perpchain start` sets it (node/gc_tuning.py)
    b.planned = {}
    rows = [("build book (resting adds)", a.orders, b.run(b.resting_add, a.orders), "")]
    rows.append(("resting adds", a.ops, b.run(b.resting_add, a.ops), ""))
    fills0 = b.fills
    t = b.run(b.crossing, a.ops // 3)
    rows.append(("crossing IOC", a.ops // 3, t,
                 f"  {(b.fills - fills0) / (a.ops // 3):.2f} fills avg"))
    rows.append(("cancels", a.ops, b.run(b.cancel, a.ops), ""))
    b.run(b.resting_add, a.ops)

    def mixed():
        x = b.rng.random()
        return b.resting_add() if x < 0.5 else b.crossing() if x < 0.8 else b.cancel()
    rows.append(("mixed 50/30/20", a.ops, b.run(mixed, a.ops), ""))
    return rows


def main() -> None:
    global CLOCK
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--orders", type=int, default=10_000, help="resting orders in the book")
    ap.add_argument("--ops", type=int, default=10_000, help="orders per workload")
    ap.add_argument("--block", type=int, default=2_000, help="txs per block")
    ap.add_argument("--repeat", type=int, default=1, help="passes; the best time per row")
    ap.add_argument("--cpu", action="store_true", help="time with the thread's CPU clock")
    a = ap.parse_args()
    if a.cpu:
        CLOCK = time.thread_time
    best: list = []
    for _ in range(max(a.repeat, 1)):
        rows = run_rows(a)
        best = rows if not best else [r if r[2] < b[2] else b for r, b in zip(rows, best)]
    print(f"full apply path, book of {a.orders} resting orders, blocks of {a.block} txs, "
          f"no signatures{', best of ' + str(a.repeat) if a.repeat > 1 else ''}"
          f"{', thread CPU time' if a.cpu else ''}")
    for name, n, t, note in best:
        print(f"{name:<28}{rate(n, t)}{note}")
    print("target: >= 30,000 orders/s on one core")


if __name__ == "__main__":
    main()
