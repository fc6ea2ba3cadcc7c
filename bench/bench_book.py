"""Benchmark: ``state.book`` / ``state.matching`` against a minimal plain sortedcontainers book.

Run with ``python -m bench.bench_book`` (add ``--rounds N`` / ``--orders N`` to change the size).

Workloads, each timed on both implementations with identical, seeded inputs:
  1. resting adds   - build a book of N resting orders (no crossing) with ``OrderBook.add`` (what
                      the state machine calls for an order that cannot trade: it checks
                      whether an order crosses itself), and, for comparison, through
                      ``match(..., GTC)`` (validation, the crossing check and a MatchResult).
  2. crossing       - IOC takers sized to trade with exactly 1-3 makers each (2 on average)
                      against the book of N orders.
  3. cancels        - cancel all N resting orders in random order.

The reference book is written plainly (``SortedDict`` price -> ``list`` of orders) and does the
least work that gives the same results, so it is a floor to compare against rather than an
alternative design: it has no aggregates, no validation and O(level) cancels. Each figure is the
best of several rounds (time.perf_counter; this is bench/, never state/).
"""

from __future__ import annotations

import argparse
import gc
import random
import time

from sortedcontainers import SortedDict

from state.book import OrderBook, Side
from state.matching import TimeInForce, match

BUY = Side.BUY
SELL = Side.SELL
MID = 10_000  # bids rest at MID-100 .. MID-1, asks at MID+1 .. MID+100


class RefBook:
    """The plainest correct price-time book: SortedDict price -> list of [id, owner, size]."""

    def __init__(self) -> None:
        self.bids = SortedDict()
        self.asks = SortedDict()
        self.index: dict[int, list] = {}  # order id -> [order_id, owner, side, price, size]

    def add(self, order_id, owner, side, price, size):
        order = [order_id, owner, side, price, size]
        book = self.bids if side == BUY else self.asks
        level = book.get(price)
        if level is None:
            level = book[price] = []
        level.append(order)
        self.index[order_id] = order

    def cancel(self, order_id):
        order = self.index.pop(order_id)
        book = self.bids if order[2] == BUY else self.asks
        level = book[order[3]]
        level.remove(order)
        if not level:
            del book[order[3]]

    def match_ioc(self, owner, side, limit, size):
        """Fills as (maker id, maker owner, price, size); self-trades cancel the resting order."""
        fills = []
        if side == BUY:
            book, best = self.asks, 0
        else:
            book, best = self.bids, -1
        while size and book:
            price, level = book.peekitem(best)
            if (side == BUY and price > limit) or (side == SELL and price < limit):
                break
            order = level[0]
            if order[1] == owner:
                take = 0
            else:
                take = min(size, order[4])
                fills.append((order[0], order[1], price, take))
                order[4] -= take
                size -= take
            if order[4] == 0 or take == 0:
                level.pop(0)
                del self.index[order[0]]
                if not level:
                    del book[price]
        return fills, size


def make_resting(n: int, rng: random.Random) -> list[tuple]:
    """n non-crossing orders spread over 100 levels per side, 1-10 lots each, owners 0..99."""
    owners = [i.to_bytes(32, "big") for i in range(100)]
    orders = []
    for i in range(n):
        if rng.random() < 0.5:
            side, price = BUY, MID - rng.randint(1, 100)
        else:
            side, price = SELL, MID + rng.randint(1, 100)
        orders.append((i + 1, owners[rng.randrange(100)], side, price, rng.randint(1, 10)))
    return orders


def make_takers(resting: list[tuple], n: int, rng: random.Random) -> list[tuple]:
    """n IOC takers alternating sides, each sized to trade with exactly 1-3 makers.

    Plans against a scratch reference book built from ``resting``: the taker takes the first
    k-1 makers in priority order whole and a random part (or all) of the k-th.
    """
    plan = RefBook()
    for o in resting:
        plan.add(*o)
    taker_owner = b"\xff" * 32
    takers = []
    for i in range(n):
        side, limit = (BUY, MID + 100) if i % 2 == 0 else (SELL, MID - 100)
        book = plan.asks if side == BUY else plan.bids
        prices = iter(book) if side == BUY else reversed(book)
        queue = (order[4] for price in prices for order in book[price])
        sizes = [size for size, _ in zip(queue, range(rng.randint(1, 3)))]
        size = sum(sizes[:-1]) + rng.randint(1, sizes[-1])
        takers.append((taker_owner, side, limit, size))
        plan.match_ioc(taker_owner, side, limit, size)
    return takers


def best_of(rounds: int, setup, run) -> float:
    """Minimum seconds of ``run(state)`` over ``rounds`` fresh ``setup()`` states."""
    best = float("inf")
    for _ in range(rounds):
        state = setup()
        gc.collect()
        t0 = time.perf_counter()
        run(state)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--takers", type=int, default=3_000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    n, n_takers, rounds = args.orders, args.takers, args.rounds

    rng = random.Random(20240601)
    resting = make_resting(n, rng)
    takers = make_takers(resting, n_takers, rng)
    cancel_ids = [o[0] for o in resting]
    rng.shuffle(cancel_ids)

    def build_book() -> OrderBook:
        book = OrderBook()
        run_add(book)
        return book

    def build_ref() -> RefBook:
        ref = RefBook()
        run_add(ref)
        return ref

    def run_add(book) -> None:  # either implementation: same signature
        add = book.add
        for order_id, owner, side, price, size in resting:
            add(order_id, owner, side, price, size)

    def run_match_gtc(book: OrderBook) -> None:
        gtc = TimeInForce.GTC
        for order_id, owner, side, price, size in resting:
            match(book, order_id, owner, side, price, size, gtc)

    def run_cross(book: OrderBook) -> None:
        ioc = TimeInForce.IOC
        for owner, side, limit, size in takers:
            match(book, 0, owner, side, limit, size, ioc)

    def run_cross_ref(ref: RefBook) -> None:
        m = ref.match_ioc
        for owner, side, limit, size in takers:
            m(owner, side, limit, size)

    def run_cancel(book: OrderBook) -> None:
        cancel = book.cancel
        for order_id in cancel_ids:
            cancel(order_id)

    def run_cancel_ref(ref: RefBook) -> None:
        cancel = ref.cancel
        for order_id in cancel_ids:
            cancel(order_id)

    # Same results from both books before timing anything: a benchmark of a wrong book is noise.
    book, ref = build_book(), build_ref()
    ioc = TimeInForce.IOC
    n_fills = 0
    for owner, side, limit, size in takers:
        got = match(book, 0, owner, side, limit, size, ioc)
        want, _ = ref.match_ioc(owner, side, limit, size)
        assert [(f.maker_order_id, f.maker_owner, f.price_ticks, f.size_lots)
                for f in got.fills] == want
        n_fills += len(got.fills)
    book.check_invariants()

    ref_adds = best_of(rounds, RefBook, run_add)
    rows = [
        ("resting adds (book.add)", n, best_of(rounds, OrderBook, run_add), ref_adds),
        ("resting adds (via match GTC)", n, best_of(rounds, OrderBook, run_match_gtc), ref_adds),
        (f"crossing IOC ({n_fills / n_takers:.2f} fills avg)", n_takers,
         best_of(rounds, build_book, run_cross),
         best_of(rounds, build_ref, run_cross_ref)),
        ("cancels", n,
         best_of(rounds, build_book, run_cancel),
         best_of(rounds, build_ref, run_cancel_ref)),
    ]

    # Most resting orders end cancelled, so an order's book cost is its add plus its cancel:
    # the linked FIFO pays a little more per add for O(1) cancels at any queue position.
    (_, _, add_book, add_ref), (_, _, cancel_book, cancel_ref) = rows[0], rows[3]
    rows.append(("add + cancel (order lifecycle)", n, add_book + cancel_book, add_ref + cancel_ref))

    print(f"book of {n} resting orders, {n_takers} takers, best of {rounds} rounds")
    print(f"{'workload':<34}{'book ops/s':>14}{'reference ops/s':>18}{'ratio':>8}")
    for name, ops, t_book, t_ref in rows:
        print(f"{name:<34}{ops / t_book:>14,.0f}{ops / t_ref:>18,.0f}{t_book / t_ref:>7.2f}x")
    print("ratio = book time / reference time (lower is better; the target is <= 2x)")


if __name__ == "__main__":
    main()
