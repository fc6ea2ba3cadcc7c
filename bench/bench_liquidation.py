"""Benchmark: the per-block liquidation check (state.liquidation.liquidate) over many accounts.

Run with ``python -m bench.bench_liquidation`` (``--accounts N``, ``--markets M``).

A state with N accounts, each holding a position on every one of M perp markets (half long,
half short, all healthy), is built directly; then the liquidation step runs on a block overlay:
* "all marks moved": every market's mark changed (by ~17 ppm), so every holder is a candidate
  (cold: the holder index is built from the records and every candidate fully checked; warm:
  the index is carried and its safety bands (state.risk_index) let healthy accounts skip);
* "nothing moved": no mark changed and nobody traded: the step finds no candidate.
The target of issue 9 is under 50 ms per block for 10,000 accounts in 10 markets on one core.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from state import ledger
from state.derived import Derived
from state.genesis import genesis_writes
from state.kv import MemoryKV, Overlay
from state.liquidation import liquidate
from state.machine import Ctx
from state.margin import P_MARK
from state.codec import encode
from state.positions import P_CLEARING, Account, Entry
from localnet.fixtures import BTC_PERP_SPEC, USDC, trading_genesis

PX = 60_000 * 10**6


def build(n_accounts: int, n_markets: int) -> tuple[MemoryKV, int]:
    g = trading_genesis(0)
    assets = tuple(sorted([(f"A{i}", 8) for i in range(n_markets)] + [("USDC", 6)]))
    markets = tuple((i + 1, [f"A{i}-USD", 0, f"A{i}"] + BTC_PERP_SPEC[3:])
                    for i in range(n_markets))
    g = dataclasses.replace(g, assets=assets, markets=markets, collateral=(),
                            oracle_prices=tuple((f"A{i}", PX) for i in range(n_markets)))
    kv = MemoryKV()
    writes, _ = genesis_writes(g)
    kv.apply(writes)
    view = Overlay(kv)
    for a in range(n_accounts):
        addr = a.to_bytes(32, "big")
        side = 1 if a % 2 == 0 else -1
        entries = {m: Entry(m, side * 1_000, side * 1_000 * 600_000)
                   for m in range(1, n_markets + 1)}
        view.put(P_CLEARING + addr, Account(addr, entries, []).to_stored())
        view.put(ledger.P_BAL + addr + b"USDC", 100_000 * USDC)
    for m in range(1, n_markets + 1):
        view.put(P_MARK + m.to_bytes(4, "big"), encode([PX, 0, 0]))
    kv.apply(view.sorted_writes())
    return kv, n_markets


def run_step(kv: MemoryKV, n_markets: int, moved: bool, derived: Derived | None,
             height: int) -> tuple[float, Derived]:
    block = Overlay(kv)
    block.derived = derived or Derived()
    if moved:
        for m in range(1, n_markets + 1):
            block.put(P_MARK + m.to_bytes(4, "big"), encode([PX - 10**6 * height, 0, 0]))
    view = block.child()
    t0 = time.perf_counter()
    events = liquidate(view, Ctx(height, 1_700_000_000_000 + height * 1000, "test-chain"))
    dt = time.perf_counter() - t0
    assert not events and not view.writes
    return dt, block.derived


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=10_000)
    ap.add_argument("--markets", type=int, default=10)
    args = ap.parse_args()
    kv, n = build(args.accounts, args.markets)
    cold, d = run_step(kv, n, True, None, 1)
    warm, d = run_step(kv, n, True, d, 2)
    idle, d = run_step(kv, n, False, d, 3)
    print(f"{args.accounts} accounts x {n} markets: all marks moved, cold index "
          f"{cold * 1000:.1f} ms; warm {warm * 1000:.1f} ms; nothing moved {idle * 1000:.2f} ms")


if __name__ == "__main__":
    main()
