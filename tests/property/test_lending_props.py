"""Property tests of lending (state/lending*.py):

* one accrual: borrowers' interest = suppliers' share + reserve, and what suppliers really
  receive through the supply index is at most their share, short of it only by the index's
  rounding (the protocol keeps it);
* over random paths of deposits, withdrawals (borrows), transfers, opting out and back in,
  perp trades, `settle_pnl`, block times and USDC borrow caps (none, tight, loose), after
  every block: every invariant (state.invariants, with `lending_pool`: the pools' scaled
  totals equal the accounts', cash = supplied - borrowed + dust exactly); the interest an
  accrual charges borrowers equals exactly what suppliers and the insurance fund gain plus the
  pool's new dust (the protocol's rounding, >= 0 and never shrinking), and every account's
  balance rounds against it (together suppliers own no more than the pool's supplied,
  borrowers owe no less than its borrowed); every account that withdrew or settled PnL meets
  initial margin; every rejection is one of the expected codes; and a warm node and a cold
  one give the same app hashes.
"""

import dataclasses

from hypothesis import HealthCheck, given, settings, strategies as st

from localnet.fixtures import lending_genesis, pool_params
from state import lending as L, lending_pools as LP, ledger
from state.errors import Code
from state.insurance import INSURANCE_FUND
from state.invariants import check_invariants
from state.margin import summary
from state.positions import load_account
from tests.chain_helpers import BTC_PERP, PRICE, USDC, Chain, action, key, oracle_tx, order

BTC = 10**8
KEYS = 5


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 10**16), st.integers(0, 10**16), st.integers(1, 10**7),
       st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 400 * 86_400_000))
def test_one_accrual_splits_interest_for_the_protocol(ss, sb, dsi, dbi, reserve, dt):
    p = pool_params()._replace(reserve_ppm=reserve)
    si, bi = L.INDEX_SCALE + dsi, L.INDEX_SCALE + dbi
    a = L.accrue(p, ss, sb, si, bi, dt)
    assert a.interest == a.earned + a.reserve and a.earned >= 0 and a.reserve >= 0
    assert a.interest == L.borrowed_real(sb, a.borrow_index) - L.borrowed_real(sb, bi)
    got = L.supplied_real(ss, a.supply_index) - L.supplied_real(ss, si)
    assert got <= a.earned
    assert a.earned - got <= ss // L.INDEX_SCALE + 1
    if ss:  # the reserve is at least the reserve factor's share, rounded for the protocol
        assert a.reserve * 10**6 >= a.interest * reserve


op = st.one_of(
    st.tuples(st.just("deposit"), st.integers(0, KEYS - 1), st.sampled_from(["USDC", "BTC"]),
              st.integers(1, 50_000)),
    st.tuples(st.just("withdraw"), st.integers(0, KEYS - 1), st.sampled_from(["USDC", "BTC"]),
              st.integers(1, 160_000)),
    st.tuples(st.just("transfer"), st.integers(0, KEYS - 1), st.integers(0, KEYS - 1),
              st.integers(1, 20_000)),
    st.tuples(st.just("lending"), st.integers(0, KEYS - 1), st.booleans()),
    st.tuples(st.just("trade"), st.integers(0, KEYS - 1), st.integers(0, KEYS - 1),
              st.integers(-2_000, 2_000), st.integers(1, 20)),
    st.tuples(st.just("settle"), st.integers(0, KEYS - 1)),
)
block = st.tuples(st.integers(1_000, 30 * 86_400_000), st.lists(op, max_size=6))


def _txs(chain: Chain, ops) -> tuple[list[bytes], list[int | None]]:
    """The block's txs and, per tx, the key that withdraws in it (else None)."""
    txs, who = [], []
    n = chain.time_ms + 1
    for o in ops:
        n += 1
        if o[0] == "deposit":
            unit = USDC if o[2] == "USDC" else BTC // 40_000
            txs.append(action(key(o[1]), n, "deposit", o[2], o[3] * unit))
        elif o[0] == "withdraw":
            unit = USDC if o[2] == "USDC" else BTC // 40_000
            txs.append(action(key(o[1]), n, "withdraw", o[2], o[3] * unit))
        elif o[0] == "transfer":
            txs.append(action(key(o[1]), n, "transfer", key(o[2]).pub_key, "USDC", o[3] * USDC))
        elif o[0] == "lending":
            txs.append(action(key(o[1]), n, "set_lending", int(o[2])))
        elif o[0] == "settle":
            txs.append(action(key(o[1]), n, "settle_pnl", BTC_PERP))
        else:  # a maker rests, a taker crosses it
            px = (60_000 + o[3]) * PRICE
            txs.append(order(key(o[1]), n, BTC_PERP, False, px, o[4] * BTC // 100))
            txs.append(order(key(o[2]), n + 1, BTC_PERP, True, px, o[4] * BTC // 100, tif=1))
            who.append(None)
            n += 1
        who.append(o[1] if o[0] in ("withdraw", "settle") else None)
    return txs, who


def _real_sums(chain: Chain, sym: str) -> tuple[int, int]:
    """(sum of positive real balances of lending accounts, sum of borrowed real balances)."""
    sup = bor = 0
    for k, _ in chain.kv.iterate(ledger.P_BAL):
        addr = k[len(ledger.P_BAL):len(ledger.P_BAL) + 32]
        if k.endswith(sym.encode()) and LP.mode(chain.kv, addr) != LP.RAW:
            b = ledger.balance(chain.kv, addr, sym)
            if b > 0 and LP.mode(chain.kv, addr) == LP.LENDING:
                sup += b
            elif b < 0:
                bor -= b
    return sup, bor


def _cap_genesis(cap_usdc: int):
    g = lending_genesis(tuple((key(i).pub_key, a, q) for i in range(KEYS)
                              for a, q in (("USDC", 100_000 * USDC), ("BTC", 2 * BTC))))
    usdc = pool_params()._replace(borrow_cap=cap_usdc * USDC)
    return dataclasses.replace(g, lending=(("USDC", usdc),) + g.lending[1:])


def _accrual_block(chain: Chain, dt: int) -> None:
    """An empty block `dt` later: interest paid = earned + reserve + the pool's new dust,
    exactly, unless something else moved a balance in it (a liquidation)."""
    pools = {s: LP.get_pool(chain.kv, s) for s in ("USDC", "BTC")}
    fund = {s: ledger.balance(chain.kv, INSURANCE_FUND, s) for s in ("USDC", "BTC")}
    res = chain.block([], dt_ms=dt)
    only_accrual = {e.type for e in res.block_events} <= {"lending_reserve"}
    for s in ("USDC", "BTC"):
        p0, p1 = pools[s], LP.get_pool(chain.kv, s)
        paid = p1.borrowed - p0.borrowed
        reserve = ledger.balance(chain.kv, INSURANCE_FUND, s) - fund[s]
        earned, dust = p1.supplied - p0.supplied, p1.dust - p0.dust
        if only_accrual:
            assert paid == p1.interest_total - p0.interest_total
            assert reserve == p1.reserve_total - p0.reserve_total
            assert paid == earned + reserve + dust
            assert 0 <= dust <= p0.scaled_supplied // L.INDEX_SCALE + 1
        assert p1.dust >= p0.dust
        # each account's balance rounds against it: together they own no more than the
        # pool's supplied and owe no less than its borrowed
        sup, bor = _real_sums(chain, s)
        assert sup <= p1.supplied and bor >= p1.borrowed
    check_invariants(chain.kv)


ALLOWED = {0, Code.INSUFFICIENT_MARGIN, Code.INSUFFICIENT_BALANCE, Code.POOL_ILLIQUID,
           Code.LENDING_CAP, Code.NOTHING_TO_SETTLE, Code.ORDER_NOT_FOUND}


def run(spec, warm: bool, cap_usdc: int = 0) -> list[bytes]:
    chain = Chain(_cap_genesis(cap_usdc), warm=warm)
    # key 0 borrows 50,000 USDC and key 1 0.2 BTC from the start: every accrual has interest
    res = chain.block([action(key(0), chain.time_ms + 1, "withdraw", "USDC", 150_000 * USDC),
                       action(key(1), chain.time_ms + 2, "withdraw", "BTC", 22 * BTC // 10)])
    over = 0 < cap_usdc < 50_000
    assert [r.code for r in res.tx_results] == [Code.LENDING_CAP if over else 0, 0]
    hashes = []
    for dt, ops in spec:
        _accrual_block(chain, dt)
        # a fresh oracle price (moved by up to $1,000) for the trades that follow
        px = (60_000 + dt % 2_001 - 1_000) * PRICE
        chain.block(oracle_tx(chain.time_ms + 1, [("BTC", px)]), dt_ms=1)
        check_invariants(chain.kv)
        txs, who = _txs(chain, ops)
        res = chain.block(txs, dt_ms=1_000)
        for r, w in zip(res.tx_results, who):
            assert r.code in ALLOWED, (r.code, r.log)
            if w is not None and r.code == 0:
                s = summary(chain.kv, load_account(chain.kv, key(w).pub_key))
                assert s.equity >= s.initial_margin
        check_invariants(chain.kv)
        hashes.append(res.app_hash)
    return hashes


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(block, min_size=3, max_size=10), st.sampled_from([0, 0, 100, 20_000, 80_000]))
def test_random_lending_paths_keep_the_pools_whole_and_warm_equals_cold(spec, cap_usdc):
    assert run(spec, False, cap_usdc) == run(spec, True, cap_usdc)
