"""In-memory order books: a cache of the `ord/` keys, with an undo journal for rollback.

What this module owns
---------------------
`Books` maps market id -> `JournaledBook` (a `state.book.OrderBook`), each built on first use
from the resting-order records of the KV view (`state.orders.iter_resting`, id order, seq =
order id). The books are never a source of truth: every change to a book is mirrored by a write
to `ord/` in the same (sub-)transaction, so a book always equals a rebuild from KV.

Rollback (DESIGN.md §5.3): the state machine opens a sub-transaction (`begin`) for every tx
action, batch item and end-of-block trigger. While one is open, each book mutation appends its
inverse to a journal; `rollback` undoes back to the sub-transaction's mark, `commit` keeps the
entries for the enclosing sub-transaction (or drops them at the outermost level). So a rejected
tx leaves the books exactly as they were, as its dropped overlay leaves the KV data.

Where the cache lives: on the root Overlay (`state.kv.root_cache`) of the block or of the
mempool's check state, or in a `BookCache` that `apply_block` reuses across blocks only when it
was produced by the block whose app hash the new block builds on.
"""

from state.book import Order, OrderBook, Side
from state.kv import KVView, root_cache, root_overlay
from state.codec import load
from state.orders import P_ORDER, OrderRecord, iter_resting, resting_info

_ADD, _REMOVE, _GROW = 0, 1, 2


class JournaledBook(OrderBook):
    """An OrderBook whose mutators record their inverse in the owning Books' journal."""

    __slots__ = ("_owner",)

    def __init__(self, owner: "Books") -> None:
        super().__init__()
        self._owner = owner

    def add(self, order_id, owner, side, price_ticks, size_lots, seq, info=None) -> Order:
        order = OrderBook.add(self, order_id, owner, side, price_ticks, size_lots, seq, info)
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

    __slots__ = ("books", "journal", "_marks")

    def __init__(self) -> None:
        self.books: dict[int, JournaledBook] = {}
        self.journal: list | None = None
        self._marks: list[int] = []

    def book(self, view: KVView, market: int) -> JournaledBook:
        """The book of `market`, built from `view`'s root on first use."""
        b = self.books.get(market)
        if b is None:
            b = self.build(root_overlay(view), market)
            self.books[market] = b
        return b

    def build(self, view: KVView, market: int) -> JournaledBook:
        b = JournaledBook(self)
        saved, self.journal = self.journal, None  # loading is not a change to undo
        try:
            for o in iter_resting(view, market):
                b.add(o.id, o.owner, Side.SELL if not o.is_buy else Side.BUY, o.price_ticks,
                      o.size_lots, o.id, resting_info(o))
        finally:
            self.journal = saved
        return b

    def clone(self) -> "Books":
        """Books of their own with the same orders in the same priority, for another root
        view of the same state (the mempool's check state after a block: copying is several
        times faster than rebuilding from the store). Only between sub-transactions."""
        if self._marks:
            raise RuntimeError("Books.clone inside a sub-transaction")
        c = Books()
        add = OrderBook.add
        for market, b in self.books.items():
            nb = JournaledBook(c)
            for side in (Side.BUY, Side.SELL):
                for o in b.orders(side):
                    add(nb, o.order_id, o.owner, side, o.price_ticks, o.size_lots, o.seq, o.info)
            c.books[market] = nb
        return c

    def apply_order_writes(self, writes: dict) -> None:
        """Bring the books from a state to that state with `writes` (an Overlay's write set)
        on top: each written `ord/` record replaces the order it names (None: removed). All
        named orders leave first, then the written ones are added, so no add meets an order
        that is about to go (the result does not depend on the order of `writes`). A book not
        built yet is left to be built from the view, which has the writes."""
        n = len(P_ORDER)
        named = []
        for key, value in writes.items():
            if key.startswith(P_ORDER):
                b = self.books.get(int.from_bytes(key[n:n + 4], "big"))
                if b is not None:
                    oid = int.from_bytes(key[n + 4:], "big")
                    if oid in b:
                        OrderBook.cancel(b, oid)
                    if value is not None:
                        named.append((b, key, oid, value))
        add = OrderBook.add
        for b, key, oid, value in named:
            o = OrderRecord(oid, int.from_bytes(key[n:n + 4], "big"),
                            *(value if type(value) is list else load(value)))
            add(b, oid, o.owner, Side.BUY if o.is_buy else Side.SELL, o.price_ticks, o.size_lots,
                oid, resting_info(o))

    def release(self) -> None:
        """Empty every book (`OrderBook.release`) and forget them: for Books being dropped, so
        that reference counting frees them at once (see node/gc_tuning.py)."""
        for b in self.books.values():
            b.release()
        self.books = {}
        self.journal = None
        self._marks = []

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
        mark = self._marks.pop()
        j = self.journal
        saved, self.journal = j, None  # undo operations must not journal themselves
        for i in range(len(j) - 1, mark - 1, -1):
            book, op, arg = j[i]
            if op == _ADD:
                OrderBook.cancel(book, arg)
            elif op == _REMOVE:
                o, size = arg
                OrderBook.add(book, o.order_id, o.owner, o.side, o.price_ticks, size, o.seq,
                              o.info)
            else:
                book._grow(*arg)
        del j[mark:]
        self.journal = saved if self._marks else None


def release_cache(cache: dict | None) -> None:
    """Release the Books held by a root cache that is being dropped (`Books.release`)."""
    b = cache.get("books") if cache else None
    if b is not None:
        b.release()


def books_of(view: KVView) -> Books:
    """The Books cached on `view`'s root overlay."""
    c = root_cache(view)
    b = c.get("books")
    if b is None:
        b = c["books"] = Books()
    return b


class BookCache:
    """Derived state carried from one `apply_block` to the next (see state.machine).

    `app_hash` names the state the cache equals; `apply_block` uses it only when the block it
    applies builds on exactly that app hash, and clears the tag while it runs, so a block that
    fails half-way can never leave a cache that looks valid."""

    __slots__ = ("app_hash", "data")

    def __init__(self) -> None:
        self.app_hash: bytes | None = None
        self.data: dict = {}
