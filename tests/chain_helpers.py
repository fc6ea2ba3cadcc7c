"""Test helpers: a genesis, tx builders, and an in-process chain over any KV store.

The deterministic keys and the trading genesis live in localnet/fixtures.py (benchmarks use
them too); they are re-exported here so tests import everything from one place.
"""

import itertools

from localnet.fixtures import (BTC_LOT, BTC_PERP, BTC_PERP_SPEC, BTC_SPOT,  # noqa: F401
                               BTC_SPOT_SPEC, BTC_TICK, CHAIN_ID, ETH_LOT, ETH_PERP,
                               ETH_PERP_SPEC, ETH_TICK, FEE_ACCOUNT, GENESIS_MS, GOV, PRICE,
                               USDC, VALIDATORS, key, trading_genesis)
from node.keys import KeyPair
from state.derived import DerivedCache
from state.genesis import GenesisState, genesis_writes
from state.invariants import check_invariants
from state.kv import MemoryKV
from state.machine import BlockInput, BlockResult, apply_block
from state.params import FaucetParams
from state.tx import build_tx


def genesis(n_accounts: int = 4, amount: int = 1_000 * USDC, faucet: bool = True) -> GenesisState:
    return GenesisState(
        CHAIN_ID, GENESIS_MS, "USDC", (("BTC", 8), ("USDC", 6)),
        tuple((key(i).pub_key, "USDC", amount) for i in range(n_accounts)),
        FaucetParams("USDC", 100 * USDC, 60_000) if faucet else None)


def transfer(k: KeyPair, nonce: int, to: bytes, amount: int, asset: str = "USDC",
             chain_id: str = CHAIN_ID) -> bytes:
    return build_tx(chain_id, k.private, nonce, ["transfer", to, asset, amount])


def faucet(k: KeyPair, nonce: int) -> bytes:
    return build_tx(CHAIN_ID, k.private, nonce, ["faucet"])


class Chain:
    """Applies blocks to a KV backend that has `apply(writes)` (MemoryKV or LevelKV).
    `warm=True` carries the order books across blocks in a DerivedCache (as a node does);
    the default rebuilds them from KV in every block (a cold start each time)."""

    def __init__(self, g: GenesisState | None = None, kv=None, warm: bool = False):
        self.kv = kv if kv is not None else MemoryKV()
        writes, self.app_hash = genesis_writes(g or genesis())
        self.kv.apply(writes)
        self.height = 0
        self.time_ms = (g or genesis()).genesis_time_ms
        self.cache = DerivedCache() if warm else None

    def block(self, txs: list[bytes], dt_ms: int = 1000, known=None) -> BlockResult:
        self.height += 1
        self.time_ms += dt_ms
        res = apply_block(self.kv, BlockInput(self.height, self.time_ms, tuple(txs)),
                          self.app_hash, known, self.cache)
        self.kv.apply(res.writes)
        self.app_hash = res.app_hash
        return res


class Scenario:
    """A scenario test's chain: every tx in a block must succeed, every invariant holds after
    each block, and the block results are kept. Nonces count up from `nonce_from` (default: the
    genesis time)."""

    def __init__(self, g: GenesisState, warm: bool = False, nonce_from: int | None = None):
        self.c = Chain(g, warm=warm)
        self.n = itertools.count(self.c.time_ms if nonce_from is None else nonce_from)
        self.results: list[BlockResult] = []

    def block(self, *txs, dt_ms=1000) -> BlockResult:
        res = self.c.block(list(txs), dt_ms)
        assert all(r.code == 0 for r in res.tx_results), [r.log for r in res.tx_results]
        check_invariants(self.c.kv)
        self.results.append(res)
        return res

    def oracle(self, usd, dt_ms=1000) -> BlockResult:
        """One block in which the validators move the BTC oracle to `usd`."""
        return self.block(*oracle_tx(next(self.n), [("BTC", usd * PRICE)]), dt_ms=dt_ms)


class LevelKV:
    """A plyvel-backed KV with the same `apply` as MemoryKV (through node/store.py's view)."""

    def __init__(self, path):
        import plyvel

        from node.store import P_STATE, StateView
        self.db = plyvel.DB(str(path), create_if_missing=True)
        self.view = StateView(self.db)
        self.prefix = P_STATE

    def get(self, k):
        return self.view.get(k)

    def iterate(self, prefix):
        return self.view.iterate(prefix)

    def apply(self, writes):
        with self.db.write_batch(transaction=True) as wb:
            for k, v in writes:
                if v is None:
                    wb.delete(self.prefix + k)
                else:
                    wb.put(self.prefix + k, v)
        self.view.note_writes(writes)

    def close(self):
        self.db.close()


# -- trading (issue 4) ---------------------------------------------------------------------------


def order(k: KeyPair, nonce: int, market: int, is_buy: bool, price: int, size: int,
          kind: int = 0, tif: int = 0, reduce_only: bool = False, trigger: int = 0,
          cloid: int = 0, expiry: int = 0) -> bytes:
    """An `order` tx; price in price units (quote quantums per whole base), size in base
    quantums."""
    return build_tx(CHAIN_ID, k.private, nonce, ["order", market, is_buy, kind, price, size, tif,
                                                 reduce_only, trigger, cloid, expiry])


def action(k: KeyPair, nonce: int, *act) -> bytes:
    return build_tx(CHAIN_ID, k.private, nonce, list(act))


def oracle_tx(nonce: int, prices: list[tuple[str, int]], validators=None) -> list[bytes]:
    """One oracle update per validator (all the same prices)."""
    return [build_tx(CHAIN_ID, v.private, nonce, ["oracle", [[a, p] for a, p in prices]])
            for v in (validators or VALIDATORS)]
