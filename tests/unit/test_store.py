"""The store on real LevelDB files: the tx index, and damage that must stop a node.

Each damage test breaks the files as a disk or an operator would (delete CURRENT, flip a
byte of the .log, cut its tail, flip a byte of an .ldb) and checks that opening refuses
with a StoreDamaged naming the file and the recovery, never a silent rollback."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from consensus.types import Block, Commit, Header, data_hash
from node.store import (K_MARKER_FILE, P_RESULTS, P_TXINDEX, Store, StoreDamaged,
                        StoreLocked, StoreUnwritable, Tip, _enc, _h, element_spans)
from node.store_check import open_verified
from state.codec import encode

CHAIN = "store-test"


def _app_hash(h: int) -> bytes:
    return hashlib.sha256(b"app%d" % h).digest()


def build(path: Path, heights: int, txs_per_block: int = 5) -> dict[bytes, tuple]:
    """A store with `heights` consistent heights; returns tx hash -> (height, i, raw, result)."""
    s = Store(path)
    s.commit_genesis([(b"k", b"v")], _app_hash(0), CHAIN, 1000, {1: b"vs", 2: b"vs"})
    prev, out = b"", {}
    for h in range(1, heights + 1):
        txs = [os.urandom(50 + (i * 37) % 300) for i in range(txs_per_block)]
        hashes = [hashlib.sha256(t).digest() for t in txs]
        results = [[i % 3, f"log {h}/{i}", [["transfer", [["amount", str(i)]]]]]
                   for i in range(txs_per_block)]
        header = Header(CHAIN, h, 1000 + h, prev, b"", data_hash(txs, hashes), b"v" * 32,
                        _app_hash(h - 1), b"", b"", b"p" * 32)
        block = Block(header, tuple(txs), None, ())
        rbytes = encode(results)
        tip = Tip(h, block.hash(), 1000 + h, _app_hash(h), hashlib.sha256(rbytes).digest())
        s.commit_block(h, block.encode(), encode(Commit(h, 0, block.hash(), ()).to_wire()),
                       rbytes, hashes, [(b"s%d" % h, b"x" * 100)], tip, {h + 2: b"vs"})
        prev = block.hash()
        for i, th in enumerate(hashes):
            out[th] = (h, i, txs[i], results[i])
    s.close()
    return out


def test_tx_record_reads_the_tx_and_its_result_by_offset(tmp_path):
    txs = build(tmp_path / "db", 4, txs_per_block=40)
    s = Store(tmp_path / "db")
    try:
        for th, want in txs.items():
            assert s.tx_record(th) == want
        assert s.tx_record(b"\0" * 32) is None
        assert s.tx_location(next(iter(txs))) == next(iter(txs.values()))[:2]
    finally:
        s.close()


def test_tx_record_reads_entries_written_before_offsets_existed(tmp_path):
    txs = build(tmp_path / "db", 2, txs_per_block=20)
    s = Store(tmp_path / "db")
    try:
        for th, (h, i, _, _) in txs.items():
            s.db.put(P_TXINDEX + th, _enc([h, i]))       # the old two-field entry
        for th, want in txs.items():
            assert s.tx_record(th) == want
    finally:
        s.close()


def test_element_spans_slices_each_element():
    import msgpack
    items = [b"a" * n for n in (0, 1, 255, 256, 70_000)]
    data = msgpack.packb([["hdr"], items, None, []], use_bin_type=True)
    spans = element_spans(data, 1)
    assert [msgpack.unpackb(data[o:o + n]) for o, n in spans] == items


def test_a_healthy_store_opens_and_a_new_one_is_created_only_in_an_empty_dir(tmp_path):
    build(tmp_path / "db", 3)
    open_verified(tmp_path / "db").close()
    new = open_verified(tmp_path / "new")   # absent: created
    new.close()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "stray").write_text("x")
    with pytest.raises(StoreDamaged, match="CURRENT"):
        Store(tmp_path / "other")            # not empty: never created over


def test_deleted_current_is_refused_not_recreated(tmp_path):
    db = tmp_path / "db"
    build(db, 3)
    tables = sorted(os.listdir(db))
    (db / "CURRENT").unlink()
    with pytest.raises(StoreDamaged) as e:
        open_verified(db)
    assert f"{db}/CURRENT" in str(e.value) and "re-sync" in str(e.value)
    assert set(tables) - {"CURRENT"} <= set(os.listdir(db))    # nothing deleted


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def _one(db: Path, suffix: str) -> Path:
    [p] = [db / n for n in os.listdir(db) if n.endswith(suffix)]
    return p


def test_corrupt_log_record_is_refused_naming_the_log(tmp_path):
    db = tmp_path / "db"
    build(db, 6)
    log_file = _one(db, ".log")
    _flip(log_file, log_file.stat().st_size // 2)
    with pytest.raises(StoreDamaged) as e:
        open_verified(db)
    assert log_file.name in str(e.value) and "corrupt" in str(e.value)


def test_truncated_log_is_refused_as_a_rollback(tmp_path):
    db = tmp_path / "db"
    build(db, 6)
    log_file = _one(db, ".log")
    data = log_file.read_bytes()
    log_file.write_bytes(data[:len(data) * 2 // 3])       # the last heights' batches go
    with pytest.raises(StoreDamaged) as e:
        open_verified(db)
    msg = str(e.value)
    assert "had committed height 6" in msg and K_MARKER_FILE in msg and "lost" in msg


def test_corrupt_table_is_found_at_start_and_named(tmp_path):
    db = tmp_path / "db"
    build(db, 30, txs_per_block=50)
    s = Store(db)
    s.db.compact_range()        # everything into .ldb tables
    s.close()
    [table] = [db / n for n in sorted(os.listdir(db)) if n.endswith(".ldb")][:1]
    _flip(table, table.stat().st_size // 3)
    open_verified(db, full_scan=False).close()   # the tip alone may not touch the block
    with pytest.raises(StoreDamaged) as e:
        open_verified(db)
    assert str(table) in str(e.value) and "re-sync" in str(e.value)


@pytest.mark.parametrize("key", ["block", "commit", "results", "apphash", "valset"])
def test_missing_tip_records_are_refused(tmp_path, key):
    db = tmp_path / "db"
    build(db, 3)
    s = Store(db)
    prefix = {"block": b"b/", "commit": b"c/", "results": P_RESULTS, "apphash": b"a/",
              "valset": b"v/"}[key]
    s.db.delete(prefix + _h(4 if key == "valset" else 3))
    s.close()
    with pytest.raises(StoreDamaged, match="inconsistent"):
        open_verified(db)


def test_tampered_results_do_not_match_the_tip(tmp_path):
    db = tmp_path / "db"
    build(db, 3)
    s = Store(db)
    s.db.put(P_RESULTS + _h(3), encode([[0, "forged", []]]))
    s.close()
    with pytest.raises(StoreDamaged, match="results of height 3"):
        open_verified(db)


def test_locked_by_another_process(tmp_path):
    db = tmp_path / "db"
    build(db, 1)
    holder = subprocess.Popen([sys.executable, "-c", "import plyvel, sys, time; "
                               f"d = plyvel.DB({str(db)!r}); print('ok', flush=True); "
                               "time.sleep(30)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ok"
        with pytest.raises(StoreLocked, match="in use by another process"):
            Store(db)
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file modes")
def test_read_only_data_dir_is_not_called_in_use(tmp_path):
    db = tmp_path / "db"
    build(db, 1)
    (db / "LOCK").unlink()
    os.chmod(db, 0o500)
    try:
        with pytest.raises(StoreUnwritable) as e:
            Store(db)
        assert "in use" not in str(e.value) and str(db) in str(e.value)
    finally:
        os.chmod(db, 0o700)


@pytest.mark.parametrize("message, kind, words", [
    (b"IO error: /d/LOCK: Permission denied", StoreUnwritable, "writable"),
    (b"IO error: /d/LOCK: Read-only file system", StoreUnwritable, "writable"),
    (b"IO error: /d/000012.log: No space left on device", StoreUnwritable, "disk is full"),
    (b"IO error: lock /d/LOCK: Resource temporarily unavailable", StoreLocked, "in use"),
    (b"IO error: lock /d/LOCK: already held by process", StoreLocked, "in use"),
])
def test_open_errors_are_told_apart(message, kind, words):
    import plyvel
    from node.store import open_error
    err = open_error(Path("/d"), plyvel.IOError(message))
    assert type(err) is kind and words in str(err) and "/d" in str(err)


def test_the_state_cache_drops_deleted_keys_and_stays_within_its_bound(tmp_path):
    s = Store(tmp_path / "db")
    try:
        s.commit_genesis([(b"a%d" % i, b"v") for i in range(10)], _app_hash(0), CHAIN, 1000, {})
        view = s.state
        view.max_entries = 8
        assert view.get(b"a1") == b"v" and view.get(b"missing") is None   # cached, absent too
        assert b"a1" in view and b"missing" in view
        s.commit_block(1, encode([[], []]), b"", encode([]), [], [(b"a1", None), (b"a2", b"w")],
                       Tip(1, b"", 1001, _app_hash(1), b""))
        assert b"a1" not in view and b"a2" in view
        assert view.get(b"a2") == b"w"
        assert view.get(b"a1") is None                         # still coherent after the drop
        for i in range(30):
            view.get(b"a%d" % (i % 10))
            view.get(b"gone%d" % i)
            assert len(view) <= view.max_entries
    finally:
        s.close()


def test_the_state_cache_keeps_the_keys_in_use_and_forgets_the_others(tmp_path):
    s = Store(tmp_path / "db")
    try:
        s.commit_genesis([(b"hot", b"1")], _app_hash(0), CHAIN, 1000, {})
        view = s.state
        view.max_entries = 100
        reads = []
        view._get = lambda k: reads.append(k) or s.db.get(k)   # count the LevelDB reads
        for i in range(1000):                   # one hot key among many read once
            assert view.get(b"hot") == b"1"
            view.get(b"cold%d" % i)
            assert len(view) <= 100
        # "hot" (cached by the genesis write) was never read again; each cold key once
        assert b"s/hot" not in reads and len(reads) == 1000
        assert b"cold0" not in view and b"cold999" in view
        # a write to a key in the old generation replaces it there: no stale value is read
        view.get(b"k")
        for i in range(50):
            view.get(b"filler%d" % i)
        s.commit_block(1, encode([[], []]), b"", encode([]), [], [(b"k", b"new")],
                       Tip(1, b"", 1001, _app_hash(1), b""))
        for i in range(50):
            view.get(b"more%d" % i)
        assert view.get(b"k") == b"new"
    finally:
        s.close()


def test_a_committed_tx_is_known_whatever_its_age(tmp_path):
    s = Store(tmp_path / "db2")
    try:
        s.commit_genesis([], _app_hash(0), CHAIN, 1000, {})
        hashes = [b"%032d" % i for i in range(25)]
        for h in range(1, 6):
            tip = Tip(h, b"", 1000 + h, _app_hash(h), b"")
            mine = hashes[5 * (h - 1):5 * h]
            s.commit_block(h, encode([[], list(mine)]), b"", encode([[0, "", []]] * 5), mine,
                           [], tip)
        assert all(s.tx_committed(th) for th in hashes)
        assert not s.tx_committed(b"%032d" % 99)
    finally:
        s.close()
