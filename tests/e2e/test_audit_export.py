"""`perpchain export`: the full state at a height as canonical JSON lines with a digest; two
nodes write the same bytes; a height below the tip is replayed; bad heights are refused."""

import hashlib
import io
import json

import pytest

from node.genesis import load_genesis
from node.replay import replay_to
from node.store import Store
from state import state_digest as SD
from tests.e2e.conftest import perpchain, wait_until
from tests.unit.test_export_stream import reference_export

pytestmark = pytest.mark.e2e


def _reference_export(home, height) -> bytes:
    """The export the previous implementation wrote: replayed into memory, then written
    from a list (tests/unit/test_export_stream.py `reference_export`)."""
    buf = io.BytesIO()
    g = load_genesis(home / "config" / "genesis.json")
    s = Store(home / "data" / "perpchain.db")
    try:
        rep, kv, _ = replay_to(s, g, height, progress=False)
        assert rep.ok, rep.error
        reference_export(kv.iterate(b""), buf, g.chain_id, height, s.app_hash_at(height))
    finally:
        s.close()
    return buf.getvalue()


def _export(home, height, out):
    return perpchain("export", "--home", str(home), "--height", str(height), "--out", str(out),
                     check=True)


def test_two_nodes_export_the_same_bytes_and_the_file_checks_out(net4, tmp_path):
    wait_until(lambda: min(h or 0 for h in net4.heights()) >= 4, 30, "height 4 on every node")
    net4.down()
    tips = []
    for e in net4.entries[:2]:
        s = Store(e.home / "data" / "perpchain.db")
        tips.append(s.tip().height)
        s.close()
    h = min(tips)
    a, b, low = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "low.jsonl"
    _export(net4.entries[0].home, h, a)
    _export(net4.entries[1].home, h, b)
    assert a.read_bytes() == b.read_bytes()
    lines = a.read_bytes().splitlines(keepends=True)
    head, body, tail = json.loads(lines[0]), lines[1:-1], json.loads(lines[-1])
    assert tail == {"digest": hashlib.sha256(b"".join(lines[:-1])).hexdigest(),
                    "keys": len(body)}
    s = Store(net4.entries[0].home / "data" / "perpchain.db")
    try:
        assert head["height"] == h and head["app_hash"] == s.app_hash_at(h).hex()
        stored = list(s.state.iterate(b"")) if s.tip().height == h else None
    finally:
        s.close()
    rows = [json.loads(x) for x in body]
    pairs = [(bytes.fromhex(r["key"]), bytes.fromhex(r["raw"])) for r in rows]
    assert [k for k, _ in pairs] == sorted(k for k, _ in pairs)
    if stored is not None:
        assert pairs == stored
    last = next(r for r in rows if bytes.fromhex(r["key"]) == b"meta/last_block")
    assert last["value"][0] == h
    # the localnet keeps the full-state digest: the header carries it, recomputed
    assert head["state_digest"] == SD.digest(SD.of_pairs(pairs)).hex()
    # below the tip: replayed from genesis
    _export(net4.entries[0].home, 1, low)
    assert low.read_bytes() == _reference_export(net4.entries[0].home, 1)
    assert not list((net4.entries[0].home / "data").glob(".scratch-state-*"))
    rows1 = [json.loads(x) for x in low.read_bytes().splitlines()[1:-1]]
    last1 = next(r for r in rows1 if bytes.fromhex(r["key"]) == b"meta/last_block")
    assert last1["value"][0] == 1
    bad = perpchain("export", "--home", str(net4.entries[0].home), "--height", str(h + 10_000))
    assert bad.returncode == 1 and "is not stored" in bad.stderr
