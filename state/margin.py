"""Cross margin: equity, initial and maintenance margin of one account over all its markets.

What this module owns
---------------------
The arithmetic of cross margin, read-only (it never writes):

* equity = quote balance + sum over other collateral assets of balance * oracle price *
  collateral weight + sum over perp positions of (size * mark - cost basis) - what the
  positions owe in funding not yet settled (state.funding_index; counted as collateral).
* maintenance margin of a position of notional n (at mark) = ceil((n * mmr_k - deduction_k) /
  PPM) for its tier k (state.markets), continuous in n.
* initial margin of a position = max(ceil(n / leverage), 2 * MM(n)): the account's chosen
  leverage, but never more than the tier allows at that notional.
* open orders count at their worst case (dYdX's rule): per market, the larger of "every resting
  buy fills" and "every resting sell fills", each plus the loss of filling at the order prices
  rather than at the mark.

An isolated position (state.isolated) is outside the cross account: its size, PnL, margin and
maintenance margin do not count here. Only the open orders on its market do, in initial margin:
the extra initial margin they could need beyond the position's own (its worst case less the
position's initial margin), which the cross account must be able to move in when they fill.

With lending pools (state.lending_pools) the collateral part is state.lending_margin's:
every balance, positive ones at their collateral weight, negative ones at their borrow weight.
`summary` values them at the initial weights (every initial-margin check);
`maintenance_summary` (a `Standing`: what maintenance compares, without the initial margin) at
the pools' maintenance weights (liquidation and health), the same ones when no pool sets one.
`margin_check` is `summary`'s equity and initial margin alone (every order).

Rounding is always against the account: values of what it holds round down (floor), notionals
that set requirements round up.
"""

from functools import cache
from typing import NamedTuple

from state import ledger, constants as C, funding_index as FI, lending_margin, params
from state.lending_pools import pool_params
from state.codec import load
from state.derived import derived_of, load_memo, param_of
from state.kv import KVView
from state.markets import SPOT, Market, collateral, funding_params, get as get_market
from state.oracle import price
from state.positions import Account

P_MARK = b"mark/"  # + market id (4) -> [mark_price, ema_basis, time_ms]; written by state.mark


def _decode_mark(raw: bytes) -> int:
    return load(raw)[0]


@cache
def mark_key(market_id: int) -> bytes:
    """The market's mark record key (a pure function, memoised: built on every margin check)."""
    return P_MARK + market_id.to_bytes(4, "big")


def mark_price(view: KVView, m: Market) -> int | None:
    """The market's mark price (price units), else its oracle price, else None."""
    px = load_memo(view, mark_key(m.id), "mark_px", _decode_mark)
    if px is not None:
        return px
    p = price(view, m.base)
    return None if p is None else p[0]


def value(m: Market, size_lots: int, px: int) -> int:
    """Signed value in quote quantums of `size_lots` at price `px`, floored (against a long's
    value and for a short's liability)."""
    return size_lots * m.lot_size * px // m.base_scale


def notional_up(m: Market, size_lots: int, px: int) -> int:
    """|size| * px in quote quantums, rounded up (for requirements)."""
    n = size_lots if size_lots >= 0 else -size_lots
    return -(-(n * m.lot_size * px) // m.base_scale)


def maintenance_margin(m: Market, notional: int) -> int:
    tier = m.tiers[0]
    for t in m.tiers:
        if t.lower_bound <= notional:
            tier = t
        else:
            break
    scaled = notional * tier.mmr_ppm - tier.deduction_scaled
    return -(-scaled // C.PPM) if scaled > 0 else 0


def initial_margin(m: Market, notional: int, leverage: int) -> int:
    """max(notional / leverage, 2 * maintenance margin), rounded up: the chosen leverage
    (0: the market's max), never more than the tier allows at that notional. It grows with the
    notional (so does the maintenance margin: the tiers' deductions make it continuous)."""
    by_leverage = -(-notional // (leverage or m.max_leverage))
    by_tier = 2 * maintenance_margin(m, notional)
    return by_leverage if by_leverage >= by_tier else by_tier


class Summary(NamedTuple):
    collateral: int          # balances valued with weights (quote quantums)
    unrealized_pnl: int
    equity: int
    initial_margin: int      # positions and open orders at worst case
    maintenance_margin: int  # positions only
    notional: int            # total |position| notional at mark

    @property
    def free_collateral(self) -> int:
        return self.equity - self.initial_margin


class Standing(NamedTuple):
    """An account against maintenance margin (`maintenance_summary`): a Summary without the
    initial margin (open orders do not count against maintenance), its collateral at the
    maintenance weights."""
    collateral: int
    unrealized_pnl: int
    equity: int
    maintenance_margin: int
    notional: int


class MarginParams(NamedTuple):
    """What every margin summary reads, decoded together (rule 2 of state.derived)."""
    quote: str                       # the quote asset
    pools: dict                      # lending pool parameters (state.lending_pools)
    others: list[tuple[str, int]]    # the other collateral assets (state.markets.collateral)
    funded: dict                     # funding parameters (state.markets.funding_params)
    maint_weights: bool              # some pool sets a maintenance weight of its own
    markets: dict                    # Derived.markets (market id -> Market; dropped with these)


def _decode_margin_params(view: KVView) -> MarginParams:
    pools = pool_params(view)
    return MarginParams(params.quote_asset(view), pools, collateral(view), funding_params(view),
                        bool(pools) and lending_margin.has_maint_weights(view),
                        derived_of(view).markets)


def margin_params(view: KVView) -> MarginParams:
    return param_of(view, "margin", _decode_margin_params)


def funding_owed(view: KVView, e) -> int:
    """What the position of entry `e` owes in funding not yet settled (negative: is owed)."""
    return FI.owed(e.size, FI.current(view, e.market) - e.funding_index)


def collateral_value(view: KVView, addr: bytes, quote: str | None = None,
                     maint: bool = False) -> int:
    """The weighted value of the account's balances in quote quantums (`maint`: at the lending
    pools' maintenance weights)."""
    mp = margin_params(view)
    return _collateral(view, addr, quote or mp.quote, mp, maint)


def _collateral(view: KVView, addr: bytes, quote: str, mp: MarginParams, maint: bool) -> int:
    """`collateral_value`. Without pools: the quote balance plus, per other collateral asset,
    balance * oracle price * collateral weight."""
    if mp.pools:  # lending: borrows count at their borrow weight (state.lending_margin)
        return lending_margin.collateral_value(view, addr, quote, maint and mp.maint_weights)
    # Without pools a stored balance is the real one (state.lending_pools).
    total = ledger.stored_balance(view, addr, quote)
    for sym, weight in mp.others:
        bal = ledger.stored_balance(view, addr, sym)
        if bal:
            p = price(view, sym)
            if p is not None:
                dec = params.asset_decimals(view, sym)
                # floor twice: both round the asset's value down (against the account)
                total += bal * p[0] // 10**dec * weight // C.PPM
    return total


def worst_initial_margin(m: Market, e, px: int) -> int:
    """The initial margin of entry `e` with its open orders at their worst case at mark `px`
    (dYdX's rule): per side, the initial margin of the position if every resting order of that
    side fills, plus the loss of filling at the order prices rather than at the mark; the
    larger side counts, or the position's own if larger.
    Initial margin grows with notional, so a case whose position is no larger than another's,
    nor its loss, is never the larger and is not computed: with orders on both sides, the
    position's own (one side's position is at least as large), and a side dominated so."""
    lev = e.leverage or m.max_leverage
    size, buys, sells = e.size, e.buy_lots, e.sell_lots
    # the loss of filling each side at its order prices rather than at the mark
    buy_loss = max(e.buy_tl * m.q - value(m, buys, px), 0) if buys else 0
    sell_loss = max(value(m, sells, px) - e.sell_tl * m.q, 0) if sells else 0
    im = 0
    if buys and sells:
        after_buys, after_sells = abs(size + buys), abs(size - sells)
        if after_buys >= after_sells and buy_loss >= sell_loss:
            sells = 0  # (dominated by the buys' case)
        elif after_sells >= after_buys and sell_loss >= buy_loss:
            buys = 0
    elif size:
        im = initial_margin(m, notional_up(m, size, px), lev)
    if buys:
        worst = initial_margin(m, notional_up(m, size + buys, px), lev) + buy_loss
        im = worst if worst > im else im
    if sells:
        worst = initial_margin(m, notional_up(m, size - sells, px), lev) + sell_loss
        im = worst if worst > im else im
    return im


def market_requirements(m: Market, e, px: int) -> tuple[int, int, int, int]:
    """(upnl, initial margin incl. open orders, maintenance margin, notional) of one perp entry
    at mark `px` (`worst_initial_margin`)."""
    n = notional_up(m, e.size, px)
    return (value(m, e.size, px) - e.entry_tl * m.q, worst_initial_margin(m, e, px),
            maintenance_margin(m, n) if e.size else 0, n)


def _positions(view: KVView, acct: Account, mp: MarginParams, initial: bool,
               maintenance: bool) -> tuple[int, int, int, int, int]:
    """(funding owed, upnl, initial margin, maintenance margin, notional) of the account's
    cross positions at the current marks (`market_requirements`; the initial margin only if
    `initial`, the maintenance margin and notional only if `maintenance`, else 0). An isolated
    position counts only its open orders' extra initial margin (state.isolated)."""
    owed = upnl = im = mm = notional = 0
    markets, funded = mp.markets, mp.funded  # (get_market's decoded markets, without the call)
    for mid, e in acct.entries.items():  # (sums of integers: their order is free)
        size = e.size
        if not (size or e.buy_lots or e.sell_lots):
            continue
        m = markets.get(mid) or get_market(view, mid)
        if not m.perp_like:
            continue
        px = mark_price(view, m)
        if px is None:
            continue  # unreachable for an open position: trading needs an oracle price
        if initial:
            im += worst_initial_margin(m, e, px)
            if e.isolated and size:
                im -= initial_margin(m, notional_up(m, size, px), e.leverage)
        if e.isolated:
            continue
        if size and mid in funded:
            owed += funding_owed(view, e)
        upnl += value(m, size, px) - e.entry_tl * m.q
        if maintenance and size:
            n = notional_up(m, size, px)
            mm += maintenance_margin(m, n)
            notional += n
    return owed, upnl, im, mm, notional


def summary(view: KVView, acct: Account, quote: str | None = None) -> Summary:
    """The account's margin summary at the current marks (`quote`: the quote asset, if the
    caller already knows it)."""
    mp = margin_params(view)
    coll = _collateral(view, acct.addr, quote or mp.quote, mp, False)
    owed, upnl, im, mm, notional = _positions(view, acct, mp, True, True)
    return Summary(coll - owed, upnl, coll - owed + upnl, im, mm, notional)


def maintenance_summary(view: KVView, acct: Account, quote: str | None = None) -> Standing:
    """The account against maintenance margin, its collateral at the maintenance weights
    (state.lending_margin): what liquidation and health compare."""
    mp = margin_params(view)
    coll = _collateral(view, acct.addr, quote or mp.quote, mp, True)
    owed, upnl, _, mm, notional = _positions(view, acct, mp, False, True)
    return Standing(coll - owed, upnl, coll - owed + upnl, mm, notional)


def margin_check(view: KVView, acct: Account, quote: str | None = None) -> tuple[int, int]:
    """(equity, initial margin) of the account at the current marks (`summary`'s): what an
    order or a leverage change must keep equity >= initial margin for."""
    mp = margin_params(view)
    coll = _collateral(view, acct.addr, quote or mp.quote, mp, False)
    owed, upnl, im, _, _ = _positions(view, acct, mp, True, False)
    return coll - owed + upnl, im


def spot_reserved(view: KVView, acct: Account) -> dict[str, int]:
    """Quantums of each asset that the account's resting spot orders may spend (buys: notional
    plus taker fee at the base rate, rounded up; sells: base size)."""
    out: dict[str, int] = {}
    for mid in sorted(acct.entries):
        e = acct.entries[mid]
        if not (e.buy_lots or e.sell_lots):
            continue
        m = get_market(view, mid)
        if m.kind != SPOT:
            continue
        quote = params.quote_asset(view)
        if e.buy_tl:
            notional = e.buy_tl * m.q
            out[quote] = out.get(quote, 0) + notional + -(-notional * m.taker_fee_ppm // C.PPM)
        if e.sell_lots:
            out[m.base] = out.get(m.base, 0) + e.sell_lots * m.lot_size
    return out
