"""Property tests of dated futures (state/futures.py): over random oracle paths, irregular
block times, settlement windows and trades,

* every invariant holds after every block (money conserved: balances == supply; long == short;
  the settlement pool == -(sum of cost bases * q));
* the settlement price equals an independent reference: the time-weighted average of the
  oracle path over [expiry - window, expiry), rounded half up;
* after settlement no position or order is left on the market, the pool holds nothing
  (only the future traded), and warm and cold nodes give the same app hashes.
"""

import dataclasses

from hypothesis import HealthCheck, given, settings, strategies as st

from state import futures as FU, ledger
from state.invariants import check_invariants
from state.markets import FUTURE
from state.positions import iter_accounts
from state.settlement import POOL
from tests.chain_helpers import (BTC_LOT, BTC_PERP_SPEC, GENESIS_MS, PRICE, Chain, key,
                                 oracle_tx, order, trading_genesis)

FUT = 4
EXPIRY = GENESIS_MS + 150_000

block_spec = st.tuples(
    st.integers(1, 90_000),     # block time step (ms): over 60 s, the price goes stale
    st.integers(-2_000, 2_000),  # oracle move ($)
    st.integers(0, 30),         # lots x 10 traded (0: none)
    st.integers(0, 3),          # maker key
    st.integers(0, 3),          # taker key
    st.booleans(),              # taker buys
)


def reference_twap(path: list[tuple[int, int]], window_ms: int) -> int:
    """(block time, price set at its end) -> the window's average, rounded half up; a price
    counts for at most the oracle's max age (60 s) after it was set."""
    start = EXPIRY - window_ms
    total = weight = 0
    for (t, px), (t_next, _) in zip(path, path[1:] + [(EXPIRY, 0)]):
        lo, hi = max(t, start), min(t_next, EXPIRY, t + 60_000)
        if hi > lo:
            total += px * (hi - lo)
            weight += hi - lo
    return (2 * total + weight) // (2 * weight) if weight else path[-1][1]


def run(window_ms: int, blocks, warm: bool):
    g = trading_genesis()
    spec = ["BTC-FUT", FUTURE] + BTC_PERP_SPEC[2:] + [EXPIRY, window_ms]
    chain = Chain(dataclasses.replace(g, markets=g.markets + ((FUT, spec),)), warm=warm)
    nonce = GENESIS_MS
    usd = 60_000
    path = [(GENESIS_MS, usd * PRICE)]
    hashes = []
    for dt, move, lots, maker, taker, buys in blocks:
        if chain.time_ms + dt >= EXPIRY:
            break
        usd = min(max(usd + move, 40_000), 80_000)
        txs = oracle_tx(nonce + 1, [("BTC", usd * PRICE)])
        nonce += 2
        if lots and maker != taker:
            px = path[-1][1]   # the price in force (a multiple of the tick)
            txs += [order(key(maker), nonce, FUT, not buys, px, lots * 10 * BTC_LOT),
                    order(key(taker), nonce + 1, FUT, buys, px, lots * 10 * BTC_LOT, tif=1)]
            nonce += 2
        chain.block(txs, dt_ms=dt)
        path.append((chain.time_ms, usd * PRICE))
        check_invariants(chain.kv)
        hashes.append(chain.app_hash)
    chain.block([], dt_ms=EXPIRY + 1 - chain.time_ms)
    check_invariants(chain.kv)
    hashes.append(chain.app_hash)
    return chain, path, hashes


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 150_000), st.lists(block_spec, min_size=1, max_size=25))
def test_settlement_conserves_money_and_matches_the_reference_twap(window_ms, blocks):
    chain, path, hashes = run(window_ms, blocks, warm=False)
    s = FU.settled(chain.kv, FUT)
    assert s is not None and s.price == reference_twap(path, window_ms)
    for _, acct in iter_accounts(chain.kv):
        e = acct.entries.get(FUT)
        assert e is None or not (e.size or e.entry_tl or e.orders)
    assert ledger.balance(chain.kv, POOL, "USDC") == 0
    assert run(window_ms, blocks, warm=True)[2] == hashes
