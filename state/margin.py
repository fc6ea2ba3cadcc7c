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
`maintenance_summary` at the pools' maintenance weights (liquidation and health): the same
summary when no pool sets one.

Rounding is always against the account: values of what it holds round down (floor), notionals
that set requirements round up.
"""

from typing import NamedTuple

from state import ledger, constants as C, funding_index as FI, lending_margin, params
from state.lending_pools import pool_params
from state.codec import load
from state.derived import derived_of, load_memo
from state.kv import KVView
from state.markets import SPOT, Market, collateral, funding_params, get as get_market
from state.oracle import price
from state.positions import Account

P_MARK = b"mark/"  # + market id (4) -> [mark_price, ema_basis, time_ms]; written by state.mark


def _decode_mark(raw: bytes) -> int:
    return load(raw)[0]


def mark_price(view: KVView, m: Market) -> int | None:
    """The market's mark price (price units), else its oracle price, else None."""
    px = load_memo(view, P_MARK + m.id.to_bytes(4, "big"), "mark_px", _decode_mark)
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
    (0: the market's max), never more than the tier allows at that notional."""
    return _initial(notional, leverage or m.max_leverage, maintenance_margin(m, notional))


def _initial(notional: int, leverage: int, maintenance: int) -> int:
    """`initial_margin` of `notional` at a non-zero `leverage`, given its maintenance margin."""
    by_leverage = -(-notional // leverage)
    by_tier = 2 * maintenance
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


def funding_owed(view: KVView, e) -> int:
    """What the position of entry `e` owes in funding not yet settled (negative: is owed)."""
    return FI.owed(e.size, FI.current(view, e.market) - e.funding_index)


def collateral_value(view: KVView, addr: bytes, quote: str | None = None) -> int:
    if pool_params(view):  # lending: borrows count at their borrow weight (state.lending_margin)
        return lending_margin.collateral_value(view, addr, quote or params.quote_asset(view))
    # Without pools a stored balance is the real one (state.lending_pools).
    others = collateral(view)
    return ledger.stored_balance(view, addr, quote or params.quote_asset(view)) + \
        (_other_collateral(view, addr, others) if others else 0)


def _other_collateral(view: KVView, addr: bytes, others: list[tuple[str, int]]) -> int:
    """The weighted value of the account's collateral assets `others` (state.markets
    .collateral) other than the quote, on a chain without lending pools."""
    total = 0
    for sym, weight in others:
        bal = ledger.stored_balance(view, addr, sym)
        if bal:
            p = price(view, sym)
            if p is not None:
                dec = params.asset_decimals(view, sym)
                # floor twice: both round the asset's value down (against the account)
                total += bal * p[0] // 10**dec * weight // C.PPM
    return total


def market_requirements(m: Market, e, px: int) -> tuple[int, int, int, int]:
    """(upnl, initial margin incl. open orders, maintenance margin, notional) of one perp entry
    at mark `px`. Open orders count at their worst case: per side, the initial margin of the
    position if every resting order of that side fills, plus the loss of filling at the
    order prices rather than at the mark; the larger side counts."""
    lev = e.leverage or m.max_leverage
    size = e.size
    lp = m.lot_size * px
    scale = m.base_scale
    upnl = size * lp // scale - e.entry_tl * m.q                 # value(m, size, px) - basis
    n = -(-((size if size >= 0 else -size) * lp) // scale)        # notional_up(m, size, px)
    mm = maintenance_margin(m, n) if size else 0
    im = _initial(n, lev, mm) if size else 0
    if e.buy_lots:
        after = size + e.buy_lots
        n_buy = -(-((after if after >= 0 else -after) * lp) // scale)
        worst = _initial(n_buy, lev, maintenance_margin(m, n_buy))  # (initial_margin)
        loss = e.buy_tl * m.q - e.buy_lots * lp // scale
        worst += loss if loss > 0 else 0
        im = worst if worst > im else im
    if e.sell_lots:
        after = size - e.sell_lots
        n_sell = -(-((after if after >= 0 else -after) * lp) // scale)
        worst = _initial(n_sell, lev, maintenance_margin(m, n_sell))  # (initial_margin)
        loss = e.sell_lots * lp // scale - e.sell_tl * m.q
        worst += loss if loss > 0 else 0
        im = worst if worst > im else im
    return upnl, im, mm, n


def summary(view: KVView, acct: Account, quote: str | None = None) -> Summary:
    """The account's margin summary at the current marks (`quote`: the quote asset, if the
    caller already knows it)."""
    coll = collateral_value(view, acct.addr, quote)
    upnl = im = mm = notional = 0
    funded = funding_params(view)
    markets = derived_of(view).markets  # (get_market's decoded markets, without the call)
    entries = acct.entries
    for mid in sorted(entries):
        e = entries[mid]
        if not (e.size or e.buy_lots or e.sell_lots):
            continue
        m = markets.get(mid) or get_market(view, mid)
        if not m.perp_like:
            continue
        px = mark_price(view, m)
        if px is None:
            continue  # unreachable for an open position: trading needs an oracle price
        u, i, mmr, n = market_requirements(m, e, px)
        if e.isolated:  # only its open orders' extra margin counts here (state.isolated)
            im += i - (initial_margin(m, n, e.leverage) if e.size else 0)
            continue
        if e.size and mid in funded:
            coll -= funding_owed(view, e)
        upnl += u
        im += i
        mm += mmr
        notional += n
    return Summary(coll, upnl, coll + upnl, im, mm, notional)


def maintenance_summary(view: KVView, acct: Account, quote: str | None = None) -> Summary:
    """`summary` with the collateral valued at the maintenance weights (state.lending_margin):
    what liquidation and health compare with maintenance margin."""
    s = summary(view, acct, quote)
    if not pool_params(view) or not lending_margin.has_maint_weights(view):
        return s
    q = quote or params.quote_asset(view)
    more = lending_margin.collateral_value(view, acct.addr, q, maint=True) - \
        lending_margin.collateral_value(view, acct.addr, q)
    return s._replace(collateral=s.collateral + more, equity=s.equity + more)


def margin_check(view: KVView, acct: Account, quote: str | None = None) -> tuple[int, int]:
    """(equity, initial margin) of the account at the current marks: what an order or a
    leverage change must keep equity >= initial margin for."""
    s = summary(view, acct, quote)
    return s.equity, s.initial_margin


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
