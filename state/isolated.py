"""Isolated margin (Hyperliquid's isolated mode): a perp position with its own margin.

What this module owns
---------------------
Per account and perp market a margin mode: cross (the default) or isolated, chosen with the
`set_margin_mode` action while the account has neither a position nor open orders there. An
isolated position keeps its own margin `iso_margin` (quote quantums) in its clearing entry
(state.positions: `Entry.isolated`, `Entry.iso_margin`), apart from the cross quote balance.
At mark price P (state.margin), for a position of s lots with cost basis B tick-lots:

    isolated equity     = iso_margin - funding owed + value(s, P) - B * q
    initial margin      = initial_margin(notional(s, P), leverage)    (the position only)
    maintenance margin  = maintenance_margin(notional(s, P))

The cross account (state.margin.summary) leaves the position, its PnL and its margin out and
counts only the extra initial margin of the open orders on that market.

Money moves between the cross quote balance and an isolated margin only:
* after an order's fills (`fund_after_fills`): a position that grew or flipped receives
  max(IM(after) - IM(before, same side; else 0), IM(after) - isolated equity) from the cross
  balance, at the mark. The taker's order is rejected (INSUFFICIENT_MARGIN) if that exceeds the
  cross free collateral (equity - initial margin, after the fills); a maker's fill cannot be
  refused, so a maker moves at most its cross free collateral (never below 0);
* `isolated_margin` (Hyperliquid's updateIsolatedMargin): a positive amount needs that much
  cross free collateral; a negative one (a fresh oracle price needed) must leave isolated
  equity >= initial margin;
* state.settlement: the realised PnL and fees of a fill go into the isolated margin, and what
  is left returns to the cross balance when the position is closed;
* state.ledger: the funding an isolated position owes (state.funding_index) counts in its
  isolated equity and is settled into its margin;
* state.liquidation: an isolated position below its own maintenance margin is liquidated on
  its own, its fee paid from its margin; it can lose no more than that margin.
Every move is an `isolated_margin` event (`amount`: the change of the isolated margin).
"""

from state import lending_limits
from state.errors import Code, TxError
from state.event_text import quote_text
from state.events import Event
from state.margin import (Summary, funding_owed, initial_margin, maintenance_margin, mark_price,
                          notional_up, summary, value)
from state.insurance import INSURANCE_FUND, fund_balance
from state.markets import Market, funding_params
from state.oracle import fresh_price
from state.positions import Account, Entry
from state.settlement import release_isolated

CROSS, ISOLATED = 0, 1
MODE_NAMES = ("cross", "isolated")


# -- the arithmetic (read only) -----------------------------------------------------------------

def iso_summary(view, m: Market, e: Entry, px: int | None = None) -> Summary:
    """An isolated position's own margin summary at mark `px` (None: the market's mark):
    collateral is its isolated margin; initial margin the position's only."""
    px = mark_price(view, m) if px is None else px
    if px is None or not e.size:
        return Summary(e.iso_margin, 0, e.iso_margin, 0, 0, 0)
    n = notional_up(m, e.size, px)
    upnl = value(m, e.size, px) - e.entry_tl * m.q
    coll = e.iso_margin - (funding_owed(view, e) if m.id in funding_params(view) else 0)
    return Summary(coll, upnl, coll + upnl, initial_margin(m, n, e.leverage),
                   maintenance_margin(m, n), n)


def isolated_summaries(view, acct: Account, markets) -> dict[int, Summary]:
    """{market id: summary} of the account's isolated positions, ascending by market id
    (`markets`: market id -> Market, e.g. a scope's `market`)."""
    out = {}
    for mid in sorted(acct.entries):
        e = acct.entries[mid]
        if e.isolated and e.size:
            out[mid] = iso_summary(view, markets(mid), e)
    return out


def top_up_needed(m: Market, e: Entry, before_lots: int, px: int) -> int:
    """What a position that went from `before_lots` to `e.size` must receive (0 unless it grew
    or flipped): the initial margin of the added size, and at least enough to reach initial
    margin."""
    after = e.size
    same = before_lots != 0 and (after > 0) == (before_lots > 0)
    if after == 0 or (same and abs(after) <= abs(before_lots)):
        return 0
    im_after = initial_margin(m, notional_up(m, after, px), e.leverage)
    im_before = initial_margin(m, notional_up(m, before_lots, px), e.leverage) if same else 0
    equity = e.iso_margin + value(m, after, px) - e.entry_tl * m.q
    return max(im_after - im_before, im_after - equity)


# -- moves ---------------------------------------------------------------------------------------

def move_in(scope, m: Market, addr: bytes, e: Entry, amount: int, reason: str) -> None:
    """Move `amount` (signed) from the cross quote balance into the isolated margin."""
    scope.ledger.credit(addr, scope.quote, -amount)
    e.iso_margin += amount
    scope.events.append(Event("isolated_margin", (
        ("account", addr.hex()), ("market", m.symbol), ("amount", quote_text(m, amount)),
        ("reason", reason), ("margin", quote_text(m, e.iso_margin)))))


def sizes_before(ledger, m: Market, o, fills, taker_before: int) -> dict[bytes, int]:
    """{address: position lots before the fills} of the isolated sides of order `o`'s fills
    (call before the ledger is flushed; empty: no isolated side)."""
    out: dict[bytes, int] = {}
    if ledger.account(o.owner).entry(m.id).isolated:
        out[o.owner] = taker_before
    sign = 1 if o.is_buy else -1  # a maker's position moved by -sign * lots
    for f in fills:
        me = ledger.account(f.maker_owner).entry(m.id)
        if me.isolated:
            out[f.maker_owner] = out.get(f.maker_owner, me.size) + sign * f.size_lots
    return out


def fund_after_fills(scope, m: Market, taker: bytes, before: dict[bytes, int]) -> None:
    """Move the margin each isolated side of an order's fills needs from its cross balance
    (the taker first, then the makers by address; see the module docstring)."""
    px = mark_price(scope.view, m)
    if px is None:
        return
    for addr in sorted(before, key=lambda a: (a != taker, a)):
        acct = scope.ledger.account(addr)
        e = acct.entry(m.id)
        need = top_up_needed(m, e, before[addr], px)
        if need <= 0:
            continue
        s = summary(scope.view, acct, scope.quote)
        free = s.free_collateral
        if addr == taker and need > free:
            raise TxError(Code.INSUFFICIENT_MARGIN, f"the isolated {m.symbol} position needs "
                          f"{quote_text(m, need)} moved in from the cross account, whose free "
                          f"collateral is {quote_text(m, free)} (equity "
                          f"{quote_text(m, s.equity)}, initial margin "
                          f"{quote_text(m, s.initial_margin)})")
        amount = need if addr == taker else min(need, max(free, 0))
        if amount:
            move_in(scope, m, addr, e, amount, "order")


def close_at_settlement(scope, m: Market, addr: bytes, e: Entry, pnl: int) -> None:
    """A dated future's settlement (state.futures) closed isolated position `e` with `pnl`:
    it goes into the isolated margin; a deficit there is covered by the insurance fund as far
    as its balance goes (the position loses at most its margin); the rest returns to the
    quote balance."""
    e.iso_margin += pnl
    if e.iso_margin < 0:
        scope.ledger.flush()
        covered = min(-e.iso_margin, max(fund_balance(scope.view, scope.quote), 0))
        scope.ledger.credit(INSURANCE_FUND, scope.quote, -covered)
        e.iso_margin += covered
        scope.events.append(Event("settlement_deficit", (
            ("account", addr.hex()), ("market", m.symbol),
            ("deficit", quote_text(m, covered - e.iso_margin)),
            ("covered", quote_text(m, covered)))))
    release_isolated(scope, m, addr, e, "closed")


# -- actions -------------------------------------------------------------------------------------

def perp_market(scope, market_id: int, action: str) -> Market:
    m = scope.market(market_id)
    if not m.perp_like:
        raise TxError(Code.NOT_A_PERP_MARKET, f"{m.symbol} is a spot market: {action} applies "
                      "to perp markets only")
    return m


def check_leverage_margin(scope, m: Market, acct: Account, leverage: int) -> None:
    """After a leverage or margin-mode change on `m` (ledger flushed): the cross account's
    equity must still cover its initial margin, and an isolated position its own."""
    s = summary(scope.view, acct, scope.quote)
    if s.equity < s.initial_margin:
        raise TxError(Code.INSUFFICIENT_MARGIN, f"at {leverage}x the initial margin "
                      f"{quote_text(m, s.initial_margin)} would exceed equity "
                      f"{quote_text(m, s.equity)}")
    check_isolated_leverage(scope.view, m, acct.entry(m.id))


def check_isolated_leverage(view, m: Market, e: Entry) -> None:
    """An isolated position must still meet its initial margin at its (new) leverage."""
    if e.isolated and e.size:
        s = iso_summary(view, m, e)
        if s.equity < s.initial_margin:
            raise TxError(Code.INSUFFICIENT_MARGIN, f"at {e.leverage}x the isolated {m.symbol} "
                          f"position needs initial margin {quote_text(m, s.initial_margin)}; "
                          f"its isolated equity is {quote_text(m, s.equity)} (add margin "
                          "with isolated_margin first)")


def _twaps_on(view, owner: bytes, m: Market) -> bool:
    """Whether the account has an active TWAP (state.twap) on market `m`."""
    from state import twap  # (state.twap imports placement, which imports this module)
    return any(twap.get(view, i).market == m.id for i in twap.account_twaps(view, owner))


def set_margin_mode(scope, owner: bytes, fields) -> None:
    """The `set_margin_mode` action: [market, isolated 0/1, leverage] (Hyperliquid's
    updateLeverage). The mode may change only with no position and no open order there."""
    market_id, isolated, leverage = fields
    m = perp_market(scope, market_id, "set_margin_mode")
    if isolated not in (CROSS, ISOLATED):
        raise TxError(Code.INVALID_FIELD, f"isolated must be 0 (cross) or 1 (isolated), not "
                      f"{isolated}")
    if not 1 <= leverage <= m.max_leverage:
        raise TxError(Code.INVALID_LEVERAGE, f"leverage {leverage} outside 1..{m.max_leverage} "
                      f"on {m.symbol}")
    e = scope.ledger.account(owner).entry(m.id)
    if e.isolated != isolated and (e.size or e.orders or _twaps_on(scope.view, owner, m)):
        raise TxError(Code.MARGIN_MODE_LOCKED, f"the account has a position of {e.size} lots "
                      f"and {e.orders} open orders (or an active TWAP) on {m.symbol}: its "
                      "margin mode can change only with none")
    e.isolated = isolated
    e.leverage = leverage
    scope.ledger.flush()
    check_leverage_margin(scope, m, scope.ledger.account(owner), leverage)
    scope.events.append(Event("margin_mode", (("owner", owner.hex()), ("market", m.symbol),
                                              ("mode", MODE_NAMES[isolated]),
                                              ("leverage", str(leverage)))))


def update_isolated_margin(scope, owner: bytes, fields) -> None:
    """The `isolated_margin` action: [market, amount (signed quote quantums)]."""
    market_id, amount = fields
    m = perp_market(scope, market_id, "isolated_margin")
    e = scope.ledger.account(owner).entries.get(m.id)
    if e is None or not e.isolated or not e.size:
        raise TxError(Code.NO_ISOLATED_POSITION, f"the account has no isolated position on "
                      f"{m.symbol}")
    if amount == 0:
        raise TxError(Code.INVALID_AMOUNT, "isolated_margin amount must not be 0")
    scope.ledger.flush()
    acct = scope.ledger.account(owner)
    e = acct.entry(m.id)
    if amount > 0:
        s = summary(scope.view, acct, scope.quote)
        if s.free_collateral < amount:
            raise TxError(Code.INSUFFICIENT_MARGIN, f"adding {quote_text(m, amount)} needs as "
                          f"much cross free collateral; it is "
                          f"{quote_text(m, s.free_collateral)}")
        if scope.ledger.pools:  # taken beyond the balance: a borrow (state.lending_limits)
            lend = lending_limits.before(scope, owner)
            move_in(scope, m, owner, e, amount, "update")
            scope.ledger.flush()
            lending_limits.check(scope, owner, lend, "adding isolated margin")
            return
    else:
        fresh_price(scope.view, m.base, scope.ctx.time_ms)
        s = iso_summary(scope.view, m, e)
        if s.equity + amount < s.initial_margin:
            raise TxError(Code.INSUFFICIENT_MARGIN, f"removing {quote_text(m, -amount)} would "
                          f"leave isolated equity {quote_text(m, s.equity + amount)} below "
                          f"the initial margin {quote_text(m, s.initial_margin)}")
    move_in(scope, m, owner, e, amount, "update")
