"""The application: glues the state machine, the store and the mempool to consensus.

Consensus (consensus/driver.py) drives it as CometBFT drives an ABCI app:
    propose(max_txs, max_bytes) -> txs        (PrepareProposal)
    prepare_block(block)                      (ProcessProposal: verify unseen tx signatures)
    execute(block) -> BlockResult             (FinalizeBlock: apply_block)
    commit(block, commit, result)             (Commit: one atomic fsynced store write)
    selector(height)                          the validator set (with proposer priorities)
and the RPC layer calls `submit` (CheckTx) and waits on `wait_for_tx`. Txs admitted to the
mempool are gossiped to peers in batches; txs from peers come in through `submit` too,
so each tx's signature is verified once per node.
"""

import hashlib
import logging
import time
from collections import ChainMap

import trio

from consensus.messages import Vote
from consensus.proposer import ProposerSelector
from consensus.types import Block, ChainTip, Commit
from node.config import Config
from node.genesis import Genesis
from node.keys import KeyPair
from node.mempool import Mempool, MempoolLimits
from node.read_model import CommittedBlock, ReadModel
from node.store import Store, Tip
from node.verifier import Verifier
from state.derived import DerivedCache
from state.codec import decode, encode
from state.errors import Code, TxError
from state.evidence import DoubleSign, evidence_key
from state.genesis import genesis_writes
from state.machine import BlockInput, BlockResult, TxResult, apply_block, next_ctx
from state.tx import Tx, decode_tx, signature_error_log, tx_hash

log = logging.getLogger("perpchain.app")


class GenesisMismatch(Exception):
    pass


def results_hash(results_bytes: bytes) -> bytes:
    return hashlib.sha256(results_bytes).digest()


class Application:
    def __init__(self, cfg: Config, genesis: Genesis, store: Store, node_key: KeyPair,
                 validator_key: KeyPair | None):
        self.cfg, self.genesis, self.store = cfg, genesis, store
        self.node_key, self.validator_key = node_key, validator_key
        self.chain_id = genesis.chain_id
        self.validators = genesis.validators
        writes, app_hash0 = genesis_writes(genesis.state)
        stored = store.genesis_app_hash()
        if stored is None:
            first = ProposerSelector.genesis({v.pub_key: v.power for v in genesis.validators.validators})
            store.commit_genesis(writes, app_hash0, self.chain_id, genesis.state.genesis_time_ms,
                                 {1: encode_selector(first), 2: encode_selector(first.next_height())})
            log.info("initialised state from genesis, app hash %s", app_hash0.hex())
        elif stored != app_hash0:
            raise GenesisMismatch("the data directory was created from a different genesis.json")
        self.tip = self._load_tip()
        store.keep_blocks = cfg.store.keep_blocks   # pruning, done with each commit
        store.state.max_entries = cfg.store.state_cache_entries
        m = cfg.mempool
        self.mempool = Mempool(MempoolLimits(m.size, m.max_txs_bytes, m.max_tx_bytes),
                               store.state, next_ctx(store.state),
                               store.tx_committed)
        self.verifier = Verifier(cfg.verifier.threads, cfg.verifier.processes)
        self._waiters: dict[bytes, trio.Event] = {}
        self._outcomes: dict[bytes, tuple[int, int, TxResult]] = {}
        self.block_committed = trio.Event()
        self._txs_available = trio.Event()
        self._selectors: dict[int, ProposerSelector] = {}
        self.derived_cache = DerivedCache()   # derived state (books, ...) carried across blocks
        # What queries need beyond the state (books at the tip, fills): fed on each commit.
        self.read_model = ReadModel(store, self.derived_cache, self.tip.height,
                                    self.tip.app_hash, cfg.store.keep_fills)
        self.prepared: dict[bytes, Tx] = {}   # verified txs of blocks from other proposers
        self.gossip = None                    # set by the node: callable(list of raw txs)
        self.p2p = None                       # set by the node (for net_info)
        self.driver = None                    # set by the node (for consensus_state)
        self.last_apply_s = 0.0               # how long the last `execute` took (metrics)

    def _load_tip(self) -> ChainTip:
        t = self.store.tip()
        lc = None
        if t.height > 0:
            lc = Commit.from_wire(decode(self.store.commit_bytes(t.height)))
        return ChainTip(t.height, t.time_ms, t.block_hash, lc, t.app_hash, t.results_hash)

    # -- CheckTx ---------------------------------------------------------------------
    async def submit(self, raws: list[bytes], from_peer: bool = False) -> list[tuple[bytes, TxResult]]:
        """Check and admit txs in order; one (tx hash, result) each (code 0 = pending)."""
        out: list[tuple[bytes, TxResult] | None] = [None] * len(raws)
        to_verify, idx = [], []
        for i, raw in enumerate(raws):
            try:
                tx = self.mempool.precheck(raw)
            except TxError as e:
                out[i] = (tx_hash(raw), TxResult(int(e.code), e.log))
                continue
            to_verify.append(tx)
            idx.append(i)
        oks = await self.verifier.verify(to_verify)
        for i, tx, ok in zip(idx, to_verify, oks):
            if not ok:
                res = TxResult(int(Code.BAD_SIGNATURE), signature_error_log(tx))
            else:
                res = self.mempool.admit(tx)
            out[i] = (tx.hash, res)
        admitted = [raw for raw, (_, r) in zip(raws, out) if r.code == 0]
        if admitted:
            self._txs_available.set()
            if self.gossip is not None:
                self.gossip(admitted)
        return out

    def has_txs(self) -> bool:
        return len(self.mempool) > 0

    def evidence_committed(self, vote: bytes) -> bool:
        v = Vote.decode(vote)
        return self.store.state.get(evidence_key(v.validator, v.height, v.round, v.type)) is not None

    async def wait_for_txs(self) -> None:
        """Return once the mempool holds at least one tx."""
        if not len(self.mempool):
            self._txs_available = trio.Event()
            await self._txs_available.wait()

    # -- consensus interface -----------------------------------------------------------
    def propose(self, max_txs: int, max_bytes: int) -> list[bytes]:
        return [t.raw for t in self.mempool.reap(max_txs, max_bytes)]

    async def prepare_block(self, block: Block) -> None:
        """Verify, in the worker threads, the signatures of block txs this node has not
        seen, so executing the block does not verify them one by one."""
        todo = []
        for raw, h in zip(block.txs, block.tx_hashes):
            if h in self.mempool.txs or h in self.prepared:
                continue
            try:
                todo.append(decode_tx(raw))
            except TxError:
                continue   # execution records it as malformed
        for tx, ok in zip(todo, await self.verifier.verify(todo)):
            if ok:
                self.prepared[tx.hash] = tx

    def execute(self, block: Block) -> BlockResult:
        """Apply a block consensus has decided (it has checked the header and evidence)."""
        known = ChainMap(self.mempool.txs, self.prepared) if self.prepared else self.mempool.txs
        started_s = time.perf_counter()
        try:
            return apply_block(self.store.state, block_input(block), self.tip.app_hash, known,
                               cache=self.derived_cache)
        finally:
            self.last_apply_s = time.perf_counter() - started_s   # for /metrics

    def committed_derived(self, app_hash: bytes) -> DerivedCache | None:
        """The execution derived cache, if it holds the state of `app_hash` (the mempool copies
        its books rather than building its own from the store; so does node/read_model.py)."""
        c = self.derived_cache
        return c if c.holds(app_hash) else None

    def selector(self, height: int) -> ProposerSelector:
        sel = self._selectors.get(height)
        if sel is None:
            raw = self.store.valset_bytes(height)
            if raw is None:
                raise KeyError(f"no validator set stored for height {height}")
            sel = self._selectors[height] = decode_selector(raw)
        return sel

    def block_and_commit(self, height: int) -> tuple[bytes, bytes] | None:
        b, c = self.store.block_bytes(height), self.store.commit_bytes(height)
        return None if b is None or c is None else (b, c)

    def commit(self, block: Block, commit: Commit, result: BlockResult) -> None:
        h = block.header.height
        rbytes = result.results_bytes()
        rhash = results_hash(rbytes)
        hashes = list(block.tx_hashes)
        tip = Tip(h, block.hash(), block.header.time_ms, result.app_hash, rhash)
        # The set for h+2 is fixed when h commits (validator changes made by block h will
        # take effect there, as in CometBFT).
        after = self.selector(h + 1).two_heights_on(dict(result.validator_updates))
        self.read_model.open_interest.stage(h, result.writes)   # reads the state before h
        self.store.commit_block(h, block.encode(), encode(commit.to_wire()), rbytes, hashes,
                                result.writes, tip, {h + 2: encode_selector(after)})
        self._selectors = {k: v for k, v in self._selectors.items() if k >= h}
        self._selectors[h + 2] = after
        self.prepared.clear()
        self.tip = ChainTip(h, block.header.time_ms, block.hash(), commit, result.app_hash, rhash)
        self.read_model.on_commit(CommittedBlock(h, block.header.time_ms, result.app_hash,
                                                 result.tx_results, result.block_events,
                                                 self.tip.block_hash))
        evicted = self.mempool.update(hashes, self.store.state, next_ctx(self.store.state),
                                      self.cfg.mempool.recheck, result,
                                      self.committed_derived(result.app_hash))
        for i, (th, r) in enumerate(zip(hashes, result.tx_results)):
            ev = self._waiters.pop(th, None)
            if ev is not None:
                self._outcomes[th] = (h, i, r)
                ev.set()
        for tx in evicted:
            log.info("recheck evicted tx %s", tx.hash.hex())
        old, self.block_committed = self.block_committed, trio.Event()
        old.set()

    async def wait_for_tx(self, th: bytes, timeout_s: float) -> tuple[int, int, TxResult] | None:
        """(height, index, result) once `th` is committed; None on timeout."""
        rec = self.store.tx_record(th)
        if rec is None:
            ev = self._waiters.setdefault(th, trio.Event())
            with trio.move_on_after(timeout_s):
                await ev.wait()
            if not ev.is_set() and self._waiters.get(th) is ev:
                del self._waiters[th]
            if th in self._outcomes:
                return self._outcomes.pop(th)
            rec = self.store.tx_record(th)
            if rec is None:
                return None
        return rec[0], rec[1], TxResult.from_wire(rec[3])

    def result_at(self, height: int, index: int) -> TxResult:
        return TxResult.from_wire(decode(self.store.results_bytes(height))[index])

    def catching_up(self) -> bool:
        """True while the node fetches blocks from a peer, or a connected peer reports a
        committed height two or more past ours (CometBFT's `catching_up`). Safe to call
        from an RPC worker thread: it only copies the driver's fields."""
        d = self.driver
        if getattr(d, "syncing_from", None) is not None:
            return True
        live = set(self.p2p.peers) if self.p2p is not None else None
        tip = self.tip.height
        return any(h > tip + 1 for p, h in dict(getattr(d, "peer_heights", {})).items()
                   if live is None or p in live)

    def sync_progress(self) -> tuple[int, int]:
        """(the highest committed height a connected peer reported, how many heights this
        node's tip is below it: 0 when level or ahead). Thread-safe as `catching_up`."""
        live = set(self.p2p.peers) if self.p2p is not None else None
        heights = [h for p, h in dict(getattr(self.driver, "peer_heights", {})).items()
                   if live is None or p in live]
        best = max(heights, default=0)
        return best, max(0, best - self.tip.height)


def block_input(block: Block) -> BlockInput:
    """What the state machine sees of a consensus block."""
    ev = []
    for a, b in block.evidence:
        va = Vote.decode(a)
        ev.append(DoubleSign(va.validator, va.height, va.round, va.type, a, b))
    return BlockInput(block.header.height, block.header.time_ms, block.txs, tuple(ev),
                      block.tx_hashes)


def encode_selector(sel: ProposerSelector) -> bytes:
    prios = sel.priorities
    return encode([[[pk, p, prios[pk]] for pk, p in sel.powers.items()], sel.proposer])


def decode_selector(raw: bytes) -> ProposerSelector:
    vals, proposer = decode(raw)
    return ProposerSelector({pk: p for pk, p, _ in vals}, {pk: pr for pk, _, pr in vals}, proposer)

