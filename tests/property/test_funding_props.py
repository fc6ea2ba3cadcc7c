"""Property tests of funding (state/funding.py):

* what positions owe for an index move sums to zero up to rounding, and the rounding always
  favours the protocol: no payer pays less, no receiver gets more than the exact amount, and
  the remainder (what the funding pool keeps) is in [0, number of payers and receivers);
* over random price paths, quotes, trades and block times spanning several intervals, money is
  conserved after every block (balances == supply), each block's settled payments plus the
  funding pool's gain are zero, the pool plus what every position still owes is never
  negative, and a warm node and a cold one give the same app hashes.
"""

import dataclasses

from hypothesis import HealthCheck, given, settings, strategies as st

from state import funding as F, funding_index as FI, ledger
from state.amounts import parse_amount
from state.funding_index import FUNDING_POOL
from state.margin import funding_owed
from state.positions import iter_accounts
from state.markets import DEFAULT_FUNDING, RATE_SCALE, market_from_spec
from tests.chain_helpers import (BTC_LOT, BTC_PERP, BTC_PERP_SPEC, PRICE, Chain,
                                 action, key, oracle_tx, order, trading_genesis)

M = market_from_spec(BTC_PERP, list(BTC_PERP_SPEC), 6, {})
TICK = 100_000


@st.composite
def holders(draw):
    """Position sizes (lots) of some accounts, long = short."""
    sizes = draw(st.lists(st.integers(-10**6, 10**6).filter(bool), min_size=1, max_size=30))
    return sizes + [-sum(sizes)] if sum(sizes) else sizes + [1, -1]


@settings(max_examples=300, deadline=None)
@given(holders(), st.integers(1, 10**7).map(lambda t: t * TICK),
       st.integers(-DEFAULT_FUNDING.max_rate_per_hour, DEFAULT_FUNDING.max_rate_per_hour))
def test_payments_sum_to_zero_up_to_rounding_for_the_protocol(sizes, oracle_px, rate):
    step = FI.step(M, oracle_px, rate)
    debits = [FI.owed(s, step) for s in sizes]
    for s, d in zip(sizes, debits):
        exact = s * step                              # x INDEX_SCALE
        assert d * FI.INDEX_SCALE >= exact > (d - 1) * FI.INDEX_SCALE  # the ceiling
    assert 0 <= sum(debits) < len(sizes)
    # the index step itself is toward zero: never more than the exact window amount per lot
    exact_lot = M.lot_size * oracle_px * rate * FI.INDEX_SCALE
    assert abs(step) * M.base_scale * RATE_SCALE <= abs(exact_lot)


def quantums(text: str) -> int:
    q = parse_amount(text.lstrip("-"), 6)
    return -q if text.startswith("-") else q


block_spec = st.tuples(
    st.integers(1_000, 40 * 60_000),   # block time step (ms)
    st.integers(-300, 300),            # oracle move ($ from 60,000)
    st.integers(-400, 400),            # quote centre ($ from the oracle)
    st.integers(1, 60),                # quote half spread ($)
    st.integers(0, 3),                 # lots x 10 key 0 buys from key 1's ask (0: none)
)


def run(spec, warm):
    chain = Chain(dataclasses.replace(trading_genesis(), funding=((BTC_PERP, DEFAULT_FUNDING),)),
                  warm=warm)
    hashes, settlements = [], 0
    for dt, move, centre, half, lots in spec:
        oracle = 60_000 + move
        # the oracle price first (txs see the prices of the block before), then the orders
        pool_before = ledger.balance(chain.kv, FUNDING_POOL, "USDC")
        res = chain.block(oracle_tx(chain.time_ms + dt, [("BTC", oracle * PRICE)]), dt_ms=dt)
        settlements += check_block(chain, res, pool_before)
        nonce = chain.time_ms + 1_000  # the block time: inside the nonce window
        bid, ask = oracle + centre - half, oracle + centre + half
        txs = [action(key(2), nonce, "cancel_all", BTC_PERP),
                order(key(2), nonce + 1, BTC_PERP, True, bid * PRICE, 500 * BTC_LOT),
                order(key(2), nonce + 2, BTC_PERP, False, ask * PRICE, 500 * BTC_LOT)]
        if lots:
            txs += [order(key(1), nonce, BTC_PERP, False, ask * PRICE, lots * BTC_LOT * 10),
                    order(key(0), nonce, BTC_PERP, True, ask * PRICE, lots * BTC_LOT * 10, tif=1)]
        pool_before = ledger.balance(chain.kv, FUNDING_POOL, "USDC")
        res = chain.block(txs, dt_ms=1_000)
        assert [r.code for r in res.tx_results] == [0] * len(txs)
        settlements += check_block(chain, res, pool_before)
        hashes.append(res.app_hash)
    assert settlements == len(F.history(chain.kv, BTC_PERP))
    return hashes, settlements


def check_block(chain, res, pool_before) -> int:
    """Settled payments + the pool's gain == 0, balances == supply, pool + what is owed >= 0;
    the block's settlements."""
    paid = [quantums(dict(e.attrs)["amount"]) for e in list(res.block_events)
            + [e for r in res.tx_results for e in r.events] if e.type == "funding_payment"]
    pool = ledger.balance(chain.kv, FUNDING_POOL, "USDC")
    assert sum(paid) + pool - pool_before == 0
    owed = sum(funding_owed(chain.kv, e) for _, a in iter_accounts(chain.kv)
               for e in a.entries.values() if e.size)
    assert 0 <= pool + owed < 100
    total = sum(ledger.balance(chain.kv, k[len(ledger.P_BAL):len(ledger.P_BAL) + 32], "USDC")
                for k, _ in chain.kv.iterate(ledger.P_BAL) if k.endswith(b"USDC"))
    assert total == ledger.supply(chain.kv, "USDC")
    return sum(e.type == "funding" for e in res.block_events)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(block_spec, min_size=6, max_size=14))
def test_random_paths_conserve_money_and_warm_equals_cold(spec):
    cold, warm = run(spec, warm=False), run(spec, warm=True)
    assert cold == warm
