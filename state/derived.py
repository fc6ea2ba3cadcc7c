"""Derived state: in-memory structures computed from the KV records, never a source of truth.

What this module owns
---------------------
`Derived` holds, for one root overlay (a block's, or the mempool's check state), what the state
machine would otherwise decode or rebuild again and again: the order books, decoded markets
and exchange parameters, memoised decodes of hot records (marks, oracle prices), the day's fee
tier table and accounts handed back between sub-transactions. `derived_of(view)` finds the one
of a view's root overlay. `DerivedCache` carries a `Derived` from one block to the next.

The invalidation rule (the only one)
------------------------------------
Everything here equals what a fresh decode of the records under the root overlay would give,
kept so in one of four ways, by the kind of source record:
1. order books follow the `ord/` records because their only writers (state.orders) change the
   book in the same sub-transaction, and the book journal undoes the change when the
   sub-transaction is rolled back (state.books);
2. parameters (markets, fee / oracle / collateral parameters, the quote asset) change only by
   genesis and governance writes, and every such writer calls `params_changed`, which drops
   every parameter and everything computed from one (fee tiers);
3. every other entry is memoised by the identity of the stored value it was decoded from
   (`memo`, `Ledger.account`): a write, in any overlay, is a new object, so a stale entry is
   never found;
4. indexes over a whole record kind (state.risk_index: perp position holders) are tagged with
   the height of the state they equal and brought forward only from that height's state by
   the next block's writes; any other tag means a rebuild from the records;
5. supersets: `reduce_only_holders` (market -> {owner: None}) holds at least every owner with a
   resting reduce-only order record (`rord/`): built by a scan of those records in the view
   that first needs it and in each overlay it is a child of, down to the root (so a record
   that an open sub-transaction added or deleted counts either way), then told of every new
   one by their only writer (state.orders) before the write. A rolled-back write or a
   removed order leaves an extra owner, which costs one record read; an owner not in it has
   none. A new scan starts it afresh after `MAX_MEMO` new owners.
Nothing here may be consulted for a view over another root: `DerivedCache` is reused by a
block only when it was produced by the block whose app hash the new block builds on.
Each memo table is bounded (`MAX_MEMO`); clearing a memo changes only speed.
"""

from state.books import Books
from state.kv import Overlay

MAX_MEMO = 100_000


class Derived:
    """The derived state of one root overlay (see the module docstring)."""

    __slots__ = ("books", "markets", "params", "fee_tiers", "memos", "published",
                 "params_version", "risk_holders", "reduce_only_holders", "reduce_only_noted")

    def __init__(self, books: Books | None = None) -> None:
        self.books = books if books is not None else Books()
        self.markets: dict = {}      # market id -> Market (rule 2)
        self.params: dict = {}       # parameter name -> decoded value (rule 2)
        self.fee_tiers: dict = {}    # (day, addr) -> FeeTier for that whole day (rule 2)
        self.memos: dict = {}        # table name -> {key: (stored value, decoded)} (rule 3)
        self.published: dict = {}    # addr -> (stored record, Account) (rule 3, state.ledger)
        self.params_version = 0      # counts params_changed (a rolled-back change: state.scope)
        self.risk_holders = None     # state.risk_index.HolderIndex (rule 4)
        self.reduce_only_holders: dict | None = None  # state.reduce_only.holders (rule 5)
        self.reduce_only_noted = 0   # owners noted since the holders were scanned

    def params_changed(self) -> None:
        """A genesis or governance write changed a parameter record: forget every parameter
        and everything computed from one."""
        self.markets = {}
        self.params = {}
        self.fee_tiers = {}
        self.params_version += 1

    def param(self, name: str, decode, view):
        """The parameter `name`, decoded by `decode(view)` on first use (rule 2)."""
        v = self.params.get(name)
        if v is None:
            v = self.params[name] = decode(view)
        return v

    def memo(self, table: str, key: bytes, stored, decode):
        """`decode(stored)`, reusing an earlier decode of this very stored object (rule 3)."""
        t = self.memos.get(table)
        if t is None:
            t = self.memos[table] = {}
        hit = t.get(key)
        if hit is not None and hit[0] is stored:
            return hit[1]
        if len(t) >= MAX_MEMO:
            t.clear()
        v = decode(stored)
        t[key] = (stored, v)
        return v

    def note_reduce_only(self, market: int, owner: bytes) -> None:
        """`owner` gets a resting reduce-only order on `market` (rule 5)."""
        held = self.reduce_only_holders
        if held is not None:
            held.setdefault(market, {})[owner] = None
            self.reduce_only_noted += 1

    def release(self) -> None:
        """Free the books now (their orders are linked in cycles: node/gc_tuning.py)."""
        self.books.release()


def derived_of(view) -> Derived:
    """The Derived of `view`'s root overlay (created on first use). A view that is not an
    overlay (a committed store read by the RPC) gets a throwaway one."""
    if type(view) is not Overlay:
        if not isinstance(view, Overlay):
            return Derived()
    root = view._root or view  # (Overlay.root, without the property call)
    d = root.derived
    if d is None:
        d = root.derived = Derived()
    return d


def param_of(view, name: str, decode):
    """`derived_of(view).param(name, decode, view)` in one call: the parameter accessors
    (state.markets, state.lending_pools, ...) run on every order."""
    d = (view._root or view).derived if type(view) is Overlay else None  # (derived_of, inline)
    if d is None:
        d = derived_of(view)
    v = d.params.get(name)
    if v is None:
        v = d.params[name] = decode(view)
    return v


def load_memo(view, key: bytes, table: str, decode):
    """`decode(view.get(key))`, or None if the key is absent, reusing an earlier decode of the
    very same stored bytes (rule 3): for hot, immutable values read far more often than
    written (marks, oracle prices)."""
    raw = view.get(key)
    if raw is None:
        return None
    d = (view._root or view).derived if type(view) is Overlay else None  # (derived_of, inline)
    if d is None:
        d = derived_of(view)
    t = d.memos.get(table)
    hit = None if t is None else t.get(key)  # (Derived.memo, inline: the hit path)
    if hit is not None and hit[0] is raw:
        return hit[1]
    return d.memo(table, key, raw, decode)


class DerivedCache:
    """Derived state carried from one `apply_block` to the next (see state.machine).

    `app_hash` names the state `derived` equals; `apply_block` uses it only when the block it
    applies builds on exactly that app hash, and clears the tag while it runs, so a block that
    fails half-way can never leave a cache that looks valid."""

    __slots__ = ("app_hash", "derived")

    def __init__(self) -> None:
        self.app_hash: bytes | None = None
        self.derived: Derived = Derived()

    def holds(self, app_hash: bytes) -> bool:
        return self.app_hash is not None and self.app_hash == app_hash
