"""The node's read model: what queries need beyond the state, kept as blocks commit.

The state (store.state) answers "what is true at the last committed height"; the read model
holds what the store has no index for, derived only from committed data, so it can never
disagree with the chain:

* `CommittedBooks`: the order books of the last committed height (L2 depth, impact
  prices). Taken on the first read at a height: a copy of the execution books
  (`state.books.Books.copy_from`) while they still hold that state, else built from the
  store; released as soon as the next block commits.
* `FillHistory`: the last MAX_FILLS fills, newest last, on disk beside the store's tables
  (node/fill_log.py; `[store] keep_fills`). Fills are events in the block results (tx
  results, and the end-block entry for triggered orders), not state, as Hyperliquid's and
  dYdX's indexers serve them. Its `stats` (node/fill_stats.py) are running aggregates of
  every fill, updated in the same write: candles, 24-hour volumes and prices, last prices.
* `OpenInterest` (node/open_interest.py): each perp market's open interest, a running total
  counted once on the first read, then carried by each block's writes to clearing records.

Application.commit calls `ReadModel.on_commit` once per committed block, after the store
write and before anyone waiting on that block wakes. Every projection sees every
`CommittedBlock`; more attach with `ReadModel.attach` (funding payments and liquidations
histories, a websocket feed, metrics). The RPC (rpc/trading_methods.py) reads from here.
Nothing here is consensus-critical: a node restarted finds its fill history where it left it
and catches up from the stored results; the books and open interest start empty.
"""

from dataclasses import dataclass
from typing import Protocol

from consensus.types import Block
from node.fill_log import Fill, FillLog
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
        self.open_interest = OpenInterest(store)   # running totals (Application.commit stages)
        self.projections: list[Projection] = [self.books, self.fills, self.open_interest]

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


class FillHistory:
    """The last `max_fills` fills of the chain, oldest first, kept on disk (node/fill_log.py;
    `fills` reads them, newest first with `reversed`); `height`: the last height whose fills
    are all in. Fed by commits while caught up; `catch_up` reads missed heights (a new
    store's past, or blocks committed before a crash wrote their fills) from the store."""

    def __init__(self, store, max_fills: int = MAX_FILLS):
        self._store = store
        self.fills = FillLog(store.db, max_fills)

    @property
    def height(self) -> int:
        return self.fills.height

    def on_commit(self, block: CommittedBlock) -> None:
        if block.height != self.height + 1:
            return  # behind: the next catch_up reads this block from the store
        h, t = block.height, block.time_ms
        new = [Fill(h, i, t, e.attrs) for i, r in enumerate(block.tx_results) if r.code == 0
               for e in r.events if e.type == FILL]
        n = len(block.tx_results)
        new += [Fill(h, n, t, e.attrs) for e in block.block_events if e.type == FILL]
        self.fills.append(new, h, t)

    def catch_up(self, tip_height: int) -> None:
        """Index heights `height + 1 .. tip_height` from the stored block results."""
        if tip_height <= self.height:
            return
        for h in range(max(self.height + 1, self._store.base_height()), tip_height + 1):
            raw = self._store.results_bytes(h)
            new, time_ms = [], None
            for i, (code, _log, events) in enumerate(decode(raw) if raw is not None else ()):
                if code != 0 or not any(typ == FILL for typ, _ in events):
                    continue
                if time_ms is None:
                    time_ms = Block.decode(self._store.block_bytes(h)).header.time_ms
                new += [Fill(h, i, time_ms, tuple((k, v) for k, v in attrs))
                        for typ, attrs in events if typ == FILL]
            if new:
                self.fills.append(new, h, time_ms)
        self.fills.append([], tip_height)

    @property
    def stats(self):
        """The running aggregates of the fills (node/fill_stats.py `FillStats`)."""
        return self.fills.stats

    def page(self, account_hex: str | None, market_symbol: str | None, offset: int,
             limit: int) -> tuple[int, list[Fill]]:
        """(how many kept fills match, the `limit` of them after the newest `offset`, newest
        first): as `newest_first`, but without an account only the page's fills are read."""
        if account_hex is not None:
            sel = self.newest_first(account_hex, market_symbol)
            return len(sel), sel[offset:offset + limit]
        return self.fills.newest_page(market_symbol, offset, limit)

    def newest_first(self, account_hex: str | None = None,
                     market_symbol: str | None = None) -> list[Fill]:
        """The kept fills, newest first, with `account_hex` as taker or maker and on
        `market_symbol` (None: any)."""
        if account_hex is None:
            return [f for f in reversed(self.fills) if f.involves(None, market_symbol)]
        try:
            account = bytes.fromhex(account_hex)
        except ValueError:
            return []
        return [f for f in self.fills.of_account(account)
                if f.involves(account_hex, market_symbol)]
