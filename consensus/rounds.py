"""Tendermint consensus for one validator as a pure step function: event in, actions out.

This is Algorithm 1 of Buchman, Kwon, Milosevic, "The latest gossip on BFT
consensus" (arXiv:1807.04938v3), with CometBFT's practical details. The
line numbers below refer to the paper.

Events (methods of ``RoundState``; each returns a list of actions):

* ``start(height, now_ms)``: begin a height at round 0.
* ``on_proposal(proposal, block_is_valid, now_ms)``: a proposal whose block
  the driver has fetched and validated (``block_is_valid``).
* ``on_block(block_hash, block_is_valid, now_ms)``: a block the driver fetched
  on request (``FetchBlock``), e.g. one that got +2/3 votes but whose proposal
  we missed.
* ``on_vote(vote, now_ms)``: a prevote or precommit.
* ``on_timeout(timeout, now_ms)``: a timer the driver scheduled fired.

Actions: ``ProposeBlock`` (build a new block and propose it), ``BroadcastProposal``
(re-propose ``valid_value`` with its POL round), ``BroadcastVote`` (an unsigned
vote: the driver signs it through a double-sign-safe signer, broadcasts it and
feeds it back with ``on_vote``), ``ScheduleTimeout``, ``FetchBlock``, ``Commit``
(the decision with its +2/3 precommits) and ``Evidence`` (two conflicting votes).

The driver's duties: verify signatures before calling ``on_proposal``/``on_vote``
(this module checks membership, proposer identity and heights, not
signatures); feed its own signed proposals and votes back in; deliver
timeouts; after ``Commit``, execute the block and call ``start(height + 1)``
(optionally after a commit timeout); persist ``snapshot()`` before sending
anything it signed, and call ``restore`` after a crash.

Values are opaque block hashes (bytes). Validity is a property of the value
and is learnt from ``on_proposal``/``on_block``.

Invariants (each is a reason for a line of code below):

* Quorum means STRICTLY more than 2/3 of the total voting power; "f+1" means
  strictly more than 1/3. Exactly 2/3 is not a quorum.
* Never prevote for a value that conflicts with the lock: with
  ``locked_round >= 0`` a node prevotes ``v != locked_value`` only for a
  proposal whose POL round ``vr`` satisfies ``locked_round <= vr < round`` and
  for which it has seen +2/3 prevotes for ``v`` in round ``vr`` (lines 22-33).
* Precommit a value only with +2/3 prevotes for it in the current round, and
  lock it at that moment (lines 36-43). Locks are never released within a
  height, only superseded by a later polka seen while in the prevote step.
* ``valid_value``/``valid_round`` track the most recent polka this node saw
  for a valid value in its current round; a proposer re-proposes
  ``valid_value`` with ``pol_round = valid_round`` (StartRound).
* At most one prevote and one precommit per (height, round) is ever emitted,
  and at most one proposal (the step only moves forward within a round,
  rounds only increase within a height).
* Decide ``v`` only with +2/3 precommits for ``v`` in one round and ``v`` known
  valid (line 49). A decided height emits nothing but evidence afterwards.
* Timeouts grow linearly with the round: ``base + round * delta`` for each step,
  so after GST all correct nodes eventually overlap long enough to decide.
* f+1 power of votes from a round ``r > round`` moves the node to ``r``
  (line 55), so a node can never be left behind forever by a round change.
* No I/O, no clock, no randomness: time is an argument, the same events in
  the same order give the same actions.

Deliberate differences from the paper, all as CometBFT does them:

* The proposer of a round also schedules ``timeout_propose`` (so a proposer
  that fails to build or sign a block does not stall its own node).
* A proposal with POL round ``vr`` is prevoted nil as soon as +2/3 of round
  ``vr`` prevoted something else (the paper waits for ``timeout_propose``).
* Line 36 and line 49 need the value to be known valid, from any proposal or
  fetched block of the height, not necessarily from the same round's proposal
  (CometBFT switches its proposal block to the one with the polka/commit).
* The round-skip rule counts prevotes and precommits, not proposals.
* ``restore`` re-arms the timeout of the restored step, since the votes that
  would have armed it were lost with the process; precommitting nil and
  moving to the next round are always safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Union

from consensus.messages import NIL, PRECOMMIT, PREVOTE, Proposal, Vote
from consensus.proposer import ProposerSelector
from consensus.vote_set import AddResult, HeightVoteSet, bft_time, has_one_third_plus, has_quorum

__all__ = [
    "Step",
    "TimeoutConfig",
    "Timeout",
    "ProposeBlock",
    "BroadcastProposal",
    "BroadcastVote",
    "ScheduleTimeout",
    "FetchBlock",
    "Commit",
    "Evidence",
    "Action",
    "RoundSnapshot",
    "RoundState",
    "bft_time",
    "has_quorum",
    "has_one_third_plus",
]


class Step(IntEnum):
    PROPOSE = 1
    PREVOTE = 2
    PRECOMMIT = 3
    COMMIT = 4  # decided; waiting for the driver to start the next height


PROPOSE = Step.PROPOSE
PREVOTE_STEP = Step.PREVOTE
PRECOMMIT_STEP = Step.PRECOMMIT
COMMIT = Step.COMMIT


@dataclass(frozen=True, slots=True)
class TimeoutConfig:
    """Timeout durations in ms: ``base + round * delta`` per step (CometBFT defaults)."""

    propose_ms: int = 3000
    propose_delta_ms: int = 500
    prevote_ms: int = 1000
    prevote_delta_ms: int = 500
    precommit_ms: int = 1000
    precommit_delta_ms: int = 500

    def propose(self, round_: int) -> int:
        return self.propose_ms + round_ * self.propose_delta_ms

    def prevote(self, round_: int) -> int:
        return self.prevote_ms + round_ * self.prevote_delta_ms

    def precommit(self, round_: int) -> int:
        return self.precommit_ms + round_ * self.precommit_delta_ms

    def duration(self, step: int, round_: int) -> int:
        if step == PROPOSE:
            return self.propose(round_)
        if step == PREVOTE_STEP:
            return self.prevote(round_)
        if step == PRECOMMIT_STEP:
            return self.precommit(round_)
        raise ValueError(f"no timeout for step {step}")


@dataclass(frozen=True, slots=True)
class Timeout:
    """A fired timer, handed back to ``on_timeout``."""

    step: int
    height: int
    round: int


# -- actions -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProposeBlock:
    """We are the proposer and have no valid value: build a block, sign a proposal
    (pol_round -1) for its hash, broadcast it and feed it back to ``on_proposal``."""

    height: int
    round: int


@dataclass(frozen=True, slots=True)
class BroadcastProposal:
    """We are the proposer: sign and broadcast a proposal re-proposing ``block_hash``
    (our valid value) with ``pol_round``, then feed it back to ``on_proposal``."""

    height: int
    round: int
    block_hash: bytes
    pol_round: int


@dataclass(frozen=True, slots=True)
class BroadcastVote:
    """Sign ``vote`` (its signature is empty), broadcast it and feed it back to ``on_vote``.

    ``vote.time_ms`` is the event's ``now_ms``; a driver may raise it (e.g. to
    the block time + 1 ms, as CometBFT does) before signing.
    """

    vote: Vote


@dataclass(frozen=True, slots=True)
class ScheduleTimeout:
    """Call ``on_timeout(self.timeout, ...)`` after ``duration_ms``."""

    step: int
    height: int
    round: int
    duration_ms: int

    @property
    def timeout(self) -> Timeout:
        return Timeout(self.step, self.height, self.round)


@dataclass(frozen=True, slots=True)
class FetchBlock:
    """+2/3 voted for a value we do not have: fetch and validate it, then call ``on_block``."""

    height: int
    round: int
    block_hash: bytes


@dataclass(frozen=True, slots=True)
class Commit:
    """The decision for ``height``: ``block_hash`` with +2/3 ``precommits`` from ``round``."""

    height: int
    round: int
    block_hash: bytes
    precommits: tuple[Vote, ...]


@dataclass(frozen=True, slots=True)
class Evidence:
    """Two votes by one validator for the same (height, round, type) and different values."""

    vote_a: Vote
    vote_b: Vote


Action = Union[ProposeBlock, BroadcastProposal, BroadcastVote, ScheduleTimeout, FetchBlock, Commit, Evidence]


@dataclass(frozen=True, slots=True)
class RoundSnapshot:
    """What a driver persists (its WAL) so a restarted node keeps its locks."""

    height: int
    round: int
    step: int
    locked_value: bytes | None
    locked_round: int
    valid_value: bytes | None
    valid_round: int


class RoundState:
    """One node's Tendermint state machine (see the module docstring)."""

    def __init__(
        self,
        address: bytes,
        validators: ProposerSelector,
        timeouts: TimeoutConfig | None = None,
        max_future_rounds: int = 2,
    ) -> None:
        """``validators`` is the set (with proposer priorities) of the first height started."""
        self.address = address
        self.validators = validators
        self.timeouts = timeouts if timeouts is not None else TimeoutConfig()
        self.max_future_rounds = max_future_rounds
        self.height = 0  # 0: not started
        self.round = 0
        self.step: Step = COMMIT
        self.locked_value: bytes | None = None
        self.locked_round = -1
        self.valid_value: bytes | None = None
        self.valid_round = -1
        self.decision: Commit | None = None
        self._init_height_state(0)

    # -- lifecycle -----------------------------------------------------------------

    def _init_height_state(self, height: int) -> None:
        self.height = height
        self.round = 0
        self.locked_value = None
        self.locked_round = -1
        self.valid_value = None
        self.valid_round = -1
        self.decision = None
        self._powers = self.validators.powers
        self._is_validator = self.address in self._powers
        self._votes = HeightVoteSet(height, self._powers, 0, self.max_future_rounds)
        self._proposals: dict[int, Proposal] = {}
        self._known: dict[bytes, bool] = {}  # value -> valid?
        self._fetching: set[bytes] = set()
        # "for the first time" flags of lines 34, 36, 47: the round they fired in.
        self._prevote_timeout_round = -1
        self._polka_round = -1
        self._precommit_timeout_round = -1
        self._skip_dirty = False
        self._now = 0

    def _select_validators(self, height: int, validators: ProposerSelector | None) -> None:
        if validators is not None:
            self.validators = validators
        elif self.height and height > self.height:
            sel = self.validators
            for _ in range(height - self.height):
                sel = sel.next_height()
            self.validators = sel

    def start(self, height: int, now_ms: int, validators: ProposerSelector | None = None) -> list[Action]:
        """Begin ``height`` at round 0 (StartRound(0)).

        ``validators`` is the set for this height; if omitted, the previous
        height's set advanced by one proposer-priority step per height.
        """
        if height <= self.height and self.height:
            raise ValueError(f"height {height} is not above the current height {self.height}")
        self._select_validators(height, validators)
        self._init_height_state(height)
        self._now = now_ms
        out: list[Action] = []
        self._start_round(0, out)
        self._run(out)
        return out

    def snapshot(self) -> RoundSnapshot:
        """The state a driver must persist to restart without forgetting its lock."""
        return RoundSnapshot(
            self.height,
            self.round,
            int(self.step),
            self.locked_value,
            self.locked_round,
            self.valid_value,
            self.valid_round,
        )

    def restore(self, snap: RoundSnapshot, now_ms: int, validators: ProposerSelector | None = None) -> list[Action]:
        """Resume an undecided height from a snapshot after a restart.

        ``validators`` is the set of ``snap.height``; if omitted, a fresh
        object uses the constructor's set. Votes and proposals seen before the
        crash are gone; peers re-gossip them. The driver must also restore its
        signer's last-signed state, so a re-proposal or re-vote in the restored
        round returns the message signed before the crash.
        """
        if snap.step == COMMIT:
            raise ValueError("a decided height is restored from the block store: start the next height")
        self._select_validators(snap.height, validators)
        self._init_height_state(snap.height)
        self._now = now_ms
        out: list[Action] = []
        self.round = snap.round
        self._votes.set_round(snap.round)
        self.step = Step(snap.step)
        self.locked_value, self.locked_round = snap.locked_value, snap.locked_round
        self.valid_value, self.valid_round = snap.valid_value, snap.valid_round
        # We only ever lock or mark valid a value we validated.
        if self.locked_value is not None:
            self._known[self.locked_value] = True
        if self.valid_value is not None:
            self._known[self.valid_value] = True
        h, r = self.height, self.round
        if self.step == PROPOSE:
            self._propose_actions(out)
        elif self.step == PREVOTE_STEP:
            self._prevote_timeout_round = r
            out.append(ScheduleTimeout(PREVOTE_STEP, h, r, self.timeouts.prevote(r)))
        else:
            self._precommit_timeout_round = r
            out.append(ScheduleTimeout(PRECOMMIT_STEP, h, r, self.timeouts.precommit(r)))
        self._run(out)
        return out

    # -- queries ---------------------------------------------------------------------

    def proposer(self, round_: int) -> bytes:
        """Proposer of ``round_`` at the current height."""
        return self.validators.proposer_for_round(round_)

    @property
    def is_validator(self) -> bool:
        return self._is_validator

    @property
    def votes(self) -> HeightVoteSet:
        """The tallies of the current height (read-only use)."""
        return self._votes

    def proposal(self, round_: int) -> Proposal | None:
        """The first proposal accepted for ``round_`` at the current height."""
        return self._proposals.get(round_)

    # -- events ------------------------------------------------------------------------

    def on_proposal(self, proposal: Proposal, block_is_valid: bool, now_ms: int) -> list[Action]:
        """A proposal whose block the driver fetched and validated (signature already verified).

        Ignored unless it is for this height, for a round no later than the
        current round + 1 (CometBFT drops later ones; peers re-gossip them),
        from that round's proposer, with ``-1 <= pol_round < round``. The first
        proposal of a round is the one acted on; later ones only record their
        value's validity.
        """
        if proposal.height != self.height or self.step == COMMIT:
            return []
        r = proposal.round
        if r < 0 or r > self.round + 1:
            return []  # a future round's proposal is re-gossiped once we get there
        if not (-1 <= proposal.pol_round < r):
            return []
        if proposal.proposer != self.validators.proposer_for_round(r):
            return []
        self._now = now_ms
        v = proposal.block_hash
        if v not in self._known:
            self._known[v] = bool(block_is_valid)
        # The first proposal of a round is the one we act on; a second, different
        # one from an equivocating proposer still teaches us its value's validity.
        if r not in self._proposals:
            self._proposals[r] = proposal
        out: list[Action] = []
        self._run(out)
        return out

    def on_block(self, block_hash: bytes, block_is_valid: bool, now_ms: int) -> list[Action]:
        """Validity of a block fetched after ``FetchBlock`` (or obtained otherwise)."""
        if self.step == COMMIT or not self.height or block_hash in self._known or not block_hash:
            return []
        self._now = now_ms
        self._known[block_hash] = bool(block_is_valid)
        out: list[Action] = []
        self._run(out)
        return out

    def on_vote(self, vote: Vote, now_ms: int) -> list[Action]:
        """A prevote or precommit (signature already verified)."""
        if vote.height != self.height or not self.height:
            return []
        res, ev = self._votes.add_vote(vote)
        out: list[Action] = []
        if ev is not None:
            out.append(Evidence(ev[0], ev[1]))
        if (res is not AddResult.ADDED and res is not AddResult.CONFLICTING) or self.step == COMMIT:
            return out
        self._now = now_ms
        if vote.round > self.round:
            self._skip_dirty = True
        self._run(out)
        return out

    def on_timeout(self, timeout: Timeout, now_ms: int) -> list[Action]:
        """A timer fired (lines 57-66); stale timers are ignored."""
        if timeout.height != self.height or timeout.round != self.round or self.step == COMMIT:
            return []
        self._now = now_ms
        out: list[Action] = []
        if timeout.step == PROPOSE:
            if self.step != PROPOSE:
                return []
            self._prevote(NIL, out)  # line 59
        elif timeout.step == PREVOTE_STEP:
            if self.step != PREVOTE_STEP:
                return []
            self._precommit(NIL, out)  # line 63
        elif timeout.step == PRECOMMIT_STEP:
            self._start_round(self.round + 1, out)  # line 65
        else:
            return []
        self._run(out)
        return out

    # -- transitions -------------------------------------------------------------------

    def _propose_actions(self, out: list[Action]) -> None:
        h, r = self.height, self.round
        if self._is_validator and self.validators.proposer_for_round(r) == self.address:
            if self.valid_value is not None:
                out.append(BroadcastProposal(h, r, self.valid_value, self.valid_round))  # line 16
            else:
                out.append(ProposeBlock(h, r))  # line 18
        out.append(ScheduleTimeout(PROPOSE, h, r, self.timeouts.propose(r)))  # line 21

    def _start_round(self, round_: int, out: list[Action]) -> None:
        """StartRound (lines 11-21)."""
        self.round = round_
        self.step = PROPOSE
        self._votes.set_round(round_)
        self._propose_actions(out)

    def _prevote(self, value: bytes, out: list[Action]) -> None:
        self.step = PREVOTE_STEP
        if self._is_validator:
            out.append(BroadcastVote(Vote(PREVOTE, self.height, self.round, value, self.address, self._now, b"")))

    def _precommit(self, value: bytes, out: list[Action]) -> None:
        self.step = PRECOMMIT_STEP
        if self._is_validator:
            out.append(BroadcastVote(Vote(PRECOMMIT, self.height, self.round, value, self.address, self._now, b"")))

    def _fetch(self, round_: int, value: bytes, out: list[Action]) -> None:
        if value not in self._fetching:
            self._fetching.add(value)
            out.append(FetchBlock(self.height, round_, value))

    def _try_decide(self, out: list[Action]) -> bool:
        """Line 49: +2/3 precommits for a valid v in some round r -> decide."""
        for r, v in self._votes.precommit_majorities.items():
            valid = self._known.get(v)
            if valid:
                pcs = self._votes.precommits(r)
                assert pcs is not None
                commit = Commit(self.height, r, v, pcs.votes_for(v))
                self.decision = commit
                self.step = COMMIT
                out.append(commit)
                return True
            if valid is None:
                self._fetch(r, v, out)
        return False

    def _run(self, out: list[Action]) -> None:
        """Apply every enabled rule until none is (each firing changes state, so this ends)."""
        votes = self._votes
        while self.step != COMMIT:
            if votes.precommit_majorities and self._try_decide(out):
                return
            if self._skip_dirty:  # line 55
                self._skip_dirty = False
                target = votes.highest_round_with_one_third_plus(self.round)
                if target is not None:
                    self._start_round(target, out)
                    continue
            step = self.step
            r = self.round
            if step == PROPOSE:
                p = self._proposals.get(r)
                if p is not None and self._prevote_on_proposal(p, out):
                    continue
            else:
                pv = votes.prevotes(r)
                if pv is not None:
                    maj = pv.maj23
                    if maj and self._polka_round != r:  # line 36: polka for a value
                        valid = self._known.get(maj)
                        if valid:
                            self._polka_round = r
                            if step == PREVOTE_STEP:
                                self.locked_value, self.locked_round = maj, r
                                self._precommit(maj, out)
                            self.valid_value, self.valid_round = maj, r
                            continue
                        if valid is None:
                            self._fetch(r, maj, out)
                    if step == PREVOTE_STEP:
                        if maj == NIL:  # line 44: polka for nil
                            self._precommit(NIL, out)
                            continue
                        if self._prevote_timeout_round != r and pv.has_two_thirds_any():  # line 34
                            self._prevote_timeout_round = r
                            out.append(ScheduleTimeout(PREVOTE_STEP, self.height, r, self.timeouts.prevote(r)))
            if self._precommit_timeout_round != r:  # line 47
                pc = votes.precommits(r)
                if pc is not None and pc.has_two_thirds_any():
                    self._precommit_timeout_round = r
                    out.append(ScheduleTimeout(PRECOMMIT_STEP, self.height, r, self.timeouts.precommit(r)))
            return

    def _prevote_on_proposal(self, p: Proposal, out: list[Action]) -> bool:
        """Lines 22-33. Returns False while a POL proposal waits for its polka."""
        v = p.block_hash
        valid = self._known.get(v, False)
        vr = p.pol_round
        if vr < 0:  # line 22
            ok = valid and (self.locked_round == -1 or self.locked_value == v)
        else:  # line 28
            pv = self._votes.prevotes(vr)
            maj = pv.maj23 if pv is not None else None
            if maj is None:
                return False  # no +2/3 in round vr yet: wait (timeout_propose prevotes nil)
            ok = maj == v and valid and (self.locked_round <= vr or self.locked_value == v)
        self._prevote(v if ok else NIL, out)
        return True
