"""Deterministic simulation of the REAL node consensus stack (TigerBeetle-VOPR style).

tests/sim/harness.py simulates the pure ``RoundState``; this one runs what a node runs:
N real ``consensus.driver.Driver`` s, each around a real ``node.app.Application`` with its
own LevelDB ``node.store.Store``, the real state machine, real WAL and signer-state files
and the real ``node.run.TxGossip``, all in ONE process under one ``trio.run`` with a
``trio.testing.MockClock(autojump_threshold=0)``. Only node/p2p.py is replaced: each
driver's ``net`` is an ``Endpoint`` of the fake network below, which packs every message
with msgpack exactly as the p2p frames do and delivers it to the target's
``on_peer_message`` / ``TxGossip.from_peer`` / ``on_peer_connect`` after a seeded delay.

One ``random.Random`` seeded from (n, seed) derives a ``Scenario`` and drives the run:
validator powers, clock skews (up to 2 s), timeouts (half of the runs use timeouts shorter
than the chaotic delays, so rounds fail after polkas and locks are carried), message
delays, drops, duplicates, reordering, extra precommit loss (locks without decisions),
partitions that heal (sometimes one node cut off for long, so it catches up over several
sync batches), ``create_empty_blocks = false`` in some runs, a per-event processing cost
in some runs (simulated time a handler takes, so timers fire while a backlog is worked
off), at most f Byzantine validators running a real driver behind a lying network
endpoint (``double_vote``: each own vote also signed for another value and the two sent to
different halves; ``equivocate``: two proposals per own round; ``silent``), signed
transfer/faucet txs (and replays) and a trading workload (tests/sim/trading_load.py: orders
of every kind and time in force, trigger orders, cancels, modifies, batches, and the
validators' oracle updates) sent to random nodes and on through tx gossip, and crashes. Trio's own scheduler is made deterministic for the run
(``trio._core._run._ALLOW_DETERMINISTIC_SCHEDULING``, with its shuffle seeded from the
scenario), and every driver gets a ``clock`` on ``trio.current_time()`` plus its skew. The same
(n, seed) replays the same run, commit for commit, in any process.

A crash is a ``kill -9``: the node's incarnation is marked dead at one instant and its
tasks cancelled; from that instant on it can neither write to disk nor send (any attempt
raises ``Killed``, so a handler half-way through its work stops there). Crashes fire at a
checkpoint or at a chosen crash point inside the real code (``CRASH_POINTS``): half-way
through broadcasting a signed vote or proposal, right after the signer state is fsynced
(before the WAL record), mid-way through writing a WAL record (a torn tail), just before
or just after the store commit of a height; some runs have crash loops (killed again
soon after each restart). A crashed node is rebuilt later from the same data dirs (new
Store, Application, Driver, TxGossip), so WAL recovery, the signer's last-signed state
and catch-up sync all run as after a real restart. Any number of nodes may be down at
once (crash faults never excuse a safety violation).

Time has two phases: a chaotic phase ``[0, heal_ms)`` and a healed one (no drops or
partitions, every message arrives within ``HEALED_MAX_DELAY_MS``, every node up).

Checked in every run (a violation raises ``SimFailure`` naming the seed and how to re-run it):

* safety: no two nodes ever commit different blocks at a height (checked at every commit,
  and over every store at the end, with each stored commit);
* app hashes and tx results agree at every common height (``Store.app_hash_at``,
  ``results_bytes``), also checked at every commit;
* every node's committed state passes ``state.invariants.check_invariants`` after every
  commit (books, order records and indexes, aggregates, positions, the settlement pool,
  money), and its carried order books equal the records;
* ``node.replay.replay`` over every node's store reproduces every app hash and result, and
  audits the invariants at every height;
* no honest validator ever signs two different votes (or proposals) for one
  (height, round, step); the lock rule on every prevote and the locking lemma on every
  precommit sent (as tests/sim/harness.py checks them for the pure RoundState);
* only double-voting validators are accused (gossiped evidence, evidence in blocks) and
  no evidence is committed twice;
* no node drops an honest peer (a drop means the driver rejected an honest message) and no
  node dies of an unexpected exception;
* liveness: after ``heal_ms`` every honest node reaches ``target`` (the highest height any
  node had at the heal plus ``extra_heights``) within ``LIVENESS_MS`` of simulated time,
  and probe txs submitted after the heal are committed on every honest node.

The symptoms of an open bug can be listed in ``KNOWN_BUGS`` (counted in the run's stats
instead of failing it, unless ``DRIVER_SIM_STRICT=1``); it is empty: the bugs this
simulation found are fixed, and test_driver_sim.py's ``test_regression_*`` keep them so.
Directed tests pass ``script`` (a coroutine run beside the simulation) and ``net_filter``
(drop or delay chosen messages) to ``run_scenario``; failures print a dump of every node's
round state, votes and sync status.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import os
import random
import shutil
import tempfile
import time
import traceback
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace
from pathlib import Path

import msgpack
import trio
import trio.testing

import consensus.driver as driver_mod
from consensus import wal as W
from consensus.driver import MSG_EVIDENCE, MSG_PROPOSAL, MSG_TXS, MSG_VOTE, Driver
from consensus.messages import NIL, PRECOMMIT, Proposal, Vote, sign_proposal, sign_vote
from consensus.types import Block, Commit, data_hash
from node.app import Application
from node.config import Config
from node.genesis import make_genesis_doc, parse_genesis
from node.keys import KeyPair
from node.replay import replay
from node.run import TxGossip, driver_config
from node.store import Store
from state.codec import decode
from state.invariants import InvariantViolation, carried_books, check_invariants
from state.tx import build_tx
from tests.sim.trading_load import TradingLoad

CHAIN_ID = "perpchain-dsim"
GENESIS_MS = 1_700_000_000_000
USDC = 10**6
N_ACCOUNTS = 6
HEALED_MAX_DELAY_MS = 30
LIVENESS_MS = 60_000
REAL_TIME_BUDGET_S = float(os.environ.get("DRIVER_SIM_REAL_BUDGET_S", "300"))
BEHAVIOURS = ("double_vote", "equivocate", "silent")
CRASH_POINTS = ("now", "send_vote", "send_proposal", "signer_saved", "wal_torn",
                "before_commit", "after_commit")
# Symptoms of bugs this simulation found (each has a directed test in test_driver_sim.py).
# While such a bug is open, put its symptom in KNOWN_BUGS: runs then count it in their
# stats (a dropped peer reconnects, as with node/p2p.py) instead of failing, so every seed
# still checks everything else; DRIVER_SIM_STRICT=1 fails on them regardless. All of them
# are fixed now: nothing is tolerated.
EVIDENCE_FROM_THE_FUTURE = "a peer dropped for relaying evidence from a later height"
DUPLICATE_EVIDENCE = "evidence committed twice"
MUTE_VALIDATOR = "a validator mute for a round after a restart"
POL_LIVELOCK = "a height livelocked on lost proof-of-lock prevotes"
DROP_SYMPTOMS = {"evidence from the future": EVIDENCE_FROM_THE_FUTURE}  # drop reason -> symptom
KNOWN_BUGS: set[str] = set()
STRICT = bool(os.environ.get("DRIVER_SIM_STRICT"))


def _key(tag: str, i: int) -> KeyPair:
    return KeyPair.from_seed(hashlib.sha256(f"dsim-{tag}-{i}".encode()).digest())


VAL_KEYS = [_key("validator", i) for i in range(16)]
NODE_KEYS = [_key("node", i) for i in range(16)]
ACCOUNTS = [_key("account", i) for i in range(N_ACCOUNTS)]
PROBE = _key("probe", 0)      # sends only the probe txs (nothing else spends its balance)


class SimFailure(AssertionError):
    pass


class Killed(BaseException):
    """The node was killed (kill -9) at this instant: nothing after it may happen.

    A BaseException, so no `except Exception` in the code under test can swallow it."""


# -- scenario ---------------------------------------------------------------------------------


@dataclass
class Scenario:
    """Everything a run depends on, derived from (n, seed) by ``make_scenario``."""

    n: int
    seed: int
    powers: list[int]
    heal_ms: int
    tight: bool
    p_drop: float
    p_dup: float
    max_delay_ms: int
    p_long_delay: float
    long_delay_ms: int
    partitions: list[tuple[int, int, list[int]]]      # (start, end, group of each node)
    crashes: list[tuple[int, int, int, str]]          # (crash_at, restart_at, node, point)
    skews: list[int]
    tx_gap_ms: int                                    # mean gap between submitted txs (0: none)
    extra_heights: int
    min_target: int
    starts: list[int] = field(default_factory=list)   # first start of each node (ms)
    byzantine: dict[int, str] = field(default_factory=dict)  # node -> behaviour
    p_precommit_loss: float = 0.0                     # extra precommit loss while chaotic
    empty_blocks: bool = True                         # [consensus] create_empty_blocks
    label: str = ""                                   # a directed test's name
    cpu_us: int = 0                                   # simulated time each inbox event costs
    valset_changes: list[tuple[int, int, int]] = field(default_factory=list)  # (at, node, power)
    full_nodes: int = 0                               # nodes n.. with keys outside genesis
    trade_gap_ms: int = 0                             # mean gap between trading txs (0: none)

    @property
    def nodes(self) -> int:
        return self.n + self.full_nodes

    def describe(self) -> str:
        crashes = ",".join(f"{i}@{a}-{b}:{p}" for a, b, i, p in self.crashes) or "none"
        byz = ",".join(f"{i}:{b}" for i, b in sorted(self.byzantine.items())) or "none"
        return (f"n={self.n} seed={self.seed} powers={self.powers} byzantine={byz} "
                f"precommit_loss={self.p_precommit_loss} empty_blocks={self.empty_blocks} "
                f"heal={self.heal_ms}ms "
                f"tight={self.tight} drop={self.p_drop} dup={self.p_dup} "
                f"delay<={self.max_delay_ms}ms long={self.p_long_delay}x{self.long_delay_ms}ms "
                f"partitions={len(self.partitions)} crashes={crashes} tx_gap={self.tx_gap_ms}ms "
                f"cpu={self.cpu_us}us valset_changes={self.valset_changes} "
                f"trade_gap={self.trade_gap_ms}ms skews={self.skews}")


def faulty_ok(powers: list[int], faulty) -> bool:
    """At most f nodes and strictly less than 1/3 of the power."""
    return len(faulty) <= (len(powers) - 1) // 3 and 3 * sum(powers[i] for i in faulty) < sum(powers)


def make_scenario(n: int, seed: int, kind: str | None = None) -> Scenario:
    """``kind`` forces a Byzantine behaviour (or "none")."""
    rng = random.Random(f"perpchain-driver-sim:{n}:{seed}")
    powers = [rng.randint(1, 10) for _ in range(n)] if rng.random() < 0.3 else [10] * n
    if kind is None:
        kind = rng.choice(("none", "none", "none", "mixed") + BEHAVIOURS)
    byzantine: dict[int, str] = {}
    if kind != "none":
        order = list(range(n))
        rng.shuffle(order)
        count = rng.randint(1, (n - 1) // 3) if kind == "mixed" else 1
        for i in order:
            if len(byzantine) < count and faulty_ok(powers, set(byzantine) | {i}):
                byzantine[i] = rng.choice(BEHAVIOURS) if kind == "mixed" else kind
    heal_ms = rng.randint(3_000, 12_000)
    crashes: list[tuple[int, int, int, str]] = []
    # Crash faults never threaten safety (the WAL and signer state remember), so any number
    # of nodes may be down at once; most runs keep it to f so the rest can go on.
    many = rng.random() < 0.25
    f = (n - 1) // 3
    for _ in range(rng.choice((0, 1, 2, 3, 4, 6))):
        start = rng.randint(300, max(301, heal_ms - 800))
        end = min(heal_ms - 100, start + rng.randint(200, 5_000))
        node = rng.randrange(n)
        down = [c for c in crashes if c[0] <= end + 50 and start <= c[1] + 50]
        if any(c[2] == node for c in down):
            continue
        if not many and len({c[2] for c in down}) >= f:
            continue
        crashes.append((start, end, node, rng.choice(CRASH_POINTS)))
    if rng.random() < 0.15:
        # A crash loop: one node killed again soon after each restart (mid-recovery).
        node = rng.randrange(n)
        t = rng.randint(300, max(301, heal_ms // 2))
        crashes = [c for c in crashes if c[2] != node]
        for _ in range(rng.randint(2, 5)):
            back = t + rng.randint(50, 600)
            if back >= heal_ms - 100:
                break
            crashes.append((t, back, node, rng.choice(CRASH_POINTS)))
            t = back + rng.randint(20, 400)
        crashes.sort()
    partitions: list[tuple[int, int, list[int]]] = []
    t = 0
    for _ in range(rng.choice((0, 0, 1, 2, 3))):
        start = t + rng.randint(0, heal_ms // 3)
        if start >= heal_ms - 200:
            break
        end = min(heal_ms, start + rng.randint(300, 5_000))
        groups = [rng.randrange(rng.choice((2, 2, 3))) for _ in range(n)]
        partitions.append((start, end, groups))
        t = end
    if rng.random() < 0.2:
        # One node cut off for long: it falls many heights (several sync batches) behind.
        heal_ms = rng.randint(10_000, 20_000)
        lone = rng.randrange(n)
        start = rng.randint(200, 2_000)
        partitions = [(start, heal_ms - rng.randint(0, 500), [int(i == lone) for i in range(n)])]
    valset_changes: list[tuple[int, int, int]] = []
    if not byzantine and rng.random() < 0.35:
        # Governance re-weights, removes and re-adds validators (effective two heights on).
        powers_now = list(powers)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(n)
            power = rng.choice((0, 1, 5, 20, 40))
            if power == 0 and sum(1 for p in powers_now if p) <= 3:
                continue
            powers_now[i] = power
            valset_changes.append((rng.randint(200, heal_ms), i, power))
        valset_changes.sort()
    tight = rng.random() < 0.5
    sc = Scenario(
        n=n, seed=seed, powers=powers, heal_ms=heal_ms, tight=tight,
        p_drop=rng.choice((0.0, 0.02, 0.1, 0.25)),
        p_dup=rng.choice((0.0, 0.05, 0.2)),
        max_delay_ms=rng.choice((5, 30, 150, 600)),
        p_long_delay=rng.choice((0.0, 0.03, 0.15)),
        long_delay_ms=rng.choice((1_000, 3_000)),
        partitions=partitions, crashes=sorted(crashes),
        skews=[rng.randint(-skew, skew) for skew in [rng.choice((20, 150, 2_000))] for _ in range(n)],
        tx_gap_ms=rng.choice((20, 80, 300)),
        extra_heights=3, min_target=4,
        starts=[rng.randint(0, 60) for _ in range(n)],
        byzantine=byzantine,
        p_precommit_loss=rng.choice((0.0, 0.0, 0.3, 0.6)),
        empty_blocks=rng.random() < 0.8,
        cpu_us=rng.choice((0, 0, 50, 300)),
        valset_changes=valset_changes,
    )
    sc.trade_gap_ms = rng.choice((60, 150, 400))  # drawn last: the draws above stay as they were
    return sc


def make_config(sc: Scenario) -> Config:
    cfg = Config()
    cfg.verifier.threads = -1          # verify inline: no threads, deterministic
    if hasattr(cfg.verifier, "processes"):
        cfg.verifier.processes = 0     # and no worker processes
    c = cfg.consensus
    if sc.tight:                       # shorter than the chaotic delays: rounds fail after polkas
        c.timeout_propose, c.timeout_propose_delta = "300ms", "100ms"
        c.timeout_prevote, c.timeout_prevote_delta = "100ms", "50ms"
        c.timeout_precommit, c.timeout_precommit_delta = "100ms", "50ms"
        c.timeout_commit = "100ms"
    c.create_empty_blocks = sc.empty_blocks
    return cfg


def genesis_doc(sc: Scenario) -> dict:
    return make_genesis_doc(
        CHAIN_ID, GENESIS_MS,
        [(VAL_KEYS[i].pub_key, sc.powers[i], f"val{i}") for i in range(sc.n)],
        balances=[(a.pub_key, "1000") for a in ACCOUNTS + [PROBE]])


def make_genesis(sc: Scenario):
    return parse_genesis(genesis_doc(sc))


# -- nodes ------------------------------------------------------------------------------------


class Incarnation:
    """One life of a node process: from (re)start to crash."""

    def __init__(self, node: SimNode, epoch: int):
        self.node, self.epoch = node, epoch
        self.dead = False
        self.armed: str | None = None       # a crash point to die at
        self.store: Store | None = None
        self.app: Application | None = None
        self.driver: Driver | None = None
        self.gossip: TxGossip | None = None
        self.scope: trio.CancelScope | None = None
        self.exited = trio.Event()


class SimNode:
    def __init__(self, idx: int, home: Path):
        self.idx = idx
        self.val_key = VAL_KEYS[idx]
        self.node_key = NODE_KEYS[idx]
        self.peer_id = self.node_key.node_id
        self.home = home
        self.epoch = 0
        self.inc: Incarnation | None = None   # the live incarnation, if any

    @property
    def up(self) -> bool:
        return self.inc is not None and not self.inc.dead

    @property
    def wal_path(self) -> Path:
        return self.home / "data" / "cs.wal"

    @property
    def signer_path(self) -> Path:
        return self.home / "data" / "priv_validator_state.bin"

    @property
    def db_path(self) -> Path:
        return self.home / "data" / "db"


class Endpoint:
    """What a driver (and TxGossip) sees as node/p2p.P2P."""

    def __init__(self, sim: Sim, inc: Incarnation):
        self.sim, self.inc = sim, inc

    def broadcast(self, msg_type: int, body, exclude: str | None = None) -> None:
        self.sim.transmit(self.inc, None, msg_type, body, exclude)

    def send(self, peer_id: str, msg_type: int, body) -> None:
        self.sim.transmit(self.inc, peer_id, msg_type, body, None)

    def drop(self, peer_id: str, why: str) -> None:
        self.sim.on_drop(self.inc, peer_id, why)


class _LogTap(logging.Handler):
    """Counts what the node code logs (and keeps the last lines for failure reports)."""

    def __init__(self, sim: Sim):
        super().__init__(logging.INFO)
        self.sim = sim
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        s = self.sim.stats
        if "refused to sign" in msg:
            s["refused_signs"] += 1
        elif "caught up" in msg:
            s["syncs"] += 1
        elif "truncating" in msg:
            s["torn_wal_truncated"] += 1
        elif "recovering height" in msg:
            s["wal_recoveries"] += 1
        elif "invalid block" in msg:
            s["invalid_blocks"] += 1
        elif "inbox full" in msg and "timeout" in msg:
            s["dropped_timeouts"] += 1
        if record.levelno >= logging.WARNING:
            self.lines.append(f"t={self.sim.now_ms()}ms {record.name} {record.levelname}: {msg}")
            del self.lines[:-40]


# -- the simulation ---------------------------------------------------------------------------


class Sim:
    def __init__(self, sc: Scenario, root: Path, strict=None, script=None, net_filter=None):
        """`strict`: True fails on every symptom, a set fails on those of KNOWN_BUGS too
        (default: tolerate KNOWN_BUGS unless DRIVER_SIM_STRICT).
        `script(sim)`: an extra coroutine run beside the simulation (directed tests).
        `net_filter(sim, src, dst, msg_type, body)`: None to route a message normally,
        "drop" to lose it, or a delay in ms to deliver it after (bypassing the chaos)."""
        self.sc = sc
        self._strict = STRICT if strict is None else strict
        self.script, self.net_filter = script, net_filter
        self.root = root
        self.rng = random.Random(f"perpchain-driver-sim-run:{sc.n}:{sc.seed}")
        self.genesis = make_genesis(sc)
        self.cfg = make_config(sc)
        self.dcfg = driver_config(self.cfg)
        self.nodes = [SimNode(i, root / f"node{i}") for i in range(sc.nodes)]
        self.by_peer = {nd.peer_id: nd for nd in self.nodes}
        self.by_signer_path: dict[str, Incarnation] = {}
        self.heap: list = []
        self.seq = 0
        self.wake = trio.Event()
        self.groups: list[int] | None = None
        self.link_down: dict[tuple[int, int], float] = {}
        self.link_gen: dict[tuple[int, int], int] = {}
        self.known_bugs: dict[str, int] = {}
        self.healed = False
        self.target: int | None = None
        self.failure: str | None = None
        self.decided: dict[int, tuple[bytes, bytes, bytes]] = {}  # height -> (block, app, results hash)
        self.tips = [0] * sc.nodes
        self.signed: dict[tuple, bytes] = {}                 # (signer, h, r, step) -> content
        self.checked_msgs: set[bytes] = set()
        self.twins: dict = {}
        genesis_powers = {VAL_KEYS[i].pub_key: sc.powers[i] for i in range(sc.n)}
        self.height_powers: dict[int, dict[bytes, int]] = {1: genesis_powers, 2: genesis_powers}
        self.prevotes: dict[tuple, dict] = {}
        self.precommits: dict[tuple, dict] = {}
        self.locks: dict[tuple[bytes, int], tuple[int, bytes]] = {}
        self.precommit_quorums: dict[int, list] = {}
        self.honest_precommits: dict[int, list] = {}
        self.evidence_heights: dict[tuple[bytes, bytes], int] = {}
        self.byz_keys = {VAL_KEYS[i].pub_key for i in sc.byzantine}
        self.double_voters = {VAL_KEYS[i].pub_key for i, b in sc.byzantine.items()
                              if b == "double_vote"}
        self.honest = [i for i in range(sc.nodes) if i not in sc.byzantine]
        self.nonces: dict[bytes, int] = {}
        self.probes: list[bytes] = []                          # tx hashes that must commit
        self.trace: list[tuple] = []
        self.real_start = 0.0
        self.stats = dict.fromkeys(
            ("deliveries", "lost", "dups", "crashes", "restarts", "commits", "max_round",
             "late_round_commits", "txs_submitted", "txs_admitted", "txs_committed",
             "refused_signs", "syncs", "torn_wal_truncated", "wal_recoveries", "invalid_blocks",
             "crash_points_hit", "heights", "evidence_committed", "drops", "dropped_timeouts",
             "valset_changed", "valset_txs_admitted", "trade_txs_submitted",
             "trade_txs_admitted", "fills", "triggers_fired", "invariant_checks"), 0)
        self.trading = TradingLoad(random.Random(f"perpchain-driver-sim-trade:{sc.n}:{sc.seed}"))
        self.points_hit: dict[str, int] = {}

    # -- plumbing -------------------------------------------------------------------------
    def strict(self, symptom: str) -> bool:
        """Whether `symptom` fails the run (else it is counted in stats["known_bugs"])."""
        if self._strict is True or symptom not in KNOWN_BUGS:
            return True
        return bool(self._strict) and symptom in self._strict

    def now_ms(self) -> int:
        return int(trio.current_time() * 1000)

    def fail(self, what: str) -> None:
        """Record the first failure and stop the run (raised after trio.run returns)."""
        if self.failure is None:
            self.failure = f"{what}\n  at t={self.now_ms()}ms"
        self.nursery.cancel_scope.cancel()

    def _push(self, delay_ms: int, item: tuple) -> None:
        """Deliver `item` after `delay_ms` (heap times are trio seconds, compared exactly)."""
        self.seq += 1
        heapq.heappush(self.heap, (trio.current_time() + delay_ms / 1000, self.seq, item))
        if self.heap[0][1] == self.seq:
            self.wake.set()

    # -- network ----------------------------------------------------------------------------
    def transmit(self, inc: Incarnation, to: str | None, msg_type: int, body, exclude) -> None:
        if inc.dead:
            raise Killed()
        src = inc.node
        behaviour = self.sc.byzantine.get(src.idx)
        if behaviour == "silent":
            return
        self._observe(inc, msg_type, body)
        if to is None:
            targets = [nd for nd in self.nodes if nd is not src and nd.peer_id != exclude]
        else:
            targets = [self.by_peer[to]]
        die = (inc.armed == "send_vote" and msg_type == MSG_VOTE) or \
              (inc.armed == "send_proposal" and msg_type == MSG_PROPOSAL)
        if die:  # killed half-way through the broadcast: some peers got it
            targets = [t for t in targets if self.rng.random() < 0.5]
        payload = msgpack.packb([msg_type, body], use_bin_type=True)
        twin = self._evil_twin(src, behaviour, msg_type, body) if behaviour and to is None else None
        if twin is not None:   # Byzantine: each part of the network gets a different message
            self._observe(inc, msg_type, twin)
            twin_payload = msgpack.packb([msg_type, twin], use_bin_type=True)
            half = {t.idx for t in targets if self.rng.random() < 0.5}
        precommit = msg_type == MSG_VOTE and body[:2] == bytes((0x97, PRECOMMIT))
        for dst in targets:
            p = twin_payload if twin is not None and dst.idx in half else payload
            verdict = self.net_filter(self, src, dst, msg_type, body) if self.net_filter else None
            if verdict is None:
                self._route(src, dst, p, precommit)
            elif verdict != "drop" and dst.up:
                self._push(verdict, ("msg", dst, dst.epoch, src.peer_id, p, None, 0))
        if die:
            self.kill(inc, f"{inc.armed} (reached {len(targets)} peers)")
            raise Killed()

    def _evil_twin(self, src: SimNode, behaviour: str, msg_type: int, body):
        """A conflicting copy of the node's own vote (double_vote) or proposal (equivocate),
        signed with the raw key (no double-sign guard)."""
        key = VAL_KEYS[src.idx]
        if behaviour == "double_vote" and msg_type == MSG_VOTE:
            twin = self.twins.get(body)
            if twin is None:
                v = Vote.decode(body)
                if v.validator != key.pub_key:
                    return None          # relaying someone else's vote
                other = NIL if v.block_hash else hashlib.sha256(b"junk" + body).digest()
                twin = sign_vote(key.private, dc_replace(v, block_hash=other, signature=b""),
                                 CHAIN_ID).encode()
                self.twins[body] = twin
            return twin
        if behaviour == "equivocate" and msg_type == MSG_PROPOSAL:
            twin = self.twins.get(body[0])
            if twin is None:
                p = Proposal.decode(body[0])
                if p.proposer != key.pub_key:
                    return None
                b = Block.decode(body[1])
                txs = b.txs + (b"dsim-junk-%d-%d" % (p.height, p.round),)
                blk = Block(dc_replace(b.header, data_hash=data_hash(txs)), txs, b.last_commit,
                            b.evidence)
                tp = sign_proposal(key.private, dc_replace(p, block_hash=blk.hash(),
                                                           signature=b""), CHAIN_ID)
                twin = self.twins[body[0]] = [tp.encode(), blk.encode()]
            return twin
        return None

    def _route(self, src: SimNode, dst: SimNode, payload: bytes, precommit: bool = False) -> None:
        if not dst.up:
            self.stats["lost"] += 1
            return
        link = (min(src.idx, dst.idx), max(src.idx, dst.idx))
        if self.link_down.get(link, -1.0) > trio.current_time():
            self.stats["lost"] += 1
            return
        item = ("msg", dst, dst.epoch, src.peer_id, payload, link, self.link_gen.get(link, 0))
        if self.healed:
            self._push(self.rng.randint(1, HEALED_MAX_DELAY_MS), item)
            return
        sc, rng = self.sc, self.rng
        if self.groups is not None and self.groups[src.idx] != self.groups[dst.idx]:
            self.stats["lost"] += 1
            return
        if sc.p_drop and rng.random() < sc.p_drop or \
                precommit and sc.p_precommit_loss and rng.random() < sc.p_precommit_loss:
            self.stats["lost"] += 1
            return
        copies = 2 if sc.p_dup and rng.random() < sc.p_dup else 1
        self.stats["dups"] += copies - 1
        for _ in range(copies):
            delay = rng.randint(1, sc.max_delay_ms)
            if sc.p_long_delay and rng.random() < sc.p_long_delay:
                delay += rng.randint(0, sc.long_delay_ms)
            self._push(delay, item)

    def _connect(self, a: SimNode, b: SimNode, delay_ms: int) -> None:
        """A (re)established connection: both ends get on_peer_connect."""
        self._push(delay_ms, ("connect", a, a.epoch, b.peer_id, None, None, 0))
        self._push(delay_ms + 1, ("connect", b, b.epoch, a.peer_id, None, None, 0))

    async def net_loop(self) -> None:
        heap = self.heap
        n = 0
        while True:
            if not heap or heap[0][0] > trio.current_time():
                if heap:
                    with trio.move_on_at(heap[0][0]):
                        await self.wake.wait()
                else:
                    await self.wake.wait()
                self.wake = trio.Event()
                continue
            _, _, (kind, dst, epoch, src_peer, payload, link, gen) = heapq.heappop(heap)
            n += 1
            if n % 2000 == 0 and time.perf_counter() - self.real_start > REAL_TIME_BUDGET_S:
                self.fail(f"real-time budget of {REAL_TIME_BUDGET_S}s exceeded")
                return
            if not dst.up or dst.epoch != epoch or \
                    (link is not None and self.link_gen.get(link, 0) != gen):
                continue
            inc = dst.inc
            if kind == "connect":
                inc.driver.on_peer_connect(src_peer)
                continue
            if kind == "disconnect":
                inc.driver.on_peer_disconnect(src_peer)
                continue
            msg_type, body = msgpack.unpackb(payload, raw=False, use_list=True)
            self.stats["deliveries"] += 1
            if msg_type == MSG_TXS:
                inc.gossip.from_peer(src_peer, body)
            else:
                inc.driver.on_peer_message(src_peer, msg_type, body)
            if n % 64 == 0:
                await trio.lowlevel.checkpoint()

    def on_drop(self, inc: Incarnation, peer_id: str, why: str) -> None:
        if inc.dead:
            raise Killed()
        peer = self.by_peer.get(peer_id)
        self.stats["drops"] += 1
        if peer is None:
            self.fail(f"node {inc.node.idx} dropped unknown peer {peer_id}: {why}")
            return
        if peer.idx not in self.sc.byzantine:   # dropping a misbehaving peer is fine
            symptom = next((t for k, t in DROP_SYMPTOMS.items() if k in why), None)
            if symptom is None or self.strict(symptom):
                self.fail(f"node {inc.node.idx} dropped honest peer node {peer.idx}: {why}")
                return
            self.known_bugs[symptom] = self.known_bugs.get(symptom, 0) + 1
        # What node/p2p.py does: close the connection (in-flight messages are lost); the
        # dialler reconnects after its backoff (0.1 s, doubling).
        me = inc.node
        link = (min(me.idx, peer.idx), max(me.idx, peer.idx))
        self.link_gen[link] = self.link_gen.get(link, 0) + 1
        backoff = self.rng.randint(100, 400)
        self.link_down[link] = trio.current_time() + backoff / 1000
        self._disconnect(me, peer)
        self._connect(me, peer, backoff)

    def _disconnect(self, a: SimNode, b: SimNode) -> None:
        """A closed connection: both ends get on_peer_disconnect (as node/p2p.py calls it)."""
        for x, y in ((a, b), (b, a)):
            if x.up:
                self._push(0, ("disconnect", x, x.epoch, y.peer_id, None, None, 0))

    def _observe(self, inc: Incarnation, msg_type: int, body) -> None:
        """Checks on every signed message any node sends (once per message)."""
        if msg_type == MSG_VOTE:
            if body in self.checked_msgs:
                return
            self.checked_msgs.add(body)
            v = Vote.decode(body)
            if v.type == PRECOMMIT:
                self._record_precommit(v)
            else:
                self._record_prevote(v)
            if v.validator in self.byz_keys:
                return
            key = (v.validator, v.height, v.round, v.type)
            prev = self.signed.setdefault(key, v.block_hash)
            if prev != v.block_hash:
                self.fail(f"DOUBLE SIGN: validator {self._val_idx(v.validator)} signed two "
                          f"{'prevotes' if v.type == 1 else 'precommits'} at height {v.height} "
                          f"round {v.round}: {prev.hex()[:12] or 'nil'} and "
                          f"{v.block_hash.hex()[:12] or 'nil'} (seen sent by node {inc.node.idx})")
        elif msg_type == MSG_PROPOSAL:
            pbytes = body[0]
            if pbytes in self.checked_msgs:
                return
            self.checked_msgs.add(pbytes)
            p = Proposal.decode(pbytes)
            if p.proposer in self.byz_keys:
                return
            key = (p.proposer, p.height, p.round, 0)
            content = p.block_hash + p.pol_round.to_bytes(4, "big", signed=True)
            prev = self.signed.setdefault(key, content)
            if prev != content:
                self.fail(f"DOUBLE SIGN: validator {self._val_idx(p.proposer)} signed two "
                          f"proposals at height {p.height} round {p.round}")
        elif msg_type == MSG_EVIDENCE:
            v = Vote.decode(body[0])
            if v.validator in self.double_voters:
                return
            self.fail(f"node {inc.node.idx} accuses honest validator {self._val_idx(v.validator)} "
                      f"of double signing at height {v.height} round {v.round}")

    def powers_at(self, height: int) -> dict[bytes, int]:
        """The validator set of `height` (as the stores hold it: recorded at each commit)."""
        p = self.height_powers.get(height)
        if p is None:
            p = self.height_powers[max(h for h in self.height_powers if h <= height)]
        return p

    def _power(self, tally: dict, key: tuple, v: Vote) -> int:
        signers = tally.setdefault(key, {})
        signers[v.validator] = self.powers_at(v.height).get(v.validator, 0)
        return sum(signers.values())

    def _record_prevote(self, v: Vote) -> None:
        """The lock rule (lines 22-33 of the paper), on every prevote an honest node sends:
        locked on x since round L (its last non-nil precommit), it may prevote w != x in a
        later round r only if some round of [L, r) has +2/3 signed prevotes for w."""
        self._power(self.prevotes, (v.height, v.round, v.block_hash), v)
        if not v.block_hash or v.validator in self.byz_keys:
            return
        lock = self.locks.get((v.validator, v.height))
        if lock is None or lock[1] == v.block_hash or lock[0] >= v.round:
            return
        for vr in range(lock[0], v.round):
            if self._quorum(sum(self.prevotes.get((v.height, vr, v.block_hash), {}).values()),
                            v.height):
                return
        self.fail(f"LOCK RULE: validator {self._val_idx(v.validator)} locked "
                  f"{lock[1].hex()[:12]} in round {lock[0]} prevoted {v.block_hash.hex()[:12]} "
                  f"at height {v.height} round {v.round} with no polka for it since")

    def _record_precommit(self, v: Vote) -> None:
        """The locking lemma, on every precommit anyone sends: once +2/3 of the power
        precommitted x in round r, no honest validator precommits another value in a round
        >= r (catches a lock lost in a restart even when it never becomes a fork)."""
        h, r, value = v.height, v.round, v.block_hash
        power = self._power(self.precommits, (h, r, value), v)
        quorums = self.precommit_quorums.setdefault(h, [])
        honest = self.honest_precommits.setdefault(h, [])
        if value and v.validator not in self.byz_keys:
            old = self.locks.get((v.validator, h))
            if old is None or old[0] <= r:
                self.locks[(v.validator, h)] = (r, value)
            honest.append((r, value, v.validator))
            for qr, qv in quorums:
                if qv != value and qr <= r:
                    self.fail(f"LOCK: validator {self._val_idx(v.validator)} precommitted "
                              f"{value.hex()[:12]} at height {h} round {r} after +2/3 "
                              f"precommitted {qv.hex()[:12]} in round {qr}")
        if value and self._quorum(power, h) and (r, value) not in quorums:
            quorums.append((r, value))
            for cr, cv, who in honest:
                if cv != value and cr >= r:
                    self.fail(f"LOCK: validator {self._val_idx(who)} precommitted {cv.hex()[:12]}"
                              f" at height {h} round {cr} although +2/3 precommitted "
                              f"{value.hex()[:12]} in round {r}")

    def _quorum(self, power: int, height: int) -> bool:
        return 3 * power > 2 * sum(self.powers_at(height).values())

    def _val_idx(self, pk: bytes) -> int | None:
        for i in range(self.sc.nodes):
            if VAL_KEYS[i].pub_key == pk:
                return i
        return None

    # -- node lifecycle ---------------------------------------------------------------------
    def kill(self, inc: Incarnation, how: str) -> None:
        """kill -9 at this instant."""
        if inc.dead:
            return
        inc.dead = True
        self.stats["crashes"] += 1
        if inc.armed and inc.armed != "now":
            self.points_hit[inc.armed] = self.points_hit.get(inc.armed, 0) + 1
            self.stats["crash_points_hit"] += 1
        self.trace.append(("crash", self.now_ms(), inc.node.idx, how))
        if inc.scope is not None:
            inc.scope.cancel()
        for other in self.nodes:   # its connections close: the peers notice
            if other is not inc.node and other.up:
                self._push(1, ("disconnect", other, other.epoch, inc.node.peer_id, None, None, 0))

    async def node_life(self, nd: SimNode) -> None:
        nd.epoch += 1
        inc = Incarnation(nd, nd.epoch)
        nd.inc = inc
        try:
            self._build(inc)
            with trio.CancelScope() as scope:
                inc.scope = scope
                if inc.dead:
                    scope.cancel()
                try:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(inc.gossip.flush_loop)
                        nursery.start_soon(inc.gossip.ingest_loop)
                        await nursery.start(inc.driver.run)
                        for other in self.nodes:
                            if other is not nd and other.up:
                                self._connect(nd, other, self.rng.randint(5, 100))
                except* Killed:
                    pass
        except* Killed:
            pass
        except* Exception:  # noqa: BLE001 - any other exception is a bug to report
            self.fail(f"node {nd.idx} died of an unexpected exception:\n{traceback.format_exc()}")
        finally:
            inc.dead = True
            if inc.driver is not None:
                inc.driver.wal.f.close()
            if inc.store is not None:
                inc.store.close()
            if nd.inc is inc:
                nd.inc = None
            inc.exited.set()

    def _build(self, inc: Incarnation) -> None:
        """Open the node from its data dirs, as node/run.py's run_node does."""
        nd = inc.node
        inc.store = Store(nd.db_path)
        app = inc.app = Application(self.cfg, self.genesis, inc.store, nd.node_key, nd.val_key)
        skew = self.sc.skews[nd.idx]
        # As node/run.py: every node with a validator key gets a signer (RoundState signs
        # only at heights whose validator set holds the key).
        drv = inc.driver = Driver(app.chain_id, app, self.dcfg, nd.wal_path, nd.signer_path,
                                  nd.val_key.private, nd.val_key.pub_key,
                                  clock=lambda: GENESIS_MS + int(trio.current_time() * 1000) + skew)
        gossip = inc.gossip = TxGossip(app)
        ep = Endpoint(self, inc)
        drv.net = ep
        gossip.p2p = ep
        app.gossip = gossip.queue
        app.driver = drv
        self.by_signer_path[str(Path(nd.signer_path))] = inc
        self._hook(inc)

    def _hook(self, inc: Incarnation) -> None:
        """Crash points and checks around the real WAL and Application.commit."""
        wal, app = inc.driver.wal, inc.app
        real_write, real_next, real_commit = wal.write, wal.next_height, app.commit
        sim = self

        def write(height, kind, body, sync=False):
            if inc.dead:
                raise Killed()
            if inc.armed == "wal_torn":
                payload = msgpack.packb([height, kind, body], use_bin_type=True)
                rec = W._HDR.pack(len(payload), zlib.crc32(payload)) + payload
                wal.f.write(rec[:sim.rng.randint(1, len(rec) - 1)])
                wal.f.flush()
                sim.kill(inc, f"torn WAL {kind} record")
                raise Killed()
            real_write(height, kind, body, sync)

        def next_height():
            if inc.dead:
                raise Killed()
            real_next()

        def commit(block, commit, result):
            if inc.dead:
                raise Killed()
            if inc.armed == "before_commit":
                sim.kill(inc, f"before store commit of {block.header.height}")
                raise Killed()
            real_commit(block, commit, result)
            sim.on_commit(inc, block, commit, result)
            if inc.armed == "after_commit":
                sim.kill(inc, f"after store commit of {block.header.height}")
                raise Killed()

        wal.write, wal.next_height, app.commit = write, next_height, commit
        if self.sc.cpu_us:
            # Handling an event takes time: timers fire while a backlog is worked off.
            real_handle, cost = inc.driver._handle, self.sc.cpu_us / 1e6

            async def handle(kind, peer, body):
                await real_handle(kind, peer, body)
                await trio.sleep(cost)

            inc.driver._handle = handle

    def save_last_signed(self, real, path, ls) -> None:
        """Wraps consensus.driver._save_last_signed for the duration of a run."""
        inc = self.by_signer_path.get(str(Path(path)))
        if inc is not None and inc.dead:
            raise Killed()
        real(path, ls)
        if inc is not None and inc.armed == "signer_saved":
            self.kill(inc, "after fsyncing signer state, before the WAL record")
            raise Killed()

    async def crash(self, nd: SimNode, point: str, restart_at: int) -> None:
        inc = nd.inc
        if inc is None or inc.dead:
            return
        if point == "now":
            self.kill(inc, "at a checkpoint")
        else:
            inc.armed = point
            # Not reached soon (e.g. not the proposer): die at a checkpoint instead.
            deadline = min(restart_at - 1, self.now_ms() + 2_000)
            with trio.move_on_at(deadline / 1000):
                await inc.exited.wait()
            self.kill(inc, f"at a checkpoint ({point} not reached)")
        await inc.exited.wait()

    async def restart(self, nd: SimNode) -> None:
        if nd.inc is not None:
            if not nd.inc.dead and not nd.inc.armed:
                return              # its crash was skipped: it is still running
            await nd.inc.exited.wait()
        self.stats["restarts"] += 1
        self.trace.append(("restart", self.now_ms(), nd.idx))
        self.nursery.start_soon(self.node_life, nd)

    # -- checks at every commit -------------------------------------------------------------
    def on_commit(self, inc: Incarnation, block: Block, commit: Commit, result) -> None:
        nd = inc.node
        h = block.header.height
        bh = block.hash()
        rhash = hashlib.sha256(result.results_bytes()).digest()
        got = (bh, result.app_hash, rhash)
        prev = self.decided.setdefault(h, got)
        if prev[0] != bh:
            self.fail(f"SAFETY: node {nd.idx} committed block {bh.hex()[:12]} at height {h}; "
                      f"another node committed {prev[0].hex()[:12]}")
        elif prev[1] != result.app_hash:
            self.fail(f"APP HASH: node {nd.idx} got app hash {result.app_hash.hex()[:12]} at "
                      f"height {h}; another node got {prev[1].hex()[:12]}")
        elif prev[2] != rhash:
            self.fail(f"RESULTS: node {nd.idx} got different tx results at height {h}")
        for a, b in block.evidence:
            first = self.evidence_heights.setdefault((a, b), h)
            if first != h:
                if self.strict(DUPLICATE_EVIDENCE):
                    self.fail(f"DUPLICATE EVIDENCE: block {h} (committed by node {nd.idx}) "
                              f"carries evidence already committed in block {first}")
                elif prev is got:
                    self.known_bugs[DUPLICATE_EVIDENCE] = \
                        self.known_bugs.get(DUPLICATE_EVIDENCE, 0) + 1
            accused = Vote.decode(a).validator
            if accused not in self.double_voters:
                self.fail(f"block {h} carries evidence against honest validator "
                          f"{self._val_idx(accused)}")
        if h != self.tips[nd.idx] + 1:
            self.fail(f"node {nd.idx} committed height {h} after {self.tips[nd.idx]}")
        self.tips[nd.idx] = h
        s = self.stats
        s["commits"] += 1
        s["heights"] = max(s["heights"], h)
        s["max_round"] = max(s["max_round"], commit.round)
        sel = dict(inc.app.selector(h + 2).powers)
        known = self.height_powers.setdefault(h + 2, sel)
        if known != sel:
            self.fail(f"VALIDATOR SET: node {nd.idx} has another set for height {h + 2}")
        if sel != self.height_powers[2]:
            s["valset_changed"] = 1
        if prev is got:
            s["txs_committed"] += len(block.txs)
            s["evidence_committed"] += len(block.evidence)
            if commit.round > 0:
                s["late_round_commits"] += 1
            events = [e.type for r in result.tx_results for e in r.events]
            events += [e.type for e in result.block_events]
            s["fills"] += events.count("fill")
            s["triggers_fired"] += events.count("trigger")
        self._check_state(inc, h, result.app_hash)
        self.trace.append(("commit", self.now_ms(), nd.idx, h, bh.hex(), result.app_hash.hex()))

    def _check_state(self, inc: Incarnation, h: int, app_hash: bytes) -> None:
        """The whole-state invariants of the node's committed state, and its carried order
        books (while they hold that state) equal to the records."""
        cache = inc.app.derived_cache
        try:
            check_invariants(inc.store.state,
                             books=carried_books(cache) if cache.holds(app_hash) else None)
        except InvariantViolation as e:
            self.fail(f"INVARIANT: node {inc.node.idx} after committing height {h}: {e}")
        self.stats["invariant_checks"] += 1

    # -- txs --------------------------------------------------------------------------------
    def _tx(self, acct: KeyPair, action: list) -> bytes:
        nonce = max(self.nonces.get(acct.pub_key, 0) + 1, GENESIS_MS + self.now_ms())
        self.nonces[acct.pub_key] = nonce
        return build_tx(CHAIN_ID, acct.private, nonce, action)

    async def submit(self, nd: SimNode, raws: list[bytes]) -> list:
        inc = nd.inc
        self.stats["txs_submitted"] += len(raws)
        out = await inc.app.submit(raws)
        self.stats["txs_admitted"] += sum(1 for _, r in out if r.code == 0)
        return out

    async def tx_loop(self) -> None:
        if self.sc.tx_gap_ms <= 0:
            return
        rng = self.rng
        sent: list[bytes] = []
        while True:
            await trio.sleep(rng.randint(1, 2 * self.sc.tx_gap_ms) / 1000)
            up = [nd for nd in self.nodes if nd.up]
            if not up:
                continue
            nd = rng.choice(up)
            a = rng.choice(ACCOUNTS)
            r = rng.random()
            if r < 0.05:
                raw = self._tx(a, ["faucet"])
            elif r < 0.10 and sent:
                raw = rng.choice(sent)              # a replay: the mempool/nonces refuse it
            else:
                to = rng.choice(ACCOUNTS).pub_key
                amount = rng.choice((1, 7, 250, 900)) * USDC // rng.choice((1, 10))
                raw = self._tx(a, ["transfer", to, "USDC", amount])
            sent.append(raw)
            del sent[:-50]
            raws = [raw]
            if rng.random() < 0.1:                  # the same tx to a second node
                other = rng.choice(up)
                if other is not nd and other.up:
                    await self.submit(other, [raw])
            if nd.up:
                await self.submit(nd, raws)

    async def valset_txs(self) -> None:
        """Governance (the genesis authority: validator 0's key) changes the validator set."""
        for at, i, power in self.sc.valset_changes:
            await trio.sleep_until(at / 1000)
            up = [nd for nd in self.nodes if nd.up]
            if not up:
                continue
            raw = self._tx(VAL_KEYS[0], ["gov_set_validator", VAL_KEYS[i].pub_key, power])
            (_, res), = await self.submit(self.rng.choice(up), [raw])
            self.stats["valset_txs_admitted"] += res.code == 0

    async def probe_txs(self) -> None:
        """After the heal: txs that every node must end up committing."""
        await trio.sleep_until((self.sc.heal_ms + 50) / 1000)
        funder = PROBE
        for k in range(3):
            nd = self.nodes[self.rng.choice(self.honest)]
            while not nd.up:
                await trio.sleep(0.01)
            raw = self._tx(funder, ["transfer", ACCOUNTS[1 + k].pub_key, "USDC", 1])
            (th, res), = await self.submit(nd, [raw])
            if res.code == 0:
                self.probes.append(th)
            await trio.sleep(0.2)

    async def trade_loop(self) -> None:
        """Orders, cancels, modifies, triggers and batches (tests/sim/trading_load.py) from
        the accounts, to random nodes, under every fault of the run."""
        gap = self.sc.trade_gap_ms
        rng = self.trading.rng
        while gap > 0:
            await trio.sleep(rng.randint(1, 2 * gap) / 1000)
            up = [nd for nd in self.nodes if nd.up]
            if not up:
                continue
            nd = rng.choice(up)
            acct = rng.choice(ACCOUNTS)
            act = self.trading.action(nd.inc.store.state, acct.pub_key, GENESIS_MS + self.now_ms())
            self.stats["trade_txs_submitted"] += 1
            (_, res), = await self.submit(nd, [self._tx(acct, act)])
            self.stats["trade_txs_admitted"] += res.code == 0

    async def oracle_loop(self) -> None:
        """Every genesis validator signs each price update (a random walk) while trading runs:
        prices stay fresh and the mark crosses trigger prices."""
        rng = self.trading.rng
        while self.sc.trade_gap_ms > 0:
            await trio.sleep(rng.randint(1_000, 3_000) / 1000)
            act = self.trading.oracle_action()
            for i in range(self.sc.n):
                up = [nd for nd in self.nodes if nd.up]
                if up:
                    await self.submit(rng.choice(up), [self._tx(VAL_KEYS[i], act)])

    # -- timeline ---------------------------------------------------------------------------
    async def chaos(self) -> None:
        sc = self.sc
        events: list[tuple[int, int, str, object]] = []
        for i, t in enumerate(sc.starts):
            events.append((t, len(events), "start", i))
        for at, back, i, point in sc.crashes:
            events.append((at, len(events), "crash", (i, point, back)))
            events.append((back, len(events), "restart", i))
        for start, end, groups in sc.partitions:
            events.append((start, len(events), "partition", groups))
            events.append((end, len(events), "heal_partition", groups))
        events.append((sc.heal_ms, len(events), "heal", None))
        events.sort(key=lambda e: (e[0], e[1]))
        for at, _, kind, arg in events:
            await trio.sleep_until(at / 1000)
            if kind == "start":
                self.nursery.start_soon(self.node_life, self.nodes[arg])
            elif kind == "crash":
                i, point, back = arg
                self.nursery.start_soon(self.crash, self.nodes[i], point, back)
            elif kind == "restart":
                await self.restart(self.nodes[arg])
            elif kind == "partition":
                self.groups = arg
            elif kind == "heal_partition":
                self.groups = None
                for a in self.nodes:
                    for b in self.nodes:
                        if a.idx < b.idx and arg[a.idx] != arg[b.idx] and a.up and b.up \
                                and self.rng.random() < 0.5:
                            self._connect(a, b, self.rng.randint(1, 50))
            elif kind == "heal":
                for nd in self.nodes:
                    if not nd.up:
                        await self.restart(nd)
                self.healed = True
                self.groups = None
                self.target = max(max(self.tips) + sc.extra_heights, sc.min_target)
                self.trace.append(("heal", self.now_ms(), self.target))

    async def monitor(self) -> None:
        deadline = self.sc.heal_ms + LIVENESS_MS
        while True:
            await trio.sleep(0.05)
            if self.target is not None and min(self.tips[i] for i in self.honest) >= self.target and \
                    self.now_ms() > self.sc.heal_ms + 1_000 and self._probes_committed():
                self.nursery.cancel_scope.cancel()
                return
            if self.now_ms() > deadline:
                mute = self.mute_validators()
                if mute and not self.strict(MUTE_VALIDATOR):
                    self.known_bugs[MUTE_VALIDATOR] = len(mute)
                    self.nursery.cancel_scope.cancel()
                    return
                if self.pol_livelock() and not self.strict(POL_LIVELOCK):
                    self.known_bugs[POL_LIVELOCK] = 1
                    self.nursery.cancel_scope.cancel()
                    return
                self.fail(f"LIVENESS: nodes did not all reach height {self.target} (and commit "
                          f"the probe txs) within {LIVENESS_MS}ms of the heal: heights={self.tips}"
                          f" probes={len(self.probes)}\n  mute validators: {mute}; POL livelock: "
                          f"{self.pol_livelock()}; own timeouts dropped by a full inbox: "
                          f"{self.stats['dropped_timeouts']}\n{self.dump()}")
                return

    def mute_validators(self) -> list[int]:
        """Nodes whose signer holds a vote for their current (height, round, step) that their
        round state never got: they refused to sign a conflicting one and never re-send it."""
        out = []
        for nd in self.nodes:
            if not nd.up or nd.idx in self.sc.byzantine:
                continue
            d = nd.inc.driver
            ls = d.signer.last_signed if d.signer else None
            if d.rs is None or ls is None or not isinstance(ls.message, Vote):
                continue
            if (ls.height, ls.round) != (d.height, d.rs.round):
                continue
            vs = (d.rs.votes.prevotes if ls.message.type == 1 else d.rs.votes.precommits)(ls.round)
            own = vs.get(d.address) if vs is not None else None
            if own is None or own.block_hash != ls.message.block_hash:
                out.append(nd.idx)
        return out

    def pol_livelock(self) -> bool:
        """An honest node locked in a round older than round - 1 while another honest node
        at that height lacks the polka of that round: only re-sent POL prevotes end it."""
        drivers = [self.nodes[i].inc.driver for i in self.honest if self.nodes[i].up]
        for d in drivers:
            rs = d.rs
            if rs is None or rs.locked_round < 0 or rs.locked_round >= rs.round - 1:
                continue
            for other in drivers:
                if other.rs is None or other.height != d.height:
                    continue
                pv = other.rs.votes.prevotes(rs.locked_round)
                if pv is None or pv.maj23 != rs.locked_value:
                    return True
        return False

    def dump(self) -> str:
        """Each node's consensus state (for liveness failures)."""
        def short(b):
            return "nil" if not b else b.hex()[:8]

        out = []
        for nd in self.nodes:
            d = nd.inc.driver if nd.up else None
            if d is None or d.rs is None:
                out.append(f"  node {nd.idx}: down")
                continue
            rs = d.rs
            ls = d.signer.last_signed if d.signer else None
            out.append(f"  node {nd.idx}{' (' + self.sc.byzantine[nd.idx] + ')' if nd.idx in self.sc.byzantine else ''}:"
                       f" tip={d.app.tip.height} height={d.height} round={rs.round} step={int(rs.step)}"
                       f" locked={short(rs.locked_value)}@{rs.locked_round} valid={short(rs.valid_value)}"
                       f"@{rs.valid_round} last_signed={(ls.height, ls.round, ls.step) if ls else None}"
                       f" blocks={[short(b) for b in d.blocks]} future={len(d.future)}"
                       f" peer_heights={sorted(d.peer_heights.values())} syncing={d.syncing_from is not None}")
            for r in range(max(0, rs.round - 2), rs.round + 2):
                pv, pc = rs.votes.prevotes(r), rs.votes.precommits(r)
                fmt = lambda vs: "-" if vs is None else ",".join(
                    f"{self._val_idx(v.validator)}:{short(v.block_hash)}" for v in vs.votes())
                p = rs.proposal(r)
                out.append(f"    r{r}: proposal={short(p.block_hash) if p else None} "
                           f"prevotes=[{fmt(pv)}] precommits=[{fmt(pc)}]")
        return "\n".join(out)

    def _probes_committed(self) -> bool:
        for i in self.honest:
            nd = self.nodes[i]
            if not nd.up:
                return False
            if any(nd.inc.store.tx_location(th) is None for th in self.probes):
                return False
        return True

    async def main(self) -> None:
        self.real_start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            nursery.start_soon(self.net_loop)
            nursery.start_soon(self.chaos)
            nursery.start_soon(self.tx_loop)
            nursery.start_soon(self.probe_txs)
            nursery.start_soon(self.valset_txs)
            nursery.start_soon(self.trade_loop)
            nursery.start_soon(self.oracle_loop)
            nursery.start_soon(self.monitor)
            if self.script is not None:
                nursery.start_soon(self.script, self)

    # -- checks at the end ------------------------------------------------------------------
    def final_checks(self) -> None:
        stores = [Store(nd.db_path) for nd in self.nodes]
        try:
            tips = [s.tip().height for s in stores]
            for h in range(1, max(tips) + 1):
                have = [(i, s) for i, s in enumerate(stores) if tips[i] >= h]
                blocks = {Block.decode(s.block_bytes(h)).hash() for _, s in have}
                if len(blocks) != 1:
                    raise self.failure_exc(f"SAFETY: stores hold {len(blocks)} different blocks "
                                           f"at height {h}")
                if len({s.app_hash_at(h) for _, s in have}) != 1:
                    raise self.failure_exc(f"APP HASH: stores disagree at height {h}")
                if len({s.results_bytes(h) for _, s in have}) != 1:
                    raise self.failure_exc(f"RESULTS: stores disagree at height {h}")
                for i, s in have:
                    c = Commit.from_wire(decode(s.commit_bytes(h)))
                    if c.block_hash not in blocks or c.height != h:
                        raise self.failure_exc(f"node {i}'s commit at {h} is for another block")
            for i, s in enumerate(stores):
                rep = replay(s, self.genesis, progress=False, check_every=1)
                if not rep.ok or rep.heights != tips[i] or rep.invariant_checks != tips[i]:
                    raise self.failure_exc(f"REPLAY of node {i}'s store failed: {rep.error}")
        finally:
            for s in stores:
                s.close()

    def failure_exc(self, what: str) -> SimFailure:
        return SimFailure(self._report(what))

    def _report(self, what: str) -> str:
        sc = self.sc
        tail = "\n    ".join(self.logtap.lines[-15:]) if hasattr(self, "logtap") else ""
        rerun = (f"pytest 'tests/sim/test_driver_sim.py::{sc.label}'" if sc.label else
                 f"DRIVER_SIM_N={sc.n} DRIVER_SIM_SEED={sc.seed} "
                 f"pytest tests/sim/test_driver_sim.py::test_driver_sim")
        return (f"{what}\n  {sc.describe()}\n  data dirs: {self.root}\n"
                f"  re-run: {rerun}\n"
                f"  last node warnings:\n    {tail}")


@contextmanager
def _deterministic_world(sim: Sim):
    """Seeded trio scheduling, kill-safe signer-state saves and a log tap; everything is
    restored afterwards."""
    run = trio._core._run
    old_flag, old_state = run._ALLOW_DETERMINISTIC_SCHEDULING, run._r.getstate()
    run._ALLOW_DETERMINISTIC_SCHEDULING = True
    run._r.seed(f"{sim.sc.n}:{sim.sc.seed}")
    real_save = driver_mod._save_last_signed
    driver_mod._save_last_signed = lambda path, ls: sim.save_last_signed(real_save, path, ls)
    logger = logging.getLogger("perpchain")
    tap = sim.logtap = _LogTap(sim)
    old_level = logger.level
    logger.addHandler(tap)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(tap)
        logger.setLevel(old_level)
        driver_mod._save_last_signed = real_save
        run._ALLOW_DETERMINISTIC_SCHEDULING = old_flag
        run._r.setstate(old_state)


def _tmp_root() -> Path:
    base = os.environ.get("DRIVER_SIM_DIR")
    if base is None and os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        base = "/dev/shm"   # fsync is free there: the same code paths, faster
    return Path(tempfile.mkdtemp(prefix="perpchain-dsim-", dir=base))


def run_scenario(sc: Scenario, root: Path | None = None, keep: bool = False,
                 strict=None, script=None, net_filter=None) -> dict:
    """Run one scenario; raises SimFailure (an AssertionError) with a replay hint."""
    own = root is None
    root = root or _tmp_root()
    sim = Sim(sc, root, strict, script, net_filter)
    ok = False
    try:
        with _deterministic_world(sim):
            trio.run(sim.main, clock=trio.testing.MockClock(autojump_threshold=0))
        if sim.failure is not None:
            raise sim.failure_exc(sim.failure)
        sim.final_checks()
        ok = True
    finally:
        if own and (ok or not keep) and not os.environ.get("DRIVER_SIM_KEEP"):
            shutil.rmtree(root, ignore_errors=True)
    stats = dict(sim.stats)
    stats["points_hit"] = dict(sim.points_hit)
    stats["known_bugs"] = dict(sim.known_bugs)
    stats["sim_ms"] = sim.trace[-1][1] if sim.trace else 0
    stats["trace"] = hashlib.sha256(repr(sim.trace).encode()).hexdigest()
    stats["commit_hashes"] = sorted({(t[3], t[4]) for t in sim.trace if t[0] == "commit"})
    return stats


def run_seed(n: int, seed: int) -> dict:
    return run_scenario(make_scenario(n, seed))
