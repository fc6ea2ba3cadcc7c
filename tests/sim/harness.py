"""Deterministic multi-node simulation of ``consensus.rounds`` (TigerBeetle-VOPR style).

N validators run in one process, each a ``RoundState`` driven by a fake clock
and a fake network. One ``random.Random`` seeded from (n, seed) decides
everything: validator powers, which validators are Byzantine and how, message
delays, drops, duplicates and reordering, partitions (that heal), crashes and
restarts. The same (n, seed) replays the same run, event for event.

Time has two phases: a chaotic phase ``[0, heal_ms)`` (drops, long delays,
duplicates, partitions, crashes, extra precommit loss) and a healed phase
(every message between up nodes arrives within ``HEALED_MAX_DELAY_MS``;
Byzantine validators keep misbehaving). Lost messages are repaired by gossip:
every ``gossip_ms`` a node re-sends to each peer at its height the proposals
and votes that peer has not received (CometBFT learns this from peers'
HasVote messages; the simulation reads it directly), and sends a decided
height's commit (block + precommits) to a peer still working on that height
(block sync). Half of the runs use timeouts shorter than the chaotic delays,
so rounds fail right after polkas and the lock / valid-value rules get used.

Faults: at most f = (n-1)//3 validators are faulty at once, and their power is
strictly less than 1/3 of the total. Byzantine behaviours:

* ``silent``: never sends anything.
* ``equivocate``: as proposer, signs two different blocks for the same round
  and sends each to a different part of the network.
* ``double_vote``: signs, for each of its votes, a conflicting vote too, and
  sends each to a different part of the network.
* ``bad_proposer``: proposes invalid blocks.
* ``amnesia``: the attacker that exploits lock-rule bugs. It forgets its lock
  and valid value before every event, so it prevotes any valid proposal and
  proposes fresh blocks or re-proposes an old polka's value with its stale
  POL round; it also splits its precommits for a value (nil to part of the
  network), so a precommit quorum can exist that some correct nodes do not
  see before they move to the next round. Most amnesia runs are "stress"
  runs: f amnesiacs with as much power as < 1/3 allows, tight timeouts and
  heavy precommit loss.

Crashed nodes restart with their block store, their signer's last-signed
(height, round, step) and, in WAL mode, their ``RoundSnapshot`` (locks). Without
a WAL a restarted node forgets its locks; then crashes are limited to a fixed
set counted in the f budget (amnesia is a Byzantine fault), and the signer
alone keeps it from double-signing.

Checked in every run (a violation raises ``SimFailure`` naming the seed):

* safety: no two nodes decide different values at a height, and only valid
  blocks are decided;
* every commit carries > 2/3 of the power in valid, signed precommits for its
  (height, round, block), and its BFT time lies within its votes' times;
* the lock rule, on every prevote a correct node signs: a node locked on x
  since round L prevotes another value w in round r only if +2/3 of the power
  signed prevotes for w in some round of [L, r);
* the locking lemma, on every precommit anyone signs: once +2/3 of the power
  precommitted v in round r, no correct node precommits another value in any
  round >= r (this catches lock bugs even when they never become a decision);
* no correct validator signs two different messages for one
  (height, round, step), and only Byzantine equivocators are accused of it;
* liveness: every correct validator decides ``target_height`` before
  ``heal_ms + LIVENESS_MS``.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from dataclasses import dataclass, field, replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from consensus.messages import (
    NIL,
    PRECOMMIT,
    DoubleSignError,
    Proposal,
    SafeSigner,
    Vote,
    public_key_bytes,
    sign_proposal,
    sign_vote,
    verify_proposal,
    verify_vote,
)
from consensus.proposer import ProposerSelector
from consensus.rounds import (
    BroadcastProposal,
    BroadcastVote,
    Commit,
    Evidence,
    FetchBlock,
    ProposeBlock,
    RoundSnapshot,
    RoundState,
    ScheduleTimeout,
    Step,
    TimeoutConfig,
)
from consensus.vote_set import bft_time, has_quorum

CHAIN_ID = "perpchain-sim"
T0_MS = 1_700_000_000_000  # simulated epoch: vote times look like real ones
GOSSIP_MS = 250
COMMIT_TIMEOUT_MS = 1000
HEALED_MAX_DELAY_MS = 40
LIVENESS_MS = 60_000
TIMEOUTS = TimeoutConfig(
    propose_ms=1000,
    propose_delta_ms=500,
    prevote_ms=500,
    prevote_delta_ms=250,
    precommit_ms=500,
    precommit_delta_ms=250,
)
# Timeouts shorter than the chaotic delays: rounds fail after polkas, so nodes
# lock, carry valid values across rounds and re-propose them.
TIGHT_TIMEOUTS = TimeoutConfig(
    propose_ms=300,
    propose_delta_ms=100,
    prevote_ms=100,
    prevote_delta_ms=50,
    precommit_ms=100,
    precommit_delta_ms=50,
)

BEHAVIOURS = ("silent", "equivocate", "double_vote", "bad_proposer", "amnesia")

_MAX_N = 16
_KEYS = [Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"sim-validator-%d" % i).digest()) for i in range(_MAX_N)]
_ADDRS = [public_key_bytes(k) for k in _KEYS]


class SimFailure(AssertionError):
    pass


class AmnesiacRoundState(RoundState):
    """Byzantine: forgets its lock and valid value before every event."""

    def _forget(self) -> None:
        self.locked_value, self.locked_round = None, -1
        self.valid_value, self.valid_round = None, -1

    def on_proposal(self, proposal, block_is_valid, now_ms):
        self._forget()
        return super().on_proposal(proposal, block_is_valid, now_ms)

    def on_block(self, block_hash, block_is_valid, now_ms):
        self._forget()
        return super().on_block(block_hash, block_is_valid, now_ms)

    def on_vote(self, vote, now_ms):
        self._forget()
        return super().on_vote(vote, now_ms)

    def on_timeout(self, timeout, now_ms):
        self._forget()
        return super().on_timeout(timeout, now_ms)


@dataclass
class Scenario:
    """Everything a run depends on, derived from (n, seed) by ``make_scenario``."""

    n: int
    seed: int
    powers: list[int]
    byzantine: dict[int, str]  # node index -> behaviour
    wal: bool
    heal_ms: int
    stress: bool
    p_drop: float
    p_dup: float
    max_delay_ms: int
    p_long_delay: float
    long_delay_ms: int
    partitions: list[tuple[int, int, list[int]]]  # (start, end, group of each node)
    crashes: list[tuple[int, int, int]]  # (crash_at, restart_at, node)
    skews: list[int]
    target_height: int
    gossip_ms: int = GOSSIP_MS
    p_precommit_loss: float = 0.0  # extra loss of precommits while chaotic: locks without decisions
    tight: bool = False  # TIGHT_TIMEOUTS instead of TIMEOUTS

    def describe(self) -> str:
        byz = ",".join(f"{i}:{b}" for i, b in sorted(self.byzantine.items())) or "none"
        return (
            f"n={self.n} seed={self.seed} powers={self.powers} byzantine={byz} stress={self.stress} wal={self.wal} "
            f"heal={self.heal_ms}ms drop={self.p_drop:.2f} dup={self.p_dup:.2f} "
            f"delay<={self.max_delay_ms}ms gossip={self.gossip_ms}ms tight={self.tight} "
            f"precommit_loss={self.p_precommit_loss} partitions={len(self.partitions)} "
            f"crashes={len(self.crashes)} target={self.target_height}"
        )


def faulty_ok(powers: list[int], faulty: set[int]) -> bool:
    """At most f nodes and strictly less than 1/3 of the power."""
    n = len(powers)
    return len(faulty) <= (n - 1) // 3 and 3 * sum(powers[i] for i in faulty) < sum(powers)


def make_scenario(n: int, seed: int, kind: str | None = None) -> Scenario:
    """Derive a scenario from (n, seed); ``kind`` forces a Byzantine behaviour ("none" for none)."""
    rng = random.Random(f"perpchain-sim:{n}:{seed}")
    f = (n - 1) // 3
    if rng.random() < 0.3:
        powers = [rng.randint(1, 10) for _ in range(n)]
    else:
        powers = [10] * n
    if kind is None:
        kind = rng.choice(("none", "none", "mixed", "amnesia") + BEHAVIOURS)
    byzantine: dict[int, str] = {}
    if kind != "none":
        order = list(range(n))
        rng.shuffle(order)
        count = rng.randint(1, f) if kind == "mixed" else f if kind == "amnesia" else 1
        for i in order:
            if len(byzantine) >= count:
                break
            if faulty_ok(powers, set(byzantine) | {i}):
                byzantine[i] = rng.choice(BEHAVIOURS) if kind == "mixed" else kind
    # Lock stress: the strongest lock-breaking adversary (as much power as < 1/3
    # allows) in a network whose timeouts are shorter than its delays and that
    # loses precommits, so rounds fail right after polkas and precommit quorums.
    stress = kind == "amnesia" and rng.random() < 0.6
    if stress:
        k = len(byzantine)
        byz_power = -(-5 * (n - k) // k) - 1  # largest p with 3*k*p < total
        powers = [byz_power if i in byzantine else 10 for i in range(n)]
        assert faulty_ok(powers, set(byzantine))
    heal_ms = rng.randint(2_000, 20_000)
    wal = rng.random() < 0.7
    # Crashes: in WAL mode any correct node (at most f faulty at once); without a
    # WAL only a fixed amnesia set that, with the Byzantine ones, fits in f.
    crash_pool = [i for i in range(n) if i not in byzantine]
    if not wal:
        amnesiac: set[int] = set()
        for i in rng.sample(crash_pool, len(crash_pool)):
            if faulty_ok(powers, set(byzantine) | amnesiac | {i}):
                amnesiac.add(i)
        crash_pool = sorted(amnesiac)
    crashes: list[tuple[int, int, int]] = []
    for _ in range(rng.randint(0, 4)):
        if not crash_pool:
            break
        start = rng.randint(100, heal_ms - 500)  # after every node's first start (<= 50 ms)
        end = min(heal_ms, start + rng.randint(300, 6_000))
        node = rng.choice(crash_pool)
        down = {c[2] for c in crashes if c[0] < end and start < c[1]}
        if node in down or not faulty_ok(powers, set(byzantine) | down | {node}):
            continue
        crashes.append((start, end, node))
    partitions: list[tuple[int, int, list[int]]] = []
    t = 0
    for _ in range(rng.randint(0, 3)):
        start = t + rng.randint(0, heal_ms // 3)
        if start >= heal_ms:
            break
        end = min(heal_ms, start + rng.randint(500, 8_000))
        ngroups = rng.choice((2, 2, 3))
        groups = [rng.randrange(ngroups) for _ in range(n)]
        partitions.append((start, end, groups))
        t = end
    return Scenario(
        n=n,
        seed=seed,
        powers=powers,
        byzantine=byzantine,
        wal=wal,
        heal_ms=heal_ms,
        p_drop=rng.choice((0.0, 0.05, 0.15, 0.3)),
        stress=stress,
        p_dup=rng.choice((0.0, 0.05, 0.2)),
        max_delay_ms=400 if stress else rng.choice((20, 100, 400, 1_200)),
        p_long_delay=rng.choice((0.0, 0.05, 0.2)),
        long_delay_ms=rng.choice((1_000, 3_000)),
        partitions=partitions,
        crashes=sorted(crashes),
        skews=[rng.randint(-200, 200) for _ in range(n)],
        target_height=rng.randint(8, 10) if n <= 4 else 8,
        gossip_ms=rng.choice((GOSSIP_MS, 2 * GOSSIP_MS, 4 * GOSSIP_MS)),
        p_precommit_loss=0.6 if stress else rng.choice((0.0, 0.0, 0.3, 0.6)),
        tight=stress or rng.random() < 0.5,
    )


def block_value(height: int, proposer: bytes, round_: int, tag: bytes = b"") -> bytes:
    """An opaque block: its hash is all the simulation needs."""
    return hashlib.sha256(b"block|%d|%d|" % (height, round_) + proposer + tag).digest()


@dataclass(frozen=True, slots=True)
class CommitMsg:
    """Block-sync: a decided height's block and its +2/3 precommits."""

    height: int
    block_hash: bytes
    precommits: tuple[Vote, ...]


@dataclass
class Disk:
    """What survives a crash."""

    commits: list[Commit] = field(default_factory=list)
    snapshot: RoundSnapshot | None = None
    last_signed: object = None


class Node:
    __slots__ = (
        "idx",
        "key",
        "address",
        "behaviour",
        "up",
        "epoch",
        "rs",
        "signer",
        "disk",
        "seen",
        "msgs",
        "future",
        "future_seen",
        "version",
        "skew",
    )

    def __init__(self, idx: int, behaviour: str | None, skew: int) -> None:
        self.idx = idx
        self.key = _KEYS[idx]
        self.address = _ADDRS[idx]
        self.behaviour = behaviour
        self.up = False
        self.epoch = 0
        self.rs: RoundState | None = None
        self.signer: SafeSigner | None = None
        self.disk = Disk()
        self.seen: set = set()  # messages received (or created) at the current height
        self.msgs: list = []  # the same, in arrival order: what this node gossips
        self.future: list = []  # messages for the next height, replayed when it starts
        self.future_seen: set = set()
        self.version = 0  # bumped whenever ``seen`` changes (gossip skips unchanged pairs)
        self.skew = skew

    @property
    def committed(self) -> int:
        return len(self.disk.commits)


# event kinds
_DELIVER, _TIMER, _START, _GOSSIP, _CRASH, _RESTART, _FETCHED, _PARTITION = range(8)


class Sim:
    def __init__(self, sc: Scenario) -> None:
        self.sc = sc
        self.rng = random.Random(f"perpchain-sim-run:{sc.n}:{sc.seed}")
        self.now = 0
        self.queue: list = []
        self.seq = 0
        self.powers = {_ADDRS[i]: sc.powers[i] for i in range(sc.n)}
        self.total_power = sum(sc.powers)
        self.index = {_ADDRS[i]: i for i in range(sc.n)}
        self._selectors = [None, ProposerSelector.genesis(self.powers)]
        self.nodes = [Node(i, sc.byzantine.get(i), sc.skews[i]) for i in range(sc.n)]
        self.correct = [i for i in range(sc.n) if i not in sc.byzantine]
        self.double_voters = {_ADDRS[i] for i, b in sc.byzantine.items() if b in ("double_vote", "amnesia")}
        self.blocks: dict[bytes, bool] = {}  # every block ever built -> valid?
        self.decided: dict[int, bytes] = {}
        self.signed_by_correct: dict[tuple, bytes] = {}
        self.forgetful: set[int] = set()  # correct nodes restarted without a WAL (budgeted as faulty)
        self.prevote_signers: dict[tuple, set] = {}
        self.prevote_power: dict[tuple, int] = {}
        self.locks: dict[tuple[int, int], tuple[int, bytes]] = {}  # (node, height) -> last non-nil precommit
        self.precommit_signers: dict[tuple, set] = {}
        self.precommit_power: dict[tuple, int] = {}
        self.precommit_quorums: dict[int, list] = {}
        self.correct_precommits: dict[int, list] = {}
        self._verified: dict = {}
        self._commit_verified: dict = {}
        self.groups: list[int] | None = None
        self.gossip_clean: dict[tuple[int, int], tuple] = {}
        self.done_count = 0
        self.stats = dict.fromkeys(
            ("events", "messages", "max_round", "evidence", "refused_signs", "commits", "reproposals", "late_round_commits"),
            0,
        )
        self.trace = hashlib.sha256()

    # -- plumbing --------------------------------------------------------------------------

    def fail(self, what: str) -> None:
        raise SimFailure(
            f"{what}\n  at t={self.now}ms; {self.sc.describe()}\n"
            f"  replay: pytest tests/sim -k 'n{self.sc.n}_seed_{self.sc.seed}]'   (any seed: "
            f"SIM_N={self.sc.n} SIM_SEED={self.sc.seed} pytest tests/sim/test_sim.py::test_sim)"
        )

    def push(self, at: int, kind: int, a=None, b=None, c=None) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (at, self.seq, kind, a, b, c))

    def selector(self, height: int) -> ProposerSelector:
        sels = self._selectors
        while len(sels) <= height:
            sels.append(sels[-1].next_height())
        return sels[height]

    def local_time(self, node: Node) -> int:
        return T0_MS + self.now + node.skew

    def verified(self, msg) -> bool:
        ok = self._verified.get(msg)
        if ok is None:
            ok = verify_vote(msg, CHAIN_ID) if type(msg) is Vote else verify_proposal(msg, CHAIN_ID)
            self._verified[msg] = ok
        return ok

    def send(self, src: int, dst: int, msg) -> None:
        self.stats["messages"] += 1
        if self.now >= self.sc.heal_ms:
            self.push(self.now + self.rng.randint(1, HEALED_MAX_DELAY_MS), _DELIVER, dst, msg)
            return
        groups = self.groups
        if groups is not None and groups[src] != groups[dst]:
            return
        rng = self.rng
        sc = self.sc
        if sc.p_drop and rng.random() < sc.p_drop:
            return
        if sc.p_precommit_loss and type(msg) is Vote and msg.type == PRECOMMIT and rng.random() < sc.p_precommit_loss:
            return
        copies = 2 if sc.p_dup and rng.random() < sc.p_dup else 1
        for _ in range(copies):
            delay = rng.randint(1, sc.max_delay_ms)
            if sc.p_long_delay and rng.random() < sc.p_long_delay:
                delay += rng.randint(0, sc.long_delay_ms)
            self.push(self.now + delay, _DELIVER, dst, msg)

    def broadcast(self, src: int, msg, targets=None) -> None:
        for j in range(self.sc.n) if targets is None else targets:
            if j != src:
                self.send(src, j, msg)

    # -- run -------------------------------------------------------------------------------

    def run(self) -> dict:
        sc = self.sc
        for i, node in enumerate(self.nodes):
            if node.behaviour == "silent":
                continue
            self.push(self.rng.randint(0, 50), _RESTART, i)
            self.push(self.rng.randint(0, sc.gossip_ms) + sc.gossip_ms, _GOSSIP, i)
        for crash_at, restart_at, i in sc.crashes:
            self.push(crash_at, _CRASH, i)
            self.push(restart_at, _RESTART, i)
        for start, end, groups in sc.partitions:
            self.push(start, _PARTITION, groups)
            self.push(end, _PARTITION, None)
        deadline = sc.heal_ms + LIVENESS_MS
        queue = self.queue
        nodes = self.nodes
        stats = self.stats
        while self.done_count < len(self.correct):
            if not queue:
                self.fail("event queue ran dry")
            at, _, kind, a, b, c = heapq.heappop(queue)
            if at > deadline:
                lag = {i: nodes[i].committed for i in self.correct}
                self.fail(f"liveness: correct nodes did not all reach height {sc.target_height}: committed={lag}")
            self.now = at
            stats["events"] += 1
            if kind == _DELIVER:
                self.deliver(nodes[a], b)
            elif kind == _TIMER:
                node = nodes[a]
                if node.up and node.epoch == b:
                    self.process(node, node.rs.on_timeout(c, self.local_time(node)))
            elif kind == _GOSSIP:
                node = nodes[a]
                if node.up:
                    self.gossip(node)
                self.push(at + sc.gossip_ms, _GOSSIP, a)
            elif kind == _START:
                node = nodes[a]
                if node.up and node.epoch == b:
                    self.start_height(node, c)
            elif kind == _FETCHED:
                node = nodes[a]
                if node.up and node.epoch == b and node.rs.height == c[0] and c[1] in self.blocks:
                    self.process(node, node.rs.on_block(c[1], self.blocks[c[1]], self.local_time(node)))
            elif kind == _CRASH:
                self.crash(nodes[a])
            elif kind == _RESTART:
                self.restart(nodes[a])
            elif kind == _PARTITION:
                self.groups = a
        stats["sim_ms"] = self.now
        return stats

    # -- node lifecycle --------------------------------------------------------------------

    def crash(self, node: Node) -> None:
        node.up = False
        node.epoch += 1
        node.rs = None
        node.signer = None

    def restart(self, node: Node) -> None:
        node.up = True
        node.epoch += 1
        node.seen = set()
        node.msgs = []
        node.future = []
        node.future_seen = set()
        node.version += 1
        if not self.sc.wal and node.disk.last_signed is not None:
            self.forgetful.add(node.idx)
        node.signer = SafeSigner(node.key, CHAIN_ID, node.disk.last_signed)  # type: ignore[arg-type]
        height = node.committed + 1
        cls = AmnesiacRoundState if node.behaviour == "amnesia" else RoundState
        node.rs = cls(node.address, self.selector(height), TIGHT_TIMEOUTS if self.sc.tight else TIMEOUTS)
        snap = node.disk.snapshot
        now = self.local_time(node)
        if self.sc.wal and snap is not None and snap.height == height and snap.step != Step.COMMIT:
            self.process(node, node.rs.restore(snap, now))
        else:
            self.process(node, node.rs.start(height, now))

    def start_height(self, node: Node, height: int) -> None:
        if node.rs.height >= height:
            return
        node.seen = set()
        node.msgs = []
        node.version += 1
        future = node.future
        node.future = []
        node.future_seen = set()
        self.process(node, node.rs.start(height, self.local_time(node), self.selector(height)))
        for msg in future:
            if not node.up or node.rs.height != height:
                break
            self.deliver(node, msg)

    # -- messages ----------------------------------------------------------------------------

    def deliver(self, node: Node, msg) -> None:
        if not node.up:
            return
        rs = node.rs
        h = msg.height
        if h != rs.height:
            if h == rs.height + 1 and msg not in node.future_seen:
                node.future_seen.add(msg)
                node.future.append(msg)
            return
        t = type(msg)
        if t is CommitMsg:
            if rs.step == Step.COMMIT:
                return
            self.process(node, rs.on_block(msg.block_hash, self.blocks.get(msg.block_hash, False), self.local_time(node)))
            for v in msg.precommits:
                if not node.up or node.rs is not rs or rs.step == Step.COMMIT:
                    break
                self.deliver(node, v)
            return
        if msg in node.seen:
            return
        if t is Proposal and msg.round > rs.round + 1:
            return  # consensus ignores it; not "received", so gossip re-sends it later
        node.seen.add(msg)
        node.version += 1
        if not self.verified(msg):
            return
        node.msgs.append(msg)
        if t is Vote:
            acts = rs.on_vote(msg, self.local_time(node))
        else:
            acts = rs.on_proposal(msg, self.blocks.get(msg.block_hash, False), self.local_time(node))
        if acts:
            self.process(node, acts)

    def own(self, node: Node, msg) -> None:
        """Record a message this node created (it has 'received' it)."""
        node.seen.add(msg)
        node.version += 1
        node.msgs.append(msg)

    def gossip(self, node: Node) -> None:
        rs = node.rs
        me = node.idx
        commits = node.disk.commits
        clean = self.gossip_clean
        for peer in self.nodes:
            if peer is node or not peer.up:
                continue
            prs = peer.rs
            ph = prs.height
            if ph <= len(commits):
                if prs.step != Step.COMMIT:
                    c = commits[ph - 1]
                    self.send(me, peer.idx, CommitMsg(c.height, c.block_hash, c.precommits))
                continue
            if ph != rs.height:
                continue
            key = (me, peer.idx)
            state = (rs.height, len(node.msgs), peer.version)
            if clean.get(key) == state:
                continue
            seen = peer.seen
            missing = [m for m in node.msgs if m not in seen]
            if missing:
                for m in missing:
                    self.send(me, peer.idx, m)
            else:
                clean[key] = state

    # -- actions -----------------------------------------------------------------------------

    def process(self, node: Node, actions: list) -> None:
        work = list(actions)
        i = 0
        while i < len(work):
            if not node.up:
                return
            a = work[i]
            i += 1
            t = type(a)
            rs = node.rs
            if t is BroadcastVote:
                work.extend(self.do_vote(node, a.vote))
            elif t is ScheduleTimeout:
                self.push(self.now + a.duration_ms, _TIMER, node.idx, node.epoch, a.timeout)
                if a.round > self.stats["max_round"]:
                    self.stats["max_round"] = a.round
            elif t is ProposeBlock:
                value, pol = block_value(a.height, node.address, a.round), -1
                self.blocks[value] = node.behaviour != "bad_proposer"
                if node.behaviour == "amnesia" and self.rng.random() < 0.5:
                    # Re-propose the value of a random earlier polka with its (possibly stale) POL round.
                    polkas = [(r, pv.maj23) for r in range(a.round) if (pv := rs.votes.prevotes(r)) and pv.maj23]
                    if polkas:
                        pol, value = self.rng.choice(polkas)
                work.extend(self.do_propose(node, a.height, a.round, value, pol))
            elif t is BroadcastProposal:
                self.stats["reproposals"] += 1
                work.extend(self.do_propose(node, a.height, a.round, a.block_hash, a.pol_round))
            elif t is Commit:
                self.on_commit(node, a)
            elif t is FetchBlock:
                delay = self.rng.randint(5, 300)
                self.push(self.now + delay, _FETCHED, node.idx, node.epoch, (a.height, a.block_hash))
            elif t is Evidence:
                self.check_evidence(node, a)
            else:
                self.fail(f"unknown action {a!r}")
        if self.sc.wal and node.up:
            node.disk.snapshot = node.rs.snapshot()

    def record_prevote(self, node: Node, v: Vote) -> None:
        """The lock rule, checked on every signed prevote (lines 22-33 of the paper).

        A correct node's lock is its last precommit for a value (round L, value
        x). It may prevote another value w in a later round r only if a polka
        (+2/3 signed prevotes) for w exists in some round in [L, r): that is
        what unlocking (a POL round >= L) or re-locking requires.
        """
        key = (v.height, v.round, v.block_hash)
        signers = self.prevote_signers.setdefault(key, set())
        if v.validator not in signers:
            signers.add(v.validator)
            self.prevote_power[key] = self.prevote_power.get(key, 0) + self.powers[v.validator]
        if not v.block_hash or node.behaviour is not None or node.idx in self.forgetful:
            return
        lock = self.locks.get((node.idx, v.height))
        if lock is None or lock[1] == v.block_hash or lock[0] >= v.round:
            return
        for vr in range(lock[0], v.round):
            if has_quorum(self.prevote_power.get((v.height, vr, v.block_hash), 0), self.total_power):
                return
        self.fail(f"LOCK RULE: correct node {node.idx} locked {lock[1].hex()[:12]} at round {lock[0]} "
                  f"prevoted {v.block_hash.hex()[:12]} at ({v.height}, {v.round}) without a polka since")

    def record_precommit(self, node: Node, v: Vote) -> None:
        """Tendermint's locking lemma, checked on every signed precommit.

        If precommits for ``v`` from > 2/3 of the power exist at (h, r), more
        than 1/3 of the power of correct validators locked ``v`` in ``r``, so no
        value ``w != v`` can get a polka in any round >= r, and no correct
        validator may precommit ``w`` in any round >= r. This catches lock-rule
        bugs even in runs where the bad precommit never becomes a decision.
        """
        key = (v.height, v.round, v.block_hash)
        signers = self.precommit_signers.setdefault(key, set())
        if v.validator in signers:
            return
        signers.add(v.validator)
        power = self.precommit_power.get(key, 0) + self.powers[v.validator]
        self.precommit_power[key] = power
        h, r, value = key
        quorums = self.precommit_quorums.setdefault(h, [])
        correct = self.correct_precommits.setdefault(h, [])
        if value and node.behaviour is None and node.idx not in self.forgetful:
            self.locks[(node.idx, h)] = (r, value)
            correct.append((r, value, node.idx))
            for qr, qv in quorums:
                if qv != value and qr <= r:
                    self.fail(f"LOCK: correct node {node.idx} precommitted {value.hex()[:12]} at ({h}, {r}) "
                              f"after +2/3 precommitted {qv.hex()[:12]} at round {qr}")
        if value and has_quorum(power, self.total_power) and has_quorum(power - self.powers[v.validator], self.total_power) is False:
            quorums.append((r, value))
            for cr, cv, idx in correct:
                if cv != value and cr >= r:
                    self.fail(f"LOCK: correct node {idx} precommitted {cv.hex()[:12]} at ({h}, {cr}) "
                              f"although +2/3 precommitted {value.hex()[:12]} at round {r}")

    def record_signed(self, node: Node, key: tuple, value: bytes) -> None:
        if node.behaviour is not None:
            return
        prev = self.signed_by_correct.setdefault(key, value)
        if prev != value:
            self.fail(f"correct node {node.idx} signed two different messages at {key}")

    def do_vote(self, node: Node, vote: Vote) -> list:
        vote = replace(vote, time_ms=self.local_time(node))
        if node.behaviour is None:
            try:
                signed = node.signer.sign_vote(vote)
            except DoubleSignError:
                self.stats["refused_signs"] += 1
                return []
            node.disk.last_signed = node.signer.last_signed
            self.record_signed(node, (signed.validator, signed.height, signed.round, signed.type), signed.block_hash)
        else:
            signed = sign_vote(node.key, vote, CHAIN_ID)
        if signed in node.seen:
            return []
        self.own(node, signed)
        if signed.type == PRECOMMIT:
            self.record_precommit(node, signed)
        else:
            self.record_prevote(node, signed)
        behaviour = node.behaviour
        if behaviour == "double_vote" or (behaviour == "amnesia" and signed.type == PRECOMMIT and signed.block_hash):
            other = NIL if signed.block_hash else block_value(vote.height, node.address, vote.round, b"junk")
            evil = sign_vote(node.key, replace(vote, block_hash=other), CHAIN_ID)
            if evil.type == PRECOMMIT:
                self.record_precommit(node, evil)
            else:
                self.record_prevote(node, evil)
            half = self.split()
            self.broadcast(node.idx, signed, [j for j in range(self.sc.n) if j not in half])
            self.broadcast(node.idx, evil, half)
        else:
            self.broadcast(node.idx, signed)
        return node.rs.on_vote(signed, self.local_time(node))

    def split(self) -> list[int]:
        n = self.sc.n
        return [j for j in range(n) if self.rng.random() < 0.5]

    def do_propose(self, node: Node, height: int, round_: int, value: bytes, pol_round: int) -> list:
        p = Proposal(height, round_, value, pol_round, node.address, b"", self.local_time(node))
        if node.behaviour is None:
            try:
                signed = node.signer.sign_proposal(p)
            except DoubleSignError:
                self.stats["refused_signs"] += 1
                return []
            node.disk.last_signed = node.signer.last_signed
            self.record_signed(node, (node.address, height, round_, "proposal"), signed.block_hash + bytes([pol_round + 1]))
        else:
            signed = sign_proposal(node.key, p, CHAIN_ID)
        if signed in node.seen:
            return []
        self.own(node, signed)
        if node.behaviour == "equivocate":
            other_value = block_value(height, node.address, round_, b"twin")
            self.blocks[other_value] = True
            twin = sign_proposal(node.key, replace(p, block_hash=other_value, pol_round=-1), CHAIN_ID)
            half = self.split()
            self.broadcast(node.idx, signed, [j for j in range(self.sc.n) if j not in half])
            self.broadcast(node.idx, twin, half)
        else:
            self.broadcast(node.idx, signed)
        return node.rs.on_proposal(signed, self.blocks.get(value, False), self.local_time(node))

    # -- checks ------------------------------------------------------------------------------

    def on_commit(self, node: Node, c: Commit) -> None:
        self.stats["commits"] += 1
        if c.round > 0:
            self.stats["late_round_commits"] += 1
        self.check_commit(c)
        if c.block_hash is not None and not self.blocks.get(c.block_hash, False):
            self.fail(f"node {node.idx} decided an invalid block at height {c.height}")
        prev = self.decided.setdefault(c.height, c.block_hash)
        if prev != c.block_hash:
            self.fail(f"SAFETY: node {node.idx} decided {c.block_hash.hex()[:12]} at height {c.height}, "
                      f"another node decided {prev.hex()[:12]}")
        if c.height != node.committed + 1:
            self.fail(f"node {node.idx} committed height {c.height} after {node.committed}")
        node.disk.commits.append(c)
        self.trace.update(b"%d|%d|%d|" % (self.now, node.idx, c.height) + c.block_hash)
        if node.behaviour is None and c.height == self.sc.target_height:
            self.done_count += 1
        self.push(self.now + COMMIT_TIMEOUT_MS, _START, node.idx, node.epoch, c.height + 1)

    def check_commit(self, c: Commit) -> None:
        power = 0
        seen: set[bytes] = set()
        for v in c.precommits:
            if v.type != PRECOMMIT or v.height != c.height or v.round != c.round or v.block_hash != c.block_hash:
                self.fail(f"commit for height {c.height} carries a vote for something else: {v}")
            if v.validator in seen or v.validator not in self.powers:
                self.fail(f"commit for height {c.height}: duplicate or unknown validator")
            ok = self._commit_verified.get(v)
            if ok is None:  # a cache of its own, independent of what delivery verified
                ok = self._commit_verified[v] = verify_vote(v, CHAIN_ID)
            if not ok:
                self.fail(f"commit for height {c.height}: bad signature")
            seen.add(v.validator)
            power += self.powers[v.validator]
        if not has_quorum(power, self.total_power):
            self.fail(f"commit for height {c.height} has only {power}/{self.total_power} power")
        t = bft_time(c.precommits, self.powers)
        if not min(v.time_ms for v in c.precommits) <= t <= max(v.time_ms for v in c.precommits):
            self.fail("bft_time outside the range of the commit's vote times")

    def check_evidence(self, node: Node, e: Evidence) -> None:
        a, b = e.vote_a, e.vote_b
        self.stats["evidence"] += 1
        if a.validator not in self.double_voters:
            self.fail(f"node {node.idx} accuses {self.index.get(a.validator)} of equivocation: {a} / {b}")
        if (a.validator, a.height, a.round, a.type) != (b.validator, b.height, b.round, b.type):
            self.fail("evidence votes are not for the same (validator, height, round, type)")
        if a.block_hash == b.block_hash or not (verify_vote(a, CHAIN_ID) and verify_vote(b, CHAIN_ID)):
            self.fail("evidence is not two validly signed conflicting votes")


def run_scenario(sc: Scenario) -> dict:
    """Run one scenario; raises SimFailure (an AssertionError) with a replay hint on any violation."""
    sim = Sim(sc)
    stats = sim.run()
    stats["trace"] = sim.trace.hexdigest()
    return stats


def run_seed(n: int, seed: int, kind: str | None = None) -> dict:
    return run_scenario(make_scenario(n, seed, kind))
