"""The Tendermint round state machine (consensus.rounds), one rule at a time.

Four validators of power 10 whose addresses sort as ADDR[0] < ... < ADDR[3]: at
height 1 the proposer of round r is ADDR[r % 4]. Votes and proposals are
unsigned: RoundState trusts its driver to have verified signatures.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import pytest

from consensus.messages import NIL, PRECOMMIT, PREVOTE, Proposal, Vote
from consensus.proposer import ProposerSelector
from consensus.rounds import (
    BroadcastProposal,
    BroadcastVote,
    Commit,
    Evidence,
    FetchBlock,
    ProposeBlock,
    RoundState,
    ScheduleTimeout,
    Step,
    Timeout,
    TimeoutConfig,
)

ADDR = sorted(hashlib.sha256(b"rounds-%d" % i).digest() for i in range(4))
OUTSIDER = hashlib.sha256(b"outsider").digest()
V1 = hashlib.sha256(b"block-1").digest()
V2 = hashlib.sha256(b"block-2").digest()
T = TimeoutConfig()  # 3000+500r, 1000+500r, 1000+500r
P, PV, PC = Step.PROPOSE, Step.PREVOTE, Step.PRECOMMIT


def selector(powers: list[int] | None = None) -> ProposerSelector:
    powers = powers or [10, 10, 10, 10]
    return ProposerSelector.genesis({ADDR[i]: p for i, p in enumerate(powers)})


def node(i: int, powers: list[int] | None = None) -> RoundState:
    return RoundState(ADDR[i] if i >= 0 else OUTSIDER, selector(powers), T)


def pv(i: int, value: bytes, r: int = 0, h: int = 1) -> Vote:
    return Vote(PREVOTE, h, r, value, ADDR[i], 0, b"")


def pc(i: int, value: bytes, r: int = 0, h: int = 1) -> Vote:
    return Vote(PRECOMMIT, h, r, value, ADDR[i], 0, b"")


def prop(r: int, value: bytes, pol: int = -1, h: int = 1, proposer: bytes | None = None) -> Proposal:
    return Proposal(h, r, value, pol, proposer if proposer is not None else ADDR[r % 4], b"", 0)


def votes(actions: list) -> list[Vote]:
    return [a.vote for a in actions if isinstance(a, BroadcastVote)]


def timeouts(actions: list) -> list[tuple]:
    return [(a.step, a.height, a.round, a.duration_ms) for a in actions if isinstance(a, ScheduleTimeout)]


def feed(rs: RoundState, *vs: Vote, now: int = 0) -> list:
    """Deliver votes; our own signed votes are fed back like a driver does."""
    out: list = []
    queue = list(vs)
    while queue:
        acts = rs.on_vote(queue.pop(0), now)
        out.extend(acts)
        queue.extend(votes(acts))
    return out


def propose(rs: RoundState, p: Proposal, valid: bool = True, now: int = 0) -> list:
    acts = rs.on_proposal(p, valid, now)
    return acts + feed(rs, *votes(acts), now=now)


def timeout(rs: RoundState, step: int, r: int, h: int = 1, now: int = 0) -> list:
    acts = rs.on_timeout(Timeout(step, h, r), now)
    return acts + feed(rs, *votes(acts), now=now)


def lock_v1_in_round0(rs: RoundState) -> None:
    """Node 3 prevotes V1 in round 0, sees a polka and locks; round 0 then fails."""
    rs.start(1, 0)
    propose(rs, prop(0, V1))
    feed(rs, pv(0, V1), pv(1, V1))
    assert (rs.locked_value, rs.locked_round) == (V1, 0)
    feed(rs, pc(0, NIL), pc(1, NIL))
    timeout(rs, PC, 0)
    assert (rs.round, rs.step) == (1, P)


# -- the happy path ----------------------------------------------------------------------------


def test_happy_path_decides_in_round_zero() -> None:
    rs = node(3)
    assert timeouts(rs.start(1, 0)) == [(P, 1, 0, 3000)]
    acts = rs.on_proposal(prop(0, V1), True, 5)
    assert votes(acts) == [Vote(PREVOTE, 1, 0, V1, ADDR[3], 5, b"")]
    assert rs.step == PV
    feed(rs, *votes(acts))
    assert feed(rs, pv(0, V1)) == []
    acts = feed(rs, pv(1, V1))  # 3 of 4: polka -> lock and precommit
    assert votes(acts)[0] == Vote(PRECOMMIT, 1, 0, V1, ADDR[3], 0, b"")
    assert (rs.locked_value, rs.locked_round, rs.valid_value, rs.valid_round) == (V1, 0, V1, 0)
    assert feed(rs, pc(0, V1)) == []
    acts = feed(rs, pc(2, V1))
    commits = [a for a in acts if isinstance(a, Commit)]
    assert len(commits) == 1
    c = commits[0]
    assert (c.height, c.round, c.block_hash) == (1, 0, V1)
    assert [v.validator for v in c.precommits] == [ADDR[0], ADDR[2], ADDR[3]]
    assert rs.step == Step.COMMIT and rs.decision == c
    assert feed(rs, pc(1, V1)) == []  # decided: nothing more


def test_proposer_asks_for_a_block_and_still_arms_the_propose_timeout() -> None:
    rs = node(0)
    acts = rs.start(1, 0)
    assert ProposeBlock(1, 0) in acts
    assert timeouts(acts) == [(P, 1, 0, 3000)]
    acts = propose(rs, prop(0, V1))  # the driver feeds its own signed proposal back
    assert votes(acts)[0].block_hash == V1


def test_next_height_uses_the_next_proposer() -> None:
    rs = node(1)
    rs.start(1, 0)
    propose(rs, prop(0, V1))
    feed(rs, pv(0, V1), pv(2, V1), pc(0, V1), pc(2, V1))
    assert rs.decision is not None
    acts = rs.start(2, 100)
    assert ProposeBlock(2, 0) in acts  # height 2's round-0 proposer is ADDR[1]
    assert (rs.height, rs.round, rs.step, rs.locked_round, rs.valid_round) == (2, 0, P, -1, -1)
    with pytest.raises(ValueError):
        rs.start(2, 200)


def test_messages_for_other_heights_are_ignored() -> None:
    rs = node(3)
    rs.start(1, 0)
    assert rs.on_proposal(prop(0, V1, h=2), True, 0) == []
    assert feed(rs, pv(0, V1, h=2), pv(1, V1, h=2), pv(2, V1, h=2)) == []
    assert rs.on_timeout(Timeout(P, 2, 0), 0) == []
    assert rs.step == P


# -- quorum: exactly 2/3 is not enough ---------------------------------------------------------


def test_exactly_two_thirds_power_is_not_a_quorum() -> None:
    powers = [2, 1, 1, 2]  # total 6; 4 is exactly 2/3
    rs = node(3, powers)
    rs.start(1, 0)
    proposer = rs.proposer(0)
    acts = propose(rs, prop(0, V1, proposer=proposer))
    assert votes(acts)[0].block_hash == V1
    feed(rs, pv(0, V1))  # 2 + 2 = 4 of 6 for V1: exactly 2/3
    assert rs.step == PV and rs.locked_round == -1
    acts = feed(rs, pv(1, NIL))  # 5 of 6 voted: +2/3 any, but V1 still at exactly 2/3
    assert timeouts(acts) == [(PV, 1, 0, 1000)]
    assert rs.step == PV
    acts = feed(rs, pv(2, V1))  # 5 of 6 for V1
    assert [v.type for v in votes(acts)] == [PRECOMMIT]
    assert rs.locked_value == V1
    # And for deciding: 4 of 6 precommits is not a commit, 5 is.
    assert not [a for a in feed(rs, pc(0, V1)) if isinstance(a, Commit)]
    assert [a for a in feed(rs, pc(2, V1)) if isinstance(a, Commit)]


# -- timeouts and the nil path ---------------------------------------------------------------------


def test_timeouts_grow_linearly_with_the_round() -> None:
    rs = node(3)
    assert timeouts(rs.start(1, 0)) == [(P, 1, 0, 3000)]
    for r in range(3):
        acts = timeout(rs, P, r)  # line 57: prevote nil
        assert [(v.type, v.block_hash) for v in votes(acts)] == [(PREVOTE, NIL)]
        acts = feed(rs, pv(0, V1, r), pv(1, NIL, r))  # +2/3 any, no majority: line 34
        assert timeouts(acts) == [(PV, 1, r, 1000 + 500 * r)]
        acts = timeout(rs, PV, r)  # line 61: precommit nil
        assert [(v.type, v.block_hash) for v in votes(acts)] == [(PRECOMMIT, NIL)]
        acts = feed(rs, pc(0, NIL, r), pc(1, V1, r))  # +2/3 any precommits: line 47
        assert timeouts(acts) == [(PC, 1, r, 1000 + 500 * r)]
        acts = timeout(rs, PC, r)  # line 65: next round
        assert rs.round == r + 1 and rs.step == P
        assert timeouts(acts) == [(P, 1, r + 1, 3000 + 500 * (r + 1))]


def test_nil_polka_precommits_nil_and_moves_to_the_next_round() -> None:
    rs = node(3)
    rs.start(1, 0)
    timeout(rs, P, 0)
    acts = feed(rs, pv(0, NIL), pv(1, NIL))  # line 44: +2/3 nil prevotes
    assert [(v.type, v.block_hash) for v in votes(acts)] == [(PRECOMMIT, NIL)]
    acts = feed(rs, pc(0, NIL), pc(1, NIL))
    assert timeouts(acts) == [(PC, 1, 0, 1000)]
    assert rs.decision is None  # +2/3 nil precommits decide nothing
    acts = timeout(rs, PC, 0)
    assert rs.round == 1 and ProposeBlock(1, 1) not in acts  # ADDR[1] proposes round 1
    assert (rs.locked_round, rs.valid_round) == (-1, -1)


def test_stale_and_wrong_step_timeouts_are_ignored() -> None:
    rs = node(3)
    rs.start(1, 0)
    propose(rs, prop(0, V1))
    assert rs.on_timeout(Timeout(P, 1, 0), 0) == []  # already prevoted
    assert rs.on_timeout(Timeout(PV, 1, 1), 0) == []  # other round
    assert rs.on_timeout(Timeout(PV, 2, 0), 0) == []  # other height
    timeout(rs, PV, 0)
    timeout(rs, PC, 0)
    assert rs.round == 1
    assert rs.on_timeout(Timeout(PC, 1, 0), 0) == []  # the old round's timer


def test_timeout_config_duration() -> None:
    cfg = TimeoutConfig(100, 10, 200, 20, 300, 30)
    assert [cfg.duration(s, 2) for s in (P, PV, PC)] == [120, 240, 360]
    with pytest.raises(ValueError):
        cfg.duration(Step.COMMIT, 0)


# -- locks --------------------------------------------------------------------------------------


def test_lock_prevents_prevoting_another_fresh_value() -> None:
    rs = node(3)
    lock_v1_in_round0(rs)
    acts = propose(rs, prop(1, V2))  # fresh proposal (pol -1) of another value
    assert [v.block_hash for v in votes(acts)] == [NIL]
    assert (rs.locked_value, rs.locked_round) == (V1, 0)


def test_locked_value_is_prevoted_again() -> None:
    rs = node(3)
    lock_v1_in_round0(rs)
    acts = propose(rs, prop(1, V1, pol=0))
    assert [v.block_hash for v in votes(acts)] == [V1]


def test_new_polka_while_prevoting_relocks() -> None:
    rs = node(3)
    lock_v1_in_round0(rs)
    propose(rs, prop(1, V2))  # prevotes nil because of the lock
    acts = feed(rs, pv(0, V2, 1), pv(1, V2, 1), pv(2, V2, 1))  # but +2/3 prevoted V2 in round 1
    assert [(v.type, v.block_hash) for v in votes(acts)] == [(PRECOMMIT, V2)]
    assert (rs.locked_value, rs.locked_round, rs.valid_value, rs.valid_round) == (V2, 1, V2, 1)


def test_pol_round_at_or_above_the_lock_unlocks() -> None:
    rs = node(3)
    lock_v1_in_round0(rs)
    # Round 1 passes by timeouts without us seeing its polka for V2.
    timeout(rs, P, 1)
    timeout(rs, PV, 1)
    timeout(rs, PC, 1)
    assert rs.round == 2
    acts = propose(rs, prop(2, V2, pol=1))
    assert votes(acts) == []  # line 28 needs the polka of round 1: wait for it
    acts = feed(rs, pv(0, V2, 1), pv(1, V2, 1), pv(2, V2, 1))
    assert [(v.type, v.round, v.block_hash) for v in votes(acts)] == [(PREVOTE, 2, V2)]
    assert rs.locked_value == V1  # the lock itself only moves with a polka in the current round


def test_pol_round_below_the_lock_is_refused() -> None:
    rs = node(3)
    rs.start(1, 0)
    timeout(rs, P, 0)
    timeout(rs, PV, 0)
    timeout(rs, PC, 0)
    propose(rs, prop(1, V1))  # round 1: prevote V1, polka, lock V1@1
    feed(rs, pv(0, V1, 1), pv(1, V1, 1))
    assert (rs.locked_value, rs.locked_round) == (V1, 1)
    timeout(rs, PC, 1)
    feed(rs, pv(0, V2, 0), pv(1, V2, 0), pv(2, V2, 0))  # late news: a polka for V2 in round 0
    acts = propose(rs, prop(2, V2, pol=0))  # POL round 0 < locked round 1
    assert [v.block_hash for v in votes(acts)] == [NIL]


def test_pol_proposal_prevoted_nil_when_pol_round_chose_something_else() -> None:
    rs = node(3)
    rs.start(1, 0)
    propose(rs, prop(0, V1))
    feed(rs, pv(0, NIL), pv(1, NIL), pv(2, NIL))  # +2/3 nil in round 0
    timeout(rs, PC, 0)
    acts = propose(rs, prop(1, V2, pol=0))
    assert [v.block_hash for v in votes(acts)] == [NIL]


def test_invalid_block_is_prevoted_nil_and_never_locked() -> None:
    rs = node(3)
    rs.start(1, 0)
    acts = propose(rs, prop(0, V1), valid=False)
    assert [v.block_hash for v in votes(acts)] == [NIL]
    acts = feed(rs, pv(0, V1), pv(1, V1), pv(2, V1))  # a (Byzantine) polka for an invalid value
    assert rs.locked_round == -1 and rs.step == PV
    assert timeouts(acts) == [(PV, 1, 0, 1000)]


def test_proposals_from_the_wrong_proposer_or_with_bad_pol_are_ignored() -> None:
    rs = node(3)
    rs.start(1, 0)
    assert rs.on_proposal(prop(0, V1, proposer=ADDR[2]), True, 0) == []
    assert rs.on_proposal(prop(0, V1, pol=0), True, 0) == []  # pol_round must be < round
    assert rs.on_proposal(prop(5, V1), True, 0) == []  # far-future round: re-gossiped later
    assert rs.step == P and rs.proposal(0) is None


# -- valid value ----------------------------------------------------------------------------------


def test_proposer_reproposes_its_valid_value_with_its_pol_round() -> None:
    rs = node(1)  # proposer of round 1
    rs.start(1, 0)
    propose(rs, prop(0, V1))
    feed(rs, pv(0, V1), pv(2, V1))
    assert (rs.valid_value, rs.valid_round) == (V1, 0)
    feed(rs, pc(0, NIL), pc(2, NIL))
    acts = timeout(rs, PC, 0)
    assert BroadcastProposal(1, 1, V1, 0) in acts
    assert not any(isinstance(a, ProposeBlock) for a in acts)
    assert timeouts(acts) == [(P, 1, 1, 3500)]


def test_valid_value_is_updated_after_precommitting_nil_but_not_locked() -> None:
    rs = node(3)
    rs.start(1, 0)
    propose(rs, prop(0, V1))
    feed(rs, pv(0, NIL), pv(1, V1))  # +2/3 any, no majority
    timeout(rs, PV, 0)
    assert rs.step == PC
    acts = feed(rs, pv(2, V1))  # the polka completes while we are in precommit
    assert votes(acts) == []
    assert (rs.valid_value, rs.valid_round) == (V1, 0)
    assert (rs.locked_value, rs.locked_round) == (None, -1)


def test_no_valid_value_means_a_new_block() -> None:
    rs = node(1)
    rs.start(1, 0)
    timeout(rs, P, 0)
    timeout(rs, PV, 0)
    assert ProposeBlock(1, 1) in timeout(rs, PC, 0)


# -- round skipping -------------------------------------------------------------------------------


def test_f_plus_one_in_a_higher_round_skips_to_it() -> None:
    rs = node(3)
    rs.start(1, 0)
    assert feed(rs, pv(0, V1, r=5)) == []  # 10 of 40: not more than 1/3
    assert rs.round == 0
    acts = feed(rs, pc(1, NIL, r=5))  # 20 of 40 > 1/3 (prevotes and precommits both count)
    assert rs.round == 5 and rs.step == P
    assert timeouts(acts) == [(P, 1, 5, 3000 + 5 * 500)]
    assert rs.votes.prevotes(5).power_for(V1) == 10  # the buffered votes are now tallied


def test_exactly_one_third_does_not_skip() -> None:
    rs = node(2, [1, 1, 1])
    rs.start(1, 0)
    feed(rs, pv(0, NIL, r=4))  # exactly 1/3
    assert rs.round == 0
    feed(rs, pv(1, NIL, r=3))  # 1/3 in round 3 and 1/3 in round 4: still no skip
    assert rs.round == 0
    feed(rs, pc(1, NIL, r=4))
    assert rs.round == 4


def test_skip_goes_to_the_highest_qualifying_round() -> None:
    rs = node(3)
    rs.start(1, 0)
    feed(rs, pv(0, NIL, r=7), pv(0, NIL, r=9), pv(1, NIL, r=7))
    assert rs.round == 7
    feed(rs, pv(2, NIL, r=9))
    assert rs.round == 9


# -- deciding ---------------------------------------------------------------------------------------


def test_commit_for_an_unknown_block_fetches_it_first() -> None:
    rs = node(3)
    rs.start(1, 0)
    acts = feed(rs, pc(0, V1, r=1), pc(1, V1, r=1), pc(2, V1, r=1))
    assert FetchBlock(1, 1, V1) in acts
    assert rs.decision is None
    acts = rs.on_block(V1, True, 10)
    commits = [a for a in acts if isinstance(a, Commit)]
    assert len(commits) == 1 and commits[0].round == 1 and commits[0].block_hash == V1


def test_never_decides_an_invalid_block() -> None:
    rs = node(3)
    rs.start(1, 0)
    feed(rs, pc(0, V1), pc(1, V1), pc(2, V1))
    assert not any(isinstance(a, Commit) for a in rs.on_block(V1, False, 0))
    assert rs.decision is None


def test_decides_from_any_round_of_the_height() -> None:
    rs = node(3)
    lock_v1_in_round0(rs)
    acts = feed(rs, pc(0, V1, r=0), pc(1, V1, r=0), pc(2, V1, r=0))  # late round-0 precommits
    assert [a for a in acts if isinstance(a, Commit)][0].round == 0


def test_equivocation_is_reported_and_counted_once_for_any() -> None:
    rs = node(3)
    rs.start(1, 0)
    propose(rs, prop(0, V1))
    feed(rs, pv(0, V1))
    acts = feed(rs, pv(0, NIL))
    assert Evidence(pv(0, V1), pv(0, NIL)) in acts
    assert rs.votes.prevotes(0).sum_power == 20  # us and validator 0, once each
    assert rs.step == PV and not timeouts(acts)


def test_equivocators_vote_for_the_value_still_completes_a_commit() -> None:
    # Validator 0 sent us nil first; its signed precommit for V1 (gossiped by a
    # peer that decided with it) must still count, or we could never catch up.
    rs = node(3)
    rs.start(1, 0)
    propose(rs, prop(0, V1))
    feed(rs, pc(0, NIL), pc(1, V1), pc(3, V1))
    assert rs.decision is None
    acts = feed(rs, pc(0, V1))
    assert any(isinstance(a, Evidence) for a in acts)
    assert rs.decision is not None and rs.decision.block_hash == V1


# -- observers, restarts, determinism ------------------------------------------------------------------


def test_non_validator_follows_but_never_votes() -> None:
    rs = node(-1)
    assert not rs.is_validator
    acts = rs.start(1, 0)
    assert timeouts(acts) == [(P, 1, 0, 3000)]
    assert votes(rs.on_proposal(prop(0, V1), True, 0)) == []
    acts = feed(rs, pc(0, V1), pc(1, V1), pc(2, V1))
    assert any(isinstance(a, Commit) for a in acts)


def test_restore_keeps_the_lock() -> None:
    rs = node(3)
    lock_v1_in_round0(rs)
    snap = rs.snapshot()
    assert (snap.height, snap.round, snap.step, snap.locked_value, snap.locked_round) == (1, 1, int(P), V1, 0)
    fresh = node(3)
    acts = fresh.restore(snap, 50)
    assert timeouts(acts) == [(P, 1, 1, 3500)]
    acts = propose(fresh, prop(1, V2))
    assert [v.block_hash for v in votes(acts)] == [NIL]
    acts = propose(fresh, prop(1, V1))  # first proposal of a round wins: still nil
    assert votes(acts) == []


def test_restore_rearms_the_timeout_of_its_step() -> None:
    rs = node(3)
    rs.start(1, 0)
    propose(rs, prop(0, V1))
    snap = rs.snapshot()
    fresh = node(3)
    assert timeouts(fresh.restore(snap, 0)) == [(PV, 1, 0, 1000)]
    with pytest.raises(ValueError):
        done = node(3)
        done.start(1, 0)
        propose(done, prop(0, V1))
        feed(done, pv(0, V1), pv(1, V1), pc(0, V1), pc(1, V1))
        node(3).restore(done.snapshot(), 0)


def test_same_events_same_actions() -> None:
    def script() -> list:
        rs = node(1)
        out = rs.start(1, 0)
        out += propose(rs, prop(0, V1), now=3)
        out += feed(rs, pv(0, V1), pv(2, NIL), pv(3, V2), now=4)
        out += timeout(rs, PV, 0, now=1004)
        out += feed(rs, pc(0, NIL), pc(2, NIL), pc(3, V1), now=1100)
        out += timeout(rs, PC, 0, now=2100)
        out += feed(rs, pv(0, V1, 4), pc(2, NIL, 6), pv(3, V1, 6), now=2200)
        return out

    assert script() == script()


# -- layering ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["rounds", "messages", "vote_set", "proposer"])
def test_consensus_core_is_pure(module: str) -> None:
    path = Path(__file__).resolve().parents[2] / "consensus" / f"{module}.py"
    tree = ast.parse(path.read_text())
    banned = {"state", "trio", "socket", "time", "random", "asyncio", "threading", "os"}
    for n in ast.walk(tree):
        names: list[str] = []
        if isinstance(n, ast.Import):
            names = [a.name for a in n.names]
        elif isinstance(n, ast.ImportFrom) and n.module:
            names = [n.module]
        for name in names:
            assert name.split(".")[0] not in banned, f"consensus/{module}.py imports {name}"
        assert not (isinstance(n, ast.Constant) and isinstance(n.value, float)), f"float literal in {module}"
