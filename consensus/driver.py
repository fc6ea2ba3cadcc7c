"""The consensus driver: trio, timers, network and WAL around the pure `RoundState`.

One task owns all consensus state and takes events from one inbox in arrival order:
peer messages (proposals, votes, blocks, evidence, status, sync replies) and fired
timeouts. For each it calls the pure step function (consensus/rounds.py) and performs
the actions it returns:

    ProposeBlock / BroadcastProposal  build (or re-use) a block, sign, fsync to WAL, gossip
    BroadcastVote                     sign through the double-sign guard, fsync, gossip
    ScheduleTimeout                   a timer task that posts the timeout to the inbox
    FetchBlock                        ask peers for a block by hash
    Commit                            execute + commit through the application, then
                                      start the next height after `timeout_commit`
    Evidence                          keep it; the next block this node proposes carries it

Catch-up: every node announces its committed height (STATUS) on connect and after each
commit. A node that learns a peer has committed the height it is working on asks it
for blocks with their commits (GET_BLOCKS), verifies each commit against the validator
set, applies them, and rejoins consensus at the new height.

The application is reached only through the `Application` protocol below: consensus
knows blocks, votes and validators, never markets.
"""

import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import msgpack
import trio

from consensus import wal as W
from consensus.messages import (MSG_BLOCK, MSG_BLOCKS, MSG_EVIDENCE, MSG_GET_BLOCK,  # noqa: F401
                                MSG_GET_BLOCKS, MSG_PROPOSAL, MSG_STATUS, MSG_TXS, MSG_VOTE,
                                PRECOMMIT, PREVOTE, SYNC_BATCH, DecodeError, DoubleSignError,
                                LastSigned, Proposal, SafeSigner, Vote, check_body,
                                verify_proposal, verify_vote)
from consensus.proposer import ProposerSelector
from consensus.signer_state import load_last_signed as _load_last_signed
from consensus.signer_state import save_last_signed as _save_last_signed
from consensus.rounds import (BroadcastProposal, BroadcastVote, Commit as CommitAction,
                              Evidence, FetchBlock, ProposeBlock, RoundSnapshot, RoundState,
                              ScheduleTimeout, Timeout, TimeoutConfig)
from consensus.types import (Block, ChainTip, Commit, CommitSig, Header, InvalidBlockHeader,
                             InvalidCommit, MalformedBlock, Validator, ValidatorSet, block_time,
                             data_hash,
                             evidence_hash, validate_block)

log = logging.getLogger("perpchain.consensus")

SYNC_MAX_BYTES = 8 * 1024 * 1024   # per reply, well under the p2p frame limit
STUCK_S = 1.0            # a height older than this re-sends own votes and may sync
SYNC_TIMEOUT_S = 5.0      # a sync request unanswered this long counts as a failure
SYNC_PENALTY_S = 30.0     # a peer that failed to deliver is asked last for this long
INBOX_SIZE = 10_000
INBOX_PER_PEER = 2_500   # one flooding peer cannot take the whole inbox
MAX_PENDING_EVIDENCE = 100
MAX_LATER_PROPOSALS = 100
MAX_LATER_PER_PROPOSER = 4
MAX_VALUES_PER_VOTE = 4        # values taken per (validator, round, vote type), as vote_set
MAX_PROPOSALS_PER_ROUND = 2    # proposals taken per (proposer, round): 2 prove equivocation


# What a bad message from a peer may raise (every check of peer input raises one of
# these): the peer is dropped and scored down, the node goes on.
BAD_INPUT = (DecodeError, MalformedBlock, InvalidCommit, InvalidBlockHeader,
             msgpack.UnpackException, ValueError, TypeError, OverflowError)


class ExecutionHalt(Exception):
    """Executing or committing a block failed: the node cannot vouch for its state and
    stops (never treated as a peer's fault)."""


class Network(Protocol):
    def broadcast(self, msg_type: int, body, exclude: str | None = None) -> None: ...
    def send(self, peer_id: str, msg_type: int, body) -> None: ...
    def drop(self, peer_id: str, why: str) -> None: ...


class Application(Protocol):
    """What consensus needs from the node (CometBFT's ABCI, in-process)."""
    tip: ChainTip

    def propose(self, max_txs: int, max_bytes: int) -> list[bytes]: ...
    async def prepare_block(self, block: Block) -> None:
        """Verify the block's tx signatures the node has not checked yet (threads)."""
    def execute(self, block: Block): ...          # returns a result with .app_hash
    def commit(self, block: Block, commit: Commit, result) -> None: ...
    def selector(self, height: int) -> ProposerSelector: ...
    def block_and_commit(self, height: int) -> tuple[bytes, bytes] | None: ...
    async def wait_for_txs(self) -> None: ...
    def has_txs(self) -> bool: ...
    def evidence_committed(self, vote: bytes) -> bool:
        """Whether the double sign this vote belongs to is already recorded on chain."""


@dataclass
class DriverConfig:
    timeouts: TimeoutConfig
    timeout_commit_ms: int
    max_block_txs: int
    max_block_bytes: int
    create_empty_blocks: bool = True
    # Without empty blocks, still make one once the last block is this old: CheckTx judges
    # nonces at the last block's time, so after a day without blocks every fresh nonce (the
    # current time) would be refused and no tx could ever start a block again.
    max_block_age_ms: int = 3_600_000


def vals_of(sel: ProposerSelector) -> ValidatorSet:
    return ValidatorSet.of(Validator(pk, p) for pk, p in sel.powers.items())


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def build_block(chain_id: str, tip: ChainTip, txs: list[bytes], proposer: bytes,
                vals: ValidatorSet, last_vals: ValidatorSet | None,
                evidence: tuple[tuple[bytes, bytes], ...] = ()) -> Block:
    """The block a proposer makes on top of `tip` (its time is BFT time, not a clock)."""
    if tip.height == 0:
        t = tip.time_ms + 1
    else:
        t = block_time(tip.last_commit, last_vals or vals)
    header = Header(chain_id, tip.height + 1, t, tip.block_hash,
                    b"" if tip.last_commit is None else tip.last_commit.hash(),
                    data_hash(txs), vals.hash(), tip.app_hash, tip.results_hash,
                    evidence_hash(evidence), proposer)
    return Block(header, tuple(txs), tip.last_commit, evidence)


def check_evidence(chain_id: str, a: bytes, b: bytes, max_height: int) -> None:
    """Raise ValueError unless (a, b) proves a double sign: two votes by one validator for
    the same height, round and type, for different blocks, both correctly signed."""
    va, vb = Vote.decode(a), Vote.decode(b)
    if not (va.validator == vb.validator and va.height == vb.height and va.round == vb.round
            and va.type == vb.type and va.block_hash != vb.block_hash):
        raise ValueError("evidence votes do not conflict")
    if not (verify_vote(va, chain_id) and verify_vote(vb, chain_id)):
        raise ValueError("evidence vote signature does not verify")
    if va.height > max_height:
        raise ValueError("evidence from the future")


class Driver:
    def __init__(self, chain_id: str, app: Application, cfg: DriverConfig, wal_path: Path,
                 signer_state_path: Path, private_key=None, address: bytes | None = None,
                 clock=None):
        """`clock()` gives milliseconds for vote and proposal times (wall clock by default;
        a simulation passes its fake clock)."""
        self.chain_id, self.app, self.cfg = chain_id, app, cfg
        self.now_ms = clock or now_ms
        self.net: Network | None = None
        self.address = address or b""
        self.signer = None
        self.signer_state_path = Path(signer_state_path)
        if private_key is not None:
            self.signer = SafeSigner(private_key, chain_id, _load_last_signed(self.signer_state_path))
        self.wal = W.WAL(wal_path)
        # One queue, so events keep their arrival order; only peer messages are bounded
        # (by count): the node's own timeouts and heights are never dropped.
        self.send_ch, self.inbox = trio.open_memory_channel(float("inf"))
        self.queued_from_peers = 0
        self.queued_by_peer: dict[str, int] = {}
        self.rs: RoundState | None = None
        self.height = 0
        self.blocks: dict[bytes, Block] = {}           # candidate blocks of this height
        self.seen: set[bytes] = set()                  # proposals and votes of this height
        self.vote_values: dict[tuple, set[bytes]] = {}  # (validator, round, type) -> hashes
        self.proposals_of: dict[tuple, int] = {}       # (proposer, round) -> proposals taken
        self.later: dict[bytes, tuple] = {}            # proposals for rounds beyond round + 1
        self.height_started_at = 0.0
        self.future: list[tuple[str, int, object]] = []  # messages for height + 1
        self.peer_heights: dict[str, int] = {}
        self.evidence: dict[tuple[bytes, bytes], None] = {}
        self.committed_evidence: set[tuple[bytes, bytes]] = set()
        self.sync_until = 0.0
        self.syncing_from: str | None = None
        self.handler_bugs = 0                            # peer messages that hit a bug
        self.sync_turn = 0                               # rotates requests over peers
        self.sync_penalty: dict[str, float] = {}         # peer -> asked last until then
        self.nursery: trio.Nursery | None = None
        # What the dashboard shows as validators' last votes (rpc/dashboard_methods.py):
        # validator -> the newest vote (by height, round, type) this node verified from it,
        # and height -> validator -> its precommit, for this height and the one before,
        # including precommits for the last committed height that arrive after its commit.
        self.last_votes: dict[bytes, Vote] = {}
        self.precommits: dict[int, dict[bytes, Vote]] = {}

    # -- inputs (called from p2p tasks: never block) -------------------------------------------
    def post(self, kind: str, peer: str | None, body) -> None:
        self.send_ch.send_nowait((kind, peer, body))

    def on_peer_message(self, peer: str, msg_type: int, body) -> None:
        mine = self.queued_by_peer.get(peer, 0)
        if self.queued_from_peers >= INBOX_SIZE or mine >= INBOX_PER_PEER:
            log.warning("consensus inbox full: dropping a message from %s", peer[:12])
            return
        self.queued_from_peers += 1
        self.queued_by_peer[peer] = mine + 1
        self.post("net", peer, (msg_type, body))

    def on_peer_connect(self, peer: str) -> None:
        self.post("connect", peer, None)

    def on_peer_disconnect(self, peer: str) -> None:
        self.post("disconnect", peer, None)

    # -- main loop --------------------------------------------------------------------------
    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            self._start_height(self.app.tip.height + 1, recover=True)
            task_status.started()
            nursery.start_soon(self._status_ticker)
            async for kind, peer, body in self.inbox:
                if kind == "net" and peer is not None:
                    self._dequeued(peer)
                await self._process(kind, peer, body)

    def _dequeued(self, peer: str) -> None:
        """Count a peer's message out of the inbox (re-posted messages of a later height
        were never counted in: never below zero)."""
        n = self.queued_by_peer.pop(peer, 0)
        if n:
            self.queued_from_peers -= 1
            if n > 1:
                self.queued_by_peer[peer] = n - 1

    async def _process(self, kind: str, peer: str | None, body) -> None:
        """One inbox event. A peer's message is checked field by field first; whatever a
        bad one raises drops (and scores down) that peer, never the node. Only a failure
        to execute or commit a block (ExecutionHalt) stops the node."""
        try:
            if kind == "net":
                check_body(*body)
            await self._handle(kind, peer, body)
        except BAD_INPUT as e:
            self._reject(kind, peer, f"bad {kind} message: {e}")
        except ExecutionHalt:
            raise
        except Exception as e:  # noqa: BLE001 - a handler bug must not let a peer kill the node
            if peer is None:
                raise
            self.handler_bugs += 1
            log.error("BUG: a message from peer %s raised %s: %s", peer[:12],
                      type(e).__name__, e, exc_info=True)
            self._reject(kind, peer, f"its message raised {type(e).__name__}")

    def _reject(self, kind: str, peer: str | None, why: str) -> None:
        """A peer's message failed its checks: drop (and score down) the peer, never the node."""
        if peer is not None and self.net is not None:
            self.net.drop(peer, why)
        elif peer is None:  # a replayed WAL record: skip it, the peers will re-send
            log.warning("skipping an unusable %s input: %s", kind, why)
        if peer is not None:
            self._forget_peer(peer)

    async def _status_ticker(self) -> None:
        """Re-announce our height now and then, and re-send our own votes of the current
        round: a peer that reconnected or lost messages can always make progress."""
        while True:
            await trio.sleep(1.0)
            self.post("tick", None, None)

    async def _handle(self, kind: str, peer: str | None, body) -> None:
        if kind == "net":
            msg_type, payload = body
            await self._on_net(peer, msg_type, payload)
        elif kind == "timeout":
            t: Timeout = body
            if self.rs is not None and t.height == self.height:
                self.wal.write(self.height, W.TIMEOUT, [t.step, t.height, t.round])
                self._do(self.rs.on_timeout(t, self.now_ms()))
        elif kind == "start":
            if body == self.height + 1 and self.app.tip.height == self.height:
                self._start_height(body)
        elif kind == "connect":
            self._send_status(peer)
            self._resend_current(peer)
        elif kind == "disconnect":
            self._forget_peer(peer)
            self._maybe_sync()
        elif kind == "tick":
            if self.net is not None:
                self.net.broadcast(MSG_STATUS, [self.app.tip.height, self.rs.round if self.rs else 0])
            if trio.current_time() - self.height_started_at > STUCK_S:
                self._resend_current(None)
            self._maybe_sync()

    # -- heights ----------------------------------------------------------------------------
    def _start_height(self, height: int, recover: bool = False) -> None:
        self.height = height
        self.blocks = {}
        self.seen = set()
        self.vote_values = {}
        self.proposals_of = {}
        self.later = {}
        self.height_started_at = trio.current_time()
        sel = self.app.selector(height)
        self._forget_old_votes(height, sel.powers)
        if self.rs is None:
            self.rs = RoundState(self.address, sel, self.cfg.timeouts)
        actions = None
        if recover:
            actions = self._recover(height, sel)
        if actions is None:
            actions = self.rs.start(height, self.now_ms(), sel)
        self._do(actions)
        pending, self.future = self.future, []
        for kind, peer, body in pending:
            self.post(kind, peer, body)

    def _recover(self, height: int, sel: ProposerSelector):
        """Rebuild the round state of an undecided height from the WAL after a restart."""
        records = self.wal.for_height(height)
        if not records:
            return None
        self._reconcile_signer(records)
        snap = None
        for kind, body in records:
            if kind == W.SIGNED and body[0] == "snapshot":
                snap = RoundSnapshot(*body[1])
        log.info("recovering height %d from %d WAL records", height, len(records))
        self.rs = RoundState(self.address, sel, self.cfg.timeouts)
        actions = self.rs.restore(snap, self.now_ms(), sel) if snap and snap.step != 4 else \
            self.rs.start(height, self.now_ms(), sel)
        # Inputs seen before the crash, and what this node signed, are replayed through
        # the normal paths (peer None: not logged or gossiped again).
        for kind, body in records:
            if kind == W.PROPOSAL:
                self.post("net", None, (MSG_PROPOSAL, body))
            elif kind == W.VOTE:
                self.post("net", None, (MSG_VOTE, body))
            elif kind == W.BLOCK:
                self.post("net", None, (MSG_BLOCK, body))
            elif kind == W.SIGNED and body[0] == "vote":
                self.post("net", None, (MSG_VOTE, body[1]))
            elif kind == W.SIGNED and body[0] == "proposal":
                self.post("net", None, (MSG_PROPOSAL, body[1:]))
        return actions

    def _snapshot_record(self) -> list:
        s = self.rs.snapshot()
        return ["snapshot", [s.height, s.round, s.step, s.locked_value, s.locked_round,
                             s.valid_value, s.valid_round]]

    # -- network messages -------------------------------------------------------------------
    async def _on_net(self, peer: str | None, msg_type: int, body) -> None:
        if msg_type == MSG_PROPOSAL:
            await self._on_proposal(peer, body)
        elif msg_type == MSG_VOTE:
            self._on_vote(peer, body)
        elif msg_type == MSG_BLOCK:
            await self._on_fetched_block(peer, body)
        elif msg_type == MSG_STATUS:
            self.peer_heights[peer] = body[0]
            self._maybe_sync()
        elif msg_type == MSG_GET_BLOCKS:
            self._serve_blocks(peer, body)
        elif msg_type == MSG_BLOCKS:
            await self._on_blocks(peer, body)
        elif msg_type == MSG_GET_BLOCK:
            h, bh = body
            blk = self.blocks.get(bh)
            if blk is not None and self.net is not None:
                self.net.send(peer, MSG_BLOCK, blk.encode())
        elif msg_type == MSG_EVIDENCE:
            self._on_evidence(peer, body)
        else:
            raise ValueError(f"unknown message type {msg_type}")

    async def _on_proposal(self, peer: str | None, body) -> None:
        pbytes, bbytes = body
        p = Proposal.decode(pbytes)
        if p.height > self.height:
            self._future(p.height, (MSG_PROPOSAL, body), peer)
            return
        if p.height < self.height or self.rs is None or pbytes in self.seen or self._decided():
            return
        if self.app.selector(self.height).powers.get(p.proposer, 0) <= 0:
            raise ValueError("proposal from a non-validator")
        if not verify_proposal(p, self.chain_id):
            raise ValueError("proposal signature does not verify")
        if p.round > self.rs.round + 1:
            # RoundState ignores it now; offer it again when the round catches up (a few
            # per proposer: its signed spam cannot crowd out the others').
            mine = sum(1 for k in self.later if Proposal.decode(k).proposer == p.proposer)
            if len(self.later) < MAX_LATER_PROPOSALS and mine < MAX_LATER_PER_PROPOSER:
                self.later[pbytes] = (peer, body)
            return
        block = Block.decode(bbytes)
        if block.hash() != p.block_hash:
            raise ValueError("proposal's block does not match its hash")
        if p.proposer != self.rs.proposer(p.round):
            raise ValueError("proposal from a validator that is not this round's proposer")
        taken = self.proposals_of.get((p.proposer, p.round), 0)
        if taken >= MAX_PROPOSALS_PER_ROUND:
            return   # an equivocating proposer's spam: no more block checks for it
        self.proposals_of[(p.proposer, p.round)] = taken + 1
        self.seen.add(pbytes)
        if peer is not None:
            self.wal.write(self.height, W.PROPOSAL, [pbytes, bbytes])
        valid = await self._check_block(block)
        if self.rs is None or self.height != p.height:
            return
        if self.net is not None and peer is not None:
            self.net.broadcast(MSG_PROPOSAL, body, exclude=peer)
        self._do(self.rs.on_proposal(p, valid, self.now_ms()))

    async def _check_block(self, block: Block) -> bool:
        try:
            sel = self.app.selector(self.height)
            last = self.app.selector(self.height - 1) if self.height > 1 else None
            validate_block(block, self.app.tip, self.chain_id, vals_of(sel),
                           vals_of(last) if last else None)
            for a, b in block.evidence:
                check_evidence(self.chain_id, a, b, block.header.height - 1)
                if self.app.evidence_committed(a):
                    raise ValueError("evidence already committed in an earlier block")
            if len(set(block.evidence)) != len(block.evidence):
                raise ValueError("the same evidence twice")
        except (InvalidBlockHeader, ValueError, DecodeError) as e:
            log.warning("invalid block %s at height %d: %s", block.hash().hex()[:12],
                        block.header.height, e)
            return False
        self.blocks[block.hash()] = block
        await self.app.prepare_block(block)
        return True

    def _forget_old_votes(self, height: int, powers) -> None:
        """Keep the last votes of validators of `height` (and recent ones), and the
        precommits of `height` and the height before."""
        self.last_votes = {k: v for k, v in self.last_votes.items()
                           if powers.get(k, 0) > 0 or v.height >= height - 1}
        self.precommits = {h: p for h, p in self.precommits.items() if h >= height - 1}

    def _note_vote(self, v: Vote) -> None:
        cur = self.last_votes.get(v.validator)
        if cur is None or (v.height, v.round, v.type) > (cur.height, cur.round, cur.type):
            self.last_votes[v.validator] = v
        if v.type == PRECOMMIT and v.block_hash:
            self.precommits.setdefault(v.height, {}).setdefault(v.validator, v)

    def _on_late_precommit(self, v: Vote) -> None:
        """A precommit for the last committed height that came after its commit: not
        counted by consensus, only noted as the validator's vote (one signature check per
        validator and height: once noted, its copies stop here)."""
        if v.type != PRECOMMIT or not v.block_hash or v.height != self.height - 1 or \
                v.validator in self.precommits.get(v.height, ()):
            return
        if self.app.selector(v.height).powers.get(v.validator, 0) <= 0:
            raise ValueError("vote from a non-validator")
        if not verify_vote(v, self.chain_id):
            raise ValueError("vote signature does not verify")
        self._note_vote(v)

    def _on_vote(self, peer: str | None, body) -> None:
        v = Vote.decode(body)
        if v.height > self.height:
            self._future(v.height, (MSG_VOTE, body), peer)
            return
        if v.height < self.height:
            self._on_late_precommit(v)
            return
        if self.rs is None:
            return
        if body in self.seen:
            return
        if self.app.selector(self.height).powers.get(v.validator, 0) <= 0:
            raise ValueError("vote from a non-validator")   # checked first: no work for it
        values = self.vote_values.setdefault((v.validator, v.round, v.type), set())
        if v.block_hash in values or len(values) >= MAX_VALUES_PER_VOTE:
            # The same vote again (another time or signature: nothing new), or an
            # equivocator's umpteenth value (its evidence is out already): no work for it.
            return
        if not verify_vote(v, self.chain_id):
            raise ValueError("vote signature does not verify")
        self.seen.add(body)
        values.add(v.block_hash)
        self._note_vote(v)
        if peer is not None:
            self.wal.write(self.height, W.VOTE, body)
            # Relay only what the round state tallies now: a validator's votes for far
            # rounds reach every peer from it directly, and relaying them would let one
            # Byzantine validator make honest nodes flood their peers.
            if self.net is not None and v.round <= self.rs.round + 1:
                self.net.broadcast(MSG_VOTE, body, exclude=peer)
        self._do(self.rs.on_vote(v, self.now_ms()))

    async def _on_fetched_block(self, peer: str | None, body) -> None:
        block = Block.decode(body)
        if self.rs is None or block.header.height != self.height or self._decided():
            return
        if peer is not None:
            self.wal.write(self.height, W.BLOCK, body)
        valid = await self._check_block(block)
        if self.rs is not None and self.height == block.header.height:
            self._do(self.rs.on_block(block.hash(), valid, self.now_ms()))

    def _decided(self) -> bool:
        """This height is committed; only the pause before the next one remains."""
        return self.app.tip.height >= self.height

    def _future(self, height: int, msg, peer) -> None:
        if height == self.height + 1 and len(self.future) < 1000:
            self.future.append(("net", peer, msg))
        if peer is not None:
            self.peer_heights[peer] = max(self.peer_heights.get(peer, 0), height - 1)
        self._maybe_sync()

    # -- evidence ---------------------------------------------------------------------------
    def _check_evidence(self, a: bytes, b: bytes) -> None:
        check_evidence(self.chain_id, a, b, self.height)

    def _on_evidence(self, peer: str | None, body) -> None:
        a, b = body
        key = (a, b) if a < b else (b, a)
        if key in self.evidence or key in self.committed_evidence:
            return
        if Vote.decode(key[0]).height > self.height:
            return  # we lag behind; the node that saw it will propose it
        self._check_evidence(*key)
        if self.app.evidence_committed(key[0]):
            self.committed_evidence.add(key)
            return
        if self._add_evidence(key) and self.net is not None:
            self.net.broadcast(MSG_EVIDENCE, list(key), exclude=peer)

    def submit_evidence(self, a: bytes, b: bytes) -> None:
        """Evidence from outside (RPC): checked now (ValueError if invalid), then handled
        like evidence from a peer."""
        key = (a, b) if a < b else (b, a)
        check_evidence(self.chain_id, *key, self.height)
        self.post("net", None, (MSG_EVIDENCE, list(key)))

    def _add_evidence(self, key: tuple[bytes, bytes]) -> bool:
        """Keep `key` for the next proposal (False: too much pending already)."""
        if len(self.evidence) >= MAX_PENDING_EVIDENCE:
            return False
        self.evidence[key] = None
        log.warning("double signing detected: validator %s",
                    Vote.decode(key[0]).validator.hex()[:16])
        return True

    # -- actions ----------------------------------------------------------------------------
    def _do(self, actions) -> None:
        round_before = self.rs.round if self.rs is not None else -1
        self._perform(actions)
        if self.later and self.rs is not None and self.rs.round != round_before:
            ready = [(k, v) for k, v in self.later.items()
                     if Proposal.decode(k).round <= self.rs.round + 1]
            for k, (peer, body) in ready:
                del self.later[k]
                self.post("net", None, (MSG_PROPOSAL, body))

    def _perform(self, actions) -> None:
        for a in actions:
            if isinstance(a, ScheduleTimeout):
                self.nursery.start_soon(self._timer, a.timeout, a.duration_ms)
            elif isinstance(a, BroadcastVote):
                self._sign_and_send_vote(a.vote)
            elif isinstance(a, ProposeBlock):
                self._propose(a.height, a.round)
            elif isinstance(a, BroadcastProposal):
                self._repropose(a)
            elif isinstance(a, FetchBlock):
                if self.net is not None:
                    self.net.broadcast(MSG_GET_BLOCK, [a.height, a.block_hash])
            elif isinstance(a, CommitAction):
                self._commit(a)
            elif isinstance(a, Evidence):
                ea, eb = a.vote_a.encode(), a.vote_b.encode()
                key = (ea, eb) if ea < eb else (eb, ea)
                if key not in self.evidence and key not in self.committed_evidence:
                    self._add_evidence(key)
                    if self.net is not None:
                        self.net.broadcast(MSG_EVIDENCE, list(key))
            else:  # pragma: no cover
                raise AssertionError(f"unknown action {a}")

    async def _timer(self, t: Timeout, ms: int) -> None:
        await trio.sleep(ms / 1000)
        self.post("timeout", None, t)

    def _persist_signed(self, kind: str, *data: bytes) -> None:
        """Before a signed message leaves: the WAL (round state, then the message), then the
        signer state, each fsynced. The WAL goes first so that it always knows at least as
        much as the signer state; on start the signer is brought up to the WAL."""
        self.wal.write(self.height, W.SIGNED, self._snapshot_record())
        self.wal.write(self.height, W.SIGNED, [kind, *data], sync=True)
        _save_last_signed(self.signer_state_path, self.signer.last_signed)

    def _sign_and_send_vote(self, vote: Vote) -> None:
        if self.signer is None:
            return
        t = self.now_ms()
        blk = self.blocks.get(vote.block_hash)
        if blk is not None:
            t = max(t, blk.header.time_ms + 1)
        try:
            signed = self.signer.sign_vote(replace(vote, time_ms=t))
        except DoubleSignError as e:
            log.error("refused to sign: %s", e)
            self._resend_last_signed()
            return
        data = signed.encode()
        self.seen.add(data)
        self._note_vote(signed)
        self._persist_signed("vote", data)
        if self.net is not None:
            self.net.broadcast(MSG_VOTE, data)
        self._do(self.rs.on_vote(signed, self.now_ms()))

    def _resend_last_signed(self) -> None:
        """What we already signed for this step stands: make sure peers (and we) have it."""
        ls = self.signer.last_signed
        if ls is None or ls.height != self.height or not isinstance(ls.message, Vote):
            return
        data = ls.message.encode()
        if self.net is not None:
            self.net.broadcast(MSG_VOTE, data)
        if data not in self.seen:
            self.seen.add(data)
            self._do(self.rs.on_vote(ls.message, self.now_ms()))

    def _reconcile_signer(self, records) -> None:
        """After a crash the WAL may hold a signature newer than the signer state."""
        if self.signer is None:
            return
        for kind, body in records:
            if kind != W.SIGNED or body[0] not in ("vote", "proposal"):
                continue
            m = Vote.decode(body[1]) if body[0] == "vote" else Proposal.decode(body[1])
            step = 1 if body[0] == "proposal" else (2 if m.type == PREVOTE else 3)
            ls = self.signer.last_signed
            if ls is None or (m.height, m.round, step) > (ls.height, ls.round, ls.step):
                self.signer.last_signed = LastSigned(m.height, m.round, step, m)
                _save_last_signed(self.signer_state_path, self.signer.last_signed)

    def _propose(self, height: int, round_: int) -> None:
        if self.signer is None:
            return
        txs = self.app.propose(self.cfg.max_block_txs, self.cfg.max_block_bytes)
        sel = self.app.selector(height)
        last = self.app.selector(height - 1) if height > 1 else None
        for key in [k for k in self.evidence if self.app.evidence_committed(k[0])]:
            del self.evidence[key]
            self.committed_evidence.add(key)
        evidence, offences = [], set()
        for k in self.evidence:
            v = Vote.decode(k[0])
            offence = (v.validator, v.height, v.round, v.type)
            if v.height < height and offence not in offences:  # one pair per offence
                offences.add(offence)
                evidence.append(k)
        evidence = tuple(evidence)
        block = build_block(self.chain_id, self.app.tip, txs, self.address, vals_of(sel),
                            vals_of(last) if last else None, evidence)
        self.blocks[block.hash()] = block
        self._send_proposal(Proposal(height, round_, block.hash(), -1, self.address, b"",
                                     self.now_ms()), block)

    def _repropose(self, a: BroadcastProposal) -> None:
        block = self.blocks.get(a.block_hash)
        if self.signer is None or block is None:
            return
        self._send_proposal(Proposal(a.height, a.round, a.block_hash, a.pol_round, self.address,
                                     b"", self.now_ms()), block)

    def _send_proposal(self, p: Proposal, block: Block) -> None:
        try:
            signed = self.signer.sign_proposal(p)
        except DoubleSignError as e:
            log.error("refused to sign proposal: %s", e)
            self._resend_last_signed()
            return
        body = [signed.encode(), block.encode()]
        self._persist_signed("proposal", *body)
        if self.net is not None:
            self.net.broadcast(MSG_PROPOSAL, body)
        self._do(self.rs.on_proposal(signed, True, self.now_ms()))

    def _commit(self, a: CommitAction) -> None:
        block = self.blocks[a.block_hash]
        sigs = tuple(sorted((CommitSig(v.validator, v.time_ms, v.signature)
                             for v in a.precommits if v.type == PRECOMMIT),
                            key=lambda s: s.validator))
        commit = Commit(a.height, a.round, a.block_hash, sigs)
        self._apply(block, commit)
        self.nursery.start_soon(self._start_next, a.height + 1)

    def _apply(self, block: Block, commit: Commit) -> None:
        try:
            result = self.app.execute(block)
            self.app.commit(block, commit, result)
        except Exception as e:
            raise ExecutionHalt(f"height {block.header.height}: {type(e).__name__}: {e}") from e
        self.wal.next_height()
        for e in block.evidence:
            self.evidence.pop(tuple(e), None)
            self.committed_evidence.add(tuple(e))
        if self.net is not None:
            self.net.broadcast(MSG_STATUS, [self.app.tip.height, 0])

    async def _start_next(self, height: int) -> None:
        await trio.sleep(self.cfg.timeout_commit_ms / 1000)
        if not self.cfg.create_empty_blocks:
            # Wait for a tx of our own or for a peer to move on (its proposal or votes for
            # the next height: it had txs that our mempool may never see).
            while not self.app.has_txs() and not any(
                    k == "net" and b[0] in (MSG_PROPOSAL, MSG_VOTE) for k, _, b in self.future) \
                    and self.now_ms() - self.app.tip.time_ms < self.cfg.max_block_age_ms:
                with trio.move_on_after(0.05):
                    await self.app.wait_for_txs()
        self.post("start", None, height)

    # -- catch-up -----------------------------------------------------------------------------
    def _send_status(self, peer: str) -> None:
        if self.net is not None:
            self.net.send(peer, MSG_STATUS, [self.app.tip.height, self.rs.round if self.rs else 0])

    def _resend_current(self, peer: str | None) -> None:
        """Re-send this node's own proposal and votes of the current height."""
        if self.net is None or self.rs is None or self.signer is None:
            return
        ls = self.signer.last_signed
        if ls is None or ls.height != self.height:
            return
        send = (lambda t, b: self.net.send(peer, t, b)) if peer else self.net.broadcast
        # Every round of the height, not only the last ones: a peer that missed the
        # prevotes of an old proof-of-lock round can then accept its re-proposal.
        for r in range(self.rs.round + 1):
            for vs in (self.rs.votes.prevotes(r), self.rs.votes.precommits(r)):
                if vs is not None:
                    own = vs.get(self.address)
                    if own is not None:
                        send(MSG_VOTE, own.encode())
            p = self.rs.proposal(r)
            if p is not None and p.proposer == self.address and p.block_hash in self.blocks:
                send(MSG_PROPOSAL, [p.encode(), self.blocks[p.block_hash].encode()])

    @property
    def catching_up(self) -> bool:
        """Whether this node is fetching committed blocks it lacks from a peer (for the
        RPC `status` method's `catching_up`)."""
        return self.syncing_from is not None

    def _forget_peer(self, peer: str) -> None:
        """A peer that disconnected (or was dropped) no longer counts as a sync source."""
        self.peer_heights.pop(peer, None)
        if self.syncing_from == peer:
            self.syncing_from = None

    def _sync_failed(self, peer: str, why: str) -> None:
        """`peer` did not deliver heights it claimed: ask others first for a while, and
        forget its claim until it announces its height again."""
        now = trio.current_time()
        self.sync_penalty[peer] = now + SYNC_PENALTY_S
        if self.peer_heights.get(peer, 0) > self.app.tip.height:
            self.peer_heights[peer] = self.app.tip.height
        if self.syncing_from == peer:
            self.syncing_from = None
        log.info("sync from peer %s failed (%s): asking others first", peer[:12], why)

    def _sync_source(self, now: float) -> str | None:
        """The peer to ask for blocks: one ahead of us, in turn (so a peer that claims a
        height it cannot serve never gets every request), peers that failed lately last."""
        stuck = now - self.height_started_at > STUCK_S
        # A peer that committed our height and the next one means we fell behind; one
        # that committed only ours, while we have been stuck on it, too.
        ahead = sorted(p for p, h in self.peer_heights.items()
                       if h > self.height or (h == self.height and stuck))
        if not ahead:
            return None
        fresh = [p for p in ahead if self.sync_penalty.get(p, 0.0) <= now]
        pool = fresh or ahead
        self.sync_turn += 1
        return pool[self.sync_turn % len(pool)]

    def _maybe_sync(self) -> None:
        if self.net is None:
            return
        now = trio.current_time()
        if self.syncing_from is not None:
            if now < self.sync_until:
                return
            self._sync_failed(self.syncing_from, f"no reply in {SYNC_TIMEOUT_S:.0f}s")
        peer = self._sync_source(now)
        tip = self.app.tip.height
        count = 0 if peer is None else min(SYNC_BATCH, self.peer_heights[peer] - tip)
        if count <= 0:
            self.syncing_from = None
            return
        self.syncing_from = peer
        self.sync_until = now + SYNC_TIMEOUT_S
        self.net.send(peer, MSG_GET_BLOCKS, [tip + 1, count])

    def _serve_blocks(self, peer: str, body) -> None:
        """Answer GET_BLOCKS (checked by check_body) with what we have of the range, [] if
        nothing, so the asker moves on to another peer at once."""
        start, count = body
        out, size = [], 0
        for h in range(start, min(start + min(count, SYNC_BATCH), self.app.tip.height + 1)):
            bc = self.app.block_and_commit(h)
            if bc is None or (out and size + len(bc[0]) + len(bc[1]) > SYNC_MAX_BYTES):
                break
            out.append(list(bc))
            size += len(bc[0]) + len(bc[1])
        if self.net is not None:
            self.net.send(peer, MSG_BLOCKS, out)

    async def _on_blocks(self, peer: str, body) -> None:
        applied = stale = 0
        try:
            for bbytes, cbytes in body:
                block = Block.decode(bbytes)
                h = block.header.height
                if h <= self.app.tip.height:
                    stale += 1   # we committed it meanwhile: not the peer's fault
                    continue
                if h != self.app.tip.height + 1:
                    break
                commit = Commit.decode(cbytes)
                sel = self.app.selector(h)
                last = self.app.selector(h - 1) if h > 1 else None
                try:
                    validate_block(block, self.app.tip, self.chain_id, vals_of(sel),
                                   vals_of(last) if last else None)
                    commit.verify(self.chain_id, vals_of(sel), block.hash(), h)
                except (InvalidBlockHeader, InvalidCommit) as e:
                    raise ValueError(f"synced block {h}: {e}") from None
                await self.app.prepare_block(block)
                self._apply(block, commit)
                applied += 1
        finally:
            if applied or stale:
                self.sync_penalty.pop(peer, None)
                if self.syncing_from == peer:
                    self.syncing_from = None
            elif self.syncing_from == peer and peer is not None:
                self._sync_failed(peer, "it sent no block we lack")
        if applied:
            log.info("caught up %d blocks to height %d", applied, self.app.tip.height)
            self._start_height(self.app.tip.height + 1)
            self._maybe_sync()
