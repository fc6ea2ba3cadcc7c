"""node/export.py streams: its output equals the previous (whole-state-in-memory) writer's
byte for byte on a chain with trading, lending and a resting book, read from LevelDB; its
Python memory stays far below the state's size; a replay below the tip goes to a temporary
LevelDB that is deleted afterwards."""

import dataclasses
import hashlib
import io
import json
import tracemalloc

from localnet.fixtures import lending_genesis
from node.export import FORMAT, SnapshotPairs, line, write_export
from node.scratch_kv import ScratchKV
from node.snapshot import check_state, read_snapshot
from node.state_diff import decode_value
from state import state_digest as SD
from tests.chain_helpers import BTC_PERP, PRICE, Chain, key, order

BTC = 10**8


def reference_export(pairs, out, chain_id, height, app_hash) -> tuple[int, str]:
    """The writer before streaming (the whole state in a list), kept as the oracle."""
    pairs = list(pairs)
    keeps_digest = any(k == SD.K_INTERVAL for k, _ in pairs)
    digest = SD.digest(SD.of_pairs(pairs)).hex() if keeps_digest else None
    h = hashlib.sha256()

    def put(obj):
        b = line(obj)
        h.update(b)
        out.write(b)

    put({"format": FORMAT, "chain_id": chain_id, "height": height, "app_hash": app_hash.hex(),
         "state_digest": digest})
    for k, v in pairs:
        put({"key": k.hex(), "raw": v.hex(), "value": decode_value(v)})
    out.write(line({"digest": h.hexdigest(), "keys": len(pairs)}))
    return len(pairs), h.hexdigest()


def trading_and_lending_chain(every: int | None) -> Chain:
    g = lending_genesis(((key(2).pub_key, "BTC", 10 * BTC), (key(3).pub_key, "BTC", 10 * BTC)))
    c = Chain(dataclasses.replace(g, state_digest_interval=every))
    n = iter(range(c.time_ms, c.time_ms + 1000))
    c.block([order(key(3), next(n), BTC_PERP, False, 60_000 * PRICE, BTC),
             order(key(2), next(n), BTC_PERP, True, 60_000 * PRICE, BTC),       # a fill
             order(key(3), next(n), BTC_PERP, False, 61_000 * PRICE, BTC // 2)])  # resting
    c.block([order(key(2), next(n), BTC_PERP, True, 59_000 * PRICE, BTC // 4)])
    assert c.block([]).app_hash                                   # interest accrues
    return c


def _stored(tmp_path, data: dict) -> ScratchKV:
    kv = ScratchKV(tmp_path)
    kv.apply(sorted(data.items()))
    return kv


def test_a_streamed_export_equals_the_previous_writer_byte_for_byte(tmp_path):
    for every in (3, None):
        c = trading_and_lending_chain(every)
        assert any(k.startswith(b"clr/") for k in c.kv.data)       # positions exist
        assert any(k.startswith(b"lend/") for k in c.kv.data)      # and lending state
        ref, new = io.BytesIO(), io.BytesIO()
        n_ref = reference_export(sorted(c.kv.data.items()), ref, "perpchain-test", c.height,
                                 c.app_hash)
        kv = _stored(tmp_path, c.kv.data)
        pairs = SnapshotPairs(kv.db)
        try:
            assert write_export(pairs, new, "perpchain-test", c.height, c.app_hash,
                                progress=False) == n_ref
        finally:
            pairs.close()
            kv.close()
        assert new.getvalue() == ref.getvalue()
        assert (json.loads(new.getvalue().splitlines()[0])["state_digest"] is None) == \
            (every is None)
        if every:          # height 3 is a digest height: the file is a valid snapshot
            p = tmp_path / "snap.jsonl"
            p.write_bytes(new.getvalue())
            check_state(read_snapshot(p))
    assert not list(tmp_path.glob(".scratch-state-*"))           # deleted on close


def test_the_snapshot_is_consistent_while_the_store_changes(tmp_path):
    kv = _stored(tmp_path, {b"a": b"\x01", b"b": b"\x02"})
    pairs = SnapshotPairs(kv.db)
    kv.apply([(b"c", b"\x03"), (b"a", None)])
    assert list(pairs) == list(pairs) == [(b"a", b"\x01"), (b"b", b"\x02")]
    pairs.close()
    kv.close()


class _Sink:
    def __init__(self):
        self.n = 0

    def write(self, b):
        self.n += len(b)


def test_export_memory_is_bounded_by_a_line_not_the_state(tmp_path):
    keys, value = 40_000, bytes(range(200))
    kv = ScratchKV(tmp_path)
    for start in range(0, keys, 5_000):
        kv.apply([(b"k/%08d" % i, value) for i in range(start, start + 5_000)]
                 + [(SD.K_INTERVAL, b"\x03")])
    state_bytes = keys * (len(value) + 10)               # 8.4 MB of keys and values
    pairs, sink = SnapshotPairs(kv.db), _Sink()
    tracemalloc.start()
    try:
        n, _ = write_export(pairs, sink, "perpchain-test", 7, b"\x00" * 32, progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        pairs.close()
        kv.close()
    assert n == keys + 1 and sink.n > 2 * state_bytes     # hex makes the file bigger
    assert peak < state_bytes // 20, (peak, state_bytes)   # ~150 kB: a line and the lanes
