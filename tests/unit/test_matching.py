"""Unit tests for state.matching: time-in-force, self-trade prevention, priority, rejects."""

from __future__ import annotations

import pytest

from state.book import L2Level, OrderBook, Side
from state.matching import Fill, MatchReject, MatchResult, TimeInForce, match, match_market

BUY = Side.BUY
SELL = Side.SELL
GTC = TimeInForce.GTC
IOC = TimeInForce.IOC
FOK = TimeInForce.FOK
POST = TimeInForce.POST_ONLY
ALICE = b"A" * 32
BOB = b"B" * 32
CAROL = b"C" * 32
TAKER = b"T" * 32


def snapshot(book: OrderBook) -> list[tuple]:
    return [
        (o.order_id, o.owner, o.side, o.price_ticks, o.size_lots)
        for side in (BUY, SELL)
        for o in book.orders(side)
    ]


def fills(result: MatchResult) -> list[tuple]:
    return [
        (f.maker_order_id, f.price_ticks, f.size_lots, f.maker_remaining_lots) for f in result.fills
    ]


@pytest.fixture
def book() -> OrderBook:
    """Asks: 101 [1 Alice 3, 2 Bob 4], 102 [3 Carol 5], 104 [4 Alice 2].
    Bids: 99 [5 Bob 6], 98 [6 Carol 1, 7 Alice 2]."""
    b = OrderBook()
    b.add(1, ALICE, SELL, 101, 3)
    b.add(2, BOB, SELL, 101, 4)
    b.add(3, CAROL, SELL, 102, 5)
    b.add(4, ALICE, SELL, 104, 2)
    b.add(5, BOB, BUY, 99, 6)
    b.add(6, CAROL, BUY, 98, 1)
    b.add(7, ALICE, BUY, 98, 2)
    return b


# ------------------------------------------------------------------------- GTC


def test_gtc_rests_when_nothing_crosses(book: OrderBook) -> None:
    r = match(book, 100, TAKER, BUY, 100, 5, GTC)
    assert r == MatchResult([], [], 0, 5, True, None)
    assert book.best_bid() == 100 and book.get(100).size_lots == 5
    book.check_invariants()


def test_gtc_fills_in_price_time_order_at_maker_prices(book: OrderBook) -> None:
    r = match(book, 100, TAKER, BUY, 102, 9, GTC)
    # 101: order 1 then order 2 (time priority), then 102 (price priority), at the makers' price.
    assert fills(r) == [(1, 101, 3, 0), (2, 101, 4, 0), (3, 102, 2, 3)]
    assert r.fills[0] == Fill(1, ALICE, 101, 3, 0)
    assert (r.filled_lots, r.remaining_lots, r.rested, r.reject) == (9, 0, False, None)
    assert book.best_ask() == 102 and book.get(3).size_lots == 3
    assert 100 not in book
    book.check_invariants()


def test_gtc_remainder_rests_at_limit(book: OrderBook) -> None:
    r = match(book, 100, TAKER, BUY, 101, 10, GTC)
    assert fills(r) == [(1, 101, 3, 0), (2, 101, 4, 0)]
    assert (r.filled_lots, r.remaining_lots, r.rested) == (7, 3, True)
    assert book.best_bid() == 101 and book.best_ask() == 102
    assert book.get(100).size_lots == 3 and book.best_level(BUY).head is book.get(100)
    book.check_invariants()


def test_sell_taker_walks_bids_from_the_top(book: OrderBook) -> None:
    r = match(book, 100, TAKER, SELL, 98, 8, GTC)
    assert fills(r) == [(5, 99, 6, 0), (6, 98, 1, 0), (7, 98, 1, 1)]
    assert not r.rested and r.remaining_lots == 0
    assert book.l2(BUY, 5) == [L2Level(98, 1, 1)]
    book.check_invariants()


def test_partially_filled_maker_keeps_priority(book: OrderBook) -> None:
    match(book, 100, TAKER, BUY, 101, 1, IOC)
    assert book.get(1).size_lots == 2
    r = match(book, 101, TAKER, BUY, 101, 3, IOC)
    assert fills(r) == [(1, 101, 2, 0), (2, 101, 1, 3)]
    book.check_invariants()


# ------------------------------------------------------------------------- IOC / market


def test_ioc_drops_remainder(book: OrderBook) -> None:
    r = match(book, 100, TAKER, BUY, 101, 10, IOC)
    assert fills(r) == [(1, 101, 3, 0), (2, 101, 4, 0)]
    assert (r.filled_lots, r.remaining_lots, r.rested, r.reject) == (7, 3, False, None)
    assert 100 not in book and book.best_bid() == 99
    book.check_invariants()


def test_ioc_without_cross_does_nothing(book: OrderBook) -> None:
    before = snapshot(book)
    r = match(book, 100, TAKER, BUY, 100, 4, IOC)
    assert r == MatchResult([], [], 0, 4, False, None)
    assert snapshot(book) == before


def test_market_order_stops_at_worst_price(book: OrderBook) -> None:
    r = match_market(book, TAKER, BUY, 100, 102)
    assert fills(r) == [(1, 101, 3, 0), (2, 101, 4, 0), (3, 102, 5, 0)]
    assert (r.filled_lots, r.remaining_lots, r.rested) == (12, 88, False)
    assert book.best_ask() == 104
    book.check_invariants()


def test_market_sell(book: OrderBook) -> None:
    r = match_market(book, TAKER, SELL, 7, 1)
    assert fills(r) == [(5, 99, 6, 0), (6, 98, 1, 0)]
    assert r.remaining_lots == 0 and not r.rested


def test_market_on_empty_side() -> None:
    r = match_market(OrderBook(), TAKER, SELL, 7, 1)
    assert r == MatchResult([], [], 0, 7, False, None)


# ------------------------------------------------------------------------- FOK


def test_fok_fills_completely(book: OrderBook) -> None:
    r = match(book, 100, TAKER, BUY, 102, 12, FOK)
    assert fills(r) == [(1, 101, 3, 0), (2, 101, 4, 0), (3, 102, 5, 0)]
    assert (r.filled_lots, r.remaining_lots, r.rested, r.reject) == (12, 0, False, None)
    book.check_invariants()


@pytest.mark.parametrize("limit,size", [(102, 13), (101, 8), (100, 1), (110, 15)])
def test_fok_insufficient_leaves_book_untouched(book: OrderBook, limit: int, size: int) -> None:
    before = snapshot(book)
    r = match(book, 100, TAKER, BUY, limit, size, FOK)
    assert r == MatchResult([], [], 0, size, False, MatchReject.FOK_NOT_FILLABLE)
    assert snapshot(book) == before


def test_fok_does_not_count_own_orders_as_liquidity(book: OrderBook) -> None:
    # Within 102 there are 12 lots, but 3 of them are Alice's: she can only get 9.
    before = snapshot(book)
    r = match(book, 100, ALICE, BUY, 102, 10, FOK)
    assert r.reject is MatchReject.FOK_NOT_FILLABLE and r.self_trade_cancelled == []
    assert snapshot(book) == before
    r = match(book, 101, ALICE, BUY, 102, 9, FOK)
    assert r.reject is None and r.self_trade_cancelled == [1]
    assert fills(r) == [(2, 101, 4, 0), (3, 102, 5, 0)]
    book.check_invariants()


# ------------------------------------------------------------------------- post-only


def test_post_only_rests_when_not_crossing(book: OrderBook) -> None:
    r = match(book, 100, TAKER, SELL, 100, 3, POST)
    assert r == MatchResult([], [], 0, 3, True, None)
    assert book.best_ask() == 100
    book.check_invariants()


@pytest.mark.parametrize("side,price", [(BUY, 101), (BUY, 150), (SELL, 99), (SELL, 1)])
def test_post_only_rejects_cross_and_leaves_book_untouched(book: OrderBook, side, price) -> None:
    before = snapshot(book)
    r = match(book, 100, TAKER, side, price, 3, POST)
    assert r == MatchResult([], [], 0, 3, False, MatchReject.POST_ONLY_WOULD_CROSS)
    assert snapshot(book) == before


def test_post_only_rejects_even_against_own_orders(book: OrderBook) -> None:
    # ALO is about not taking liquidity, whoever owns it; nothing is cancelled.
    before = snapshot(book)
    r = match(book, 100, ALICE, BUY, 101, 3, POST)
    assert r.reject is MatchReject.POST_ONLY_WOULD_CROSS and r.self_trade_cancelled == []
    assert snapshot(book) == before


# ------------------------------------------------------------------------- self-trade


def test_self_trade_cancels_resting_and_continues(book: OrderBook) -> None:
    r = match(book, 100, ALICE, BUY, 104, 6, GTC)
    # Order 1 (Alice) is cancelled, Bob's 2 and Carol's 3 trade.
    assert r.self_trade_cancelled == [1]
    assert fills(r) == [(2, 101, 4, 0), (3, 102, 2, 3)]
    assert 1 not in book and (r.filled_lots, r.remaining_lots) == (6, 0)
    book.check_invariants()


def test_self_trade_cancels_all_own_orders_inside_the_limit(book: OrderBook) -> None:
    r = match(book, 100, ALICE, BUY, 104, 50, GTC)
    assert r.self_trade_cancelled == [1, 4]
    assert fills(r) == [(2, 101, 4, 0), (3, 102, 5, 0)]
    assert (r.filled_lots, r.remaining_lots, r.rested) == (9, 41, True)
    assert not book.asks and book.best_bid() == 104
    book.check_invariants()


def test_self_trade_stops_once_filled(book: OrderBook) -> None:
    # Bob sells into the bids: his own 5 is first and is cancelled, Carol's 6 fills him, and
    # Alice's 7 behind it is not touched.
    r = match(book, 100, BOB, SELL, 98, 1, IOC)
    assert r.self_trade_cancelled == [5]
    assert fills(r) == [(6, 98, 1, 0)]
    assert book.get(7).size_lots == 2
    book.check_invariants()


def test_only_self_liquidity_rests_after_cancelling(book: OrderBook) -> None:
    r = match(book, 100, BOB, SELL, 99, 2, GTC)
    assert r.self_trade_cancelled == [5] and r.fills == []
    assert r.rested and book.best_ask() == 99 and book.best_bid() == 98
    book.check_invariants()


# ------------------------------------------------------------------------- caller bugs


@pytest.mark.parametrize(
    "args",
    [
        (1, TAKER, BUY, 102, 5, GTC),  # id already resting
        (1, TAKER, SELL, 99, 5, POST),  # id already resting, would cross
        (1, TAKER, SELL, 105, 5, POST),  # id already resting, would rest
        (100, TAKER, BUY, 102, 0, IOC),
        (100, TAKER, BUY, 0, 5, IOC),
        (100, TAKER, BUY, 102.0, 5, GTC),
        (100, TAKER, BUY, 102, 5.0, FOK),
        (100.0, TAKER, BUY, 102, 5, GTC),  # a resting remainder's id is its priority: an int
        (100.0, TAKER, BUY, 99, 5, GTC),  # (also when it rests without trading)
        (100, TAKER, 1, 102, 5, GTC),
        (100, TAKER, BUY, 102, 5, 0),
    ],
)
def test_bad_input_raises_before_touching_the_book(book: OrderBook, args) -> None:
    before = snapshot(book)
    with pytest.raises(ValueError):
        match(book, *args)
    assert snapshot(book) == before


def test_ioc_and_fok_ignore_order_id(book: OrderBook) -> None:
    # They never rest, so a reused id is not a conflict.
    r = match(book, 1, TAKER, BUY, 101, 1, IOC)
    assert fills(r) == [(1, 101, 1, 2)]
