"""Trigger orders and good-til-time expiry: the order steps of begin- and end-block.

What this module owns
---------------------
* `expire_orders` (begin-block): open orders whose expiry is at or before the block time are
  cancelled (reason "expired"), ascending expiry, at most MAX_EXPIRIES_PER_BLOCK (the rest
  next block), so no expired order can trade in the block.
* `fire_triggers` (end-block, after the mark price of the market moved): waiting stop and
  take-profit orders whose condition the mark meets become live orders, in order-id (time)
  order, at most MAX_TRIGGERS_PER_MARKET_PER_BLOCK per market. A trigger fires once, as
  Hyperliquid's: if the live order is rejected (margin, stale oracle, nothing left to
  reduce), the order still leaves, with a `trigger_rejected` event carrying the code.
Each expiry and each trigger runs in its own sub-transaction (state.scope).
* `modify_trigger` (the action): a waiting trigger order of the signer gets a new trigger
  price, limit price and size, keeping its order id, kind, tif, flags, client id and expiry;
  checked as at placement (tick, lot, size, notional; reduce-only against the position now,
  else a fresh oracle on a perp). Like any trigger order it is margin-checked when it fires.
"""

from state import constants as C, hl_tpsl, orders as O
from state.cancellation import cancel_open, remove_trigger
from state.errors import Code, TxError
from state.event_text import order_attrs, price_text, trigger_event
from state.events import Event
from state.futures import check_trading
from state.markets import Market, get as get_market
from state.oracle import fresh_price
from state.placement import check_notional, check_price, check_size, execute, \
    reduce_only_size
from state.scope import SubTransaction


def expire_orders(view, ctx) -> list[Event]:
    events: list[Event] = []
    for market_id, order_id in O.expired(view, ctx.time_ms, C.MAX_EXPIRIES_PER_BLOCK):
        with SubTransaction(view, ctx) as scope:
            cancel_open(scope, get_market(view, market_id), None, order_id, "expired")
        events.extend(scope.events)
    return events


def fire_trigger(scope, m: Market, o: O.OrderRecord, mark: int) -> None:
    """A waiting trigger order whose condition holds becomes a live order. A Hyperliquid
    tp/sl (state.hl_tpsl) cancels its sibling, and a whole-position one takes the size of the
    position now."""
    whole, sibling = hl_tpsl.take_links(scope.view, m.id, o.id, o.owner)
    remove_trigger(scope, m, o, None)
    scope.events.append(trigger_event(m, o, mark))
    if sibling is not None:
        s = O.get_trigger(scope.view, m.id, sibling)
        if s is not None and s.owner == o.owner:
            remove_trigger(scope, m, s, "sibling_filled")
    acct = scope.ledger.account(o.owner)
    if o.reduce_only:
        lots = max(o.size_lots, abs(acct.size(m.id))) if whole else o.size_lots
        o.size_lots = reduce_only_size(acct, m, o.is_buy, lots)
    else:
        fresh_price(scope.view, m.base, scope.ctx.time_ms)
    execute(scope, m, o)


def fire_triggers(view, ctx, m: Market, mark: int) -> list[Event]:
    """Fire the triggers of market `m` that mark price `mark` (price units) meets."""
    events: list[Event] = []
    fired = O.fired_triggers(view, m.id, mark // m.tick_size, -(-mark // m.tick_size),
                             C.MAX_TRIGGERS_PER_MARKET_PER_BLOCK)
    for order_id in fired:
        o = O.get_trigger(view, m.id, order_id)
        if o is None:
            continue   # a sibling that fired before it in this block cancelled it
        try:
            with SubTransaction(view, ctx) as scope:
                fire_trigger(scope, m, o, mark)
        except TxError as err:
            with SubTransaction(view, ctx) as scope:
                remove_trigger(scope, m, o, None)
            scope.events.append(Event("trigger_rejected", (
                ("order_id", str(order_id)), ("market", m.symbol), ("owner", o.owner.hex()),
                ("code", str(int(err.code))), ("log", err.log))))
        events.extend(scope.events)
    return events


def modify_trigger(scope, owner: bytes, fields) -> None:
    """The `modify_trigger` action (see the module docstring)."""
    market_id, order_id, trigger_price, price, size = fields
    m = scope.market(market_id)
    o = O.get_trigger(scope.view, m.id, order_id)
    if o is None or o.owner != owner:
        r = O.get_resting(scope.view, m.id, order_id)
        if r is not None and r.owner == owner:
            raise TxError(Code.INVALID_ORDER, f"order {order_id} is resting, not a waiting "
                          "trigger order: use modify")
        raise TxError(Code.ORDER_NOT_FOUND, f"no waiting trigger order {order_id} of this "
                      f"account on {m.symbol}")
    check_trading(scope.view, m, scope.ctx.time_ms)
    ticks = check_price(m, price)
    trigger_ticks = check_price(m, trigger_price, "trigger price")
    lots = check_size(m, size)
    check_notional(m, ticks, lots)
    if o.reduce_only:
        lots = reduce_only_size(scope.ledger.account(owner), m, o.is_buy, lots)
    elif m.perp_like:
        fresh_price(scope.view, m.base, scope.ctx.time_ms)
    O.remove_trigger(scope.view, o)
    o.price_ticks, o.size_lots, o.orig_lots, o.trigger_ticks = ticks, lots, lots, trigger_ticks
    O.put_trigger(scope.view, o)
    scope.events.append(Event("order", order_attrs(m, o) + (
        ("status", "trigger_modified"), ("trigger_price", price_text(m, trigger_ticks)))))
