"""Benchmark: the funding step of end-block (state/funding.py) with many positions.

Run with ``python -m bench.bench_funding`` (``--accounts N``, ``--markets M``).

A state with M funded perp markets, a two-sided book of 20 levels on each, and N accounts each
holding a position in every market (longs and shorts alternate, so open interest balances).
Timed (best of several rounds, time.perf_counter; this is bench/, never state/):
  1. a quiet block: one premium sample per market (what every block pays);
  2. a settlement block: every position of every market paid (once per funding interval).
"""

from __future__ import annotations

import argparse
import time

from state import funding
from state.codec import encode
from state.derived import derived_of
from state.kv import MemoryKV, Overlay
from state.machine import Ctx
from state.markets import DEFAULT_FUNDING
from state.positions import P_CLEARING, Account, Entry
from state.genesis import genesis_writes
from state import orders as O
from state.genesis import GenesisState

HOUR = 3_600_000
GENESIS_MS = 1_700_000_000_000
USDC = 10**6
# A BTC perp: $0.1 ticks, 0.0001 BTC lots, 50x to $2M, $1,000 impact notional.
PERP_SPEC = [0, "BTC", 8, 100_000, 10_000, 100_000, [[0, 50], [2_000_000 * USDC, 20]], 150,
             450, 1_000 * USDC]


def build(n_accounts: int, n_markets: int) -> MemoryKV:
    specs = [(i, [f"M{i}-USD"] + PERP_SPEC) for i in range(1, n_markets + 1)]
    g = GenesisState("bench-chain", GENESIS_MS, "USDC", (("BTC", 8), ("USDC", 6)),
                     markets=tuple(specs), oracle_prices=(("BTC", 60_000 * USDC),),
                     funding=tuple((i, DEFAULT_FUNDING) for i, _ in specs))
    kv = MemoryKV()
    kv.apply(genesis_writes(g)[0])
    view = Overlay(kv)
    mm = bytes([0xAA]) * 32
    for mid, _ in specs:  # 20 levels a side, 0.01 BTC each, around $60,000 + 0.1%
        for lvl in range(20):
            for is_buy, px in ((True, 600_600 - lvl * 10), (False, 600_700 + lvl * 10)):
                O.rest(view, O.resting_record(mid, O.next_order_id(view), mm, is_buy, px, 10,
                                              O.RestingFields(0, 10, 0, False, 0, 0, 0,
                                                              GENESIS_MS)))
    for i in range(n_accounts):
        addr = i.to_bytes(32, "big")
        size = (1 + i % 7) * (1 if i % 2 == 0 else -1)
        if i == n_accounts - 1 and n_accounts % 2:
            size = 0
        entries = {mid: Entry(mid, size, size * 600_000) for mid, _ in specs}
        view.put(P_CLEARING + addr, encode(Account(addr, entries, []).to_stored()))
    kv.apply(view.sorted_writes())
    return kv


def timed(kv: MemoryKV, now_ms: int, rounds: int) -> float:
    """Best time of `funding.end_block` at `now_ms`, with the books and parameters already
    in memory (a warm node: a first call at genesis time + 1 ms loads them, untimed)."""
    best = float("inf")
    for _ in range(rounds):
        view = Overlay(kv)
        derived_of(view)
        funding.end_block(view.child(), Ctx(1, GENESIS_MS + 1, "bench-chain"))
        ctx = Ctx(1, now_ms, "bench-chain")
        t = time.perf_counter()
        funding.end_block(view, ctx)
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=10_000)
    ap.add_argument("--markets", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    kv = build(a.accounts, a.markets)
    quiet = timed(kv, GENESIS_MS + 1_000, a.rounds)
    paying = timed(kv, GENESIS_MS + HOUR, a.rounds)
    print(f"{a.markets} markets, {a.accounts} accounts with a position in each:")
    print(f"  quiet block (samples only):       {quiet * 1e3:8.2f} ms")
    print(f"  settlement block (all positions): {paying * 1e3:8.2f} ms")


if __name__ == "__main__":
    main()
