"""The node's LevelDB store: state, blocks, commits, results, tx index and chain tip.

One LevelDB holds everything, under key prefixes, so that a height is committed by ONE
`write_batch(transaction=True, sync=True)`: block, commit, results, tx index, state writes
and the new tip land together or not at all. A node killed at any moment restarts at the
last committed height with no half-written block.

    s/<state key>        state (read by the state machine through `StateView`)
    b/<height:8>         block bytes          c/<height:8>  its commit
    r/<height:8>         tx results           t/<tx hash>   see below
    a/<height:8>         app hash after executing that height
    m/tip                [height, block_hash, time_ms, app_hash, results_hash]
    m/genesis            [app_hash_0, chain_id]
    m/base               the lowest height whose block is kept (absent: 1); blocks below it
                         were pruned ([store] keep_blocks) or never held (a node started
                         from a snapshot at base - 1... see node/snapshot.py)
    v/<height:8>         the validator set with proposer priorities for that height
    f/, F/, m/fills      the read model's fill history (node/fill_log.py): not state, written
                         after each commit in its own batch
    w/bookseq/<id:8>     the last websocket book sequence per market (node/book_seq.py)

The tx index entry is [height, index, tx, result offset, result length]: the tx's own
bytes (msgpack-encoded, as in its block: CometBFT's indexer also keeps each tx) and where
its result lies in the results bytes, so a `tx` lookup never reads or decodes its block
(entries written before this format are [height, index] and are found by skipping).

Opening never creates a store over damaged files: a store is created only in an empty or
absent directory; an existing one is opened without create_if_missing, with LevelDB's
paranoid checks, and every failure is a typed StoreError naming the directory or file
(node/store_check.py verifies the tip and the checksums before the node starts). Beside
the tables, the file COMMITTED_HEIGHT holds the last height this node committed (written
after each commit, not fsynced: it can lag the store but never lead it), so a store that
lost committed heights (a truncated LevelDB log) is refused rather than silently rolled back.
"""

import errno
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import msgpack
import plyvel

P_STATE = b"s/"
P_BLOCK = b"b/"
P_COMMIT = b"c/"
P_RESULTS = b"r/"
P_TXINDEX = b"t/"
P_APPHASH = b"a/"
K_TIP = b"m/tip"
K_GENESIS = b"m/genesis"
K_BASE = b"m/base"
P_VALSET = b"v/"


K_MARKER_FILE = "COMMITTED_HEIGHT"


def recovery_hint(path) -> str:
    """What an operator can do about a damaged store (docs/OPERATIONS.md, "Damaged store")."""
    return (f"Recover by re-syncing from peers: stop the node, move {path} aside (e.g. "
            f"`mv {path} {path}.damaged`) and start it again; or restore {path} from a "
            "backup taken while the node was stopped.")


class StoreError(Exception):
    """The store cannot be opened or used; the message names the directory or file."""


class StoreLocked(StoreError):
    """Another process (a running node) holds the database."""


class StoreUnwritable(StoreError):
    """The data directory is read-only, not ours, or the disk is full."""


class StoreDamaged(StoreError):
    """Files of the store are missing, corrupt or inconsistent: refuse to run on them."""


def _h(height: int) -> bytes:
    return height.to_bytes(8, "big")


def _enc(o) -> bytes:
    return msgpack.packb(o, use_bin_type=True)


def _dec(b: bytes):
    return msgpack.unpackb(b, raw=False)


@dataclass(frozen=True)
class Tip:
    height: int
    block_hash: bytes
    time_ms: int
    app_hash: bytes
    results_hash: bytes


# Memory bounds (docs/OPERATIONS.md "Memory"); the first three are [store] settings.
STATE_CACHE_ENTRIES = 8_192       # state keys cached in Python (about 250 bytes each)
BLOCK_CACHE_MIB = 1               # LevelDB's cache of table blocks read
WRITE_BUFFER_MIB = 2              # LevelDB's memtable: writes gathered before a table file
PRUNE_BATCH = 1_000   # heights pruned per commit at most
_MISSING = object()   # not cached (a cached None is an absent key)


class StateView:
    """The state machine's read view of the committed state (state.kv.KVView).

    Reads go through a write-through cache of hot keys (absent keys read included): every
    state write passes through `Store.commit_block`, which updates it, so it is always
    coherent with LevelDB. A deleted key leaves the cache (an order's keys are deleted when
    it closes and are not read again).

    The cache is bounded by recency, in two generations of `max_entries / 2` keys each
    ([store] state_cache_entries): keys read or written go into the young one; when it is
    full it becomes the old one and the previous old one is dropped; a key found in the old
    one moves back to the young one. So the keys used in the last few blocks stay (what a
    block reads is a few thousand keys at most), and a key not used since
    `max_entries / 2` others were is forgotten: absent keys looked up once (a cancel by an
    unknown client id) and the keys of idle accounts do not pile up. Reads cost one dict
    lookup for a young key, as with a single dict; the bound is never exceeded."""

    __slots__ = ("_get", "_db", "_young", "_old", "max_entries")

    def __init__(self, db, max_entries: int = STATE_CACHE_ENTRIES):
        self._db = db
        self._get = db.get
        self._young: dict[bytes, bytes | None] = {}
        self._old: dict[bytes, bytes | None] = {}
        self.max_entries = max_entries

    def __len__(self) -> int:
        """Keys cached now (both generations)."""
        return len(self._young) + len(self._old)

    def __contains__(self, key: bytes) -> bool:
        """Whether `key` is cached (read or written recently), not whether it is in the state."""
        return key in self._young or key in self._old

    def get(self, key: bytes) -> bytes | None:
        v = self._young.get(key, _MISSING)
        if v is not _MISSING:
            return v
        v = self._old.pop(key, _MISSING)
        if v is _MISSING:
            v = self._get(P_STATE + key)
        self._put(key, v)
        return v

    def _put(self, key: bytes, value: bytes | None) -> None:
        """Cache `key` in the young generation, which turns old first if it is full."""
        young = self._young
        if len(young) >= max(1, self.max_entries // 2):
            self._old = young
            young = self._young = {}
        young[key] = value

    def note_writes(self, writes) -> None:
        pop_old, pop_young, put = self._old.pop, self._young.pop, self._put
        for k, v in writes:
            pop_old(k, None)
            if v is None:
                pop_young(k, None)
            else:
                put(k, v)

    def iterate(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        n = len(P_STATE)
        for k, v in self._db.iterator(prefix=P_STATE + prefix):
            yield k[n:], v


def is_empty_dir(path: Path) -> bool:
    """Absent, or a directory with no entries: the only places a store may be created."""
    try:
        return not any(Path(path).iterdir())
    except FileNotFoundError:
        return True


def open_error(path: Path, e: Exception) -> StoreError:
    """The typed error for a failed plyvel.DB(...) of an existing or new store."""
    msg = e.args[0].decode(errors="replace") if e.args and isinstance(e.args[0], bytes) \
        else str(e)
    low = msg.lower()
    if isinstance(e, plyvel.CorruptionError):
        return StoreDamaged(f"the store {path} is corrupt ({msg}; {damaged_file_hint(path)}). "
                            + recovery_hint(path))
    if "create_if_missing is false" in low or "does not exist" in low:
        return StoreDamaged(f"the store {path} has lost its {path}/CURRENT file (LevelDB "
                            "cannot find its tables without it). " + recovery_hint(path))
    if "permission denied" in low or "read-only file system" in low:
        return StoreUnwritable(f"cannot write the store {path}: {msg}. The data directory "
                               "must be writable by the user running the node.")
    if "no space left" in low:
        return StoreUnwritable(f"cannot write the store {path}: the disk is full. Free "
                               "space and start the node again.")
    if "lock" in low and ("temporarily unavailable" in low or "already held" in low):
        return StoreLocked(f"{path} is in use by another process (is the node running? "
                           "stop it first)")
    return StoreError(f"cannot open the store {path}: {msg}")


def write_error(path: Path, height: int, e: Exception) -> StoreError:
    """The typed error for a failed commit of `height` (the batch did not land)."""
    msg = e.args[0].decode(errors="replace") if e.args and isinstance(e.args[0], bytes) \
        else str(e)
    if "no space left" in msg.lower():
        return StoreUnwritable(f"cannot commit height {height} to the store {path}: the disk "
                               "is full. Free space and start the node again (the height "
                               "was not committed; nothing is lost).")
    if isinstance(e, plyvel.CorruptionError):
        return StoreDamaged(f"the store {path} is corrupt ({msg}). " + recovery_hint(path))
    return StoreUnwritable(f"cannot commit height {height} to the store {path}: {msg}")


def damaged_file_hint(path: Path) -> str:
    """The file LevelDB's own LOG says it dropped while recovering, if it says."""
    try:
        lines = (Path(path) / "LOG").read_text(errors="replace").splitlines()
    except OSError:
        return "see its LOG file"
    for line in reversed(lines[-50:]):
        if "dropping" in line or "corruption" in line.lower():
            return "LevelDB's LOG says: " + line.split(" ", 2)[-1]
    return "see its LOG file"


def _write_marker(fd: int, height: int) -> None:
    os.pwrite(fd, b"%020d\n" % height, 0)


def read_marker(path: Path) -> int | None:
    """The height in COMMITTED_HEIGHT, None if absent (a store from before it existed)."""
    try:
        raw = (Path(path) / K_MARKER_FILE).read_bytes().strip()
    except FileNotFoundError:
        return None
    if not raw:
        return None          # created, but the node stopped before its first write
    if not raw.isdigit() or len(raw) > 20:
        raise StoreDamaged(f"{Path(path) / K_MARKER_FILE} is not a height ({raw[:40]!r}). "
                           + recovery_hint(path))
    return int(raw)


class Store:
    def __init__(self, path: Path, block_cache_mib: int = BLOCK_CACHE_MIB,
                 write_buffer_mib: int = WRITE_BUFFER_MIB):
        """Open the store at `path`; create it only if the directory is absent or empty.
        LevelDB's block cache and memtable take up to `block_cache_mib` and (twice, while
        one is written out) `write_buffer_mib` of memory."""
        self.path = Path(path)
        create = is_empty_dir(self.path)
        try:
            if create:
                self.path.mkdir(parents=True, exist_ok=True)
            # A bloom filter spares reads of absent keys (most nonce and balance misses)
            # from touching every level; the block cache keeps hot state in memory.
            self.db = plyvel.DB(str(path), create_if_missing=create, paranoid_checks=True,
                                bloom_filter_bits=10, lru_cache_size=block_cache_mib << 20,
                                write_buffer_size=write_buffer_mib << 20)
        except (plyvel.Error, OSError) as e:
            raise open_error(self.path, e) from None
        try:
            self._marker_fd = os.open(self.path / K_MARKER_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            self.db.close()
            raise StoreUnwritable(f"cannot write {self.path / K_MARKER_FILE}: "
                                  f"{e.strerror}") from None
        self.state = StateView(self.db)
        self.keep_blocks = 0   # [store] keep_blocks: 0 keeps every block (see _prune)

    def close(self) -> None:
        self.db.close()
        os.close(self._marker_fd)

    # -- reads -------------------------------------------------------------------------
    def tip(self) -> Tip | None:
        raw = self.db.get(K_TIP)
        return None if raw is None else Tip(*_dec(raw))

    def base_height(self) -> int:
        """The lowest height whose block, commit and results this store keeps."""
        raw = self.db.get(K_BASE)
        return 1 if raw is None else _dec(raw)

    def genesis_app_hash(self) -> bytes | None:
        raw = self.db.get(K_GENESIS)
        return None if raw is None else _dec(raw)[0]

    # Blocks, commits and results are read once per query or peer and are large: they do
    # not go into LevelDB's block cache ([store] block_cache_mib), which keeps hot state.
    def block_bytes(self, height: int) -> bytes | None:
        return self.db.get(P_BLOCK + _h(height), fill_cache=False)

    def commit_bytes(self, height: int) -> bytes | None:
        return self.db.get(P_COMMIT + _h(height), fill_cache=False)

    def results_bytes(self, height: int) -> bytes | None:
        return self.db.get(P_RESULTS + _h(height), fill_cache=False)

    def app_hash_at(self, height: int) -> bytes | None:
        if height == 0:
            return self.genesis_app_hash()
        return self.db.get(P_APPHASH + _h(height))

    def tx_committed(self, tx_hash: bytes) -> bool:
        """Whether a committed block holds the tx (the tx index, kept when blocks are
        pruned). One LevelDB read, mostly answered by the tables' bloom filters: nothing per
        tx is kept in memory for it."""
        return self.db.get(P_TXINDEX + tx_hash, fill_cache=False) is not None

    def tx_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        raw = self.db.get(P_TXINDEX + tx_hash)
        return None if raw is None else tuple(_dec(raw)[:2])

    def tx_record(self, tx_hash: bytes) -> tuple[int, int, bytes, list] | None:
        """(height, index, tx bytes, result wire) of a committed tx, from the index: the
        entry and its block's results are read, never the block."""
        raw = self.db.get(P_TXINDEX + tx_hash)
        if raw is None:
            return None
        entry = _dec(raw)
        height, index = entry[0], entry[1]
        if height < self.base_height():
            return None       # its block was pruned ([store] keep_blocks)
        results = self.results_bytes(height)
        block = self.block_bytes(height) if len(entry) != 5 else b""
        if block is None or results is None:
            raise StoreDamaged(f"the store {self.path} indexes tx {tx_hash.hex()} at height "
                               f"{height}, whose block or results are missing. "
                               + recovery_hint(self.path))
        if len(entry) == 5:
            _, _, tx_enc, r_off, r_len = entry
            return height, index, _dec(tx_enc), _dec(results[r_off:r_off + r_len])
        return height, index, _nth(block, index, skip_first=1), _nth(results, index)

    # -- writes ------------------------------------------------------------------------
    def valset_bytes(self, height: int) -> bytes | None:
        return self.db.get(P_VALSET + _h(height))

    def commit_genesis(self, writes, app_hash: bytes, chain_id: str, time_ms: int,
                       valsets: dict[int, bytes]) -> None:
        with self.db.write_batch(transaction=True, sync=True) as wb:
            for h, v in valsets.items():
                wb.put(P_VALSET + _h(h), v)
            for k, v in writes:
                if v is not None:
                    wb.put(P_STATE + k, v)
            wb.put(K_GENESIS, _enc([app_hash, chain_id]))
            wb.put(K_TIP, _enc([0, b"", time_ms, app_hash, b""]))
        self.state.note_writes(writes)
        self._committed(0)

    def commit_snapshot(self, pairs, genesis_app_hash: bytes, chain_id: str, tip: Tip,
                        block: bytes, commit: bytes, results: bytes, prev_app_hash: bytes,
                        valsets: dict[int, bytes]) -> None:
        """Create the store at tip `tip.height` from a checked state snapshot (node/snapshot.py):
        the state, the tip's block, commit and results, the app hashes of the tip and the
        height before (its block names it), the validator sets, and base height = the tip."""
        h, hb = tip.height, _h(tip.height)
        with self.db.write_batch(transaction=True, sync=True) as wb:
            for k, v in pairs:
                wb.put(P_STATE + k, v)
            for vh, v in valsets.items():
                wb.put(P_VALSET + _h(vh), v)
            wb.put(K_GENESIS, _enc([genesis_app_hash, chain_id]))
            wb.put(P_BLOCK + hb, block)
            wb.put(P_COMMIT + hb, commit)
            wb.put(P_RESULTS + hb, results)
            wb.put(P_APPHASH + hb, tip.app_hash)
            wb.put(P_APPHASH + _h(h - 1), prev_app_hash)
            wb.put(K_BASE, _enc(h))
            wb.put(K_TIP, _enc([h, tip.block_hash, tip.time_ms, tip.app_hash, tip.results_hash]))
        self._committed(h)

    def _committed(self, height: int) -> None:
        try:
            _write_marker(self._marker_fd, height)
        except OSError as e:
            raise StoreUnwritable(f"cannot write {self.path / K_MARKER_FILE}: {e.strerror}"
                                  + (" (the disk is full)" if e.errno == errno.ENOSPC else "")
                                  ) from None

    def commit_block(self, height: int, block: bytes, commit: bytes, results: bytes,
                     tx_hashes: list[bytes], writes, tip: Tip,
                     valsets: dict[int, bytes] | None = None) -> None:
        """Everything about `height`, atomically and fsynced."""
        hb = _h(height)
        tx_spans, res_spans = element_spans(block, 1), element_spans(results, 0)
        try:
            self._write_height(height, hb, block, commit, results, tx_hashes, writes, tip,
                               valsets, tx_spans, res_spans)
        except plyvel.Error as e:
            raise write_error(self.path, height, e) from None
        self.state.note_writes(writes)
        self._committed(height)

    def _write_height(self, height, hb, block, commit, results, tx_hashes, writes, tip,
                      valsets, tx_spans, res_spans) -> None:
        with self.db.write_batch(transaction=True, sync=True) as wb:
            put = wb.put
            for h, v in (valsets or {}).items():
                put(P_VALSET + _h(h), v)
            for k, v in writes:
                if v is None:
                    wb.delete(P_STATE + k)
                else:
                    put(P_STATE + k, v)
            put(P_BLOCK + hb, block)
            put(P_COMMIT + hb, commit)
            put(P_RESULTS + hb, results)
            put(P_APPHASH + hb, tip.app_hash)
            seen = set()
            for i, th in enumerate(tx_hashes):
                # Index a tx's first inclusion only: a replayed copy (rejected for its
                # nonce) must not hide where the original landed.
                if th not in seen and self.db.get(P_TXINDEX + th) is None:
                    t_off, t_len = tx_spans[i]
                    put(P_TXINDEX + th, _enc([height, i, block[t_off:t_off + t_len],
                                              *res_spans[i]]))
                seen.add(th)
            put(K_TIP, _enc([tip.height, tip.block_hash, tip.time_ms, tip.app_hash,
                             tip.results_hash]))
            if self.keep_blocks:
                self._prune(wb, height)

    def _prune(self, wb, height: int) -> None:
        """Delete the blocks, commits, results and validator sets below
        height - keep_blocks + 1 (at most PRUNE_BATCH heights per commit, so turning pruning
        on for a long chain spreads the work), and raise the base height. App hashes (32
        bytes a height) and tx index entries are kept; `tx_record` forgets txs below the base."""
        base = self.base_height()
        new_base = min(height - self.keep_blocks + 1, base + PRUNE_BATCH)
        if new_base <= base:
            return
        for h in range(base, new_base):
            hb = _h(h)
            for prefix in (P_BLOCK, P_COMMIT, P_RESULTS, P_VALSET):
                wb.delete(prefix + hb)
        wb.put(K_BASE, _enc(new_base))


def _unpacker_at(data: bytes, skip_first: int) -> tuple[msgpack.Unpacker, int]:
    """An Unpacker positioned at the first element of the array in `data`: the top-level
    array (skip_first=0), or the array that follows `skip_first` elements of the top level
    (skip_first=1: a block's txs). Returns it and the array's length."""
    u = msgpack.Unpacker(raw=False, max_buffer_size=max(len(data), 1024 * 1024))
    u.feed(data)
    n = u.read_array_header()
    if skip_first:
        for _ in range(skip_first):
            u.skip()
        n = u.read_array_header()
    return u, n


def element_spans(data: bytes, skip_first: int) -> list[tuple[int, int]]:
    """(offset, length) of each element of the array found as in _unpacker_at; each slice
    is the element's own msgpack encoding."""
    u, n = _unpacker_at(data, skip_first)
    tell, skip = u.tell, u.skip
    out = []
    for _ in range(n):
        start = tell()
        skip()
        out.append((start, tell() - start))
    return out


def _nth(data: bytes, index: int, skip_first: int = 0):
    """Element `index` of the array found as in _unpacker_at (old index entries)."""
    u, _ = _unpacker_at(data, skip_first)
    for _ in range(index):
        u.skip()
    return u.unpack()
