"""state.margin and state.ledger: the shortcuts of the margin summaries against plain forms.

* `worst_initial_margin` leaves out the position's own initial margin when orders rest on both
  sides (one side's case is never smaller): checked against every case computed.
* `ledger.read_account` hands the liquidation check the Account a ledger published; its
  `risk_inputs` must equal those of the decoded record (else the safety bands would drop).
"""

from hypothesis import given, settings, strategies as st

from localnet.fixtures import BTC_PERP_SPEC
from state.margin import initial_margin, notional_up, value, worst_initial_margin
from state.markets import market_from_spec
from state.positions import Account, Entry, account_from_stored
from state.risk_index import risk_inputs

M = market_from_spec(1, BTC_PERP_SPEC, 6, {"USDC": 6})


def every_case(m, e: Entry, px: int) -> int:
    """The position's own initial margin, every buy filled, every sell filled: the largest."""
    cases = [initial_margin(m, notional_up(m, e.size, px), e.leverage) if e.size else 0]
    if e.buy_lots:
        cases.append(initial_margin(m, notional_up(m, e.size + e.buy_lots, px), e.leverage)
                     + max(e.buy_tl * m.q - value(m, e.buy_lots, px), 0))
    if e.sell_lots:
        cases.append(initial_margin(m, notional_up(m, e.size - e.sell_lots, px), e.leverage)
                     + max(value(m, e.sell_lots, px) - e.sell_tl * m.q, 0))
    return max(cases)


lots = st.integers(0, 10**7)  # up to 1,000 BTC: every tier of BTC_PERP_SPEC


@settings(max_examples=400, deadline=None)
@given(size=st.integers(-10**7, 10**7), buys=lots, sells=lots,
       buy_px=st.integers(1, 10**7), sell_px=st.integers(1, 10**7),
       mark_ticks=st.integers(1, 10**7), leverage=st.integers(0, M.max_leverage))
def test_worst_initial_margin_is_the_largest_case(size, buys, sells, buy_px, sell_px,
                                                   mark_ticks, leverage):
    e = Entry(M.id, size=size, entry_tl=size * mark_ticks, leverage=leverage, buy_lots=buys,
              buy_tl=buys * buy_px, sell_lots=sells, sell_tl=sells * sell_px)
    px = mark_ticks * M.tick_size
    assert worst_initial_margin(M, e, px) == every_case(M, e, px)


def test_published_and_decoded_accounts_have_the_same_risk_inputs():
    # A ledger's Account keeps an empty entry and a flat entry's funding index; the record
    # (to_stored) leaves both out.
    acct = Account(b"\x01" * 32, {1: Entry(1, size=5, entry_tl=50, funding_index=7),
                                  2: Entry(2),
                                  3: Entry(3, leverage=5, buy_lots=2, buy_tl=20,
                                           funding_index=9)}, [])
    decoded = account_from_stored(acct.addr, acct.to_stored())
    assert len(decoded.entries) == 2
    assert risk_inputs(acct) == risk_inputs(decoded)
    assert risk_inputs(decoded)[1][3] == 0  # the flat entry's funding index counts as 0
