"""The fast form of settling a taker's fills (state.fast_fills) against the readable form
(state.settlement.settle_taker_fills): random chains run once with each, block by block, must
give the same app hash and the same block results (events, codes, logs) every block.

The streams cover what the fast form treats specially: several makers per taker order, partial
and whole maker fills, positions that open, grow, shrink and flip (realised PnL), maker rebates
and fee tiers, isolated positions on either side (the readable fallback), funding settled as an
account loads (events between fills), and the spot market (delegated whole).
"""

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from state import placement, settlement
from state import fast_fills
from state.constants import DAY_MS
from state.markets import DEFAULT_FUNDING, FeeTier
from tests.chain_helpers import (BTC_LOT, BTC_PERP, BTC_SPOT, PRICE, USDC, Chain, action, key,
                                 oracle_tx, order, trading_genesis)

N = 5
KEYS = [key(i) for i in range(N)]
MID = 60_000 * PRICE
TICK = {BTC_PERP: PRICE // 10, BTC_SPOT: PRICE // 10}
# Each block moves the clock by 9 hours and a bit: funding settles as accounts load, and from
# the fourth block on a new day's fee tiers apply (the oracle stays fresh: max_age_ms).
DT_MS = 9 * 3_600_000 + 1

op = st.one_of(
    # (kind, who, market, is_buy, price offset in ticks, lots / 10, tif)
    st.tuples(st.just("order"), st.integers(0, N - 1), st.sampled_from([BTC_PERP] * 4 + [BTC_SPOT]),
              st.booleans(), st.integers(-6, 6), st.integers(1, 8), st.sampled_from([0, 0, 1, 1, 3])),
    st.tuples(st.just("order"), st.integers(0, N - 1), st.just(BTC_PERP), st.booleans(),
              st.integers(-6, 6), st.integers(1, 8), st.just(0)),
    st.tuples(st.just("isolated"), st.integers(0, N - 1), st.just(BTC_PERP), st.booleans(),
              st.just(0), st.integers(1, 20), st.just(0)),
    st.tuples(st.just("oracle"), st.just(0), st.just(0), st.booleans(), st.integers(-40, 40),
              st.just(0), st.just(0)),
)
# A first block puts some accounts in isolated margin mode, then random blocks.
streams = st.builds(lambda iso, blocks: [[("isolated", i, BTC_PERP, True, 0, 10, 0)
                                          for i in sorted(iso)]] + blocks,
                    st.sets(st.integers(0, N - 1), max_size=3),
                    st.lists(st.lists(op, min_size=4, max_size=16), min_size=2, max_size=6))


def _genesis():
    g = trading_genesis(N, amount=2_000_000 * USDC, btc=50 * 10**8, max_age_ms=30 * DAY_MS,
                        fee_tiers=(FeeTier(0, 0, 0), FeeTier(1_000 * USDC, 100, 400)))
    return dataclasses.replace(g, funding=((BTC_PERP, DEFAULT_FUNDING),))


def _txs(block, nonce0: int) -> list[bytes]:
    txs = []
    for i, (kind, who, market, flag, offset, n, tif) in enumerate(block):
        nonce = nonce0 + i
        k = KEYS[who]
        if kind == "order":
            px = MID + offset * TICK[market]
            txs.append(order(k, nonce, market, flag, px, n * 10 * BTC_LOT, tif=tif))
        elif kind == "isolated":  # isolated margin mode on or off (refused with a position)
            txs.append(action(k, nonce, "set_margin_mode", market, int(flag), n))
        else:
            txs += oracle_tx(nonce, [("BTC", MID + offset * PRICE)])
    return txs


def _run(stream, settle, monkeypatch) -> list[tuple[bytes, bytes]]:
    monkeypatch.setattr(placement, "settle_taker_fills", settle)
    chain = Chain(_genesis(), warm=True)
    out = []
    for block in stream:
        res = chain.block(_txs(block, chain.time_ms + DT_MS), dt_ms=DT_MS)
        out.append((res.app_hash, res.results_bytes()))
    return out


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(stream=streams)
def test_the_fast_form_equals_the_readable_form(stream, monkeypatch):
    fast = _run(stream, fast_fills.settle_taker_fills, monkeypatch)
    readable = _run(stream, settlement.settle_taker_fills, monkeypatch)
    assert fast == readable


def _fills(stream, monkeypatch) -> int:
    """How many fills the stream made (so the test above is seen to exercise fills)."""
    monkeypatch.setattr(placement, "settle_taker_fills", fast_fills.settle_taker_fills)
    chain = Chain(_genesis(), warm=True)
    n = 0
    for block in stream:
        res = chain.block(_txs(block, chain.time_ms + DT_MS), dt_ms=DT_MS)
        n += sum(e.type == "fill" for r in res.tx_results for e in r.events)
    return n


def test_a_hand_made_stream_fills_on_both_sides_and_flips(monkeypatch):
    """Makers at three prices, a taker sweeping them, then the taker flipping its position
    against a maker whose position is isolated: fills happen and both forms agree."""
    stream = [
        [("order", 1, BTC_PERP, False, 1, 3, 0), ("order", 2, BTC_PERP, False, 2, 2, 0),
         ("order", 3, BTC_PERP, False, 3, 5, 0), ("isolated", 4, BTC_PERP, True, 0, 10, 0)],
        [("order", 0, BTC_PERP, True, 3, 7, 1), ("order", 4, BTC_PERP, True, -1, 8, 0)],
        [("order", 0, BTC_PERP, False, -1, 8, 1), ("oracle", 0, 0, True, 5, 0, 0),
         ("order", 1, BTC_SPOT, False, 0, 2, 0), ("order", 2, BTC_SPOT, True, 0, 2, 1)],
    ]
    assert _fills(stream, monkeypatch) >= 5
    assert _run(stream, fast_fills.settle_taker_fills, monkeypatch) == \
        _run(stream, settlement.settle_taker_fills, monkeypatch)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_differing_fast_form_is_caught(seed, monkeypatch):
    """The comparison can fail: a fast form that forgets the maker rebate's sign differs."""
    def wrong(scope, m, o, fills):
        isolated = fast_fills.settle_taker_fills(scope, m, o, fills)
        scope.ledger.credit(fills[0].maker_owner, scope.quote, seed)
        return isolated
    stream = [[("order", 1, BTC_PERP, False, 1, 3, 0)], [("order", 0, BTC_PERP, True, 3, 2, 1)]]
    assert _run(stream, wrong, monkeypatch) != \
        _run(stream, settlement.settle_taker_fills, monkeypatch)


def test_the_order_path_uses_the_fast_form():
    assert placement.settle_taker_fills is fast_fills.settle_taker_fills
