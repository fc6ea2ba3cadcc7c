"""state.liquidation_price: the estimate is where the margin rules themselves cross maintenance.

Checked against state.margin.market_requirements (the rule the liquidation step uses), not
against a second copy of the formula: just beyond the estimate (on the far side from the
entry) the account is below maintenance; just before it, it is not.
"""

from hypothesis import given, settings, strategies as st

from localnet.fixtures import BTC_LOT, BTC_PERP_SPEC, PRICE, USDC
from state.liquidation_price import liquidation_price
from state.margin import market_requirements
from state.markets import market_from_spec
from state.positions import Entry

M = market_from_spec(1, BTC_PERP_SPEC, 6, {"USDC": 6})
TICK = M.tick_size


def below(e: Entry, px: int, other_equity: int, other_mm: int) -> bool:
    upnl, _, mm, _ = market_requirements(M, e, px)
    return other_equity + upnl < other_mm + mm


def entry(size_lots: int, entry_px: int) -> Entry:
    return Entry(M.id, size=size_lots, entry_tl=size_lots * (entry_px // TICK))


def test_hand_computed_long():
    # 1 BTC long from $60,000 with $6,000 of equity (10x), tier 0 (50x max: mmr 1%).
    # 6,000 - 60,000 + P = 0.01 P  ->  P = 54,000 / 0.99 = 54,545.4545... -> up: 54,545.454546
    e = entry(10_000, 60_000 * PRICE)
    px = liquidation_price(M, e.size, e.entry_tl, 6_000 * USDC, 0)
    assert px == 54_545_454_546
    assert below(e, px - 1, 6_000 * USDC, 0) and not below(e, px + 1, 6_000 * USDC, 0)


def test_hand_computed_short_in_a_higher_tier():
    # 50 BTC short from $60,000 ($3M notional: tier 1, 20x, mmr 2.5%, deduction
    # 2,000,000 * 1.5% = $30,000) with $400,000 of equity:
    # 400,000 + 3,000,000 - 50 P = 0.025 * 50 P - 30,000 -> P = 3,430,000 / 51.25 = 66,926.829...
    e = entry(-500_000, 60_000 * PRICE)
    px = liquidation_price(M, e.size, e.entry_tl, 400_000 * USDC, 0)
    assert px == 66_926_829_268
    assert below(e, px + 1, 400_000 * USDC, 0) and not below(e, px - 1, 400_000 * USDC, 0)


def test_no_liquidation_price():
    e = entry(10_000, 60_000 * PRICE)
    assert liquidation_price(M, e.size, e.entry_tl, 70_000 * USDC, 0) is None  # fully funded
    s = entry(-10_000, 60_000 * PRICE)
    assert liquidation_price(M, s.size, s.entry_tl, -70_000 * USDC, 0) is None  # already under
    assert liquidation_price(M, 0, 0, 1, 0) is None


def test_other_positions_margin_moves_it_toward_the_mark():
    e = entry(10_000, 60_000 * PRICE)
    alone = liquidation_price(M, e.size, e.entry_tl, 6_000 * USDC, 0)
    shared = liquidation_price(M, e.size, e.entry_tl, 6_000 * USDC, 1_000 * USDC)
    assert shared > alone


@settings(max_examples=300, deadline=None)
@given(lots=st.integers(1, 2_000_000).filter(bool), long=st.booleans(),
       entry_usd=st.integers(1_000, 200_000), lev_tenths=st.integers(11, 500),
       other_mm=st.integers(0, 50_000 * USDC))
def test_estimate_is_the_margin_rules_boundary(lots, long, entry_usd, lev_tenths, other_mm):
    size = lots if long else -lots
    e = entry(size, entry_usd * PRICE)
    notional = lots * BTC_LOT * entry_usd * PRICE // 10**8
    equity = notional * 10 // lev_tenths + other_mm
    px = liquidation_price(M, size, e.entry_tl, equity, other_mm)
    if px is None:
        # a long funded below price 0, or a short already under at any positive price
        assert below(e, 1, equity, other_mm) != long
        return
    # a few quantums of rounding inside the rules, in price units
    slack = 3 * 10**8 // (lots * BTC_LOT) + 2
    safer, worse = (px + slack, px - slack) if long else (px - slack, px + slack)
    if safer > 0:
        assert not below(e, safer, equity, other_mm)
    if worse > 0:
        assert below(e, worse, equity, other_mm)
