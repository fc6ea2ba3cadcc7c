"""Benchmark: the whole per-block risk pass (end-block: oracle, marks, triggers, funding,
liquidation) over many accounts with positions in many markets.

Run with ``python -m bench.bench_risk`` (``--accounts N``, ``--markets M``, ``--blocks B``).

A state with M funded perp markets (each on its own oracle asset, a 20-level book a side) and
N healthy accounts, each holding a position in every market (longs and shorts alternate).
Every block the validators publish new prices for every asset (each moves by a few ppm, so
every mark moves and every holder's risk could have changed); `state.machine.end_block` is
timed on a warm node (books, parameters and the holder index carried from the block before):
* "first block": a node just started (nothing in memory yet);
* "ordinary blocks": the median and worst of B blocks, one second of block time apart;
* "funding block": the block that crosses the hour boundary and pays every position.
The target of issue 9 is under 50 ms per block for 10,000 accounts in 10 markets on one core.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
import types

from localnet.fixtures import BTC_PERP_SPEC, USDC, VALIDATORS, trading_genesis
from state import ledger, oracle, orders as O
from state.codec import encode
from state.derived import Derived
from state.genesis import genesis_writes
from state.kv import MemoryKV, Overlay
from state.machine import Ctx, end_block, put_last_block
from state.markets import DEFAULT_FUNDING
from state.positions import P_CLEARING, Account, Entry

HOUR_MS = 3_600_000
PX = 60_000 * 10**6              # price units ($1 = 10^6)
TICKS = PX // BTC_PERP_SPEC[4]   # the same price in ticks


def build(n_accounts: int, n_markets: int) -> tuple[MemoryKV, int]:
    g = trading_genesis(0)
    bases = [f"A{i}" for i in range(n_markets)]
    markets = tuple((i + 1, [f"{b}-USD", 0, b] + BTC_PERP_SPEC[3:]) for i, b in enumerate(bases))
    g = dataclasses.replace(g, assets=tuple(sorted([(b, 8) for b in bases] + [("USDC", 6)])),
                            markets=markets, collateral=(),
                            oracle_prices=tuple((b, PX) for b in bases),
                            funding=tuple((mid, DEFAULT_FUNDING) for mid, _ in markets))
    kv = MemoryKV()
    kv.apply(genesis_writes(g)[0])
    view = Overlay(kv)
    maker = bytes([0xAA]) * 32
    for mid, _ in markets:  # 20 levels a side, 0.01 each, around the oracle
        for lvl in range(20):
            for is_buy, px in ((True, TICKS - 5 - lvl * 10), (False, TICKS + 5 + lvl * 10)):
                O.rest(view, O.resting_record(mid, O.next_order_id(view), maker, is_buy, px, 100,
                                              O.RestingFields(0, 100, 0, False, 0, 0, 0,
                                                              g.genesis_time_ms)))
    for a in range(n_accounts):
        addr = a.to_bytes(32, "big")
        side = 1 if a % 2 == 0 else -1
        entries = {mid: Entry(mid, side * 1_000, side * 1_000 * TICKS) for mid, _ in markets}
        view.put(P_CLEARING + addr, encode(Account(addr, entries, []).to_stored()))
        view.put(ledger.P_BAL + addr + b"USDC", encode(100_000 * USDC))
    kv.apply(view.sorted_writes())
    return kv, g.genesis_time_ms


def block(kv: MemoryKV, derived: Derived, height: int, time_ms: int,
          n_markets: int) -> tuple[float, Derived, int]:
    """One block: the validators' price updates (untimed), then end-block (timed); the
    block's writes are committed to `kv`. Returns (seconds, derived, events)."""
    view = Overlay(kv)
    view.derived = derived
    put_last_block(view, height, time_ms)
    ctx = Ctx(height, time_ms, "bench-chain")
    prices = [[f"A{i}", PX + (height % 7) * 10**5 + i] for i in range(n_markets)]
    for v in VALIDATORS:
        oracle.do_oracle(view, ctx, types.SimpleNamespace(signer=v.pub_key,
                                                          action=["oracle", prices]))
    t0 = time.perf_counter()
    events = end_block(view, ctx)
    dt = time.perf_counter() - t0
    kv.apply(view.sorted_writes())
    return dt, view.derived, len(events)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=10_000)
    ap.add_argument("--markets", type=int, default=10)
    ap.add_argument("--blocks", type=int, default=20)
    a = ap.parse_args()
    kv, t0 = build(a.accounts, a.markets)
    first, d, _ = block(kv, Derived(), 1, t0 + 1_000, a.markets)
    ordinary = []
    for h in range(2, a.blocks + 2):
        dt, d, _ = block(kv, d, h, t0 + h * 1_000, a.markets)
        ordinary.append(dt)
    h = a.blocks + 2
    paying, d, n_events = block(kv, d, h, t0 + HOUR_MS, a.markets)
    after, d, _ = block(kv, d, h + 1, t0 + HOUR_MS + 1_000, a.markets)
    print(f"{a.accounts} accounts x {a.markets} funded perp markets, every mark moving:")
    print(f"  first block (cold node):        {first * 1e3:8.1f} ms")
    print(f"  ordinary blocks (median / max): {statistics.median(ordinary) * 1e3:8.1f} ms / "
          f"{max(ordinary) * 1e3:.1f} ms over {len(ordinary)}")
    print(f"  funding block ({n_events} events):  {paying * 1e3:8.1f} ms")
    print(f"  the block after it:             {after * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
