"""Property tests of lending with three pools at once (USDC, BTC, ETH: state/lending*.py).

Over random paths of blocks (random block times up to 30 days, so interest and funding
accrue) made of: deposits and withdrawals of every asset (a withdrawal beyond the balance is
a borrow: USDC against BTC/ETH, and ETH or BTC borrowed against USDC or each other);
transfers of every asset (to protocol accounts too); opting out of lending and back in;
BTC-USD and ETH-USD perp trades (the BTC perp pays funding); BTC/USDC spot trades; `settle_pnl`; governance changes of the
pools' rate curves, reserve factors and borrow caps; and oracle moves of BTC and ETH. After
every block:

* every whole-state invariant (state.invariants), `lending_pool` among them: for each asset
  the pool's scaled totals equal the accounts', and its cash = supplied - borrowed + dust
  exactly;
* for each asset, the interest an accrual charged borrowers equals exactly what suppliers and
  the insurance fund gained plus the pool's new dust (never negative, never shrinking), and
  the accounts' balances round against them (suppliers own no more than the pool's supplied,
  borrowers owe no less than its borrowed);
* no withdrawal, transfer or `settle_pnl` that was accepted leaves its signer below initial
  margin (checked after the block for signers nothing else touched later in the block);
* every refusal is one of the expected codes;
* a warm node and a cold one give the same app hashes.

The default suite runs a few paths (`test_three_pools_...`); `-m slow` runs many longer ones.
"""

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from localnet.fixtures import lending_genesis
from state import lending as L, lending_pools as LP, ledger
from state.errors import Code
from state.insurance import INSURANCE_FUND
from state.invariants import check_invariants
from state.margin import summary
from state.markets import DEFAULT_FUNDING
from state.positions import load_account
from tests.chain_helpers import (BTC_PERP, BTC_SPOT, ETH_PERP, FEE_ACCOUNT, GOV, PRICE, USDC,
                                 Chain, action, key, oracle_tx, order)
from tests.property.test_lending_props import _real_sums  # the pool sums, recounted from balances

ASSETS = ("USDC", "BTC", "ETH")
KEYS = 6
START_USD = {"BTC": 60_000, "ETH": 3_000}
# quantums per dollar at the starting prices (8 decimals for BTC and ETH)
PER_USD = {"USDC": USDC, "BTC": 10**8 // 60_000, "ETH": 10**8 // 3_000}
# perp market: (lot size per 1/100 of a coin, a starting price)
PERPS = {BTC_PERP: ("BTC", 10**8 // 100), ETH_PERP: ("ETH", 10**8 // 100)}
GOV_FIELDS = {"base": st.integers(0, 200_000), "slope2": st.integers(0, 3_000_000),
              "kink": st.integers(500_000, 950_000), "reserve": st.integers(0, 500_000),
              "bcap": st.sampled_from([0, 1, 200_000])}   # borrow cap in dollars
# the events of a block that may move balances besides the accrual
_MOVERS = {"liquidation", "collateral_liquidation", "bad_debt_covered", "bad_debt_socialised",
           "insurance_takeover", "adl", "fill", "funding_payment"}
ALLOWED = {0, Code.INSUFFICIENT_MARGIN, Code.INSUFFICIENT_BALANCE, Code.POOL_ILLIQUID,
           Code.LENDING_CAP, Code.NOTHING_TO_SETTLE, Code.ORDER_NOT_FOUND}

asset = st.sampled_from(ASSETS)
who = st.integers(0, KEYS - 1)
op = st.one_of(
    st.tuples(st.just("deposit"), who, asset, st.integers(1, 50_000)),
    st.tuples(st.just("withdraw"), who, asset, st.integers(1, 200_000)),
    st.tuples(st.just("transfer"), who, st.integers(0, KEYS + 1), asset,
              st.integers(1, 150_000)),
    st.tuples(st.just("lending"), who, st.booleans()),
    st.tuples(st.just("perp"), st.sampled_from(sorted(PERPS)), who, who,
              st.integers(-30, 30), st.integers(1, 300)),
    st.tuples(st.just("spot"), who, who, st.integers(-30, 30), st.integers(1, 100)),
    st.tuples(st.just("settle"), who, st.sampled_from(sorted(PERPS))),
    st.sampled_from(sorted(GOV_FIELDS)).flatmap(
        lambda f: st.tuples(st.just("gov"), asset, st.just(f), GOV_FIELDS[f])),
)
# per block: block time, BTC and ETH oracle moves (per mille), the ops
block = st.tuples(st.integers(1_000, 30 * 86_400_000), st.integers(900, 1_100),
                  st.integers(900, 1_100), st.lists(op, max_size=7))


def genesis():
    bals = [(key(i).pub_key, a, q) for i in range(KEYS)
            for a, q in (("USDC", 100_000 * USDC), ("BTC", 2 * 10**8), ("ETH", 30 * 10**8))]
    bals.append((INSURANCE_FUND, "USDC", 10_000 * USDC))
    g = lending_genesis(tuple(bals))
    return dataclasses.replace(g, funding=((BTC_PERP, DEFAULT_FUNDING),))


def _recipient(i: int) -> bytes:
    """Key i, or (beyond the keys) a protocol account, whose balance is not lent."""
    return key(i).pub_key if i < KEYS else (INSURANCE_FUND, FEE_ACCOUNT)[i - KEYS]


class Path:
    """One chain driven through a path; `prices` the oracle in whole dollars."""

    def __init__(self, warm: bool):
        self.c = Chain(genesis(), warm=warm)
        self.prices = dict(START_USD)
        self.n = 0

    def nonce(self) -> int:
        self.n += 1
        return self.c.time_ms + self.n

    def px(self, sym: str, offset_ppm: int = 0) -> int:
        """A price near the oracle's, on the markets' $0.1 / $0.01 ticks."""
        usd = self.prices[sym] * (10**4 + offset_ppm) // 10**4
        return usd * PRICE

    def txs(self, ops) -> tuple[list[bytes], list[tuple[str, int] | None]]:
        """The block's txs and, per tx, (what, key) for a withdrawal, transfer or settle."""
        txs, tags = [], []
        for o in ops:
            kind = o[0]
            if kind == "deposit":
                txs.append(action(key(o[1]), self.nonce(), "deposit", o[2], o[3] * PER_USD[o[2]]))
            elif kind == "withdraw":
                txs.append(action(key(o[1]), self.nonce(), "withdraw", o[2],
                                  o[3] * PER_USD[o[2]]))
            elif kind == "transfer":
                txs.append(action(key(o[1]), self.nonce(), "transfer", _recipient(o[2]),
                                  o[3], o[4] * PER_USD[o[3]]))
            elif kind == "lending":
                txs.append(action(key(o[1]), self.nonce(), "set_lending", int(o[2])))
            elif kind == "settle":
                txs.append(action(key(o[1]), self.nonce(), "settle_pnl", o[2]))
            elif kind == "gov":
                value = o[3] * PER_USD[o[1]] if o[2] == "bcap" else o[3]
                txs.append(action(GOV, self.nonce(), "gov_set_param", 0, f"L.{o[1]}.{o[2]}",
                                  value, self.c.height + 2))
            else:   # a maker rests a sell, a taker crosses it (IOC)
                market, maker, taker, off, lots = (o[1], o[2], o[3], o[4], o[5]) \
                    if kind == "perp" else (BTC_SPOT, o[1], o[2], o[3], o[4])
                sym, lot = PERPS.get(market, ("BTC", 10**4 * 10))
                px = self.px(sym, off * 10)
                txs.append(order(key(maker), self.nonce(), market, False, px, lots * lot))
                txs.append(order(key(taker), self.nonce(), market, True, px, lots * lot, tif=1))
                tags.append(None)
            tags.append((kind, o[1]) if kind in ("withdraw", "transfer", "settle") else None)
        return txs, tags

    def oracle(self, btc_pm: int, eth_pm: int) -> None:
        for sym, pm in (("BTC", btc_pm), ("ETH", eth_pm)):
            self.prices[sym] = max(self.prices[sym] * pm // 1_000, 100)
        self.c.block(oracle_tx(self.nonce(), [(s, self.px(s)) for s in ("BTC", "ETH")]),
                     dt_ms=1)
        check_invariants(self.c.kv)


def accrual_block(c: Chain, dt_ms: int) -> None:
    """An empty block `dt_ms` later: per asset, interest paid = earned + reserve + the pool's
    new dust exactly (unless a liquidation moved balances in it too)."""
    pools = {s: LP.get_pool(c.kv, s) for s in ASSETS}
    fund = {s: ledger.balance(c.kv, INSURANCE_FUND, s) for s in ASSETS}
    res = c.block([], dt_ms=dt_ms)
    only_accrual = not ({e.type for e in res.block_events} & _MOVERS)
    for s in ASSETS:
        p0, p1 = pools[s], LP.get_pool(c.kv, s)
        paid = p1.borrowed - p0.borrowed
        reserve = ledger.balance(c.kv, INSURANCE_FUND, s) - fund[s]
        earned, dust = p1.supplied - p0.supplied, p1.dust - p0.dust
        if only_accrual:
            assert paid == p1.interest_total - p0.interest_total, s
            assert reserve == p1.reserve_total - p0.reserve_total, s
            assert paid == earned + reserve + dust, (s, paid, earned, reserve, dust)
            assert 0 <= dust <= p0.scaled_supplied // L.INDEX_SCALE + 1, (s, dust)
        assert p1.dust >= p0.dust, s
        sup, bor = _real_sums(c, s)
        assert sup <= p1.supplied and bor >= p1.borrowed, s
    check_invariants(c.kv)


def _touched_after(res, i: int, hexaddr: str) -> bool:
    """Whether a tx after the i-th of the block left an event naming the account."""
    return any(hexaddr in (v for _, v in e.attrs)
               for r in res.tx_results[i + 1:] for e in r.events)


def run(spec, warm: bool) -> list[bytes]:
    p = Path(warm)
    c = p.c
    # near their limits, key 0 borrows 120,000 USDC, key 1 2 BTC, key 2 40 ETH: every pool
    # pays interest, and moving collateral away or a price move can break a borrower
    res = c.block([action(key(0), p.nonce(), "withdraw", "USDC", 220_000 * USDC),
                   action(key(1), p.nonce(), "withdraw", "BTC", 4 * 10**8),
                   action(key(2), p.nonce(), "withdraw", "ETH", 70 * 10**8)])
    assert [r.code for r in res.tx_results] == [0, 0, 0], [r.log for r in res.tx_results]
    assert all(LP.get_pool(c.kv, s).borrowed > 0 for s in ASSETS)
    hashes = [res.app_hash]
    for dt, btc_pm, eth_pm, ops in spec:
        accrual_block(c, dt)
        p.oracle(btc_pm, eth_pm)
        txs, tags = p.txs(ops)
        res = c.block(txs, dt_ms=1_000)
        # the block's own liquidations: an account the end of the block found below its
        # maintenance margin (prices and indices as its txs saw them, unless funding settled)
        funding = any(e.type == "funding" for e in res.block_events)
        liquidated = {dict(e.attrs).get("account") for e in res.block_events
                      if e.type in _MOVERS}
        for i, (r, tag) in enumerate(zip(res.tx_results, tags)):
            assert r.code in ALLOWED, (r.code, r.log)
            if tag is None or r.code != 0:
                continue
            addr = key(tag[1]).pub_key
            if not _touched_after(res, i, addr.hex()):
                assert funding or addr.hex() not in liquidated, (tag, r.events)
                s = summary(c.kv, load_account(c.kv, addr))
                assert s.equity >= s.initial_margin, (tag, s)
        check_invariants(c.kv)
        hashes.append(res.app_hash)
    return hashes


def _check(spec) -> None:
    assert run(spec, False) == run(spec, True)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(block, min_size=2, max_size=6))
def test_three_pools_stay_whole_over_random_paths_and_warm_equals_cold(spec):
    _check(spec)


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(block, min_size=5, max_size=25))
def test_three_pools_stay_whole_over_long_random_paths(spec):
    _check(spec)
