"""Cancelling orders: the one way an open order leaves without trading.

What this module owns
---------------------
`remove_resting` and `remove_trigger` take an open order out of the book (resting orders),
its records and indexes (state.orders) and its owner's open-order aggregates, with a `cancel`
event naming the reason (user, user_cancel_all, modify, self_trade, expired), and tell
state.hl_tpsl (a Hyperliquid tp/sl group's parent or linked order leaving). `cancel_open`
finds an open order by id; `cancel`, `cancel_cloid` and `cancel_all` are the actions.
"""

from state import hl_tpsl, orders as O
from state.book import Side
from state.errors import Code, TxError
from state.event_text import cancel_event
from state.events import Event
from state.markets import Market


def remove_resting(scope, m: Market, o: O.OrderRecord, reason: str,
                   from_book: bool = True) -> None:
    """Cancel resting order `o` (`from_book` False: it is already out of the book, as
    matching takes self-trade prevention's, or `cancel_open` took it)."""
    if from_book:
        scope.book(m.id).cancel(o.id)
    O.remove_resting(scope.view, o)
    hl_tpsl.parent_left(scope.view, m.id, o.id, o.owner, o.orig_lots - o.size_lots)
    e = scope.ledger.account(o.owner).entry(m.id)
    e.remove_open(o.is_buy, o.size_lots, o.price_ticks)
    e.orders -= 1
    scope.events.append(cancel_event(m, o, reason))


def remove_trigger(scope, m: Market, o: O.OrderRecord, reason: str | None) -> None:
    """Take a waiting trigger order out (`reason` None: it fires, so no cancel event)."""
    O.remove_trigger(scope.view, o)
    hl_tpsl.take_links(scope.view, m.id, o.id, o.owner)
    scope.ledger.account(o.owner).entry(m.id).orders -= 1
    if reason is not None:
        scope.events.append(cancel_event(m, o, reason))


def cancel_open(scope, m: Market, owner: bytes | None, order_id: int, reason: str) -> None:
    """Cancel an open order (resting or trigger); `owner` None skips the ownership check."""
    book = scope.book(m.id)  # resting orders: the book equals the ord/ records
    bo = book.get(order_id)
    if bo is not None and (owner is None or bo.owner == owner):
        o = O.resting_record(m.id, order_id, bo.owner, bo.side is Side.BUY, bo.price_ticks,
                             bo.size_lots, bo.info)
        book.cancel(order_id)
        remove_resting(scope, m, o, reason, from_book=False)
        return
    t = O.get_trigger(scope.view, m.id, order_id)
    if t is not None and (owner is None or t.owner == owner):
        remove_trigger(scope, m, t, reason)
        return
    raise TxError(Code.ORDER_NOT_FOUND, f"no open order {order_id} of this account on "
                  f"{m.symbol}")


def cancel(scope, owner: bytes, fields) -> None:
    market_id, order_id = fields
    cancel_open(scope, scope.market(market_id), owner, order_id, "user")


def cancel_cloid(scope, owner: bytes, fields) -> None:
    market_id, cloid = fields
    m = scope.market(market_id)
    hit = O.cloid_lookup(scope.view, owner, cloid) if cloid else None
    if hit is None or hit[0] != m.id:
        raise TxError(Code.ORDER_NOT_FOUND, f"no open order with client id {cloid} of this "
                      f"account on {m.symbol}")
    cancel_open(scope, m, owner, hit[1], "user")


def cancel_all(scope, owner: bytes, fields) -> None:
    """Cancel every open order of the signer on a market (market 0: on every market)."""
    (market_id,) = fields
    if market_id:
        scope.market(market_id)
    ids = O.account_order_ids(scope.view, owner, market_id or None)
    for mid, oid in ids:
        cancel_open(scope, scope.market(mid), owner, oid, "user_cancel_all")
    scope.events.append(Event("cancel_all", (("owner", owner.hex()), ("market", str(market_id)),
                                             ("cancelled", str(len(ids))))))
