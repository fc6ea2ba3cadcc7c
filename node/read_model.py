"""The node's read model: what queries need beyond the state, kept as blocks commit.

The state (store.state) answers "what is true at the last committed height"; the read model
holds what the store has no index for, derived only from committed data, so it can never
disagree with the chain:

* `CommittedBooks`: the order books of the last committed height (L2 depth, impact
  prices). Taken on the first read at a height: a copy of the execution books
  (`state.books.Books.copy_from`) while they still hold that state, else built from the
  store; released as soon as the next block commits.
* `FillHistory`: the last MAX_FILLS fills, newest last. Fills are events in the block
  results (tx results, and the end-block entry for triggered orders), not state, as
  Hyperliquid's and dYdX's indexers serve them.
* `OpenInterest` (node/open_interest.py): each perp market's open interest, counted from the
  committed state on the first read at a height.

Application.commit calls `ReadModel.on_commit` once per committed block, after the store
write and before anyone waiting on that block wakes. Every projection sees every
`CommittedBlock`; more attach with `ReadModel.attach` (funding payments and liquidations
histories, a websocket feed, metrics). The RPC (rpc/trading_methods.py) reads from here.
Nothing here is consensus-critical: a node restarted with an empty read model catches up
from the store.
"""

from collections import deque
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from consensus.types import Block
from node.open_interest import OpenInterest
from state.book import OrderBook
from state.books import Books
from state.derived import DerivedCache
from state.codec import decode
from state.events import Event
from state.machine import TxResult

MAX_FILLS = 200_000
FILL = "fill"


@dataclass(frozen=True, slots=True)
class CommittedBlock:
    """What a block left behind, as the read model sees it."""

    height: int
    time_ms: int
    app_hash: bytes
    tx_results: tuple[TxResult, ...]
    block_events: tuple[Event, ...] = ()   # begin- and end-block events
    block_hash: bytes = b""


class Projection(Protocol):
    def on_commit(self, block: CommittedBlock) -> None: ...


class ReadModel:
    """The projections of one node, fed by its Application on every commit."""

    def __init__(self, store, execution_cache: DerivedCache, height: int, app_hash: bytes,
                 max_fills: int = MAX_FILLS):
        """`store`: node.store.Store (its `state` view, `results_bytes`, `block_bytes`);
        `execution_cache`: the Application's DerivedCache; `height`/`app_hash`: its tip."""
        self.books = CommittedBooks(store, execution_cache, height, app_hash)
        self.fills = FillHistory(store, max_fills)
        self.open_interest = OpenInterest(store)   # counted on demand, once per height
        self.projections: list[Projection] = [self.books, self.fills]

    def attach(self, projection: Projection) -> None:
        """Feed `projection` every block from the next commit on."""
        self.projections.append(projection)

    def on_commit(self, block: CommittedBlock) -> None:
        for p in self.projections:
            p.on_commit(block)


class CommittedBooks:
    """The order books of the last committed height, built at most once per height."""

    def __init__(self, store, execution_cache: DerivedCache, height: int, app_hash: bytes):
        self._store = store
        self._execution = execution_cache
        self.height = height
        self._app_hash = app_hash
        self._books: Books | None = None

    def on_commit(self, block: CommittedBlock) -> None:
        if self._books is not None:
            self._books.release()  # freed now rather than by the cycle collector
            self._books = None
        self.height, self._app_hash = block.height, block.app_hash

    def book(self, market: int) -> OrderBook:
        """`market`'s book at `self.height` (read-only for callers)."""
        if self._books is None:
            self._books = Books()
            if self._execution.holds(self._app_hash):
                self._books.copy_from(self._execution)
        return self._books.book(self._store.state, market)


class Fill(NamedTuple):
    """One `fill` event and where it happened. `index` is the tx's index in the block, or
    the number of txs for the end-block entry (a triggered order's fill). A named tuple:
    one is made per fill on the commit path, where a frozen dataclass costs twice as much."""

    height: int
    index: int
    time_ms: int
    attrs: tuple[tuple[str, str], ...]   # the event's attributes, in event order

    def attr(self, name: str) -> str | None:
        for k, v in self.attrs:
            if k == name:
                return v
        return None

    def involves(self, account_hex: str | None, market_symbol: str | None) -> bool:
        """Whether the fill has `account_hex` as taker or maker and is on `market_symbol`
        (None: any)."""
        taker = maker = market = None
        for k, v in self.attrs:
            if k == "taker":
                taker = v
            elif k == "maker":
                maker = v
            elif k == "market":
                market = v
        return ((account_hex is None or account_hex in (taker, maker))
                and (market_symbol is None or market == market_symbol))


class FillHistory:
    """The last `max_fills` fills of the chain, oldest first; `height`: the last height whose
    fills are all in. Fed by commits while caught up; `catch_up` reads missed heights (a
    restarted node's past) from the store."""

    def __init__(self, store, max_fills: int = MAX_FILLS):
        self._store = store
        self.fills: deque[Fill] = deque(maxlen=max_fills)
        self.height = 0

    def on_commit(self, block: CommittedBlock) -> None:
        if block.height != self.height + 1:
            return  # behind: the next catch_up reads this block from the store
        h, t = block.height, block.time_ms
        append = self.fills.append
        for i, r in enumerate(block.tx_results):
            if r.code == 0:
                for e in r.events:
                    if e.type == FILL:
                        append(Fill(h, i, t, e.attrs))
        n = len(block.tx_results)
        for e in block.block_events:
            if e.type == FILL:
                append(Fill(h, n, t, e.attrs))
        self.height = h

    def catch_up(self, tip_height: int) -> None:
        """Index heights `height + 1 .. tip_height` from the stored block results."""
        for h in range(self.height + 1, tip_height + 1):
            raw = self._store.results_bytes(h)
            if raw is None:
                continue
            time_ms = None
            for i, (code, _log, events) in enumerate(decode(raw)):
                if code != 0 or not any(typ == FILL for typ, _ in events):
                    continue
                if time_ms is None:
                    time_ms = Block.decode(self._store.block_bytes(h)).header.time_ms
                self.fills.extend(Fill(h, i, time_ms, tuple((k, v) for k, v in attrs))
                                  for typ, attrs in events if typ == FILL)
        self.height = max(self.height, tip_height)

    def newest_first(self, account_hex: str | None = None,
                     market_symbol: str | None = None) -> list[Fill]:
        """The kept fills, newest first, with `account_hex` as taker or maker and on
        `market_symbol` (None: any)."""
        return [f for f in reversed(self.fills) if f.involves(account_hex, market_symbol)]
