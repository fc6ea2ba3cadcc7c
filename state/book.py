"""One market's price-time order book: a pure, deterministic data structure.

What this module owns
---------------------
The resting (maker) orders of a single market and the order in which they will trade. It does
not match (that is ``state.matching``), does not know accounts, margin or fees, and does no I/O.
The state machine rebuilds or updates it from the key-value view; the book itself is a cache of
"who is next at which price" that must be identical on every node.

Representation
--------------
* ``bids`` and ``asks`` are ``SortedDict``s keyed by the integer ``price_ticks`` of a level.
  Bids trade highest price first (iterate them in reverse key order), asks lowest price first.
* A ``PriceLevel`` is a FIFO doubly linked list of ``Order`` objects plus two aggregates
  (``size_lots``, ``order_count``), so an L2 snapshot never walks orders and removing any order
  (cancel, full fill, self-trade cancel) is O(1) once the order is found.
* ``_orders`` maps ``order_id`` -> ``Order`` for O(1) lookups; cancel is therefore O(1) plus an
  O(log n) ``SortedDict`` delete when the level empties. Best prices are cached, so reading them
  and checking that an add does not cross are O(1).

Invariants (``OrderBook.check_invariants`` verifies all of them)
---------------------------------------------------------------
I1. Every resting order has ``price_ticks > 0`` and ``size_lots > 0``, all plain ``int``.
I2. Every order id is in ``_orders`` exactly once and linked into exactly one level: the level at
    its own price on its own side. No other orders are linked anywhere.
I3. Time priority: inside a level, orders are linked in strictly increasing ``order_id``. Ids
    are assigned in block order (a newer order has a larger id), so insertion order and id
    order agree in practice; ``add`` still places an out-of-order id correctly (e.g. when the
    book is rebuilt from storage), so priority never depends on how the book was loaded.
I4. ``level.size_lots`` is the sum of its orders' sizes, ``level.order_count`` their number, and
    no empty level is kept.
I5. The book is never crossed: best bid < best ask whenever both exist. ``add`` refuses an order
    that would cross; crossing flow enters through ``state.matching.match``.
I6. The cached best prices (``best_bid()``, ``best_ask()``) equal the highest bid key and the
    lowest ask key (``None`` for an empty side). They move only when ``add`` betters them or
    when the best level empties.

Determinism: integers only, no hashing of anything but int keys, no iteration over unordered
collections (``_orders`` is only ever looked up, never iterated for results).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from itertools import islice
from typing import Iterator, NamedTuple

from sortedcontainers import SortedDict


class Side(IntEnum):
    """Order side. The value doubles as the index of the side's ``SortedDict`` in the book."""

    BUY = 0
    SELL = 1

    @property
    def opposite(self) -> Side:
        """The side a taker of this side trades against."""
        return Side.SELL if self is Side.BUY else Side.BUY


# Module-level aliases: hot paths compare with ``is`` against these instead of doing an enum
# attribute lookup per call.
_BUY = Side.BUY
_SELL = Side.SELL
_new = object.__new__


@dataclass(slots=True)
class Order:
    """A resting order. Live objects are owned by the book: read them, never assign to them.

    ``size_lots`` is the *remaining* size; fills and ``OrderBook.reduce`` lower it in place so
    the order keeps its time priority.
    """

    order_id: int
    owner: bytes
    side: Side
    price_ticks: int
    size_lots: int
    # Links of the price level's FIFO. Excluded from repr/eq: they are structure, not data, and
    # comparing them would recurse through the whole level.
    prev_order: Order | None = field(default=None, repr=False, compare=False)
    next_order: Order | None = field(default=None, repr=False, compare=False)
    # Opaque, immutable data of the caller's about this order (the state machine keeps the
    # record fields that never change while an order rests, so fills and cancels need not read
    # the record back). The book only stores it and hands it out (matching puts it in fills).
    info: object = field(default=None, repr=False, compare=False)


class PriceLevel:
    """All resting orders at one price on one side, in time priority, with running aggregates."""

    __slots__ = ("price_ticks", "size_lots", "order_count", "head", "tail")

    def __init__(self, price_ticks: int) -> None:
        self.price_ticks: int = price_ticks
        self.size_lots: int = 0  # sum of the linked orders' remaining sizes
        self.order_count: int = 0
        self.head: Order | None = None  # next to trade
        self.tail: Order | None = None  # last to trade

    def __iter__(self) -> Iterator[Order]:
        """Orders in time priority. Removing the order just yielded is safe."""
        order = self.head
        while order is not None:
            # Read the link before yielding: removal clears the yielded order's links.
            nxt = order.next_order
            yield order
            order = nxt

    def __len__(self) -> int:
        return self.order_count

    def __repr__(self) -> str:
        return (
            f"PriceLevel(price_ticks={self.price_ticks}, size_lots={self.size_lots}, "
            f"order_count={self.order_count})"
        )


class L2Level(NamedTuple):
    """One row of an aggregated (L2) book snapshot."""

    price_ticks: int
    size_lots: int
    order_count: int


class OrderBook:
    """One market's resting orders in price-time priority. See the module docstring."""

    __slots__ = ("bids", "asks", "_sides", "_orders", "_best_bid", "_best_ask")

    def __init__(self) -> None:
        # Public for reading (matching walks them); mutate only through the methods below.
        self.bids: SortedDict = SortedDict()  # price_ticks -> PriceLevel, best = last key
        self.asks: SortedDict = SortedDict()  # price_ticks -> PriceLevel, best = first key
        # Indexed by Side value, so the hot paths pick a side without branching.
        self._sides: tuple[SortedDict, SortedDict] = (self.bids, self.asks)
        self._orders: dict[int, Order] = {}
        # Cached best prices (None = side empty): every add checks I5 against them and matching
        # reads them once per level, so they must not cost a SortedDict walk each time.
        self._best_bid: int | None = None
        self._best_ask: int | None = None

    # ------------------------------------------------------------------ lookups

    def __len__(self) -> int:
        """Number of resting orders."""
        return len(self._orders)

    def __contains__(self, order_id: int) -> bool:
        return order_id in self._orders

    def get(self, order_id: int) -> Order | None:
        """The live resting order with this id, or ``None``. Do not mutate it."""
        return self._orders.get(order_id)

    def best_bid(self) -> int | None:
        """Highest bid price in ticks, or ``None`` if there are no bids. O(1)."""
        return self._best_bid

    def best_ask(self) -> int | None:
        """Lowest ask price in ticks, or ``None`` if there are no asks. O(1)."""
        return self._best_ask

    def best_price(self, side: Side) -> int | None:
        """Best price of ``side`` (highest bid / lowest ask), or ``None`` if it is empty. O(1)."""
        return self._best_bid if side == _BUY else self._best_ask

    def best_level(self, side: Side) -> PriceLevel | None:
        """The best level of ``side``, or ``None`` if that side is empty. O(1)."""
        if side == _BUY:
            price = self._best_bid
            return None if price is None else self.bids[price]
        price = self._best_ask
        return None if price is None else self.asks[price]

    def levels(self, side: Side) -> Iterator[PriceLevel]:
        """Levels of ``side`` best first: bids by descending price, asks by ascending price.

        Do not add or remove levels of ``side`` while iterating.
        """
        book_side = self._sides[side]
        prices = reversed(book_side) if side == _BUY else iter(book_side)
        for price in prices:
            yield book_side[price]

    def orders(self, side: Side) -> Iterator[Order]:
        """Every resting order of ``side`` in full price-time priority (next to trade first)."""
        for level in self.levels(side):
            yield from level

    def l2(self, side: Side, depth: int) -> list[L2Level]:
        """Up to ``depth`` aggregated levels of ``side``, best first. O(depth): no order walk."""
        book_side = self._sides[side]
        prices = reversed(book_side) if side == _BUY else iter(book_side)
        out = []
        for price in islice(prices, depth):
            level = book_side[price]
            out.append(L2Level(price, level.size_lots, level.order_count))
        return out

    def l2_snapshot(self, depth: int) -> tuple[list[L2Level], list[L2Level]]:
        """``(bids, asks)``, each up to ``depth`` levels, best first."""
        return self.l2(_BUY, depth), self.l2(_SELL, depth)

    # ---------------------------------------------------------------- mutators

    def add(
        self,
        order_id: int,
        owner: bytes,
        side: Side,
        price_ticks: int,
        size_lots: int,
        info: object = None,
    ) -> Order:
        """Rest a new order in its price level and return it (the live object).

        It goes behind every order with a smaller id and ahead of any with a larger one: at the
        back of the queue for an order arriving in block order, in place for an order being
        reloaded (I3). ``side`` must be a ``Side`` member.

        Raises ``ValueError`` (a caller bug: the state machine validates first) if the id is
        not an int or is already resting, the price or size is not a positive int, or the
        order would cross the opposite side (I5).
        """
        book_side = self._side_to_rest(order_id, side, price_ticks, size_lots)
        # Order(order_id, owner, side, price_ticks, size_lots, prev, None, info), without
        # the call of the dataclass __init__: on the hot path, the slots are set in place
        # (`prev_order` below, once the order's place is known).
        order = _new(Order)
        order.order_id = order_id
        order.owner = owner
        order.side = side
        order.price_ticks = price_ticks
        order.size_lots = size_lots
        order.next_order = None
        order.info = info
        level = book_side.get(price_ticks)
        if level is None:
            order.prev_order = None
            level = PriceLevel(price_ticks)
            level.head = level.tail = order
            book_side[price_ticks] = level
            self._new_level(side, price_ticks)
        else:
            tail = level.tail
            if order_id > tail.order_id:
                # The normal case: ids grow in block order, so the newcomer goes last.
                order.prev_order = tail
                tail.next_order = order
                level.tail = order
            else:
                order.prev_order = None
                _link_by_id(level, order)
        level.size_lots += size_lots
        level.order_count += 1
        self._orders[order_id] = order
        return order

    def _side_to_rest(self, order_id, side, price_ticks, size_lots):
        """The side an order rests on, once `add`'s checks have passed (reads only)."""
        # The type checks keep floats and bools out of state (they would compare equal to ints
        # here and break determinism later).
        if (
            type(price_ticks) is not int
            or type(size_lots) is not int
            or type(order_id) is not int
            or price_ticks <= 0
            or size_lots <= 0
        ):
            raise ValueError(
                f"price_ticks and size_lots must be positive ints and order_id an int, got "
                f"{price_ticks!r}, {size_lots!r}, {order_id!r}"
            )
        if order_id in self._orders:
            raise ValueError(f"order id {order_id} is already resting")
        if side is _BUY:
            ask = self._best_ask
            if ask is not None and price_ticks >= ask:
                raise ValueError(f"bid at {price_ticks} would cross the best ask {ask}")
            return self.bids
        if side is _SELL:
            bid = self._best_bid
            if bid is not None and price_ticks <= bid:
                raise ValueError(f"ask at {price_ticks} would cross the best bid {bid}")
            return self.asks
        raise ValueError(f"side must be a Side, got {side!r}")

    def _new_level(self, side: Side, price_ticks: int) -> None:
        """A new level is the only way the best price can improve (I6)."""
        if side is _BUY:
            best = self._best_bid
            if best is None or price_ticks > best:
                self._best_bid = price_ticks
        else:
            best = self._best_ask
            if best is None or price_ticks < best:
                self._best_ask = price_ticks

    def cancel(self, order_id: int) -> Order:
        """Remove a resting order from the book and return it (with its remaining size).

        Used for user cancels and, by matching, for fully filled and self-trade-cancelled makers:
        every way out of the book is the same unlink. Raises ``KeyError`` for an unknown id.
        """
        order = self._orders.pop(order_id)
        book_side = self._sides[order.side]
        price = order.price_ticks
        level = book_side[price]
        prev = order.prev_order
        nxt = order.next_order
        if prev is None:
            level.head = nxt
        else:
            prev.next_order = nxt
        if nxt is None:
            level.tail = prev
        else:
            nxt.prev_order = prev
        # Drop the links so a removed order pins nothing in memory and cannot be walked into.
        order.prev_order = order.next_order = None
        level.order_count -= 1
        level.size_lots -= order.size_lots
        if level.order_count == 0:
            del book_side[price]
            # Only an emptied best level moves the best price; re-read it from the sorted keys.
            if order.side is _BUY:
                if price == self._best_bid:
                    self._best_bid = book_side.peekitem(-1)[0] if book_side else None
            elif price == self._best_ask:
                self._best_ask = book_side.peekitem(0)[0] if book_side else None
        return order

    def reduce(self, order_id: int, by_lots: int) -> Order:
        """Lower a resting order's remaining size by ``by_lots``, keeping its time priority.

        Reducing to exactly zero removes the order (its returned ``size_lots`` is then 0). Used
        for partial fills and for size-decreasing modifies. Raises ``KeyError`` for an unknown id
        and ``ValueError`` if ``by_lots`` is not in ``1..size_lots``.
        """
        order = self._orders[order_id]
        if type(by_lots) is not int or by_lots <= 0:
            raise ValueError(f"by_lots must be a positive int, got {by_lots!r}")
        left = order.size_lots - by_lots
        if left > 0:
            order.size_lots = left
            self._sides[order.side][order.price_ticks].size_lots -= by_lots
        elif left == 0:
            self.cancel(order_id)
            order.size_lots = 0
        else:
            raise ValueError(
                f"cannot reduce order {order_id} of {order.size_lots} lots by {by_lots}"
            )
        return order

    def release(self) -> None:
        """Empty the book, unlinking every order. For a book being dropped: the links between
        orders are reference cycles, which only the (rarely run) cycle collector would free;
        unlinked, the orders are freed by reference counting at once."""
        for book_side in self._sides:
            for level in book_side.values():
                order = level.head
                while order is not None:
                    nxt = order.next_order
                    order.prev_order = order.next_order = None
                    order = nxt
                level.head = level.tail = None
            book_side.clear()
        self._orders.clear()
        self._best_bid = self._best_ask = None

    # --------------------------------------------------------------- invariants

    def check_invariants(self) -> None:
        """Verify I1-I6 by walking every order. O(n): for tests and audits, not the hot path.

        Raises ``AssertionError`` (explicitly, so it also runs under ``python -O``).
        """
        seen = 0
        for side, book_side in ((_BUY, self.bids), (_SELL, self.asks)):
            for price, level in book_side.items():
                _check(type(price) is int and price > 0, f"bad level key {price!r}")
                _check(level.price_ticks == price, f"level {price} has price {level.price_ticks}")
                _check(level.order_count > 0, f"empty level {price} kept")
                total = 0
                count = 0
                prev = None
                order = level.head
                while order is not None:
                    _check(order.prev_order is prev, f"broken back link at {order.order_id}")
                    _check(self._orders.get(order.order_id) is order,
                           f"order {order.order_id} linked but not indexed")
                    _check(order.side is side and order.price_ticks == price,
                           f"order {order.order_id} linked in the wrong level")
                    _check(type(order.size_lots) is int and order.size_lots > 0,
                           f"order {order.order_id} has size {order.size_lots!r}")
                    _check(type(order.order_id) is int, f"order id {order.order_id!r} not int")
                    if prev is not None:
                        _check(prev.order_id < order.order_id,
                               f"ids not increasing at {order.order_id}")
                    total += order.size_lots
                    count += 1
                    prev = order
                    order = order.next_order
                _check(level.tail is prev, f"level {price} tail is wrong")
                _check(level.size_lots == total,
                       f"level {price} size {level.size_lots} != sum of orders {total}")
                _check(level.order_count == count,
                       f"level {price} count {level.order_count} != {count}")
                seen += count
        _check(seen == len(self._orders), f"{len(self._orders)} indexed but {seen} linked")
        bid = self.bids.peekitem(-1)[0] if self.bids else None
        ask = self.asks.peekitem(0)[0] if self.asks else None
        _check(self._best_bid == bid, f"cached best bid {self._best_bid} != {bid}")
        _check(self._best_ask == ask, f"cached best ask {self._best_ask} != {ask}")
        _check(bid is None or ask is None or bid < ask, f"book crossed: bid {bid} >= ask {ask}")


def _link_by_id(level: PriceLevel, order: Order) -> None:
    """Link ``order`` into a non-empty ``level`` at its id's position (the rare, O(k) path;
    the id is not resting, ``add`` checked)."""
    oid = order.order_id
    after = level.tail
    while after is not None and after.order_id > oid:
        after = after.prev_order
    # after is the last order with a smaller id, or None if the newcomer goes first.
    before = level.head if after is None else after.next_order
    order.prev_order = after
    order.next_order = before
    if after is None:
        level.head = order
    else:
        after.next_order = order
    if before is None:
        level.tail = order
    else:
        before.prev_order = order


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)
