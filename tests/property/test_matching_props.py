"""Property tests: state.book + state.matching against a plainly written reference matcher.

The reference keeps resting orders in a plain list and, for every taker, sorts the opposite side
by (price, seq) from scratch: slow and obviously right. Hypothesis drives both through random
sequences of submits (every time-in-force and market orders), direct rests, cancels and size
reductions, and after each step compares them and checks the invariants:

* the book is never crossed (best bid < best ask);
* fills equal the reference's fills exactly (so they respect price-time priority), and, checked
  independently of the reference: fill prices are within the limit and in priority order, no
  fill exceeds the maker's size, each maker's size drops by exactly its fill, the taker's filled
  size is the sum of its fills, and a remainder exists only if nothing is left inside the limit;
* rejected orders leave the book untouched;
* per-level aggregates (L2) equal the sums over the orders.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from state.book import OrderBook, Side
from state.matching import MatchReject, TimeInForce, match, match_market

BUY = Side.BUY
SELL = Side.SELL
OWNERS = [b"alice", b"bob", b"carol"]
MARKET = "market"  # a taker kind of its own: IOC with a worst price, via match_market

owners = st.sampled_from(OWNERS)
sides = st.sampled_from([BUY, SELL])
# A narrow price band and small sizes make crosses, multi-level sweeps and self-trades common.
prices = st.integers(min_value=95, max_value=105)
sizes = st.integers(min_value=1, max_value=12)
kinds = st.sampled_from(
    [TimeInForce.GTC, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.POST_ONLY,
     MARKET]
)


@dataclass
class RefOrder:
    order_id: int
    owner: bytes
    side: Side
    price: int
    size: int
    seq: int


class RefBook:
    """Resting orders in a plain list; priority is recomputed by sorting on every use."""

    def __init__(self) -> None:
        self.orders: list[RefOrder] = []

    def by_priority(self, side: Side) -> list[RefOrder]:
        """Next-to-trade first: bids by (-price, seq), asks by (price, seq)."""
        if side == BUY:
            bids = [o for o in self.orders if o.side == BUY]
            return sorted(bids, key=lambda o: (-o.price, o.seq))
        asks = [o for o in self.orders if o.side == SELL]
        return sorted(asks, key=lambda o: (o.price, o.seq))

    def crossing(self, side: Side, limit: int) -> list[RefOrder]:
        """Opposite orders the taker may trade with, in priority order."""
        if side == BUY:
            return [o for o in self.by_priority(SELL) if o.price <= limit]
        return [o for o in self.by_priority(BUY) if o.price >= limit]

    def submit(self, order_id, owner, side, limit, size, seq, tif):
        """Returns (fills, self_trade_cancelled, remaining, rested, reject)."""
        reachable = self.crossing(side, limit)
        if tif == TimeInForce.POST_ONLY:
            if reachable:
                return [], [], size, False, MatchReject.POST_ONLY_WOULD_CROSS
            self.orders.append(RefOrder(order_id, owner, side, limit, size, seq))
            return [], [], size, True, None
        if tif == TimeInForce.FOK:
            available = sum(o.size for o in reachable if o.owner != owner)
            if available < size:
                return [], [], size, False, MatchReject.FOK_NOT_FILLABLE
        fills, cancelled = [], []
        for maker in reachable:
            if size == 0:
                break
            if maker.owner == owner:
                self.orders.remove(maker)
                cancelled.append(maker.order_id)
                continue
            traded = min(size, maker.size)
            maker.size -= traded
            size -= traded
            fills.append((maker.order_id, maker.owner, maker.price, traded, maker.size))
            if maker.size == 0:
                self.orders.remove(maker)
        rested = bool(size) and tif == TimeInForce.GTC
        if rested:
            self.orders.append(RefOrder(order_id, owner, side, limit, size, seq))
        return fills, cancelled, size, rested, None


def book_state(book: OrderBook) -> list[tuple]:
    return [
        (o.order_id, o.owner, o.side, o.price_ticks, o.size_lots)
        for side in (BUY, SELL)
        for o in book.orders(side)
    ]


def ref_state(ref: RefBook) -> list[tuple]:
    return [
        (o.order_id, o.owner, o.side, o.price, o.size)
        for side in (BUY, SELL)
        for o in ref.by_priority(side)
    ]


class BookVersusReference(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.book = OrderBook()
        self.ref = RefBook()
        self.next_id = 1
        self.next_seq = 1

    def _new_ids(self) -> tuple[int, int]:
        order_id, seq = self.next_id, self.next_seq
        self.next_id += 1
        self.next_seq += 1
        return order_id, seq

    @rule(owner=owners, side=sides, limit=prices, size=sizes, tif=kinds)
    def submit(self, owner, side, limit, size, tif) -> None:
        order_id, seq = self._new_ids()
        before = {o.order_id: o.size_lots for s in (BUY, SELL) for o in self.book.orders(s)}
        before_state = book_state(self.book)
        if tif == MARKET:
            result = match_market(self.book, owner, side, size, limit)
            want = self.ref.submit(order_id, owner, side, limit, size, seq, TimeInForce.IOC)
            tif = TimeInForce.IOC
        else:
            result = match(self.book, order_id, owner, side, limit, size, tif)
            want = self.ref.submit(order_id, owner, side, limit, size, seq, tif)

        got = (
            [(f.maker_order_id, f.maker_owner, f.price_ticks, f.size_lots, f.maker_remaining_lots)
             for f in result.fills],
            result.self_trade_cancelled,
            result.remaining_lots,
            result.rested,
            result.reject,
        )
        assert got == want

        # Independent of the reference from here on.
        if result.reject is not None:
            assert book_state(self.book) == before_state
            assert result.fills == [] and result.filled_lots == 0
            return
        assert result.filled_lots == sum(f.size_lots for f in result.fills)
        assert result.filled_lots + result.remaining_lots == size
        assert len({f.maker_order_id for f in result.fills}) == len(result.fills)
        for f in result.fills:
            assert 0 < f.size_lots <= before[f.maker_order_id]
            assert f.maker_remaining_lots == before[f.maker_order_id] - f.size_lots
            now = self.book.get(f.maker_order_id)
            assert (0 if now is None else now.size_lots) == f.maker_remaining_lots
            assert f.maker_owner != owner
            assert f.price_ticks <= limit if side == BUY else f.price_ticks >= limit
        for order_id_cancelled in result.self_trade_cancelled:
            assert order_id_cancelled in before and order_id_cancelled not in self.book
        # Price priority: fill prices never get better for the taker as the sweep goes on.
        fill_prices = [f.price_ticks for f in result.fills]
        assert fill_prices == sorted(fill_prices, reverse=(side == SELL))
        # Nothing within the limit may be left behind while the taker still had size to trade.
        if result.remaining_lots:
            best = self.book.best_ask() if side == BUY else self.book.best_bid()
            assert best is None or (best > limit if side == BUY else best < limit)
        may_rest = tif in (TimeInForce.GTC, TimeInForce.POST_ONLY)
        assert result.rested == (result.remaining_lots > 0 and may_rest)
        if result.rested:
            resting = self.book.get(order_id)
            assert resting.size_lots == result.remaining_lots and resting.price_ticks == limit

    @rule(owner=owners, side=sides, price=prices, size=sizes)
    def rest_directly(self, owner, side, price, size) -> None:
        """``OrderBook.add`` accepts exactly the orders that do not cross."""
        order_id, seq = self._new_ids()
        if self.ref.crossing(side, price):
            before = book_state(self.book)
            try:
                self.book.add(order_id, owner, side, price, size)
            except ValueError:
                pass
            else:
                raise AssertionError("add accepted a crossing order")
            assert book_state(self.book) == before
        else:
            self.book.add(order_id, owner, side, price, size)
            self.ref.orders.append(RefOrder(order_id, owner, side, price, size, seq))

    @precondition(lambda self: self.ref.orders)
    @rule(pick=st.integers(min_value=0, max_value=10**6))
    def cancel(self, pick) -> None:
        victim = sorted(o.order_id for o in self.ref.orders)[pick % len(self.ref.orders)]
        removed = self.book.cancel(victim)
        assert removed.order_id == victim
        self.ref.orders = [o for o in self.ref.orders if o.order_id != victim]

    @precondition(lambda self: self.ref.orders)
    @rule(pick=st.integers(min_value=0, max_value=10**6), amount=sizes)
    def reduce(self, pick, amount) -> None:
        target = sorted(self.ref.orders, key=lambda o: o.order_id)[pick % len(self.ref.orders)]
        amount = min(amount, target.size)
        self.book.reduce(target.order_id, amount)
        target.size -= amount
        if target.size == 0:
            self.ref.orders.remove(target)

    @invariant()
    def same_orders_same_priority(self) -> None:
        assert book_state(self.book) == ref_state(self.ref)

    @invariant()
    def never_crossed(self) -> None:
        bid, ask = self.book.best_bid(), self.book.best_ask()
        assert bid is None or ask is None or bid < ask

    @invariant()
    def aggregates_equal_sums(self) -> None:
        for side in (BUY, SELL):
            levels: dict[int, list[int]] = {}
            for o in self.ref.orders:
                if o.side == side:
                    agg = levels.setdefault(o.price, [0, 0])
                    agg[0] += o.size
                    agg[1] += 1
            want = sorted(((p, s, n) for p, (s, n) in levels.items()), reverse=(side == BUY))
            assert [tuple(level) for level in self.book.l2(side, 1000)] == want

    @invariant()
    def book_checks_itself(self) -> None:
        self.book.check_invariants()


BookVersusReference.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestBookVersusReference = BookVersusReference.TestCase


@settings(max_examples=300, deadline=None)
@given(
    orders=st.lists(
        st.tuples(st.integers(min_value=1, max_value=5), st.integers(min_value=1, max_value=9)),
        min_size=1,
        max_size=40,
    ),
    data=st.data(),
)
def test_load_order_never_changes_priority(orders, data) -> None:
    """However a book is rebuilt (e.g. from storage in key order), priority is (price, id)."""
    entries = [(i + 1, price, size) for i, (price, size) in enumerate(orders)]
    shuffled = data.draw(st.permutations(entries))
    book = OrderBook()
    for order_id, price, size in shuffled:
        book.add(order_id, OWNERS[order_id % 3], SELL, price, size)
    book.check_invariants()
    want = [e[0] for e in sorted(entries, key=lambda e: (e[1], e[0]))]
    assert [o.order_id for o in book.orders(SELL)] == want


@settings(max_examples=300, deadline=None)
@given(
    makers=st.lists(st.tuples(owners, prices, sizes), max_size=30),
    owner=owners,
    limit=prices,
    size=st.integers(min_value=1, max_value=80),
)
def test_fok_is_all_or_nothing(makers, owner, limit, size) -> None:
    book = OrderBook()
    for i, (maker_owner, price, maker_size) in enumerate(makers):
        book.add(i + 1, maker_owner, SELL, price, maker_size)
    before = book_state(book)
    result = match(book, 10_000, owner, BUY, limit, size, TimeInForce.FOK)
    if result.reject is None:
        assert result.filled_lots == size and result.remaining_lots == 0 and not result.rested
    else:
        assert result.reject is MatchReject.FOK_NOT_FILLABLE
        assert book_state(book) == before
        assert result.fills == [] and result.self_trade_cancelled == []
    book.check_invariants()
