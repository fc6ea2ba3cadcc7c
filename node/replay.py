"""`perpchain replay`: re-execute every stored block from genesis into a fresh state.

For each height it checks the block against the chain (header links, BFT time, commit
signatures against the validator set of that height, which it evolves itself from genesis
and the blocks' validator changes), checks any double-sign evidence, re-verifies every tx
signature (nothing is trusted from the node's caches), applies the block to a fresh
in-memory state, and compares the app hash and the tx results with what the node stored.
The first difference stops the replay with the height and what differs.

With `check_every` = N > 0 (`perpchain replay --check-invariants [N]`) it also audits the
whole state after every N-th block and after the last one (`state.invariants`: books, order
records and indexes, aggregates, positions, the settlement pool, money), including that the
order books carried from block to block equal the records; the first broken invariant stops
the replay with the height of the block after which it was found.
"""

import sys
import time
from dataclasses import dataclass

from consensus.driver import check_evidence, vals_of
from consensus.proposer import ProposerSelector
from consensus.types import Block, ChainTip, Commit, InvalidBlockHeader, InvalidCommit, validate_block
from node.app import block_input, results_hash
from node.genesis import Genesis
from node.store import Store
from state.codec import decode
from state.errors import InvalidBlock
from state.genesis import genesis_writes
from state.derived import DerivedCache
from state.invariants import InvariantViolation, carried_books, check_invariants
from state.kv import MemoryKV
from state.machine import apply_block


@dataclass
class ReplayReport:
    ok: bool
    heights: int
    seconds: float
    txs: int
    app_hash: bytes
    error: str = ""
    invariant_checks: int = 0   # heights whose whole state was audited (check_every)

    @property
    def heights_per_s(self) -> float:
        return self.heights / self.seconds if self.seconds > 0 else 0.0


def replay(store: Store, genesis: Genesis, progress: bool | None = None,
           check_every: int = 0) -> ReplayReport:
    """Replay every stored block; `check_every` > 0: audit the state's invariants after
    every `check_every`-th block and after the last (see the module docstring)."""
    t0 = time.perf_counter()
    writes, app_hash = genesis_writes(genesis.state)
    if store.genesis_app_hash() != app_hash:
        return ReplayReport(False, 0, 0.0, 0, app_hash, "genesis app hash differs from the "
                            "stored one: this data directory belongs to another genesis")
    kv = MemoryKV()
    kv.apply(writes)
    if check_every > 0 and (broken := _audit(kv, None, 0)):
        return _fail(t0, 0, 0, app_hash, broken)
    books = DerivedCache()  # books carried from block to block, as a running node does
    sel = {1: ProposerSelector.genesis({v.pub_key: v.power for v in genesis.validators.validators})}
    sel[2] = sel[1].next_height()
    stored_tip = store.tip()
    tip = ChainTip(0, genesis.state.genesis_time_ms, b"", None, app_hash, b"")
    if progress is None:
        progress = sys.stderr.isatty()
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=stored_tip.height, unit="block", file=sys.stderr)
    ntx = checks = 0
    try:
        for h in range(1, stored_tip.height + 1):
            block = Block.decode(store.block_bytes(h))
            commit = Commit.from_wire(decode(store.commit_bytes(h)))
            vals = vals_of(sel[h])
            try:
                validate_block(block, tip, genesis.chain_id, vals,
                               vals_of(sel[h - 1]) if h > 1 else None)
                commit.verify(genesis.chain_id, vals, block.hash(), h)
                for a, b in block.evidence:
                    check_evidence(genesis.chain_id, a, b, h)
                res = apply_block(kv, block_input(block), tip.app_hash, cache=books)
            except (InvalidBlockHeader, InvalidCommit, InvalidBlock, ValueError) as e:
                return _fail(t0, h - 1, ntx, tip.app_hash, f"height {h}: {e}")
            sel[h + 2] = sel[h + 1].two_heights_on(dict(res.validator_updates))
            sel.pop(h - 1, None)
            if res.app_hash != store.app_hash_at(h):
                return _fail(t0, h - 1, ntx, res.app_hash,
                             f"height {h}: app hash {res.app_hash.hex()} differs from stored "
                             f"{store.app_hash_at(h).hex()}")
            rbytes = res.results_bytes()
            if rbytes != store.results_bytes(h):
                return _fail(t0, h - 1, ntx, res.app_hash, f"height {h}: tx results differ "
                             "from the stored ones")
            kv.apply(res.writes)
            ntx += len(block.txs)
            if check_every > 0 and (h % check_every == 0 or h == stored_tip.height):
                broken = _audit(kv, books, h)
                if broken:
                    return _fail(t0, h - 1, ntx, res.app_hash, broken, checks)
                checks += 1
            tip = ChainTip(h, block.header.time_ms, block.hash(), commit, res.app_hash,
                           results_hash(rbytes))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return ReplayReport(True, stored_tip.height, time.perf_counter() - t0, ntx, tip.app_hash,
                        invariant_checks=checks)


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
