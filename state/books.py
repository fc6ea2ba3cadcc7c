"""In-memory order books: a cache of the `ord/` keys, with an undo journal for rollback.

What this module owns
---------------------
`Books` maps market id -> `JournaledBook` (a `state.book.OrderBook`), each built on first use
from the resting-order records of the KV view (`state.orders.iter_resting`, in id order). The
books are never a source of truth: every change to a book is mirrored by a write to `ord/` in
the same (sub-)transaction, so a book always equals a rebuild from KV.

Rollback: the state machine opens a sub-transaction (`begin`) for every tx
action, batch item and end-of-block trigger. While one is open, each book mutation appends its
inverse to a journal; `rollback` undoes back to the sub-transaction's mark, `commit` keeps the
entries for the enclosing sub-transaction (or drops them at the outermost level). Inside one,
`savepoint` and `rollback_to` undo a part that is redone (a match retried: state.placement).
So a rejected tx leaves the books exactly as they were, as its dropped overlay leaves the KV
data.

Where the books live: in the derived state (state.derived) of the root overlay of the block or
of the mempool's check state, or in a `DerivedCache` that `apply_block` reuses across blocks
only when it was produced by the block whose app hash the new block builds on. A mempool check
state takes each book, on first use, as a copy of the node's `DerivedCache` books
(`Books.copy_from`) while that cache still holds the committed state. Books being dropped are
`release`d: linked orders are reference cycles, which node/gc_tuning.py leaves to a rarely run
collector.
"""

from state.book import Order, OrderBook, Side
from state.kv import KVView, root_overlay
from state.orders import P_ORDER, OrderRecord, iter_resting, record_from

_ADD, _REMOVE, _GROW = 0, 1, 2


class JournaledBook(OrderBook):
    """An OrderBook whose mutators record their inverse in the owning Books' journal."""

    __slots__ = ("_owner",)

    def __init__(self, owner: "Books") -> None:
        super().__init__()
        self._owner = owner

    def add(self, order_id, owner, side, price_ticks, size_lots, info=None) -> Order:
        order = OrderBook.add(self, order_id, owner, side, price_ticks, size_lots, info)
        j = self._owner.journal
        if j is not None:
            j.append((self, _ADD, order_id))
        return order

    def cancel(self, order_id: int) -> Order:
        order = OrderBook.cancel(self, order_id)
        j = self._owner.journal
        if j is not None:
            # The removed order's fields stay as they are, but its size: `reduce` zeroes it.
            j.append((self, _REMOVE, (order, order.size_lots)))
        return order

    def reduce(self, order_id: int, by_lots: int) -> Order:
        # A reduction to zero goes through self.cancel (journaled there with the full size).
        order = OrderBook.reduce(self, order_id, by_lots)
        if order.size_lots > 0:
            j = self._owner.journal
            if j is not None:
                j.append((self, _GROW, (order_id, by_lots)))
        return order

    def _grow(self, order_id: int, by_lots: int) -> None:
        """Undo of a partial `reduce`: the order keeps its place in the queue."""
        order = self._orders[order_id]
        order.size_lots += by_lots
        self._sides[order.side][order.price_ticks].size_lots += by_lots


class Books:
    """Order books per market plus the undo journal of the open sub-transactions."""

    __slots__ = ("books", "journal", "_marks", "_source")

    def __init__(self) -> None:
        self.books: dict[int, JournaledBook] = {}
        self.journal: list | None = None
        self._marks: list[int] = []
        self._source: tuple | None = None  # see copy_from

    def book(self, view: KVView, market: int) -> JournaledBook:
        """The book of `market`: on first use, copied from the source (`copy_from`) or built
        from `view`'s root."""
        b = self.books.get(market)
        if b is None:
            b = self._copy(market) if self._source is not None else None
            if b is None:
                b = self.build(root_overlay(view), market)
            self.books[market] = b
        return b

    def copy_from(self, cache, writes: dict | None = None) -> None:
        """Take each book, on first use, as a copy of `cache`'s (a state.derived.DerivedCache
        equal to the state this root view is over) brought up to date with `writes`, the write set the root will hold,
        rather than building it from the store: several times faster (the mempool's check
        state after each block). A copy is made only while `cache` still holds that state
        (its app hash tag is unchanged); otherwise the book is built. The root's `ord/`
        records change only through its books, so `writes` holds no order change made after
        the copy that the copy misses."""
        if cache.app_hash is not None:
            self._source = (cache, cache.app_hash, writes)

    def _copy(self, market: int) -> "JournaledBook | None":
        cache, tag, writes = self._source
        src = cache.derived.books if cache.app_hash == tag else None
        sb = src.books.get(market) if src is not None and not src._marks else None
        if sb is None:
            return None
        b = JournaledBook(self)
        add = OrderBook.add
        for side in (Side.BUY, Side.SELL):
            for o in sb.orders(side):
                add(b, o.order_id, o.owner, side, o.price_ticks, o.size_lots, o.info)
        if writes:
            _apply_order_writes(b, market, writes)
        return b

    def build(self, view: KVView, market: int) -> JournaledBook:
        b = JournaledBook(self)
        for o in iter_resting(view, market):
            _rest(b, o)  # (not journaled: loading is not a change to undo)
        return b

    def release(self) -> None:
        """Empty every book (`OrderBook.release`) and forget them: for Books being dropped, so
        that reference counting frees them at once (see node/gc_tuning.py)."""
        for b in self.books.values():
            b.release()
        self.books = {}
        self.journal = None
        self._marks = []
        self._source = None

    # -- sub-transactions -------------------------------------------------------------------
    def begin(self) -> None:
        if self.journal is None:
            self.journal = []
        self._marks.append(len(self.journal))

    def commit(self) -> None:
        self._marks.pop()
        if not self._marks:
            self.journal = None

    def rollback(self) -> None:
        self.rollback_to(self._marks.pop())
        if not self._marks:
            self.journal = None

    def savepoint(self) -> int:
        """Where the open sub-transaction's journal stands: `rollback_to` undoes what follows
        (a part of a sub-transaction that may be redone, without opening another)."""
        return len(self.journal)

    def rollback_to(self, mark: int) -> None:
        """Undo the journal's entries after `mark`, newest first, and drop them."""
        j = self.journal
        self.journal = None  # undo operations must not journal themselves
        for i in range(len(j) - 1, mark - 1, -1):
            book, op, arg = j[i]
            if op == _ADD:
                OrderBook.cancel(book, arg)
            elif op == _REMOVE:
                o, size = arg
                OrderBook.add(book, o.order_id, o.owner, o.side, o.price_ticks, size, o.info)
            else:
                book._grow(*arg)
        del j[mark:]
        self.journal = j


def _apply_order_writes(b: OrderBook, market: int, writes: dict) -> None:
    """Bring `market`'s book `b` from a state to that state with `writes` on top: each
    written `ord/` record of the market replaces the order it names (None: removed). All
    named orders leave first, then the written ones are added, so no add meets an order that
    is about to go (the result does not depend on the order of `writes`)."""
    prefix = P_ORDER + market.to_bytes(4, "big")
    n = len(prefix)
    named = []
    for key, value in writes.items():
        if key.startswith(prefix):
            oid = int.from_bytes(key[n:], "big")
            if oid in b:
                OrderBook.cancel(b, oid)
            if value is not None:
                named.append((oid, value))
    for oid, value in named:
        _rest(b, record_from(market, oid, value))


def _rest(b: OrderBook, o: OrderRecord) -> None:
    """Put the resting order of record `o` into `b` (without journaling it)."""
    OrderBook.add(b, o.id, o.owner, Side.BUY if o.is_buy else Side.SELL, o.price_ticks,
                  o.size_lots, o.resting_fields())
