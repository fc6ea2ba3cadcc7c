"""node/snapshot.py's checks of an export file on its own: the digest line, the key order, a
digest height, and the state against the app hash it names (node/export.py writes them)."""

import dataclasses
import hashlib
import io
import json

import pytest

from node.export import write_export
from node.snapshot import SnapshotError, check_state, read_snapshot
from tests.chain_helpers import Chain, key, trading_genesis, transfer


def _export(tmp_path, every: int | None, blocks: int):
    c = Chain(dataclasses.replace(trading_genesis(), state_digest_interval=every))
    for _ in range(blocks):
        c.block([transfer(key(0), c.time_ms + 1000, key(1).pub_key, 5)])
    buf = io.BytesIO()
    write_export(sorted(c.kv.data.items()), buf, "perpchain-test", c.height,
                 c.app_hash, progress=False)
    p = tmp_path / "snap.jsonl"
    p.write_bytes(buf.getvalue())
    return p


def test_an_export_at_a_digest_height_checks_out(tmp_path):
    snap = read_snapshot(_export(tmp_path, 2, 4))
    assert snap.height == 4 and snap.pairs == sorted(snap.pairs)
    check_state(snap)


def test_refusals(tmp_path):
    p = _export(tmp_path, 2, 3)
    with pytest.raises(SnapshotError, match="not a digest height"):
        check_state(read_snapshot(p))
    lines = p.read_bytes().splitlines(keepends=True)
    (tmp_path / "short.jsonl").write_bytes(b"".join(lines[:-2] + lines[-1:]))
    with pytest.raises(SnapshotError, match="digest line does not match"):
        read_snapshot(tmp_path / "short.jsonl")
    with pytest.raises(SnapshotError, match="this chain keeps no full-state digest"):
        check_state(read_snapshot(_export(tmp_path, None, 2)))
    head = json.loads(lines[0])
    head["app_hash"] = "00" * 32
    p2 = _export(tmp_path, 2, 4)
    lines = p2.read_bytes().splitlines(keepends=True)
    lines[0] = (json.dumps(head | {"height": 4}, sort_keys=True, separators=(",", ":"))
                + "\n").encode()
    body = b"".join(lines[:-1])
    tail = json.loads(lines[-1]) | {"digest": hashlib.sha256(body).hexdigest()}
    p2.write_bytes(body + (json.dumps(tail, sort_keys=True, separators=(",", ":")) + "\n").encode())
    with pytest.raises(SnapshotError, match="does not match its app hash"):
        check_state(read_snapshot(p2))
