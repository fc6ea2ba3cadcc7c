"""The key-value view the state machine reads and writes, and its two in-process layers.

`KVView` is the whole contract between state/ and storage: `get` and `iterate` over bytes
keys in ascending byte order. The node backs it with LevelDB (node/store.py); tests back it
with `MemoryKV`. `Overlay` buffers writes over any view: a block runs in one overlay, each
tx in a child overlay that is merged on success and dropped on rejection (DESIGN.md §5.3).
Iteration always merges in sorted key order, never in dict or hash order.

The root Overlay of a chain of overlays (the block's, or the mempool's check state) may carry
a `cache` dict: derived, in-memory structures (order books, decoded markets) that must always
equal what a rebuild from the KV data would give. `root_cache(view)` finds it. Whoever mutates
a cached structure inside a child overlay must undo that mutation when the child is dropped
(state/books.py journals book changes for exactly this).
"""

from typing import Iterator, Protocol

from sortedcontainers import SortedList

_DELETED = None


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
    """Buffered writes over a parent view; `commit()` pushes them into a parent Overlay."""

    __slots__ = ("parent", "writes", "cache")

    def __init__(self, parent: KVView):
        self.parent = parent
        self.writes: dict[bytes, bytes | None] = {}
        self.cache: dict | None = None

    def get(self, key: bytes) -> bytes | None:
        w = self.writes
        if key in w:
            return w[key]
        return self.parent.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self.writes[key] = value

    def delete(self, key: bytes) -> None:
        self.writes[key] = _DELETED

    def iterate(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        mine = sorted((k, v) for k, v in self.writes.items() if k.startswith(prefix))
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
        return Overlay(self)

    def commit(self) -> None:
        """Merge this overlay's writes into its parent (which must be an Overlay)."""
        parent = self.parent
        assert isinstance(parent, Overlay), "commit() needs an Overlay parent"
        parent.writes.update(self.writes)
        self.writes = {}

    def sorted_writes(self) -> list[tuple[bytes, bytes | None]]:
        """The write set in ascending key order: what the app hash covers."""
        return sorted(self.writes.items())


def root_cache(view: KVView) -> dict:
    """The derived-data cache of the root Overlay above `view` (created empty on first use).
    A view that is not an Overlay (a committed store, read by RPC) gets a throwaway dict."""
    if not isinstance(view, Overlay):
        return {}
    while isinstance(view.parent, Overlay):
        view = view.parent
    if view.cache is None:
        view.cache = {}
    return view.cache


def root_overlay(view: KVView) -> KVView:
    """The topmost Overlay above `view` (or `view` itself if it is not an Overlay)."""
    while isinstance(view, Overlay) and isinstance(view.parent, Overlay):
        view = view.parent
    return view
