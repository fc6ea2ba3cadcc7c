"""`perpchain replay`: re-execute every stored block from genesis into a fresh state.

For each height it checks the block against the chain (header links, BFT time, commit
signatures against the validator set of that height, which it evolves itself from genesis
and the blocks' validator changes), checks any double-sign evidence, re-verifies every tx
signature (nothing is trusted from the node's caches), applies the block to a fresh
in-memory state, and compares the app hash and the tx results with what the node stored.
The first difference stops the replay with the height and what differs: for an app hash
that differs at height h, the keys block h wrote whose replayed value differs from the value
the node holds now; after the last block, the replayed state is compared key by key with
the state the node stored (a value damaged on disk after its block committed leaves every
app hash intact and shows here, with the height of the block that last wrote the key).

With `check_every` = N > 0 (`perpchain replay --check-invariants [N]`) it also audits the
whole state after every N-th block and after the last one (`state.invariants`: books, order
records and indexes, aggregates, positions, the settlement pool, money), including that the
order books carried from block to block equal the records; the first broken invariant stops
the replay with the height of the block after which it was found.
"""

import sys
import time
from dataclasses import dataclass, replace

from consensus.driver import check_evidence, vals_of
from consensus.proposer import ProposerSelector
from consensus.types import Block, ChainTip, Commit, InvalidBlockHeader, InvalidCommit, validate_block
from node.app import block_input, results_hash
from node.genesis import Genesis
from node.state_diff import KeyDiff, diff_sorted
from node.store import Store
from state.codec import decode
from state.errors import InvalidBlock
from state.genesis import genesis_writes
from state.derived import DerivedCache
from state.invariants import InvariantViolation, carried_books, check_invariants
from state.kv import MemoryKV
from state.machine import apply_block

MAX_DIFFS = 20

@dataclass
class ReplayReport:
    ok: bool
    heights: int
    seconds: float
    txs: int
    app_hash: bytes
    error: str = ""
    invariant_checks: int = 0   # heights whose whole state was audited (check_every)
    diverged_at: int | None = None   # the first height whose replayed state differs
    diffs: tuple[KeyDiff, ...] = ()  # the keys that differ there (at most MAX_DIFFS)
    more_diffs: int = 0              # how many more keys differ

    @property
    def heights_per_s(self) -> float:
        return self.heights / self.seconds if self.seconds > 0 else 0.0


def replay(store: Store, genesis: Genesis, progress: bool | None = None,
           check_every: int = 0) -> ReplayReport:
    """Replay every stored block; `check_every` > 0: audit the state's invariants after
    every `check_every`-th block and after the last (see the module docstring)."""
    rep, kv, last_written = replay_to(store, genesis, None, progress, check_every)
    if kv is not None and (rep.ok or rep.diverged_at is not None):
        return _compare_state(store, kv, last_written, rep)
    return rep


def replay_to(store: Store, genesis: Genesis, height: int | None, progress: bool | None = None,
              check_every: int = 0, kv=None,
              track_writes: bool = True) -> tuple[ReplayReport, MemoryKV | None, dict | None]:
    """Replay from genesis up to `height` (None: the tip): the report, the replayed state
    (None if the replay could not start) and each key's last writing height (None with
    `track_writes` False). `kv`: an empty state with `apply` to replay into (default a new
    MemoryKV; node/scratch_kv.py keeps it on disk)."""
    t0 = time.perf_counter()
    writes, app_hash = genesis_writes(genesis.state)
    if store.genesis_app_hash() != app_hash:
        return ReplayReport(False, 0, 0.0, 0, app_hash, "genesis app hash differs from the "
                            "stored one: this data directory belongs to another genesis"), None, {}
    kv = MemoryKV() if kv is None else kv
    kv.apply(writes)
    last_written = dict.fromkeys((k for k, _ in writes), 0) if track_writes else None
    if check_every > 0 and (broken := _audit(kv, None, 0)):
        return _fail(t0, 0, 0, app_hash, broken), None, {}
    tip_height = store.tip().height if height is None else height
    if progress is None:
        progress = sys.stderr.isatty()
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=tip_height, unit="block", file=sys.stderr)
    try:
        rep = _run(store, genesis, kv, app_hash, tip_height, check_every, bar,
                   last_written, t0)
    finally:
        if bar is not None:
            bar.close()
    return rep, kv, last_written


def _run(store, genesis, kv, app_hash, tip_height, check_every, bar, last_written,
         t0) -> ReplayReport:
    books = DerivedCache()  # books carried from block to block, as a running node does
    sel = {1: ProposerSelector.genesis({v.pub_key: v.power for v in genesis.validators.validators})}
    sel[2] = sel[1].next_height()
    tip = ChainTip(0, genesis.state.genesis_time_ms, b"", None, app_hash, b"")
    ntx = checks = 0
    first_bad = None   # (height, why) of the first stored app hash or results that differ
    ours = app_hash    # the replay's own app hash (the tip follows the headers after first_bad)
    for h in range(1, tip_height + 1):
        block = Block.decode(store.block_bytes(h))
        commit = Commit.from_wire(decode(store.commit_bytes(h)))
        vals = vals_of(sel[h])
        if first_bad is not None:   # past a divergence: take the chain's word for hashes
            tip = replace(tip, app_hash=block.header.app_hash,
                          results_hash=block.header.last_results_hash)
        try:
            validate_block(block, tip, genesis.chain_id, vals,
                           vals_of(sel[h - 1]) if h > 1 else None)
            commit.verify(genesis.chain_id, vals, block.hash(), h)
            for a, b in block.evidence:
                check_evidence(genesis.chain_id, a, b, h)
            res = apply_block(kv, block_input(block), ours, cache=books)
        except (InvalidBlockHeader, InvalidCommit, InvalidBlock, ValueError) as e:
            return _fail(t0, h - 1, ntx, ours, f"height {h}: {e}")
        sel[h + 2] = sel[h + 1].two_heights_on(dict(res.validator_updates))
        sel.pop(h - 1, None)
        if first_bad is None:
            first_bad = _stored_differs(store, res, h)
        kv.apply(res.writes)
        if last_written is not None:
            for k, _ in res.writes:
                last_written[k] = h
        ntx += len(block.txs)
        if check_every > 0 and (h % check_every == 0 or h == tip_height):
            broken = _audit(kv, books, h)
            if broken:
                return _fail(t0, h - 1, ntx, res.app_hash, broken, checks)
            checks += 1
        ours = res.app_hash
        tip = ChainTip(h, block.header.time_ms, block.hash(), commit, res.app_hash,
                       results_hash(res.results_bytes()))
        if bar is not None:
            bar.update(1)
    if first_bad is not None:
        rep = _fail(t0, tip_height, ntx, ours, first_bad[1], checks)
        return replace(rep, diverged_at=first_bad[0])
    return ReplayReport(True, tip_height, time.perf_counter() - t0, ntx, ours,
                        invariant_checks=checks)


def _stored_differs(store: Store, res, h: int) -> tuple[int, str] | None:
    """(h, why) if the node stored another app hash or other tx results for height h. The
    replay goes on with its own results, to name the state keys that differ at the tip."""
    if res.app_hash != store.app_hash_at(h):
        return h, (f"height {h}: app hash {res.app_hash.hex()} differs from stored "
                   f"{store.app_hash_at(h).hex()}")
    if res.results_bytes() != store.results_bytes(h):
        return h, f"height {h}: tx results differ from the stored ones"
    return None


def _compare_state(store: Store, kv: MemoryKV, last_written: dict[bytes, int],
                   rep: ReplayReport) -> ReplayReport:
    """`rep` with the state keys whose stored value differs from the replayed one at the
    tip; a replay whose app hashes all matched fails here if any key differs."""
    diffs = list(diff_sorted(store.state.iterate(b""), kv.iterate(b""), last_written))
    if not diffs:
        return rep
    if rep.ok:
        rep = replace(rep, ok=False, diverged_at=rep.heights, error=(
            f"height {rep.heights}: the state the node stored differs from the replayed "
            f"state in {len(diffs)} key(s), though every app hash matches (changed on disk "
            "after its block committed?)"))
    return replace(rep, diffs=tuple(diffs[:MAX_DIFFS]), more_diffs=max(0, len(diffs) - MAX_DIFFS))


def _audit(kv: MemoryKV, books: DerivedCache | None, height: int) -> str:
    """What is broken in the state after block `height` (0: genesis), or ""."""
    try:
        check_invariants(kv, books=carried_books(books))
    except InvariantViolation as e:
        return f"height {height}: invariant broken after the " \
               f"{'block' if height else 'genesis'}: {e}"
    return ""


def _fail(t0, heights, ntx, app_hash, why, checks: int = 0) -> ReplayReport:
    return ReplayReport(False, heights, time.perf_counter() - t0, ntx, app_hash, why, checks)
