"""Benchmark: the per-block cost of lending as the number of accounts grows.

Run with ``python -m bench.bench_lending`` (``--accounts 100,1000,10000``, ``--blocks N``).

For each account count N, a chain whose genesis gives every account a balance in 4 pooled
assets (USDC, BTC, ETH, SOL: lending pools with Hyperliquid's curve); then one account in ten
borrows each asset (a withdrawal beyond its balance, against its other collateral), so every
pool has suppliers and borrowers and accrues in every block. The timed part is `--blocks` blocks with no txs, a second of block time
apart: each accrues every pool (state.lending_accrual) and runs the other block steps. Interest
reaches the accounts through the indices alone, so the cost per block must not grow with N.
Times are the thread's CPU time (other processes on a shared machine cost nothing).
"""

from __future__ import annotations

import argparse
import time

from localnet.fixtures import CHAIN_ID, GENESIS_MS, USDC, key, pool_params
from node.keys import KeyPair
from state import lending_pools as LP
from state.derived import DerivedCache
from state.genesis import GenesisState, genesis_writes
from state.kv import MemoryKV
from state.machine import BlockInput, apply_block
from state.markets import OracleParams
from state.params import FaucetParams
from state.tx import build_tx

ASSETS = (("BTC", 8), ("ETH", 8), ("SOL", 8), ("USDC", 6))
PRICES = (("BTC", 60_000 * USDC), ("ETH", 3_000 * USDC), ("SOL", 150 * USDC))


def account(i: int) -> KeyPair:
    return key(i) if i < 200 else KeyPair.from_seed(i.to_bytes(32, "big"))


def lending_chain(n: int) -> GenesisState:
    bals = []
    for i in range(n):
        a = account(i).pub_key
        bals += [(a, "USDC", 1_000 * USDC), (a, "BTC", 10**7), (a, "ETH", 10**8),
                 (a, "SOL", 10**9)]
    pools = tuple((s, pool_params(1_000_000 if s == "USDC" else 1_100_000))
                  for s, _ in ASSETS)
    return GenesisState(CHAIN_ID, GENESIS_MS, "USDC", ASSETS, tuple(bals),
                        FaucetParams("USDC", 100 * USDC, 60_000),
                        collateral=(("BTC", 650_000), ("ETH", 600_000), ("SOL", 500_000)),
                        oracle=OracleParams(60_000, 666_667, 150_000), oracle_prices=PRICES,
                        lending=pools)


def run(n: int, blocks: int) -> tuple[float, int]:
    """(CPU microseconds per empty block, borrowers) for a chain of n accounts."""
    kv = MemoryKV()
    writes, app_hash = genesis_writes(lending_chain(n))
    kv.apply(writes)
    cache, t, height = DerivedCache(), GENESIS_MS, 0

    def block(txs):
        nonlocal t, height, app_hash
        t, height = t + 1_000, height + 1
        res = apply_block(kv, BlockInput(height, t, tuple(txs)), app_hash, None, cache)
        kv.apply(res.writes)
        app_hash = res.app_hash
        return res

    # (each holds 1,000 USDC, 0.1 BTC, 1 ETH, 10 SOL; each withdrawal borrows beyond it)
    amounts = (("USDC", 1_200 * USDC), ("BTC", 12 * 10**6), ("ETH", 15 * 10**7),
               ("SOL", 15 * 10**8))
    borrowers = [build_tx(CHAIN_ID, account(i).private, t + 1 + i,
                          ["withdraw", *amounts[(i // 10) % 4]]) for i in range(0, n, 10)]
    for k in range(0, len(borrowers), 2_000):
        res = block(borrowers[k:k + 2_000])
        assert all(r.code == 0 for r in res.tx_results), res.tx_results[0]
    assert all(LP.get_pool(kv, s).borrowed > 0 for s, _ in ASSETS)
    start = time.thread_time()
    for _ in range(blocks):
        block([])
    return (time.thread_time() - start) * 1e6 / blocks, len(borrowers)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--accounts", default="100,1000,10000", help="comma-separated counts")
    ap.add_argument("--blocks", type=int, default=300, help="timed empty blocks per count")
    a = ap.parse_args()
    print(f"per-block cost with 4 pooled assets, {a.blocks} blocks of 1 s, thread CPU time")
    for n in (int(x) for x in a.accounts.split(",")):
        us, b = run(n, a.blocks)
        print(f"{n:>7,} accounts ({b:>5,} borrowing)  {us:9.1f} us/block")


if __name__ == "__main__":
    main()

