"""The store's start-up check: refuse to run on damaged or rolled-back files.

Before a node (or `replay`) uses an existing store it is checked:
- every table's block checksums (a full scan, unless [store] verify_on_start = "tip"):
  a corrupt `.ldb` is found now, not on some later read; the damaged file is named;
- the chain tip: the last committed height's block, commit, results and app hash are all
  present and hash-consistent with the tip record and with the height before it, the
  validator sets of the next two heights are there, and nothing lies beyond the tip;
- COMMITTED_HEIGHT (node/store.py): the store must reach the height this node had
  committed, else LevelDB lost the end of its log and the node would silently roll back.
Any failure is a StoreDamaged naming the store and the file, and saying how to recover
(re-sync from peers, or restore a backup): never a silent rollback or fork.
"""

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import plyvel

from consensus.types import Block, Commit
from node.store import (P_BLOCK, Store, StoreDamaged, _h, is_empty_dir, read_marker,
                        recovery_hint)
from state.codec import decode


def open_verified(path: Path, full_scan: bool = True, **memory) -> Store:
    """Open the store at `path` and check it (see the module docstring); a new, empty
    store is only opened. `memory`: Store's cache sizes."""
    fresh = is_empty_dir(path)
    store = Store(path, **memory)
    if fresh:
        return store
    try:
        if full_scan:
            scan_checksums(store)
        check_tip(store)
    except BaseException:
        store.close()
        raise
    return store


def scan_checksums(store: Store) -> None:
    """Read every block of every table with checksum verification."""
    try:
        for _ in store.db.iterator(verify_checksums=True, fill_cache=False,
                                   include_value=False):
            pass
    except (plyvel.CorruptionError, plyvel.IOError) as e:
        files = damaged_tables(store.path)
        where = ", ".join(str(store.path / f) for f in files) if files else \
            f"a table file (*.ldb) in {store.path}"
        raise StoreDamaged(f"the store {store.path} is corrupt: {_msg(e)} in {where}. "
                           + recovery_hint(store.path)) from None


def _msg(e: Exception) -> str:
    a = e.args[0] if e.args else ""
    return a.decode(errors="replace") if isinstance(a, bytes) else str(a)


def damaged_tables(path: Path) -> list[str]:
    """The .ldb/.sst files of `path` whose blocks fail their checksums, each checked
    alone: hard-linked into a scratch directory, given a manifest by LevelDB's repair,
    then scanned. Only ever run after a scan failed (it reads every table again)."""
    bad = []
    for name in sorted(os.listdir(path)):
        if name.endswith((".ldb", ".sst")) and not _table_ok(Path(path) / name):
            bad.append(name)
    return bad


def _table_ok(table: Path) -> bool:
    scratch = Path(tempfile.mkdtemp(prefix=".check-", dir=table.parent.parent))
    try:
        try:
            os.link(table, scratch / table.name)
        except OSError:
            shutil.copyfile(table, scratch / table.name)
        plyvel.repair_db(str(scratch))
        log = (scratch / "LOG").read_text(errors="replace") if (scratch / "LOG").exists() else ""
        if "ignoring" in log or "corruption" in log.lower() or "error" in log.lower():
            return False
        db = plyvel.DB(str(scratch), paranoid_checks=True)
        try:
            for _ in db.iterator(verify_checksums=True, fill_cache=False):
                pass
        finally:
            db.close()
        return True
    except plyvel.Error:
        return False
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _damaged(store: Store, what: str) -> StoreDamaged:
    return StoreDamaged(f"the store {store.path} is inconsistent: {what}. "
                        + recovery_hint(store.path))


def check_tip(store: Store) -> None:
    """The tip record and the last committed height agree, and nothing was lost."""
    if store.genesis_app_hash() is None:
        raise _damaged(store, "it has no genesis record (m/genesis)")
    tip = store.tip()
    if tip is None:
        raise _damaged(store, "it has no chain tip record (m/tip)")
    h = tip.height
    marker = read_marker(store.path)
    if marker is not None and marker > h:
        raise _damaged(store, f"it ends at height {h} but this node had committed height "
                       f"{marker} (recorded in {store.path}/COMMITTED_HEIGHT): LevelDB lost "
                       f"the last {marker - h} heights, e.g. a truncated or damaged *.log file")
    if store.db.get(P_BLOCK + _h(h + 1)) is not None:
        raise _damaged(store, f"it holds a block at height {h + 1}, past its tip {h}")
    for v in (h + 1, h + 2):
        if store.valset_bytes(v) is None:
            raise _damaged(store, f"the validator set of height {v} is missing")
    if h > 0:
        _check_height(store, tip)


def _check_height(store: Store, tip) -> None:
    h = tip.height
    raw = {"block": store.block_bytes(h), "commit": store.commit_bytes(h),
           "results": store.results_bytes(h), "app hash": store.app_hash_at(h),
           "previous app hash": store.app_hash_at(h - 1)}
    for name, v in raw.items():
        if v is None:
            raise _damaged(store, f"the {name} of height {h} is missing")
    try:
        block = Block.decode(raw["block"])
        commit = Commit.from_wire(decode(raw["commit"]))
    except (ValueError, TypeError) as e:
        raise _damaged(store, f"the block or commit of height {h} does not decode: {e}") from None
    checks = [
        (block.header.height == h and block.hash() == tip.block_hash,
         f"the block stored at height {h} is not the tip's block"),
        (commit.height == h and commit.block_hash == tip.block_hash,
         f"the commit stored at height {h} is not for the tip's block"),
        (hashlib.sha256(raw["results"]).digest() == tip.results_hash,
         f"the results of height {h} do not match the tip's results hash"),
        (raw["app hash"] == tip.app_hash, f"the app hash of height {h} does not match the tip"),
        (block.header.app_hash == raw["previous app hash"],
         f"block {h}'s header names an app hash other than the one stored for height {h - 1}"),
    ]
    for ok, what in checks:
        if not ok:
            raise _damaged(store, what)
