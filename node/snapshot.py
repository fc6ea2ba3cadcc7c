"""State sync: start a new node from a `perpchain export` file instead of a replay from genesis.

    perpchain start --home DIR --snapshot FILE --trust-hash HEX --trust-rpc URL

The trust root is, as in CometBFT's state sync, a block hash the operator got from a source
they trust (their own node, a block explorer, a colleague): `--trust-hash` is the hash of block
H+1, the block whose header carries app_hash(H) for the snapshot's height H (a digest height:
H % state_digest_interval == 0, where the app hash commits to the whole state,
state/state_digest.py). Nothing else is trusted:
1. the file: its digest line, ascending keys, and its state's recomputed full-state digest,
   whose folded hash must equal the app hash its header names;
2. the chain context fetched from `--trust-rpc` (method `sync_context`): block H+1 must hash
   to the trusted hash and name that app hash; block H must be the block H+1 builds on; the
   commit of H (carried in block H+1) must be signed by more than 2/3 of the validator set of
   H, whose hash block H names; the set of H+1 must hash to block H+1's validators_hash; the
   results of H must hash to block H+1's last_results_hash. (The set of H+2 is checked by
   block H+2's header when it syncs; the proposer priorities only affect whose turn it is.)
Then one atomic write creates the store at tip H (node/store.py `commit_snapshot`, base
height H: the store holds no block below H) and the node starts as usual: p2p block sync
fetches H+1 onwards from its peers. Only an empty data directory can be bootstrapped.
"""

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import httpx

from consensus.driver import vals_of
from consensus.types import Block, InvalidCommit
from node.app import decode_selector
from node.export import FORMAT, line
from node.genesis import Genesis
from node.store import Store, Tip
from state import state_digest as SD
from state.codec import encode
from state.genesis import genesis_writes


class SnapshotError(Exception):
    """The snapshot or its chain context is not what it claims (the message says what)."""


@dataclass(frozen=True)
class Snapshot:
    chain_id: str
    height: int
    app_hash: bytes
    pairs: list[tuple[bytes, bytes]]


@dataclass(frozen=True)
class ChainContext:
    block: bytes                 # block H
    next_block: bytes            # block H+1 (its last_commit is the commit of H)
    results: bytes               # the tx results of H
    valsets: dict[int, bytes]    # H, H+1, H+2 (node/app.py encode_selector)


def read_snapshot(path: Path) -> Snapshot:
    """Parse and check an export file (node/export.py) on its own. The file is read line by
    line: only the (key, raw value) pairs are kept, never the lines or decoded values."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise SnapshotError(f"cannot read the snapshot {path}: {e.strerror}") from None
    with f:
        try:
            head_line, pairs, tail_line, body_digest = _read_lines(f, path)
            head, tail = json.loads(head_line), json.loads(tail_line)
        except OSError as e:
            raise SnapshotError(f"cannot read the snapshot {path}: {e.strerror}") from None
        except (ValueError, KeyError, TypeError) as e:
            raise SnapshotError(f"{path} is not a perpchain export: {e}") from None
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        fmt = head.get("format") if isinstance(head, dict) else None
        raise SnapshotError(f"{path}: format {fmt!r}, expected {FORMAT!r}")
    if not isinstance(tail, dict) or tail.get("digest") != body_digest \
            or tail.get("keys") != len(pairs):
        raise SnapshotError(f"{path}: its digest line does not match its contents "
                            "(truncated or edited)")
    if line(head) != head_line:
        raise SnapshotError(f"{path}: its header is not in canonical form")
    if any(a[0] >= b[0] for a, b in zip(pairs, pairs[1:])):
        raise SnapshotError(f"{path}: keys are not in ascending order (or repeat)")
    return Snapshot(head["chain_id"], int(head["height"]), bytes.fromhex(head["app_hash"]),
                    pairs)


def _read_lines(f, path) -> tuple[bytes, list[tuple[bytes, bytes]], bytes, str]:
    """(the header line, the pairs of the key lines, the last line, the sha256 hex of every
    line before the last)."""
    h = hashlib.sha256()
    head = f.readline()
    if not head:
        raise SnapshotError(f"{path} is not a perpchain export (too short)")
    pairs: list[tuple[bytes, bytes]] = []
    prev = head
    for cur in f:
        h.update(prev)
        if prev is not head:
            row = json.loads(prev)
            pairs.append((bytes.fromhex(row["key"]), bytes.fromhex(row["raw"])))
        prev = cur
    if prev is head:
        raise SnapshotError(f"{path} is not a perpchain export (too short)")
    return head, pairs, prev, h.hexdigest()


def check_state(snap: Snapshot) -> None:
    """The snapshot's state is the state its app hash commits to (module docstring, 1)."""
    state = dict(snap.pairs)
    if SD.K_INTERVAL not in state:
        raise SnapshotError("this chain keeps no full-state digest (genesis has no "
                            "state_digest_interval): its app hash cannot vouch for a snapshot")
    every = SD.interval(state)
    if snap.height < 1 or snap.height % every:
        raise SnapshotError(f"height {snap.height} is not a digest height (a multiple of "
                            f"{every}): export the state at one")
    lanes = SD.of_pairs(snap.pairs)
    if state.get(SD.K_DIGEST) != encode(lanes) or SD.folded_app_hash(lanes) != snap.app_hash:
        raise SnapshotError(f"the snapshot's state does not match its app hash "
                            f"{snap.app_hash.hex()} at height {snap.height}")


def fetch_context(rpc_url: str, height: int) -> ChainContext:
    """The chain context of `height` from a node's `sync_context` RPC method."""
    try:
        r = httpx.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "sync_context",
                                      "params": {"height": str(height)}}, timeout=30).json()
    except (httpx.HTTPError, ValueError) as e:
        raise SnapshotError(f"cannot fetch the chain context from {rpc_url}: {e}") from None
    if "error" in r:
        raise SnapshotError(f"{rpc_url} cannot serve height {height}: "
                            f"{r['error'].get('message')} {r['error'].get('data', '')}")
    res, b64 = r["result"], base64.b64decode
    return ChainContext(b64(res["block"]), b64(res["next_block"]), b64(res["results"]),
                        {int(h): b64(v) for h, v in res["validator_sets"].items()})


def check_context(ctx: ChainContext, snap: Snapshot, chain_id: str,
                  trust_hash: bytes) -> tuple[Block, Tip]:
    """Tie the context to the trusted hash and the snapshot (module docstring, 2)."""
    try:
        blk, nxt = Block.decode(ctx.block), Block.decode(ctx.next_block)
        sel = {h: decode_selector(ctx.valsets[h]) for h in range(snap.height, snap.height + 3)}
    except (ValueError, KeyError, TypeError) as e:
        raise SnapshotError(f"the chain context does not decode: {e}") from None
    h, hn = blk.header, nxt.header
    checks = [
        (nxt.hash() == trust_hash, f"block {snap.height + 1} from the RPC does not have the "
                                   f"trusted hash {trust_hash.hex()}"),
        (hn.chain_id == chain_id == snap.chain_id, "the chain id differs from genesis.json"),
        (hn.height == snap.height + 1 and h.height == snap.height, "wrong block heights"),
        (hn.app_hash == snap.app_hash, f"the trusted chain's app hash at height {snap.height} "
                                       f"is {hn.app_hash.hex()}, not the snapshot's"),
        (hn.last_block_hash == blk.hash(), f"block {snap.height} is not the one the trusted "
                                           "block builds on"),
        (hashlib.sha256(ctx.results).digest() == hn.last_results_hash,
         f"the results of height {snap.height} do not match the trusted block"),
        (vals_of(sel[snap.height]).hash() == h.validators_hash,
         f"the validator set of height {snap.height} does not match its block"),
        (vals_of(sel[snap.height + 1]).hash() == hn.validators_hash,
         f"the validator set of height {snap.height + 1} does not match the trusted block"),
        (nxt.last_commit is not None, "the trusted block carries no commit"),
    ]
    for ok, what in checks:
        if not ok:
            raise SnapshotError(what)
    try:
        nxt.last_commit.verify(chain_id, vals_of(sel[snap.height]), blk.hash(), snap.height)
    except InvalidCommit as e:
        raise SnapshotError(f"the commit of height {snap.height}: {e}") from None
    return blk, Tip(snap.height, blk.hash(), h.time_ms, snap.app_hash, hn.last_results_hash)


def bootstrap(store: Store, genesis: Genesis, snap: Snapshot, ctx: ChainContext,
              trust_hash: bytes) -> Tip:
    """Check everything, then write the store at tip H in one batch."""
    if store.genesis_app_hash() is not None:
        raise SnapshotError(f"{store.path} already holds chain data: state sync only starts "
                            "an empty data directory (move it aside first)")
    if snap.chain_id != genesis.chain_id:
        raise SnapshotError(f"the snapshot is of chain {snap.chain_id!r}, genesis.json of "
                            f"{genesis.chain_id!r}")
    check_state(snap)
    blk, tip = check_context(ctx, snap, genesis.chain_id, trust_hash)
    _, app_hash0 = genesis_writes(genesis.state)
    nxt = Block.decode(ctx.next_block)
    store.commit_snapshot(snap.pairs, app_hash0, genesis.chain_id, tip, ctx.block,
                          encode(nxt.last_commit.to_wire()), ctx.results,
                          blk.header.app_hash, ctx.valsets)
    return tip
