"""`perpchain export`: the full state at a height as canonical JSON lines, with a digest.

    {"app_hash":"<hex>","chain_id":"...","format":"perpchain-state/1","height":H,
     "state_digest":"<hex>"|null}                                   the header line
    {"key":"<hex>","raw":"<hex>","value":<decoded>}                  one line per key,
                                                                     ascending by key bytes
    {"digest":"<hex>","keys":N}                                      the last line
Each line is `json.dumps(obj, sort_keys=True, separators=(",", ":"))` + "\n" (ASCII only);
`raw` is the stored value's bytes; `value` is the same value decoded from canonical msgpack
(state/codec.py), byte strings as "0x<hex>" (node/state_diff.py). `digest` is the sha256 of
every line before it (bytes, newlines included). `state_digest` is the chain's full-state
digest (state/state_digest.py) recomputed from these pairs, when the chain keeps one (null
otherwise): at a digest height, sha256(FOLD_TAG || state_digest) equals `app_hash`, which is
what lets a new node start from this file (node/snapshot.py). The file depends only on the
state, so every honest node writes the same bytes for the same height.

The export streams: it holds one key's line at a time, never the state. It reads the
pairs twice, from one consistent view: a first pass computes the full-state digest the
header carries (skipped when the chain keeps none) and counts the keys, a second writes the
lines. The store keeps the state of its tip only: an export at the tip reads a LevelDB
snapshot of it; one below the tip replays the stored blocks from genesis up to that height
(checking every app hash on the way, as `perpchain replay` does) into a temporary LevelDB
beside the data directory (node/scratch_kv.py), deleted afterwards. Memory is then bounded
by the genesis file (which the replay loads, as the node does), the order books carried
from block to block, and LevelDB's caches, not by the state's size.
"""

import hashlib
import json
import sys
from contextlib import contextmanager
from typing import IO, Iterable, Iterator

from node.genesis import Genesis
from node.state_diff import decode_value
from node.store import P_STATE, Store
from state import state_digest as SD

FORMAT = "perpchain-state/1"


class ExportError(Exception):
    """The height cannot be exported (the message says why)."""


def line(obj) -> bytes:
    return (json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n").encode("ascii")


class SnapshotPairs:
    """The state pairs of a LevelDB snapshot under `prefix`, ascending; iterable any number
    of times (each pass a new iterator over the same snapshot). `close` releases it."""

    def __init__(self, db, prefix: bytes = P_STATE):
        self._snap, self._prefix = db.snapshot(), prefix

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        n = len(self._prefix)
        for k, v in self._snap.iterator(prefix=self._prefix):
            yield k[n:], v

    def get(self, key: bytes) -> bytes | None:
        return self._snap.get(self._prefix + key)

    def close(self) -> None:
        self._snap.close()


@contextmanager
def exported_state(store: Store, genesis: Genesis, height: int,
                   progress: bool | None) -> Iterator[tuple[SnapshotPairs, bytes]]:
    """(the state's pairs at `height`, re-iterable and ascending, its app hash); the pairs
    are valid inside the `with` only (a replayed state is deleted after it)."""
    from node.replay import replay_to
    from node.scratch_kv import ScratchKV

    tip = store.tip()
    if not 0 <= height <= tip.height:
        raise ExportError(f"height {height} is not stored: this node's heights are 0.."
                          f"{tip.height}")
    if height == tip.height:
        pairs = SnapshotPairs(store.db)
        try:
            yield pairs, tip.app_hash
        finally:
            pairs.close()
        return
    base = store.base_height()
    if base > 1:
        raise ExportError(f"height {height} is below the tip {tip.height} and this store has "
                          f"no blocks below {base} (pruned or started from a snapshot): it "
                          f"can export its tip only")
    kv = ScratchKV(store.path.parent)
    try:
        rep, _, _ = replay_to(store, genesis, height, progress, kv=kv, track_writes=False)
        if not rep.ok:
            raise ExportError(f"the replay to height {height} failed: {rep.error}")
        pairs = SnapshotPairs(kv.db)
        try:
            yield pairs, store.app_hash_at(height)
        finally:
            pairs.close()
    finally:
        kv.close()


def _bar(progress: bool | None, total: int, what: str):
    if not (progress if progress is not None else sys.stderr.isatty()):
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit="key", desc=what, file=sys.stderr)


def _first_pass(pairs, progress: bool | None) -> tuple[int, str | None]:
    """(the number of keys, the full-state digest hex or None when the chain keeps none)."""
    keeps = pairs.get(SD.K_INTERVAL) is not None if hasattr(pairs, "get") \
        else any(k == SD.K_INTERVAL for k, _ in pairs)
    if not keeps:
        return sum(1 for _ in pairs), None
    n = 0
    bar = _bar(progress, 0, "state digest")

    def counted():
        nonlocal n
        for kv in pairs:
            n += 1
            if bar is not None and n % 1000 == 0:
                bar.update(1000)
            yield kv

    try:
        lanes = SD.of_pairs(counted())
    finally:
        if bar is not None:
            bar.close()
    return n, SD.digest(lanes).hex()


def write_export(pairs: Iterable[tuple[bytes, bytes]], out: IO[bytes], chain_id: str,
                 height: int, app_hash: bytes, progress: bool | None = None) -> tuple[int, str]:
    """Write the export of `pairs` (ascending, iterated twice: a list, or SnapshotPairs);
    returns (number of keys, digest hex)."""
    n, digest = _first_pass(pairs, progress)
    h = hashlib.sha256()
    bar = _bar(progress, n, "export")

    def put(obj) -> None:
        b = line(obj)
        h.update(b)
        out.write(b)

    put({"format": FORMAT, "chain_id": chain_id, "height": height, "app_hash": app_hash.hex(),
         "state_digest": digest})
    written = 0
    for k, v in pairs:
        put({"key": k.hex(), "raw": v.hex(), "value": decode_value(v)})
        written += 1
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if written != n:
        raise ExportError(f"the state changed during the export ({n} keys, then {written})")
    out.write(line({"digest": h.hexdigest(), "keys": n}))
    return n, h.hexdigest()
