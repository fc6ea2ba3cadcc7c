"""The key-value view the state machine reads and writes, and its two in-process layers.

`KVView` is the whole contract between state/ and storage: `get` and `iterate` over bytes
keys in ascending byte order. The node backs it with LevelDB (node/store.py); tests back it
with `MemoryKV`. `Overlay` buffers writes over any view: a block runs in one overlay, each
tx in a child overlay that is merged on success and dropped on rejection (DESIGN.md §5.3).
Iteration always merges in sorted key order, never in dict or hash order.
"""

from typing import Iterator, Protocol

_DELETED = None


class KVView(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    def iterate(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs whose key starts with prefix, ascending by key."""
        ...


class MemoryKV:
    """A dict-backed store: the reference backend for tests and replays."""

    def __init__(self, data: dict[bytes, bytes] | None = None):
        self.data: dict[bytes, bytes] = dict(data or {})

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def iterate(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        for k in sorted(k for k in self.data if k.startswith(prefix)):
            yield k, self.data[k]

    def apply(self, writes: list[tuple[bytes, bytes | None]]) -> None:
        """Apply a write set (value None deletes)."""
        for k, v in writes:
            if v is None:
                self.data.pop(k, None)
            else:
                self.data[k] = v


class Overlay:
    """Buffered writes over a parent view; `commit()` pushes them into a parent Overlay."""

    __slots__ = ("parent", "writes")

    def __init__(self, parent: KVView):
        self.parent = parent
        self.writes: dict[bytes, bytes | None] = {}

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
