"""Unit tests for state.book: the pure price-time order book."""

from __future__ import annotations

import pytest

from state.book import L2Level, Order, OrderBook, PriceLevel, Side

BUY = Side.BUY
SELL = Side.SELL
ALICE = b"A" * 32
BOB = b"B" * 32


def ids(orders) -> list[int]:
    return [o.order_id for o in orders]


def snapshot(book: OrderBook) -> list[tuple]:
    """Everything observable about a book, in priority order."""
    return [
        (o.order_id, o.owner, o.side, o.price_ticks, o.size_lots)
        for side in (BUY, SELL)
        for o in book.orders(side)
    ]


@pytest.fixture
def book() -> OrderBook:
    """Bids 1@99 (5), 2@99 (3), 3@98 (7); asks 4@101 (2), 5@102 (4), 6@101 (6)."""
    b = OrderBook()
    b.add(1, ALICE, BUY, 99, 5)
    b.add(2, BOB, BUY, 99, 3)
    b.add(3, ALICE, BUY, 98, 7)
    b.add(4, BOB, SELL, 101, 2)
    b.add(5, ALICE, SELL, 102, 4)
    b.add(6, BOB, SELL, 101, 6)
    b.check_invariants()
    return b


def test_empty_book() -> None:
    b = OrderBook()
    assert len(b) == 0
    assert b.best_bid() is None and b.best_ask() is None
    assert b.best_level(BUY) is None and b.best_level(SELL) is None
    assert b.l2_snapshot(10) == ([], [])
    assert list(b.orders(BUY)) == [] and list(b.orders(SELL)) == []
    b.check_invariants()


def test_add_and_lookup(book: OrderBook) -> None:
    assert len(book) == 6
    assert 4 in book and 99 not in book
    order = book.get(2)
    assert order == Order(2, BOB, BUY, 99, 3)
    assert book.get(99) is None
    assert book.best_bid() == 99 and book.best_ask() == 101
    assert book.best_price(BUY) == 99 and book.best_price(SELL) == 101


def test_add_returns_the_live_order(book: OrderBook) -> None:
    order = book.add(7, ALICE, BUY, 97, 1)
    assert book.get(7) is order


def test_priority_order_per_side(book: OrderBook) -> None:
    # Bids best (highest) first, asks best (lowest) first; FIFO by id inside a level.
    assert ids(book.orders(BUY)) == [1, 2, 3]
    assert ids(book.orders(SELL)) == [4, 6, 5]
    assert [lv.price_ticks for lv in book.levels(BUY)] == [99, 98]
    assert [lv.price_ticks for lv in book.levels(SELL)] == [101, 102]
    assert ids(book.best_level(BUY)) == [1, 2]
    assert ids(book.best_level(SELL)) == [4, 6]


def test_l2_aggregates(book: OrderBook) -> None:
    bids, asks = book.l2_snapshot(10)
    assert bids == [L2Level(99, 8, 2), L2Level(98, 7, 1)]
    assert asks == [L2Level(101, 8, 2), L2Level(102, 4, 1)]
    assert book.l2(BUY, 1) == [(99, 8, 2)]
    assert book.l2(SELL, 0) == []


def test_l2_follows_cancel_and_reduce(book: OrderBook) -> None:
    book.cancel(1)
    book.reduce(6, 5)
    assert book.l2_snapshot(10) == (
        [L2Level(99, 3, 1), L2Level(98, 7, 1)],
        [L2Level(101, 3, 2), L2Level(102, 4, 1)],
    )
    book.check_invariants()


@pytest.mark.parametrize("victim", [1, 2])
def test_cancel_inside_a_level(book: OrderBook, victim: int) -> None:
    removed = book.cancel(victim)
    assert removed.order_id == victim and victim not in book
    assert removed.prev_order is None and removed.next_order is None
    assert ids(book.orders(BUY)) == [i for i in (1, 2, 3) if i != victim]
    book.check_invariants()


def test_cancel_middle_of_three() -> None:
    b = OrderBook()
    for i in (1, 2, 3):
        b.add(i, ALICE, SELL, 50, i)
    b.cancel(2)
    assert ids(b.orders(SELL)) == [1, 3]
    b.add(4, BOB, SELL, 50, 1)
    assert ids(b.orders(SELL)) == [1, 3, 4]
    b.check_invariants()


def test_cancel_last_order_removes_level_and_moves_best(book: OrderBook) -> None:
    book.cancel(4)
    book.cancel(6)
    assert 101 not in book.asks
    assert book.best_ask() == 102
    book.cancel(5)
    assert book.best_ask() is None and not book.asks
    book.cancel(1)
    book.cancel(2)
    assert book.best_bid() == 98
    book.check_invariants()


def test_cancel_unknown_raises(book: OrderBook) -> None:
    before = snapshot(book)
    with pytest.raises(KeyError):
        book.cancel(42)
    assert snapshot(book) == before


def test_reduce_keeps_time_priority(book: OrderBook) -> None:
    order = book.reduce(1, 4)
    assert order.size_lots == 1
    assert ids(book.orders(BUY)) == [1, 2, 3]  # still first at 99
    assert book.l2(BUY, 1) == [L2Level(99, 4, 2)]
    book.check_invariants()


def test_reduce_to_zero_removes(book: OrderBook) -> None:
    order = book.reduce(2, 3)
    assert order.size_lots == 0 and 2 not in book
    assert ids(book.orders(BUY)) == [1, 3]
    book.check_invariants()


@pytest.mark.parametrize("by_lots", [0, -1, 6, 2.0, True])
def test_reduce_bad_amount_changes_nothing(book: OrderBook, by_lots) -> None:
    before = snapshot(book)
    with pytest.raises(ValueError):
        book.reduce(1, by_lots)
    assert snapshot(book) == before
    book.check_invariants()


def test_reduce_unknown_raises(book: OrderBook) -> None:
    with pytest.raises(KeyError):
        book.reduce(42, 1)


@pytest.mark.parametrize(
    "args",
    [
        (1, ALICE, BUY, 97, 1),  # duplicate id
        (10, ALICE, BUY, 101, 1),  # bid at the best ask crosses
        (10, ALICE, BUY, 105, 1),  # bid through the best ask
        (10, ALICE, SELL, 99, 1),  # ask at the best bid crosses
        (10, ALICE, BUY, 0, 1),  # price must be positive
        (10, ALICE, BUY, 97, 0),  # size must be positive
        (10, ALICE, BUY, 97, -3),
        (10, ALICE, BUY, 97.0, 1),  # floats never enter state
        (10, ALICE, BUY, 97, 1.0),
        (10.0, ALICE, BUY, 97, 1),  # the id is the time priority: an int
        (10, ALICE, BUY, True, 1),  # bool is not an int here
        (True, ALICE, BUY, 97, 1),
        (10, ALICE, 0, 97, 1),  # side must be a Side
    ],
)
def test_add_rejects_bad_input_and_changes_nothing(book: OrderBook, args) -> None:
    before = snapshot(book)
    with pytest.raises(ValueError):
        book.add(*args)
    assert snapshot(book) == before
    book.check_invariants()


def test_out_of_order_ids_are_placed_by_id() -> None:
    # Rebuilding from storage may add in any order; priority must still follow the ids.
    b = OrderBook()
    for order_id in (50, 10, 70, 30, 5):
        b.add(order_id, ALICE, BUY, 10, 1)
    assert ids(b.orders(BUY)) == [5, 10, 30, 50, 70]
    b.check_invariants()
    b.cancel(5)
    b.cancel(70)
    assert ids(b.orders(BUY)) == [10, 30, 50]
    b.add(20, BOB, BUY, 10, 2)
    assert ids(b.orders(BUY)) == [10, 20, 30, 50]
    b.check_invariants()


def test_level_iteration_survives_removing_the_yielded_order(book: OrderBook) -> None:
    seen = []
    for order in book.best_level(BUY):
        seen.append(order.order_id)
        book.cancel(order.order_id)
    assert seen == [1, 2]
    assert book.best_bid() == 98


def test_check_invariants_catches_corruption(book: OrderBook) -> None:
    book.best_level(SELL).size_lots += 1
    with pytest.raises(AssertionError):
        book.check_invariants()


def test_check_invariants_catches_stale_best(book: OrderBook) -> None:
    book._best_bid = 98
    with pytest.raises(AssertionError):
        book.check_invariants()


def test_order_equality_ignores_links(book: OrderBook) -> None:
    # Links are structure; comparing them would recurse through the level.
    assert book.get(1) == Order(1, ALICE, BUY, 99, 5)
    assert "next_order" not in repr(book.get(1))


def test_price_level_repr_and_len(book: OrderBook) -> None:
    level = book.best_level(SELL)
    assert isinstance(level, PriceLevel) and len(level) == 2
    assert repr(level) == "PriceLevel(price_ticks=101, size_lots=8, order_count=2)"


def test_side_opposite() -> None:
    assert BUY.opposite is SELL and SELL.opposite is BUY
