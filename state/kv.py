"""The key-value view the state machine reads and writes, and its two in-process layers.

`KVView` is the whole contract between state/ and storage: `get` and `iterate` over bytes
keys in ascending byte order. The node backs it with LevelDB (node/store.py); tests back it
with `MemoryKV`. `Overlay` buffers writes over any view: a block runs in one overlay, each
tx in a child overlay that is merged on success and dropped on rejection.
Iteration always merges in sorted key order, never in dict or hash order.

Inside an Overlay a written value is bytes, None (deleted), or a decoded value (an int or a
list) that stands for its canonical encoding (`state.codec.encode(value)`): hot records
(balances, the order counter, nonce lists, clearing records) stay decoded from one tx to the
next instead of being encoded and decoded each time, and are encoded once, when the block's
write set is taken. A stored list is never mutated afterwards (its writer builds a new one).
Everything that hands out values (`get`, `iterate`, `sorted_writes`) gives bytes; the owners
of those records read them with `get_stored`, which gives the value as stored.

The root Overlay of a chain of overlays (the block's, or the mempool's check state) may carry
a `derived` object (state.derived): in-memory structures (order books, decoded markets) that
always equal what a rebuild from the KV data would give.
"""

from itertools import islice
from typing import Iterator, Protocol

from sortedcontainers import SortedList

from state.codec import encode as _encode

_DELETED = None
_new = object.__new__
_MISSING = object()  # Overlay.get: "not written here" (None means deleted here)
# Below this many writes an overlay filters its write set on each `iterate`; above, it keeps a
# sorted index (a block's overlay holds tens of thousands of writes, end-block iterates often).
_INDEX_MIN = 512


class KVView(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    def iterate(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs whose key starts with prefix, ascending by key."""
        ...


class MemoryKV:
    """A dict-backed store: the reference backend for tests and replays. A sorted key list
    beside the dict makes prefix iteration O(log n + matches), as LevelDB's."""

    def __init__(self, data: dict[bytes, bytes] | None = None):
        self.data: dict[bytes, bytes] = dict(data or {})
        self._keys = SortedList(self.data)

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def iterate(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        # Snapshot the matching keys first: the caller may apply writes while iterating.
        found = []
        for k in self._keys.irange(minimum=prefix):
            if not k.startswith(prefix):
                break
            found.append(k)
        for k in found:
            v = self.data.get(k)
            if v is not None:
                yield k, v

    def apply(self, writes: list[tuple[bytes, bytes | None]]) -> None:
        """Apply a write set (value None deletes)."""
        data, keys = self.data, self._keys
        for k, v in writes:
            if v is None:
                if data.pop(k, None) is not None:
                    keys.remove(k)
            else:
                if k not in data:
                    keys.add(k)
                data[k] = v


class Overlay:
    """Buffered writes over a parent view; `commit()` pushes them into a parent Overlay.

    `root` is the topmost Overlay of the chain (itself for a root), found once at creation so
    that finding the root's `derived` state is O(1). No overlay refers to itself (its ancestors
    are kept without it, a root stores no root): reference counting alone frees a dropped overlay and its writes,
    without waiting for the cycle collector (node/gc_tuning.py runs that rarely).
    Keys are only ever added to a `writes` dict (a delete stores None), never removed:
    `iterate` relies on it to keep a sorted index of a large write set up to date from the
    keys added since it was built (dicts keep insertion order).
    `put` stores bytes or a decoded value (see above); `delete` stores None."""

    __slots__ = ("parent", "writes", "derived", "_root", "_up", "_base", "_index", "_index_of",
                 "_indexed")

    def __init__(self, parent: KVView):
        self.parent = parent
        self.writes: dict[bytes, bytes | None] = {}
        self.derived = None  # state.derived.Derived, on a root
        if type(parent) is Overlay:
            # The ancestors, innermost first, the root among them, and the store under them.
            self._up = (parent,) + parent._up
            self._base = parent._base
            self._root = parent.root
        else:
            self._up = ()
            self._base = parent
            self._root = None  # this overlay is the root

    @property
    def root(self) -> "Overlay":
        """The topmost Overlay of the chain (this one, for a root)."""
        r = self._root
        return self if r is None else r

    def get(self, key: bytes) -> bytes | None:
        v = self.writes.get(key, _MISSING)
        if v is _MISSING:
            for o in self._up:
                v = o.writes.get(key, _MISSING)
                if v is not _MISSING:
                    break
            else:
                return self._base.get(key)
        return v if v is None or type(v) is bytes else _encode(v)

    def get_stored(self, key: bytes) -> bytes | int | list | None:
        """As `get`, but a decoded value is returned as stored (see the module docstring)."""
        v = self.writes.get(key, _MISSING)
        if v is not _MISSING:
            return v
        for o in self._up:
            v = o.writes.get(key, _MISSING)
            if v is not _MISSING:
                return v
        return self._base.get(key)

    def put(self, key: bytes, value: "bytes | int | list") -> None:
        self.writes[key] = value

    def delete(self, key: bytes) -> None:
        self.writes[key] = _DELETED

    def _sorted_keys(self):
        """This overlay's written keys as a sorted index, kept up to date from the keys added
        since it was built; None while the write set is small (callers filter it instead)."""
        w = self.writes
        if len(w) < _INDEX_MIN:
            return None
        idx = getattr(self, "_index", None)
        if idx is None or self._index_of is not w or len(w) < self._indexed:
            idx = self._index = SortedList(w)
            self._index_of = w
        elif len(w) > self._indexed:
            idx.update(islice(w, self._indexed, None))
        self._indexed = len(w)
        return idx

    def written_keys(self, prefix: bytes) -> list[bytes]:
        """The keys under `prefix` this overlay wrote (deletes included), ascending."""
        idx = self._sorted_keys()
        if idx is None:
            return sorted(k for k in self.writes if k.startswith(prefix))
        out = []
        for k in idx.irange(minimum=prefix):
            if not k.startswith(prefix):
                break
            out.append(k)
        return out

    def _mine(self, prefix: bytes) -> list[tuple[bytes, bytes | None]]:
        """This overlay's writes under `prefix`, ascending by key."""
        w = self.writes
        return [(k, v if (v := w[k]) is None or type(v) is bytes else _encode(v))
                for k in self.written_keys(prefix)]

    def iterate(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        mine = self._mine(prefix)
        base = self.parent.iterate(prefix)
        i = 0
        for bk, bv in base:
            while i < len(mine) and mine[i][0] < bk:
                if mine[i][1] is not None:
                    yield mine[i]
                i += 1
            if i < len(mine) and mine[i][0] == bk:
                if mine[i][1] is not None:
                    yield mine[i]
                i += 1
            else:
                yield bk, bv
        for k, v in mine[i:]:
            if v is not None:
                yield k, v

    def child(self) -> "Overlay":
        """`Overlay(self)`, with the fields set in place (one per tx and sub-transaction)."""
        c = _new(Overlay)
        c.parent = self
        c.writes = {}
        c.derived = None
        c._up = (self,) + self._up
        c._base = self._base
        r = self._root
        c._root = self if r is None else r
        return c

    def commit(self) -> None:
        """Merge this overlay's writes into its parent (which must be an Overlay)."""
        parent = self.parent
        assert isinstance(parent, Overlay), "commit() needs an Overlay parent"
        parent.writes.update(self.writes)
        self.writes = {}

    def sorted_writes(self) -> list[tuple[bytes, bytes | None]]:
        """The write set in ascending key order, values as bytes: what the app hash covers."""
        w = self.writes
        idx = getattr(self, "_index", None)
        if idx is not None and self._index_of is w and len(w) >= self._indexed:
            # The sorted index `iterate` keeps (a block's end-block steps build it).
            if len(w) > self._indexed:
                idx.update(islice(w, self._indexed, None))
                self._indexed = len(w)
            keys = idx
        else:
            # Sorting the (unique) keys alone is faster than sorting the (key, value) pairs.
            keys = sorted(w)
        return [(k, v if (v := w[k]) is None or type(v) is bytes else _encode(v))
                for k in keys]


def root_overlay(view: KVView) -> KVView:
    """The topmost Overlay above `view` (or `view` itself if it is not an Overlay)."""
    if type(view) is Overlay:
        return view.root
    while isinstance(view, Overlay) and isinstance(view.parent, Overlay):
        view = view.parent
    return view
