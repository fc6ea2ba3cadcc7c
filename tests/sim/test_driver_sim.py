"""Seeded simulations of the REAL node consensus stack (see driver_harness.py for what runs
and what each run checks): N real Drivers + Applications + LevelDB stores + WALs in one
process, a fake clock and a fake, faulty network.

Default suite: ``DRIVER_SIM_SEEDS_4`` seeds with 4 validators and ``DRIVER_SIM_SEEDS_7``
with 7 (``DRIVER_SIM_SEEDS=N`` sets both), plus each Byzantine behaviour forced on a few
seeds, a determinism check and directed tests. Each seed is its own test, so a failure
re-runs alone::

    pytest tests/sim/test_driver_sim.py -k 'n4_seed_12]'
    DRIVER_SIM_N=4 DRIVER_SIM_SEED=12 pytest tests/sim/test_driver_sim.py::test_driver_sim

More: ``pytest tests/sim/test_driver_sim.py -m slow`` runs ``DRIVER_SIM_SOAK_SEEDS`` (300)
further seeds per validator count.

Bugs this simulation found (in consensus/driver.py and node/run.py, fixed since): the
``test_regression_*`` tests, each a small directed scenario (real nodes, a scripted network)
that failed on the code as it was and passes on the fixed one. Their docstrings say what
went wrong.
"""

from __future__ import annotations

import os

import msgpack
import pytest
import trio

from consensus.driver import MSG_EVIDENCE, MSG_PROPOSAL, MSG_TXS, MSG_VOTE
from consensus.messages import PREVOTE, Proposal, Vote
from consensus.types import Commit
from state.codec import decode
from tests.sim.driver_harness import (
    BEHAVIOURS,
    VAL_KEYS,
    Scenario,
    SimFailure,
    make_scenario,
    run_scenario,
    run_seed,
)

SEEDS_4 = int(os.environ.get("DRIVER_SIM_SEEDS_4", os.environ.get("DRIVER_SIM_SEEDS", "40")))
SEEDS_7 = int(os.environ.get("DRIVER_SIM_SEEDS_7", os.environ.get("DRIVER_SIM_SEEDS", "12")))


def _params() -> list:
    only = os.environ.get("DRIVER_SIM_SEED")
    if only is not None:
        ns = [int(os.environ["DRIVER_SIM_N"])] if "DRIVER_SIM_N" in os.environ else [4, 7]
        return [pytest.param(n, int(only), id=f"n{n}_seed_{only}") for n in ns]
    return [pytest.param(4, s, id=f"n4_seed_{s}") for s in range(SEEDS_4)] + \
           [pytest.param(7, s, id=f"n7_seed_{s}") for s in range(SEEDS_7)]


@pytest.mark.parametrize("n, seed", _params())
def test_driver_sim(n: int, seed: int) -> None:
    run_seed(n, seed)  # raises SimFailure (an AssertionError) naming the seed and how to re-run


FORCED_SEEDS = range(1_000, 1_002)


@pytest.mark.parametrize("kind", ("none",) + BEHAVIOURS)
def test_driver_sim_each_behaviour(kind: str) -> None:
    """Each Byzantine behaviour on seeds of its own, so none depends on how the mix falls."""
    for seed in FORCED_SEEDS:
        sc = make_scenario(4, seed, kind)
        try:
            run_scenario(sc)
        except SimFailure as e:
            raise SimFailure(f"{e}\n  (forced kind {kind!r}: make_scenario(4, {seed}, {kind!r}))") from None


@pytest.mark.parametrize("n, seed", [(4, 7), (7, 3)])
def test_driver_sim_is_deterministic(n: int, seed: int) -> None:
    """One seed twice: the same blocks, app hashes, crashes and commit times."""
    a, b = run_seed(n, seed), run_seed(n, seed)
    assert a["commit_hashes"] and a["commit_hashes"] == b["commit_hashes"], f"n={n} seed={seed}"
    assert a == b, f"n={n} seed={seed}: two runs of one seed differ"


@pytest.mark.slow
@pytest.mark.parametrize("n", [4, 7])
def test_driver_sim_soak(n: int) -> None:
    start = SEEDS_4 if n == 4 else SEEDS_7
    count = int(os.environ.get("DRIVER_SIM_SOAK_SEEDS", "300"))
    failures = []
    for seed in range(start, start + count):
        try:
            run_seed(n, seed)
        except SimFailure as e:
            failures.append(str(e))
    assert not failures, f"{len(failures)} failing seeds; first:\n" + "\n".join(failures[:3])


# -- the checker catches what it should --------------------------------------------------------


def test_checker_catches_diverging_app_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plant nondeterminism in one node's execution: the app-hash check must fire."""
    from dataclasses import replace

    from node.app import Application

    real = Application.execute

    def execute(self, block):
        res = real(self, block)
        if self.validator_key.pub_key == VAL_KEYS[1].pub_key and block.header.height == 2:
            res = replace(res, app_hash=bytes(32))
        return res

    monkeypatch.setattr(Application, "execute", execute)
    with pytest.raises(SimFailure, match="APP HASH"):
        run_scenario(_calm(4, seed=1))


def test_checker_catches_a_lost_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plant "a restarted node forgets its WAL": the lock and double-sign checks must fire
    on some seed (an amnesiac validator is a Byzantine one)."""
    from consensus import wal

    monkeypatch.setattr(wal.WAL, "for_height", lambda self, h: [])
    import consensus.driver as d
    monkeypatch.setattr(d, "_load_last_signed", lambda path: None)
    caught = []
    for seed in range(40):
        sc = make_scenario(4, seed, "none")
        if not sc.crashes:
            continue
        try:
            run_scenario(sc)
        except SimFailure as e:
            caught.append(str(e).splitlines()[0])
        if caught:
            break
    assert caught and any(("DOUBLE SIGN" in c or "LOCK" in c or "SAFETY" in c) for c in caught), caught


# -- directed scenarios: regressions of bugs this simulation found ---------------------------


def _calm(n: int, seed: int = 0, byzantine: dict | None = None, powers=None,
          full_nodes: int = 0, **kw) -> Scenario:
    """A scenario without chaos (tests script their own faults)."""
    import inspect
    nodes = n + full_nodes
    base = {"n": n, "seed": seed, "label": inspect.stack()[1].function,
            "powers": powers or [10] * n, "heal_ms": 300, "tight": False, "p_drop": 0.0,
            "p_dup": 0.0, "max_delay_ms": 5, "p_long_delay": 0.0, "long_delay_ms": 0,
            "partitions": [], "crashes": [], "skews": [0] * nodes, "tx_gap_ms": 200,
            "extra_heights": 3, "min_target": 6, "starts": [0] * nodes,
            "byzantine": byzantine or {}, "full_nodes": full_nodes}
    base.update(kw)
    return Scenario(**base)


def _expect_clean(symptom: str, sc: Scenario, **kw) -> None:
    """Run a directed scenario strictly; `symptom` is how the bug it guards against showed
    (it is named in the failure, to tell a regression from another failure)."""
    try:
        run_scenario(sc, **kw)
    except SimFailure as e:
        tag = "REGRESSION" if symptom in str(e) else "FAILURE (not the guarded symptom)"
        raise SimFailure(f"{tag}: {symptom!r}\n{e}") from None


async def _until(pred, step: float = 0.005) -> None:
    while not pred():
        await trio.sleep(step)


def test_regression_evidence_from_a_later_height_does_not_drop_honest_peer() -> None:
    """Validator 3 double-votes; node 2 is one height behind (its inbound links are slow).
    The others detect the double vote at height h+1 and gossip the evidence at once; node 2,
    still at h, rejects it as "from the future" and disconnects an honest peer."""
    sc = _calm(4, byzantine={3: "double_vote"})

    def slow_to_node2(sim, src, dst, msg_type, body):
        return 400 if dst.idx == 2 and msg_type != MSG_EVIDENCE else None

    _expect_clean("evidence from the future", sc, strict=True, net_filter=slow_to_node2)


def test_regression_committed_evidence_is_not_committed_twice_after_restart() -> None:
    """Validator 3 double-votes and its evidence is committed; node 0 is killed and restarted
    (forgetting what was committed), then a lagging peer gossips that old evidence to it;
    node 0 puts it in its next proposal and every honest node accepts it again."""
    sc = _calm(4, byzantine={3: "double_vote"}, min_target=14)
    state = {}

    async def script(sim) -> None:
        await _until(lambda: sim.evidence_heights and min(sim.tips[:3]) >= 3)
        (ev, h), = list(sim.evidence_heights.items())[:1]
        state["evidence_height"] = h
        n0, n1 = sim.nodes[0], sim.nodes[1]
        sim.kill(n0.inc, "scripted")
        await sim.restart(n0)
        await _until(lambda: n0.up and n0.inc.driver.rs is not None)
        await trio.sleep(0.3)
        payload = msgpack.packb([MSG_EVIDENCE, list(ev)], use_bin_type=True)
        sim._push(1, ("msg", n0, n0.epoch, n1.peer_id, payload, None, 0))

    _expect_clean("DUPLICATE EVIDENCE", sc, strict=True, script=script)


def test_regression_kill_between_signer_state_and_wal_does_not_halt_the_chain() -> None:
    """4 validators; validator 3 is Byzantine (it only ever sends one prevote). Node 1 misses
    the round-0 proposal, prevotes nil, times out on prevotes and signs a nil precommit, and
    is killed right after fsyncing its signer state (before the WAL record). Restarted, it
    sees a polka for the block (validator 3's prevote arrives late), asks its signer for a
    precommit of the block, is refused, and stays mute for the round: with validator 3
    silent, only 2 of 4 precommits exist anywhere, and no node ever leaves the round."""
    sc = _calm(4, byzantine={3: "scripted"}, min_target=3)
    killed = {}

    def net(sim, src, dst, msg_type, body):
        if src.idx == 3:   # Byzantine: only its height-1 round-0 prevote, and only to node 1
            if msg_type == MSG_VOTE and dst.idx == 1 and "restart" in killed:
                v = Vote.decode(body)
                if v.type == PREVOTE and (v.height, v.round) == (1, 0):
                    return 5
            return "drop"
        if dst.idx == 1 and msg_type == MSG_PROPOSAL and "restart" not in killed:
            return 1_100  # node 1 gets the round-0 proposal only after its timeout_propose
        if dst.idx == 1 and "restart" not in killed and msg_type == MSG_VOTE:
            v = Vote.decode(body)
            if v.type == 2:
                return "drop"  # and no precommits until it has signed its own
        return None

    async def script(sim) -> None:
        n1 = sim.nodes[1]
        await _until(lambda: n1.up and n1.inc.driver.signer.last_signed is not None)
        n1.inc.armed = "signer_saved"   # its next signature (the nil precommit) kills it
        await _until(lambda: not n1.up)
        await trio.sleep(0.2)
        killed["restart"] = True
        await sim.restart(n1)

    # The proposer of height 1 round 0 must be node 0 for this script.
    from consensus.proposer import ProposerSelector
    sel = ProposerSelector.genesis({VAL_KEYS[i].pub_key: 10 for i in range(4)})
    assert sel.proposer_for_round(0) == VAL_KEYS[0].pub_key
    _expect_clean("mute validators: [1]", sc, strict=True, script=script,
               net_filter=net)


def test_regression_no_empty_blocks_does_not_stall_when_tx_gossip_is_lost() -> None:
    """create_empty_blocks = false; txs reach one validator each (their gossip is lost).
    That validator starts the next height and proposes them; the other three wait for txs
    of their own and never look at its proposal."""
    sc = _calm(4, empty_blocks=False, tx_gap_ms=0, min_target=2)

    def no_tx_gossip(sim, src, dst, msg_type, body):
        return "drop" if msg_type == MSG_TXS else None

    _expect_clean("LIVENESS", sc, strict=True, net_filter=no_tx_gossip)


def test_regression_proposal_of_a_later_round_is_acted_on() -> None:
    """Height 1 proposers by round: nodes 0, 1, 3, 2. Node 0's round-0 proposal is lost and
    node 1 is cut off, so rounds 0 and 1 fail (nodes 0, 2, 3 vote nil) while node 1 sits in
    round 0. Byzantine node 3 proposes in round 2 but keeps its own round-2 votes to
    itself, so nodes 0 and 2 need node 1. Node 3's round-2 proposal is the first thing
    node 1 hears; the round-2 prevotes of nodes 0 and 2 then move it to round 2 (f+1 round
    skip), where it must prevote that proposal so that height 1 commits in round 2. A node
    that dropped the early proposal (and ignores its re-sends as duplicates) prevotes nil,
    and height 1 only commits in round 3."""
    sc = _calm(4, byzantine={3: "scripted"}, min_target=3)
    state = {"open": False}

    def net(sim, src, dst, msg_type, body):
        if msg_type == MSG_PROPOSAL and Proposal.decode(body[0]).round == 0:
            p = Proposal.decode(body[0])
            if p.height == 1:
                return "drop"
        if src.idx == 3 and msg_type == MSG_VOTE:
            v = Vote.decode(body)
            if v.height == 1 and v.round >= 2:
                return "drop"
        if not state["open"] and 1 in (src.idx, dst.idx):
            if dst.idx == 1 and msg_type == MSG_PROPOSAL:
                p = Proposal.decode(body[0])
                if (p.height, p.round) == (1, 2):
                    state["open"] = True
                    return None
            return "drop"
        return None

    rounds = {}

    async def script(sim) -> None:
        await _until(lambda: sim.tips[0] >= 1)
        rounds[1] = Commit.from_wire(decode(sim.nodes[0].inc.store.commit_bytes(1))).round

    run_scenario(sc, strict=True, script=script, net_filter=net)
    assert state["open"], "the scripted round-2 proposal never reached node 1"
    if rounds[1] != 2:
        raise SimFailure(f"height 1 committed in round {rounds[1]}, not 2: node 1 did not "
                         "prevote the round-2 proposal it had been sent")


def test_regression_a_message_burst_does_not_erase_the_nodes_own_timeout() -> None:
    """Each inbox event costs 1 ms of simulated time. Nobody gets the round-0 proposal,
    so every node needs its timeout_propose. Byzantine validator 3, otherwise silent,
    floods node 1 with copies of one already-seen vote (60k/s for 0.25 s around node 1's
    timeout; node/p2p.py's reader delivers a read's frames back to back). The inbox is
    full when node 1's timeout_propose fires; the timeout is dropped, node 1 never
    prevotes in round 0, and nodes 0 and 2 wait forever for +2/3 of any prevote."""
    sc = _calm(4, byzantine={3: "scripted"}, min_target=2, cpu_us=1_000)
    seen = {}

    def net(sim, src, dst, msg_type, body):
        if src.idx == 3:
            return "drop"
        if msg_type == MSG_PROPOSAL and Proposal.decode(body[0]).round == 0:
            return "drop"
        if msg_type == MSG_VOTE and src.idx == 0:
            seen.setdefault("vote", body)
        return None

    async def script(sim) -> None:
        n1, n3 = sim.nodes[1], sim.nodes[3]
        await _until(lambda: n1.up and n1.inc.driver.rs is not None and "vote" in seen)
        d = n1.inc.driver
        deadline = d.height_started_at + 1.0          # node 1's round-0 timeout_propose
        await trio.sleep_until(deadline - 0.2 + 7e-6)
        while trio.current_time() < deadline + 0.05:  # 60k msgs/s: 60 times what it handles
            for _ in range(3):
                d.on_peer_message(n3.peer_id, MSG_VOTE, seen["vote"])
            await trio.sleep(50e-6)

    _expect_clean("own timeouts dropped by a full inbox: 1", sc, strict=True, script=script,
               net_filter=net)


def test_regression_lost_pol_prevotes_are_regossiped() -> None:
    """Height 1, round 0: node 0 proposes B (node 3 misses the proposal). Until t=8 s the
    network loses some round-0 prevotes: node 2 gets only node 0's, node 3 only nodes 0's
    and 1's. Nodes 0 and 1 see the polka, lock B and precommit it; nodes 2 and 3 see no
    polka and precommit nil. From then on a locked proposer re-proposes B with POL round
    0 (nodes 2 and 3 cannot check it and prevote nil) and an unlocked one proposes a new
    block (nodes 0 and 1, locked, prevote nil): 2 against 2 in every round. After the
    network heals at 8 s nobody re-sends the round-0 prevotes (only rounds r-1 and r are
    re-sent), so the height never ends."""
    sc = _calm(4, min_target=2, tx_gap_ms=0)
    allowed = {2: {0, 2}, 3: {0, 1, 3}}   # whose round-0 prevotes each unlocked node may see

    def net(sim, src, dst, msg_type, body):
        if trio.current_time() >= 8.0 or dst.idx not in allowed:
            return None
        if msg_type == MSG_PROPOSAL and dst.idx == 3 and Proposal.decode(body[0]).round == 0:
            return "drop"
        if msg_type == MSG_VOTE:
            v = Vote.decode(body)
            if v.type == PREVOTE and v.round == 0 and \
                    VAL_KEYS.index(next(k for k in VAL_KEYS if k.pub_key == v.validator)) \
                    not in allowed[dst.idx]:
                return "drop"
        return None

    _expect_clean("POL livelock: True", sc, strict=True, net_filter=net)


def test_regression_validator_added_by_governance_signs() -> None:
    """4 genesis validators (power 10 each) and a fifth node with its own validator key,
    wired as node/run.py wires it. Governance adds the fifth key with power 40 (effective two
    heights on): the set then holds 80, the four genesis validators 40 of it, so +2/3 needs
    the fifth; its node was started without a signer and never votes, and the chain stops
    at the height the change takes effect. Fixed: node/run.py hands the driver the key
    whenever the node has one (safe: RoundState signs only where the key is in the set).)"""
    sc = _calm(4, full_nodes=1, min_target=8, valset_changes=[(500, 4, 40)])
    _expect_clean("LIVENESS", sc, strict=True)
