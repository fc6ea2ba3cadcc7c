"""L2 book feeds for websocket subscribers: per-market views, diffs and sequence numbers.

A `BookFeed` tracks the markets someone subscribed to. For each it keeps the last published
view (the best `depth` levels of each side: price_ticks -> (size_lots, order_count)), the
height that view is of and a sequence number. `advance` recomputes every tracked view from
the committed books and returns one `BookUpdate` per market whose view changed: the levels
that changed, a removed level (or one that left the best `depth`) with size 0. Each update
takes the market's sequence one up, so a client that holds a snapshot with sequence s applies
updates s+1, s+2, ... and knows it missed one when a number is skipped (docs/PROTOCOL.md).

Sequences outlive the process when the feed is given a `BookSequences` (node/book_seq.py):
a market first tracked in a process starts at its last saved sequence + 1 (0 if none), so
sequences never go back across restarts; each sequence published is saved before
`track`/`advance` return it, so before it is sent. The views
are read from the read model's committed books (node/read_model.py `CommittedBooks`), never
from the state being executed. Pure bookkeeping: no I/O, no trio.
"""

from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

# price_ticks -> (size_lots, order_count), one per side
Levels = dict[int, tuple[int, int]]


class LevelChange(NamedTuple):
    """A level's new size and order count; size_lots 0 = the level is gone."""

    price_ticks: int
    size_lots: int
    order_count: int


@dataclass(frozen=True, slots=True)
class BookUpdate:
    market_id: int
    sequence: int
    height: int
    bids: tuple[LevelChange, ...]
    asks: tuple[LevelChange, ...]


@dataclass(slots=True)
class MarketView:
    """One market's published view: what every subscriber holds after the last update."""

    market_id: int
    sequence: int
    height: int
    bids: Levels = field(default_factory=dict)
    asks: Levels = field(default_factory=dict)


def levels_of(book, depth: int) -> tuple[Levels, Levels]:
    """The best `depth` levels of each side of `book` (a state.book.OrderBook)."""
    bids, asks = book.l2_snapshot(depth)
    return ({lv.price_ticks: (lv.size_lots, lv.order_count) for lv in bids},
            {lv.price_ticks: (lv.size_lots, lv.order_count) for lv in asks})


def diff_levels(old: Levels, new: Levels) -> tuple[LevelChange, ...]:
    """What turns `old` into `new`, sorted by price: changed or new levels with their
    values, removed ones with size 0."""
    out = [LevelChange(p, s, n) for p, (s, n) in new.items() if old.get(p) != (s, n)]
    out += [LevelChange(p, 0, 0) for p in old if p not in new]
    out.sort()
    return tuple(out)


def apply_changes(levels: Levels, changes) -> None:
    """Apply `diff_levels` output to `levels` in place (what a client does)."""
    for price, size, count in changes:
        if size:
            levels[price] = (size, count)
        else:
            levels.pop(price, None)


class Sequences(Protocol):
    """Where a feed keeps its sequences across processes (node/book_seq.py)."""

    def last(self, market_id: int) -> int | None: ...

    def save(self, sequences: dict[int, int]) -> None: ...


class BookFeed:
    """The views of the followed markets, `depth` levels a side, at most `max_markets`;
    `saved`: where sequences outlive the process (None: they start at 0 in each)."""

    def __init__(self, depth: int, max_markets: int, saved: Sequences | None = None):
        self.depth, self.max_markets = depth, max_markets
        self.views: dict[int, MarketView] = {}
        self.last_sequence: dict[int, int] = {}   # of markets no longer followed
        self.saved = saved

    def untrack(self, market_id: int) -> None:
        """Stop following `market_id` (nobody subscribes to it); a later `track` goes on
        from its last sequence, so a market's sequence never goes back in one process."""
        v = self.views.pop(market_id, None)
        if v is not None:
            self.last_sequence[market_id] = v.sequence

    def track(self, market_id: int, book, height: int) -> MarketView:
        """Start following `market_id` (if not yet) and return its current view: the
        snapshot a new subscriber gets. A market already followed answers from its last
        published view, so the snapshot and the updates that follow always fit."""
        v = self.views.get(market_id)
        if v is None:
            if len(self.views) >= self.max_markets:
                raise ValueError(f"the node already follows {len(self.views)} books "
                                 f"(limit {self.max_markets})")
            bids, asks = levels_of(book, self.depth)
            seq = self.last_sequence.pop(market_id, None)
            if seq is None:      # first tracked in this process
                last = self.saved.last(market_id) if self.saved is not None else None
                seq = 0 if last is None else last + 1
                if self.saved is not None:
                    self.saved.save({market_id: seq})
            v = self.views[market_id] = MarketView(market_id, seq, height, bids, asks)
        return v

    def advance(self, book_of, height: int) -> list[BookUpdate]:
        """Recompute every tracked view at `height` (`book_of(market_id)` -> its committed
        book) and return the updates of the markets whose view changed, by market id."""
        out = []
        for mid in sorted(self.views):
            v = self.views[mid]
            if height <= v.height:
                continue
            bids, asks = levels_of(book_of(mid), self.depth)
            db, da = diff_levels(v.bids, bids), diff_levels(v.asks, asks)
            v.height = height
            if db or da:
                v.sequence += 1
                v.bids, v.asks = bids, asks
                out.append(BookUpdate(mid, v.sequence, height, db, da))
        if out and self.saved is not None:
            self.saved.save({u.market_id: u.sequence for u in out})
        return out
