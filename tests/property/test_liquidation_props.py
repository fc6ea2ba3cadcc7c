"""Property tests of liquidation over random price paths and order flow.

Leveraged traders with small balances trade against a market maker while the oracle walks;
after every block:
* money is conserved: the sum of all USDC balances equals the supply (liquidation fees,
  takeovers and ADL move money, never create it);
* positions net to zero on every market (open interest long == short);
* an account with no position (the bystander) is never charged;
* no account ends a block with negative equity unless its liquidation is still in progress
  (a per-block cap stopped it; it goes on next block): the book, the fund or ADL covered it;
* a warm node's holder index equals a rebuild, and every account its safety band lets skip the
  check is above maintenance margin;
and a warm node, a cold one and one on LevelDB give the same app hashes. Funding settles every
two blocks (its index moves every holder's equity; state.risk_index counts it as a mark move).
"""

import dataclasses
import random

from hypothesis import HealthCheck, given, settings, strategies as st

from state import ledger
from state.codec import encode
from state.ledger import P_BAL
from state.codec import load
from state.insurance import INSURANCE_FUND
from state.liquidation import P_ACTIVE
from state.liquidation_params import default_params
from state.margin import summary
from state.markets import RATE_SCALE, FundingParams
from state.positions import iter_accounts, load_account
from state.risk_index import index_for_reads
from state.tx import Tx, check_action, tx_hash
from tests.chain_helpers import (BTC_LOT, BTC_PERP, CHAIN_ID, PRICE, USDC, VALIDATORS, Chain,
                                 LevelKV, key, trading_genesis)

TRADERS = [key(i) for i in range(5)]
MAKER, BYSTANDER = key(8), key(9)
TICK = 100_000
EVENTS = ("liquidation", "insurance_takeover", "adl")


def genesis(seed: int):
    rng = random.Random(seed)
    bals = [(k.pub_key, "USDC", rng.randint(300, 3_000) * USDC) for k in TRADERS]
    bals += [(MAKER.pub_key, "USDC", 5_000_000 * USDC), (BYSTANDER.pub_key, "USDC", 777 * USDC)]
    p = dataclasses.replace(default_params(6), step_threshold_quantums=20_000 * USDC,
                            cooldown_ms=2_000)
    # funding every 2 s at up to 100% / 8 h: each settlement moves every holder's equity
    # (state.funding_index), which the safety bands must account for
    f = FundingParams(2_000, RATE_SCALE, RATE_SCALE, RATE_SCALE)
    return dataclasses.replace(trading_genesis(0), balances=tuple(bals), liquidation=p,
                               funding=((BTC_PERP, f),))


class Gen:
    """Pre-verified txs with unique nonces (as the golden workloads)."""

    def __init__(self):
        self.nonce = 0

    def tx(self, pub: bytes, act: list, now_ms: int) -> Tx:
        self.nonce = max(self.nonce + 1, now_ms)
        raw = encode([CHAIN_ID, pub, self.nonce, act, bytes(64)])
        return Tx(CHAIN_ID, pub, self.nonce, check_action(act), bytes(64), raw, tx_hash(raw))


def _order(is_buy: bool, ticks: int, lots: int, tif: int) -> list:
    return ["order", BTC_PERP, is_buy, 0, ticks * TICK, lots * BTC_LOT, tif, False, 0, 0, 0]


def workload(seed: int, n_blocks: int = 25):
    """[(txs, dt_ms)]: the maker requotes around the oracle, traders take, the oracle walks."""
    rng = random.Random(seed)
    g = Gen()
    px = 600_000  # ticks
    now = trading_genesis(0).genesis_time_ms
    out = []
    for _ in range(n_blocks):
        now += 1_000
        px = max(px + px * rng.randint(-25, 15) // 1_000, 1_000)
        txs = [g.tx(v.pub_key, ["oracle", [["BTC", px * TICK]]], now) for v in VALIDATORS]
        txs.append(g.tx(MAKER.pub_key, ["cancel_all", 0], now))
        for lvl in range(1, 4):
            spread = px * lvl * 3 // 1_000
            txs.append(g.tx(MAKER.pub_key, _order(True, px - spread, 3_000, 0), now))
            txs.append(g.tx(MAKER.pub_key, _order(False, px + spread, 3_000, 0), now))
        for k in TRADERS:
            if rng.random() < 0.5:
                is_buy = rng.random() < 0.6
                lim = px * (1_020 if is_buy else 980) // 1_000
                txs.append(g.tx(k.pub_key, _order(is_buy, lim, rng.randint(1, 20) * 100, 1),
                                now))
        out.append((txs, 1_000))
    return out


def usdc_balances(kv) -> dict[bytes, int]:
    return {k[len(P_BAL):len(P_BAL) + 32]: load(v) for k, v in kv.iterate(P_BAL)
            if k.endswith(b"USDC")}


def check_block(kv) -> None:
    assert sum(usdc_balances(kv).values()) == ledger.supply(kv, "USDC")
    net: dict[int, int] = {}
    for addr, acct in iter_accounts(kv):
        for mid, e in acct.entries.items():
            net[mid] = net.get(mid, 0) + e.size
        if addr == BYSTANDER.pub_key:
            assert not any(e.size for e in acct.entries.values())
    assert all(v == 0 for v in net.values()), net
    assert ledger.balance(kv, BYSTANDER.pub_key, "USDC") == 777 * USDC
    for addr, acct in iter_accounts(kv):
        if addr != INSURANCE_FUND and kv.get(P_ACTIVE + addr) is None:
            assert summary(kv, acct).equity >= 0, addr.hex()


def check_index(chain: Chain) -> None:
    """The holder index a warm node carries equals a rebuild from the committed records."""
    idx = chain.cache.derived.risk_holders
    fresh = index_for_reads(chain.kv)
    assert idx.height == chain.height
    assert {m: h for m, h in idx.markets.items() if h} == \
        {m: h for m, h in fresh.markets.items() if h}
    # The safety band is sound: an account it lets skip the check is above maintenance margin.
    for addr in sorted(idx.safe_until):
        if idx.is_safe(addr):
            s = summary(chain.kv, load_account(chain.kv, addr))
            assert s.equity >= s.maintenance_margin, (addr.hex(), s)


def run(seed: int, warm: bool, kv=None) -> tuple[list[bytes], int]:
    chain = Chain(genesis(seed), kv=kv, warm=warm)
    hashes, n_events = [], 0
    for txs, dt in workload(seed):
        res = chain.block([t.raw for t in txs], dt, {t.hash: t for t in txs})
        check_block(chain.kv)
        if warm:
            check_index(chain)
        hashes.append(res.app_hash)
        n_events += sum(1 for e in res.block_events if e.type in EVENTS)
    return hashes, n_events


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10**6))
def test_invariants_hold_and_warm_equals_cold(seed):
    warm, _ = run(seed, True)
    cold, _ = run(seed, False)
    assert warm == cold


def test_leveldb_agrees_and_liquidations_happen(tmp_path):
    total = 0
    for seed in (1, 2, 3):
        hashes, n = run(seed, True)
        total += n
        kv = LevelKV(tmp_path / f"db{seed}")
        try:
            assert run(seed, False, kv)[0] == hashes
        finally:
            kv.close()
    assert total > 0  # the workload does liquidate (else the properties above say little)
