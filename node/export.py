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

The store keeps the state of its tip only: an export at the tip reads it directly; one
below the tip replays the stored blocks from genesis into memory up to that height (checking
every app hash on the way, as `perpchain replay` does).
"""

import hashlib
import json
import sys
from typing import IO, Iterable

from node.genesis import Genesis
from node.state_diff import decode_value
from node.store import Store
from state import state_digest as SD

FORMAT = "perpchain-state/1"


class ExportError(Exception):
    """The height cannot be exported (the message says why)."""


def line(obj) -> bytes:
    return (json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n").encode("ascii")


def state_at(store: Store, genesis: Genesis, height: int,
             progress: bool | None) -> tuple[Iterable[tuple[bytes, bytes]], bytes]:
    """(the state's (key, value) pairs ascending, its app hash) at `height`."""
    from node.replay import replay_to

    tip = store.tip()
    if not 0 <= height <= tip.height:
        raise ExportError(f"height {height} is not stored: this node's heights are 0.."
                          f"{tip.height}")
    if height == tip.height:
        return store.state.iterate(b""), tip.app_hash
    base = store.base_height()
    if base > 1:
        raise ExportError(f"height {height} is below the tip {tip.height} and this store has "
                          f"no blocks below {base} (pruned or started from a snapshot): it "
                          f"can export its tip only")
    rep, kv, _ = replay_to(store, genesis, height, progress)
    if not rep.ok:
        raise ExportError(f"the replay to height {height} failed: {rep.error}")
    return kv.iterate(b""), store.app_hash_at(height)


def write_export(pairs: Iterable[tuple[bytes, bytes]], out: IO[bytes], chain_id: str,
                 height: int, app_hash: bytes, progress: bool | None = None) -> tuple[int, str]:
    """Write the export; returns (number of keys, digest hex)."""
    pairs = list(pairs)
    keeps_digest = any(k == SD.K_INTERVAL for k, _ in pairs)
    digest = SD.digest(SD.of_pairs(pairs)).hex() if keeps_digest else None
    h = hashlib.sha256()
    bar = None
    if progress if progress is not None else sys.stderr.isatty():
        from tqdm import tqdm
        bar = tqdm(total=len(pairs), unit="key", file=sys.stderr)

    def put(obj) -> None:
        b = line(obj)
        h.update(b)
        out.write(b)

    put({"format": FORMAT, "chain_id": chain_id, "height": height, "app_hash": app_hash.hex(),
         "state_digest": digest})
    for k, v in pairs:
        put({"key": k.hex(), "raw": v.hex(), "value": decode_value(v)})
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    out.write(line({"digest": h.hexdigest(), "keys": len(pairs)}))
    return len(pairs), h.hexdigest()
