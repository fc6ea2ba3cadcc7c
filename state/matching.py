"""Matching: one incoming (taker) order against one market's book. Pure and deterministic.

What this module owns
---------------------
The rule that turns an incoming order plus a book into fills: price-time priority, the
time-in-force semantics (GTC, IOC, FOK, post-only/ALO, market = IOC with a worst price) and
self-trade prevention. It mutates only the ``OrderBook`` it is given (makers are reduced or
removed, a GTC/post-only remainder rests) and knows nothing of accounts, margin, fees or error
codes; the state machine turns a ``MatchResult`` into balance changes, events and receipts.

Ordering and invariants
-----------------------
M1. Price-time priority: a taker trades against the best opposite price first (lowest ask for a
    buy, highest bid for a sell) and, within a price, against makers in increasing order id
    (ids are assigned in block order: state.book I3).
M2. Every fill is at the maker's price, and that price is at or better than the taker's limit
    (``<=`` for a buy, ``>=`` for a sell). Only the maker's price is ever used: the taker gets
    any price improvement.
M3. No fill exceeds the maker's remaining size or the taker's remaining size; the sum of the
    fills equals the taker's ``filled_lots`` and each maker's size drops by exactly its fills.
M4. Self-trade prevention ("cancel resting"): a resting order of the taker's own owner that the
    taker reaches in priority order is removed and reported in ``self_trade_cancelled``; it never
    trades and never counts as liquidity (also not in the FOK check).
M5. After ``match`` returns, the book is not crossed: a GTC remainder rests only once no opposite
    order at or inside its limit is left, and post-only never rests a crossing order.
M6. A rejected order (post-only that would cross, FOK that cannot fill completely) leaves the
    book untouched. Invalid input (a caller bug) raises ``ValueError`` before anything changes.

Integers only; the only iteration is over ``SortedDict`` keys and level links.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from state.book import OrderBook, Side

_BUY = Side.BUY
_SELL = Side.SELL


class TimeInForce(IntEnum):
    """What happens to the part of a taker order that does not trade immediately."""

    GTC = 0  # good-til-cancelled: the remainder rests on the book
    IOC = 1  # immediate-or-cancel: the remainder is dropped (market orders use this)
    FOK = 2  # fill-or-kill: fill the whole size now or do nothing at all
    POST_ONLY = 3  # add-liquidity-only (ALO): rest the whole size, or reject if it would cross


class MatchReject(IntEnum):
    """Why a taker order was refused as a whole. Stable numbers; the tx error table maps them.

    An IOC or market order that finds nothing to trade is not a reject: it simply reports its
    whole size as ``remaining_lots``; the caller decides what that means for the tx.
    """

    POST_ONLY_WOULD_CROSS = 1
    FOK_NOT_FILLABLE = 2


_GTC = TimeInForce.GTC
_IOC = TimeInForce.IOC
_FOK = TimeInForce.FOK
_POST_ONLY = TimeInForce.POST_ONLY


# Results are slotted dataclasses, not named tuples: a match builds one or more per order, and
# constructing a named tuple costs far more (its __new__ is Python code).
@dataclass(slots=True)
class Fill:
    """One trade between the taker and one maker, at the maker's price."""

    maker_order_id: int
    maker_owner: bytes
    price_ticks: int
    size_lots: int
    # The maker's size left on the book after this fill; 0 means it left the book.
    maker_remaining_lots: int
    # The maker order's `info` in the book (opaque to matching; see state.book.Order).
    maker_info: object = None


@dataclass(slots=True)
class MatchResult:
    """Everything ``match`` did, in the order it did it."""

    fills: list[Fill]  # in execution (priority) order
    self_trade_cancelled: list[int]  # maker order ids removed by self-trade prevention, in order
    filled_lots: int  # sum of fills' sizes
    remaining_lots: int  # taker size not traded (resting if ``rested``, else dropped)
    rested: bool  # True if the remainder now rests on the book under the taker's order id
    reject: MatchReject | None  # set only when the whole order was refused (book untouched)


def match(
    book: OrderBook,
    order_id: int,
    owner: bytes,
    side: Side,
    price_ticks: int,
    size_lots: int,
    tif: TimeInForce = TimeInForce.GTC,
    info: object = None,
) -> MatchResult:
    """Match a limit order against ``book`` under ``tif``; mutate the book; describe what happened.

    ``price_ticks`` is the limit (the worst price the taker accepts). ``order_id`` is used only
    if the order rests (GTC, post-only); it is its time priority there and, assigned in block
    order, is newer than anything resting (``book.add`` would place an older one by id, as it
    does for any add).

    ``info`` goes with a resting remainder into the book (``state.book.Order.info``).

    Raises ``ValueError`` before touching the book if the input is malformed (non-positive or
    non-int price/size, bad side or tif, a resting order's id that is not an int or is already
    resting).
    Market conditions never raise: they show up as ``reject`` or as an untraded remainder.
    """
    _check_input(price_ticks, size_lots)
    # ``crosses``: whether the best opposite price is at or inside the limit, i.e. whether any
    # trade is possible at all. Most orders on a real book do not cross; they skip the sweep.
    if side is _BUY:
        best = book._best_ask  # (best_ask(), without the call)
        crosses = best is not None and best <= price_ticks
    elif side is _SELL:
        best = book._best_bid
        crosses = best is not None and best >= price_ticks
    else:
        raise ValueError(f"side must be a Side, got {side!r}")

    if tif is _IOC:
        if not crosses:
            return MatchResult([], [], 0, size_lots, False, None)
    elif tif is _GTC or tif is _POST_ONLY:
        if not crosses:
            # Nothing to trade: this is just a rest, and ``add`` validates the rest itself
            # before it changes anything.
            book.add(order_id, owner, side, price_ticks, size_lots, info)
            return MatchResult([], [], 0, size_lots, True, None)
        # Check what ``add`` will check after the sweep, now, so a bad order cannot fail
        # half-way through after makers were already filled (M6).
        if type(order_id) is not int:
            raise ValueError(f"order_id must be an int, got {order_id!r}")
        if order_id in book:
            raise ValueError(f"order id {order_id} is already resting")
        if tif is _POST_ONLY:
            return MatchResult([], [], 0, size_lots, False, MatchReject.POST_ONLY_WOULD_CROSS)
    elif tif is _FOK:
        if not crosses or not _fillable(book, side, owner, price_ticks, size_lots):
            return MatchResult([], [], 0, size_lots, False, MatchReject.FOK_NOT_FILLABLE)
    else:
        raise ValueError(f"tif must be a TimeInForce, got {tif!r}")

    fills: list = []
    cancelled: list[int] = []
    remaining = _sweep(book, side, owner, price_ticks, size_lots, fills, cancelled)
    if remaining and tif is _GTC:
        # The sweep stopped only because nothing was left inside the limit, so this cannot
        # cross (M5); the pre-checks above guarantee ``add`` accepts it.
        book.add(order_id, owner, side, price_ticks, remaining, info)
        return MatchResult(fills, cancelled, size_lots - remaining, remaining, True, None)
    return MatchResult(fills, cancelled, size_lots - remaining, remaining, False, None)


def _check_input(price_ticks: int, size_lots: int) -> None:
    if type(price_ticks) is not int or price_ticks <= 0:
        raise ValueError(f"price_ticks must be a positive int, got {price_ticks!r}")
    if type(size_lots) is not int or size_lots <= 0:
        raise ValueError(f"size_lots must be a positive int, got {size_lots!r}")


def match_market(
    book: OrderBook,
    owner: bytes,
    side: Side,
    size_lots: int,
    worst_price_ticks: int,
) -> MatchResult:
    """A market order: IOC with ``worst_price_ticks`` as its limit (slippage protection).

    A market order never rests, so it needs no order id. Raises ``ValueError`` like ``match``
    for malformed input.
    """
    # order_id is ignored under IOC.
    return match(book, 0, owner, side, worst_price_ticks, size_lots, _IOC)


def _fillable(book: OrderBook, side: Side, owner: bytes, limit_ticks: int, size_lots: int) -> bool:
    """Whether ``size_lots`` can trade right now inside the limit, counting only other owners.

    Walks exactly the orders ``_sweep`` would reach (same order, same stopping point), so a
    True here means the sweep fills the whole size. Reads only.
    """
    buy = side is _BUY
    opposite = book.asks if buy else book.bids
    need = size_lots
    for price in iter(opposite) if buy else reversed(opposite):
        if (price > limit_ticks) if buy else (price < limit_ticks):
            return False
        order = opposite[price].head
        while order is not None:
            # The taker's own orders would be cancelled, not traded (M4): not liquidity.
            if order.owner != owner:
                need -= order.size_lots
                if need <= 0:
                    return True
            order = order.next_order
    return False


def _sweep(
    book: OrderBook,
    side: Side,
    owner: bytes,
    limit_ticks: int,
    size_lots: int,
    fills: list,
    cancelled: list[int],
) -> int:
    """Trade up to ``size_lots`` against the opposite side in priority order; return what is left.

    Appends to ``fills`` and ``cancelled``.
    This is the hot loop: one cached best-price read and one dict lookup per level, then a walk
    of the level's links.
    """
    buy = side is _BUY
    if buy:
        opposite = book.asks
        best_price = book.best_ask
    else:
        opposite = book.bids
        best_price = book.best_bid
    cancel = book.cancel
    remaining = size_lots
    while True:
        price = best_price()
        if price is None or ((price > limit_ticks) if buy else (price < limit_ticks)):
            return remaining
        order = opposite[price].head
        while order is not None:
            # Take the link first: removing ``order`` clears it.
            nxt = order.next_order
            maker_id = order.order_id
            if order.owner == owner:
                cancel(maker_id)
                cancelled.append(maker_id)
            else:
                maker_lots = order.size_lots
                if remaining < maker_lots:
                    # Partial fill: the maker keeps its place in the queue (M1).
                    book.reduce(maker_id, remaining)
                    fills.append(Fill(maker_id, order.owner, price, remaining,
                                      maker_lots - remaining, order.info))
                    return 0
                # A fully filled maker leaves the book exactly as a cancelled one does.
                cancel(maker_id)
                fills.append(Fill(maker_id, order.owner, price, maker_lots, 0, order.info))
                remaining -= maker_lots
                if remaining == 0:
                    return 0
            order = nxt
        # Every order of the level was removed, so the level is gone and the best price moved.
