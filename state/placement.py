"""Placing orders: the checks of an order action, matching it, resting what is left.

What this module owns
---------------------
`place` (the `order` action, also a batch item) checks the order (an expired dated future:
state.futures.check_trading; shape, tick, lot, size,
notional, expiry, client id, open-order count, reduce-only, oracle freshness), then either
parks a trigger order (state.triggers fires it) or `execute`s it: match it against the book
(state.matching, pure), cancel the taker's own orders it reached (self-trade prevention,
"cancel resting"), settle each fill (state.settlement), rest a GTC / post-only remainder, emit
the `order` event and check margin (`check_margin_after`) and, on a chain with lending pools,
the pools' limits on the automatic borrows of the order (state.lending_limits). Both need
the result of matching, so they run after settlement inside the same sub-transaction
(state.scope): a failure rolls back the books and the writes together.

Reduce-only orders may rest (GTC, ALO: as Hyperliquid's); state.reduce_only keeps them within
the position (clipped at placement, checked at matching, shrunk or cancelled after every
trade). `modify` is a cancel-replace keeping the client id and flags; only
a size decrease at the same price keeps time priority. `set_leverage` sets an account's
leverage on a perp market, if equity still covers the initial margin at it (and an isolated
position's own equity its own initial margin). After the fills of an order on a market where
a side is isolated, `state.isolated.fund_after_fills` moves the margin the position needs from
the cross balance before the margin check.
"""

from state import constants as C, ledger, lending_limits, lending_pools as LP, orders as O, \
    params, reduce_only as RO
from state.amounts import format_amount
from state.book import Side
from state.cancellation import remove_resting
from state.errors import Code, TxError
from state.events import Event
from state.event_text import modified_in_place_event, order_event, quote_text, \
    waiting_trigger_event
from state.futures import check_trading
from state.isolated import check_leverage_margin, fund_after_fills, sizes_before
from state.margin import margin_check, spot_reserved, summary
from state.markets import SPOT, Market
from state.matching import MatchReject, TimeInForce, match
from state.oracle import fresh_price
from state.positions import Account, Entry, load_account
from state.fast_fills import settle_taker_fills

_GTC, _IOC, _FOK, _ALO = 0, 1, 2, 3
_TIFS = (TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.POST_ONLY)
_SIDES = (Side.SELL, Side.BUY)  # by is_buy (reading an enum member off its class is slow)


# -- checks (read only) ------------------------------------------------------------------------

def check_price(m: Market, price: int, what: str = "price") -> int:
    """Price units -> ticks."""
    if price <= 0 or price % m.tick_size:
        raise TxError(Code.INVALID_TICK, f"{what} {price} is not a positive multiple of "
                      f"{m.symbol}'s tick size {m.tick_size}")
    if price > C.MAX_PRICE:
        raise TxError(Code.ORDER_TOO_LARGE, f"{what} {price} is above {C.MAX_PRICE}")
    return price // m.tick_size


def check_size(m: Market, size: int) -> int:
    """Base quantums -> lots."""
    if size <= 0 or size % m.lot_size:
        raise TxError(Code.INVALID_LOT, f"size {size} is not a positive multiple of "
                      f"{m.symbol}'s lot size {m.lot_size}")
    lots = size // m.lot_size
    if lots < m.min_size_lots:
        raise TxError(Code.ORDER_TOO_SMALL, f"size {size} is below {m.symbol}'s minimum "
                      f"order size {m.min_size_lots * m.lot_size}")
    return lots


def check_notional(m: Market, ticks: int, lots: int) -> None:
    n = ticks * lots * m.q
    if n > C.MAX_ORDER_NOTIONAL_QUANTUMS:
        raise TxError(Code.ORDER_TOO_LARGE, f"order notional {n} quantums is above "
                      f"{C.MAX_ORDER_NOTIONAL_QUANTUMS}")


def check_shape(m: Market, kind: int, tif: int, reduce_only: bool, trigger: int) -> None:
    if not 0 <= kind < len(O.KIND_NAMES):
        raise TxError(Code.INVALID_ORDER, f"order kind {kind} unknown; kinds: "
                      + ", ".join(f"{i} {n}" for i, n in enumerate(O.KIND_NAMES)))
    if not 0 <= tif < len(O.TIF_NAMES):
        raise TxError(Code.INVALID_ORDER, f"time in force {tif} unknown; 0 gtc, 1 ioc, 2 fok, "
                      "3 alo (post-only)")
    if kind in O.MARKET_KINDS and tif not in (_IOC, _FOK):
        raise TxError(Code.INVALID_ORDER, f"a {O.KIND_NAMES[kind]} order must be IOC or FOK; "
                      "its price is the worst acceptable price")
    if (kind in O.TRIGGER_KINDS) != (trigger != 0):
        raise TxError(Code.INVALID_ORDER, "trigger_price must be set exactly for stop and "
                      "take-profit kinds")
    if m.kind == SPOT and (reduce_only or kind in O.TRIGGER_KINDS):
        raise TxError(Code.INVALID_ORDER, f"{m.symbol} is a spot market: only limit and market "
                      "orders, without reduce-only")


def reduce_only_size(acct: Account, m: Market, is_buy: bool, lots: int) -> int:
    """The lots a reduce-only order may trade: at most the position, on the closing side."""
    pos = acct.size(m.id)
    if pos == 0 or (pos > 0) == is_buy:
        raise TxError(Code.REDUCE_ONLY_WOULD_INCREASE,
                      f"reduce-only {'buy' if is_buy else 'sell'} would increase the position "
                      f"(position {pos} lots on {m.symbol})")
    return min(lots, abs(pos))


def check_cloid_free(scope, owner: bytes, cloid: int) -> None:
    if cloid:
        hit = O.cloid_lookup(scope.view, owner, cloid)
        if hit is not None:
            raise TxError(Code.DUPLICATE_CLIENT_ID, f"client order id {cloid} is already used "
                          f"by open order {hit[1]} on market {hit[0]}")


def check_open_orders(acct: Account) -> None:
    if acct.open_orders() >= C.MAX_OPEN_ORDERS_PER_ACCOUNT:
        raise TxError(Code.TOO_MANY_OPEN_ORDERS, f"the account has "
                      f"{C.MAX_OPEN_ORDERS_PER_ACCOUNT} open orders (the limit)")


# -- place -------------------------------------------------------------------------------------

def place(scope, owner: bytes, fields) -> None:
    """The `order` action (also a batch item). Raises TxError on any rejection."""
    (market_id, is_buy, kind, price, size, tif, reduce_only, trigger, cloid, expiry) = fields
    m = scope.market(market_id)
    check_trading(scope.view, m, scope.ctx.time_ms)
    check_shape(m, kind, tif, reduce_only, trigger)
    ticks = check_price(m, price)
    trigger_ticks = check_price(m, trigger, "trigger price") if trigger else 0
    lots = check_size(m, size)
    check_notional(m, ticks, lots)
    now = scope.ctx.time_ms
    if expiry and expiry <= now:
        raise TxError(Code.ORDER_EXPIRED, f"expiry {expiry} ms is not after the block time "
                      f"{now} ms")
    check_cloid_free(scope, owner, cloid)
    acct = scope.ledger.account(owner)
    check_open_orders(acct)
    if reduce_only:
        lots = reduce_only_size(acct, m, is_buy, lots)
        if tif in (_GTC, _ALO) and kind not in O.TRIGGER_KINDS:
            lots = RO.resting_room(scope, m, owner, is_buy, lots)
    elif m.perp_like:
        fresh_price(scope.view, m.base, now)
    o = O.OrderRecord(O.next_order_id(scope.view), m.id, owner, is_buy, kind, ticks, lots, lots,
                      tif, reduce_only, trigger_ticks, cloid, expiry, now)
    if kind in O.TRIGGER_KINDS:
        O.put_trigger(scope.view, o)
        acct.entry(m.id).orders += 1
        scope.events.append(waiting_trigger_event(m, o))
        return
    execute(scope, m, o)


def execute(scope, m: Market, o: O.OrderRecord, margin_checked: bool = True) -> int:
    """Match a live order, settle its fills, rest a GTC/ALO remainder, then check margin
    (not for a liquidation's own spot order: `margin_checked` False, state.liquidation).
    Returns the lots filled."""
    taker = scope.ledger.account(o.owner)
    te = taker.entry(m.id)
    before = (te.size, te.buy_lots, te.sell_lots)
    lend = lending_limits.before(scope, o.owner) if scope.ledger.pools else None
    res = _match(scope, m, o)
    if res.reject is not None:
        _reject(scope, m, o, res.reject)
    for oid in res.self_trade_cancelled:
        remove_resting(scope, m, O.get_resting(scope.view, m.id, oid), "self_trade",
                       from_book=False)
    isolated = None
    if res.fills and settle_taker_fills(scope, m, o, res.fills):
        isolated = sizes_before(scope.ledger, m, o, res.fills, before[0])
    filled, remaining = res.filled_lots, res.remaining_lots
    if res.rested:
        o.size_lots = remaining
        O.rest(scope.view, o)
        te.add_open(o.is_buy, remaining, o.price_ticks)
        te.orders += 1
        status, left = ("open" if not filled else "partially_filled_open"), remaining
    else:
        status = "filled" if not remaining else \
            ("partially_filled_cancelled" if filled else "cancelled_unfilled")
        left = 0
    scope.events.append(order_event(m, o, status, filled, left))
    scope.ledger.flush()
    if isolated:
        fund_after_fills(scope, m, o.owner, isolated)
        scope.ledger.flush()
    if margin_checked:
        check_margin_after(scope, m, o, taker, te, before, res.rested)
    if res.fills or (res.rested and o.reduce_only):
        RO.after_trade(scope, m, o.owner, res.fills)
    if lend is not None and margin_checked and (res.fills or isolated) and \
            not _lowers_risk(m, o, te, before, res.rested):
        lending_limits.check(scope, o.owner, lend, "the order")
    return filled


def _match(scope, m: Market, o: O.OrderRecord):
    """Match `o` against its book. A resting reduce-only maker the match would take past its
    owner's position is first shrunk (or cancelled) and the match runs again from the
    untouched book (state.reduce_only rule 2)."""
    rests = o.tif == _GTC or o.tif == _ALO
    book, books = scope.book(m.id), scope.books
    while True:
        savepoint = books.savepoint()
        res = match(book, o.id, o.owner, _SIDES[o.is_buy], o.price_ticks,
                    o.size_lots, _TIFS[o.tif], o.resting_fields() if rests else None)
        over = RO.first_overshoot(scope, m, o.is_buy, res.fills) if res.fills else None
        if over is None:
            return res
        books.rollback_to(savepoint)
        oid, lots = over
        RO.shrink_to(scope, m, oid, lots)


def _reject(scope, m: Market, o: O.OrderRecord, why: MatchReject) -> None:
    side = "buy" if o.is_buy else "sell"
    book = scope.book(m.id)
    if why is MatchReject.POST_ONLY_WOULD_CROSS:
        best = book.best_ask() if o.is_buy else book.best_bid()
        raise TxError(Code.POST_ONLY_WOULD_CROSS, f"post-only {side} at "
                      f"{format_amount(o.price_ticks * m.tick_size, m.quote_decimals)} would "
                      f"cross the best {'ask' if o.is_buy else 'bid'} "
                      f"{format_amount(best * m.tick_size, m.quote_decimals)}")
    raise TxError(Code.FOK_NOT_FILLABLE, f"fill-or-kill {side} of "
                  f"{format_amount(o.size_lots * m.lot_size, m.base_decimals)} at "
                  f"{format_amount(o.price_ticks * m.tick_size, m.quote_decimals)} cannot "
                  "fill completely now")


def _only_reduced(te: Entry, before: tuple[int, int, int]) -> bool:
    """The order only reduced the position on this market (it lowered risk)."""
    size0, buys0, sells0 = before
    return te.buy_lots == buys0 and te.sell_lots == sells0 and abs(te.size) <= abs(size0) \
        and (te.size == 0 or (te.size > 0) == (size0 > 0))


def _lowers_risk(m: Market, o: O.OrderRecord, te: Entry, before: tuple[int, int, int],
                 rested: bool) -> bool:
    """The perp order only reduced the position, or rests reduce-only (it can never grow the
    position: state.reduce_only): exempt from the initial-margin check and the pools' limits."""
    return m.kind != SPOT and ((rested and o.reduce_only) or
                               (not rested and _only_reduced(te, before)))


def check_margin_after(scope, m: Market, o: O.OrderRecord, taker: Account, te: Entry,
                       before: tuple[int, int, int], rested: bool) -> None:
    """The taker must meet initial margin after its order, unless the order only reduced
    its position on this market (or rests reduce-only); spot orders need the balances their
    open orders may spend."""
    view = scope.view
    if m.kind == SPOT:
        reserved = spot_reserved(view, taker)
        for asset in sorted(reserved):
            have = ledger.balance(view, o.owner, asset)
            need = reserved[asset]
            if have < need or have < 0:
                dec = params.asset_decimals(view, asset)
                raise TxError(Code.INSUFFICIENT_BALANCE,
                              f"balance {format_amount(have, dec)} {asset} does not cover the "
                              f"{format_amount(need, dec)} {asset} that this account's open "
                              f"spot orders may spend")
        if ledger.balance(view, o.owner, scope.quote) >= 0 and \
                not any(e.size for e in taker.entries.values()):
            return
    elif _lowers_risk(m, o, te, before, rested):
        return
    equity, initial = margin_check(view, taker, scope.quote)
    if equity < initial:
        raise TxError(Code.INSUFFICIENT_MARGIN,
                      f"equity {quote_text(m, equity)} would be below the initial margin "
                      f"{quote_text(m, initial)} (positions and open orders at worst case)")


def check_after_withdrawal(scope, owner: bytes) -> None:
    """What an account moves out (a transfer) must leave its positions, open orders and
    borrows covered (`check_covered`). An account with no positions, no open orders and no
    borrow (negative balance) has nothing to cover; the check is then skipped."""
    acct = load_account(scope.view, owner)
    if acct.entries or _borrows(scope.view, owner):
        check_covered(scope, owner, "the transfer", acct)


def _borrows(view, owner: bytes) -> bool:
    """Whether the account owes a lending pool: its collateral must still cover the borrow
    after it moves an asset out (without this, a borrower could give its collateral away)."""
    return bool(LP.pool_params(view)) and \
        any(b < 0 for b in ledger.balances(view, owner).values())


def check_covered(scope, owner: bytes, what: str, acct=None) -> None:
    """After `what`: equity >= initial margin (positions and open orders at worst case,
    borrows at their borrow weight), and every balance >= what its resting spot orders may
    spend. Reads only: the account's record is not loaded into the ledger, so the check
    writes nothing."""
    view = scope.view
    acct = acct if acct is not None else load_account(view, owner)
    s = summary(view, acct, scope.quote)
    if s.equity < s.initial_margin:
        dec = scope.quote_decimals
        raise TxError(Code.INSUFFICIENT_MARGIN,
                      f"after {what} equity {format_amount(s.equity, dec)} would be below the "
                      f"initial margin {format_amount(s.initial_margin, dec)} (positions and "
                      "open orders at worst case, borrows at their borrow weight)")
    for asset, need in sorted(spot_reserved(view, acct).items()):
        have = ledger.balance(view, owner, asset)
        if have < need:
            dec = params.asset_decimals(view, asset)
            raise TxError(Code.INSUFFICIENT_BALANCE,
                          f"after {what} the balance {format_amount(have, dec)} {asset} would "
                          f"not cover the {format_amount(need, dec)} {asset} that this "
                          "account's open spot orders may spend")


# -- modify, leverage --------------------------------------------------------------------------

def modify(scope, owner: bytes, fields) -> None:
    """Cancel-replace a resting order keeping its client id and flags. Only a size decrease
    at the same price keeps time priority (the order is reduced in place)."""
    market_id, order_id, price, size = fields
    m = scope.market(market_id)
    check_trading(scope.view, m, scope.ctx.time_ms)
    o = O.get_resting(scope.view, m.id, order_id)
    if o is None or o.owner != owner:
        if O.get_trigger(scope.view, m.id, order_id) is not None:
            raise TxError(Code.INVALID_ORDER, f"order {order_id} is a waiting trigger order: "
                          "cancel it and place a new one")
        raise TxError(Code.ORDER_NOT_FOUND, f"no resting order {order_id} of this account on "
                      f"{m.symbol}")
    ticks = check_price(m, price)
    lots = check_size(m, size)
    check_notional(m, ticks, lots)
    if ticks == o.price_ticks and lots <= o.size_lots:
        by = o.size_lots - lots
        if by:
            scope.book(m.id).reduce(o.id, by)
            o.size_lots = lots
            O.resize_resting(scope.view, o)
            scope.ledger.account(owner).entry(m.id).remove_open(o.is_buy, by, ticks)
        scope.events.append(modified_in_place_event(m, o))
        return
    remove_resting(scope, m, o, "modify")
    place(scope, owner, [m.id, o.is_buy, o.kind, ticks * m.tick_size, lots * m.lot_size, o.tif,
                         o.reduce_only, 0, o.cloid, o.expiry_ms])


def set_leverage(scope, owner: bytes, fields) -> None:
    market_id, leverage = fields
    m = scope.market(market_id)
    check_trading(scope.view, m, scope.ctx.time_ms)
    if not m.perp_like or not 1 <= leverage <= m.max_leverage:
        raise TxError(Code.INVALID_LEVERAGE, f"leverage {leverage} outside 1.."
                      f"{m.max_leverage if m.perp_like else 1} on {m.symbol}"
                      + ("" if m.perp_like else " (a spot market has no leverage)"))
    acct = scope.ledger.account(owner)
    acct.entry(m.id).leverage = leverage
    scope.ledger.flush()
    check_leverage_margin(scope, m, acct, leverage)
    scope.events.append(Event("leverage", (("owner", owner.hex()), ("market", m.symbol),
                                           ("leverage", str(leverage)))))
