"""A temporary LevelDB-backed state (a KVView with `apply`), for replays that must not hold
the whole state in memory (`perpchain export` below the tip, node/export.py).

It lives in a fresh directory beside the node's data directory (not in /tmp, which may be
memory-backed) and is deleted on `close`. Reads go through node/store.py's `StateView` with
a small cache, so Python holds at most SCRATCH_CACHE_ENTRIES values; LevelDB's own memory is
bounded by its block cache and memtable (node/store.py's defaults).
"""

import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import plyvel

from node.store import BLOCK_CACHE_MIB, P_STATE, WRITE_BUFFER_MIB, StateView

SCRATCH_CACHE_ENTRIES = 10_000


class ScratchKV:
    """A state in a temporary LevelDB under `parent` (deleted by `close`)."""

    def __init__(self, parent: Path):
        self.path = Path(tempfile.mkdtemp(prefix=".scratch-state-", dir=parent))
        self.db = plyvel.DB(str(self.path), create_if_missing=True,
                            lru_cache_size=BLOCK_CACHE_MIB << 20,
                            write_buffer_size=WRITE_BUFFER_MIB << 20)
        self.view = StateView(self.db, SCRATCH_CACHE_ENTRIES)

    def get(self, key: bytes) -> bytes | None:
        return self.view.get(key)

    def iterate(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        return self.view.iterate(prefix)

    def apply(self, writes) -> None:
        """Apply a write set (value None deletes), as state.kv.MemoryKV.apply."""
        with self.db.write_batch(transaction=True) as wb:
            for k, v in writes:
                if v is None:
                    wb.delete(P_STATE + k)
                else:
                    wb.put(P_STATE + k, v)
        self.view.note_writes(writes)

    def close(self) -> None:
        self.db.close()
        shutil.rmtree(self.path, ignore_errors=True)
