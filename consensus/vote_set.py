"""Vote tallies: one ``VoteSet`` per (height, round, type), grouped per height in ``HeightVoteSet``.

What this module owns: counting voting power behind each value, detecting
equivocation, and the three questions the round state machine asks:
"+2/3 for value v?", "+2/3 for anything?" and "more than 1/3 in round r?"
(the paper's 2f+1 and f+1, weighted by voting power).

Invariants:

* A quorum is STRICTLY more than 2/3 of the total power (``3*p > 2*total``);
  exactly 2/3 is not a quorum. "f+1" is strictly more than 1/3
  (``3*p > total``): such a set always contains a correct validator.
* Counting follows the paper: "2f+1 <PREVOTE, h, r, id(v)>" means signed
  votes for ``v`` from distinct validators. A validator's first vote counts for
  its value and once towards "+2/3 for anything". A later vote from the same
  validator for the same (height, round, type) and a different value is
  equivocation: it is reported as evidence ``(first, later)``, it never
  counts twice towards "anything", but it does count for its own value (so
  every correct node eventually sees the polka or commit that a signature set
  proves, whatever order an equivocator's votes arrived in; CometBFT gets the
  same effect with its peer "maj23" claims). At most
  ``MAX_VALUES_PER_VALIDATOR`` values per validator are kept, bounding memory.
* The same value again from the same validator is a duplicate and ignored
  (even if its time or signature differ).
* ``maj23`` is the first value to reach +2/3 and never changes afterwards.
  While less than 1/3 of the power equivocates no other value can reach
  +2/3 (two quorums overlap in more than 1/3).
* Votes from addresses outside the validator set, or for another height,
  round or type, are rejected (``AddResult.INVALID``).
* Memory is bounded per height: votes for rounds up to ``round + 1`` are
  tallied; votes for later rounds are kept in a per-validator buffer holding
  only that validator's ``max_future_rounds`` highest rounds (a Byzantine
  validator cannot make us store unbounded rounds; an honest validator's
  latest round is always kept, so the f+1 round skip and catch-up commits
  keep working). ``set_round`` moves buffered votes into the tallies when
  their round enters the window.
* Signatures are NOT checked here: callers verify them before adding.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Iterable, Mapping

from consensus.messages import PRECOMMIT, PREVOTE, Vote

__all__ = [
    "AddResult",
    "VoteSet",
    "HeightVoteSet",
    "has_quorum",
    "has_one_third_plus",
    "bft_time",
    "MAX_VALUES_PER_VALIDATOR",
]

# Distinct values one validator may sign in one VoteSet before we stop counting
# (an honest validator signs one; an equivocator needs two to do harm).
MAX_VALUES_PER_VALIDATOR = 4


def has_quorum(power: int, total: int) -> bool:
    """Strictly more than 2/3 of ``total`` (the paper's 2f+1)."""
    return 3 * power > 2 * total


def has_one_third_plus(power: int, total: int) -> bool:
    """Strictly more than 1/3 of ``total`` (the paper's f+1: contains a correct validator)."""
    return 3 * power > total


class AddResult(IntEnum):
    ADDED = 0  # counted (or buffered for a future round)
    DUPLICATE = 1  # same validator, same value: ignored
    CONFLICTING = 2  # same validator, different value: equivocation evidence returned
    INVALID = 3  # not a validator, or wrong height/round/type
    IGNORED = 4  # future round beyond what the buffer keeps for this validator


class VoteSet:
    """Votes of one (height, round, type), tallied by value."""

    __slots__ = (
        "height",
        "round",
        "vote_type",
        "_powers",
        "total_power",
        "max_values_per_validator",
        "_first",
        "_by_value",
        "_values_of",
        "_power_by_value",
        "sum_power",
        "maj23",
    )

    def __init__(
        self,
        height: int,
        round_: int,
        vote_type: int,
        powers: Mapping[bytes, int],
        total_power: int | None = None,
        max_values_per_validator: int = MAX_VALUES_PER_VALIDATOR,
    ) -> None:
        self.height = height
        self.round = round_
        self.vote_type = vote_type
        self._powers = powers
        self.total_power = sum(powers.values()) if total_power is None else total_power
        self.max_values_per_validator = max_values_per_validator
        self._first: dict[bytes, Vote] = {}  # validator -> its first vote
        self._by_value: dict[bytes, dict[bytes, Vote]] = {}  # value -> validator -> vote
        self._values_of: dict[bytes, int] = {}  # validator -> number of distinct values it signed
        self._power_by_value: dict[bytes, int] = {}
        self.sum_power = 0  # each validator once
        # The first value (b"" = nil) to reach +2/3 of the power, None while there is none.
        self.maj23: bytes | None = None

    def add(self, vote: Vote) -> tuple[AddResult, tuple[Vote, Vote] | None]:
        """Count ``vote``; returns (result, evidence or None).

        ADDED: first vote of this validator. DUPLICATE: a value it already
        signed. CONFLICTING: a different value: evidence (first vote, this
        vote) is returned and the vote counts for its own value only (up to
        ``max_values_per_validator`` values per validator).
        """
        if vote.height != self.height or vote.round != self.round or vote.type != self.vote_type:
            return AddResult.INVALID, None
        validator = vote.validator
        power = self._powers.get(validator)
        if power is None:
            return AddResult.INVALID, None
        value = vote.block_hash
        voters = self._by_value.get(value)
        if voters is not None and validator in voters:
            return AddResult.DUPLICATE, None
        first = self._first.get(validator)
        if first is None:
            self._first[validator] = vote
            self._values_of[validator] = 1
            self.sum_power += power
            result: AddResult = AddResult.ADDED
            evidence = None
        else:
            evidence = (first, vote)
            result = AddResult.CONFLICTING
            if self._values_of[validator] >= self.max_values_per_validator:
                return result, evidence
            self._values_of[validator] += 1
        if voters is None:
            voters = self._by_value[value] = {}
        voters[validator] = vote
        p = self._power_by_value.get(value, 0) + power
        self._power_by_value[value] = p
        if self.maj23 is None and 3 * p > 2 * self.total_power:
            self.maj23 = value
        return result, evidence

    def get(self, validator: bytes) -> Vote | None:
        """The first vote of ``validator``, if any."""
        return self._first.get(validator)

    def power_for(self, block_hash: bytes) -> int:
        """Power of the validators that signed a vote for ``block_hash`` (b"" = nil)."""
        return self._power_by_value.get(block_hash, 0)

    def has_two_thirds_for(self, block_hash: bytes) -> bool:
        """+2/3 of the power voted for ``block_hash``."""
        return has_quorum(self._power_by_value.get(block_hash, 0), self.total_power)

    def two_thirds_majority(self) -> bytes | None:
        """The value with +2/3 (b"" for nil), or None."""
        return self.maj23

    def has_two_thirds_any(self) -> bool:
        """+2/3 of the power voted, for any mix of values (each validator once)."""
        return 3 * self.sum_power > 2 * self.total_power

    def has_one_third_plus_any(self) -> bool:
        """More than 1/3 of the power voted, for any values (each validator once)."""
        return 3 * self.sum_power > self.total_power

    def votes_for(self, block_hash: bytes) -> tuple[Vote, ...]:
        """The votes for ``block_hash``, one per validator, ordered by validator address."""
        voters = self._by_value.get(block_hash)
        if not voters:
            return ()
        return tuple(voters[a] for a in sorted(voters))

    def votes(self) -> tuple[Vote, ...]:
        """The first vote of each validator, ordered by validator address."""
        return tuple(self._first[a] for a in sorted(self._first))

    def __len__(self) -> int:
        return len(self._first)


class HeightVoteSet:
    """All prevotes and precommits of one height, over all rounds.

    ``round`` is the owner's current round; rounds ``<= round + 1`` are
    tallied in VoteSets, later rounds are buffered (see module docstring).
    """

    __slots__ = (
        "height",
        "_powers",
        "total_power",
        "_round",
        "max_future_rounds",
        "_prevotes",
        "_precommits",
        "_round_voters",
        "_round_power",
        "_future",
        "precommit_majorities",
    )

    def __init__(self, height: int, powers: Mapping[bytes, int], round_: int = 0, max_future_rounds: int = 2) -> None:
        if max_future_rounds < 1:
            raise ValueError("max_future_rounds must be >= 1")
        self.height = height
        self._powers = powers
        self.total_power = sum(powers.values())
        self._round = round_
        self.max_future_rounds = max_future_rounds
        self._prevotes: dict[int, VoteSet] = {}
        self._precommits: dict[int, VoteSet] = {}
        # Distinct validators with any tallied vote in a round, and their power.
        self._round_voters: dict[int, set[bytes]] = {}
        self._round_power: dict[int, int] = {}
        # validator -> round -> type -> votes (distinct values, arrival order), for rounds > round + 1.
        self._future: dict[bytes, dict[int, dict[int, list[Vote]]]] = {}
        # round -> value (never nil) with +2/3 precommits in that round.
        self.precommit_majorities: dict[int, bytes] = {}

    @property
    def round(self) -> int:
        return self._round

    def prevotes(self, round_: int) -> VoteSet | None:
        """The prevote VoteSet of ``round_`` (None if no vote was tallied there)."""
        return self._prevotes.get(round_)

    def precommits(self, round_: int) -> VoteSet | None:
        """The precommit VoteSet of ``round_`` (None if no vote was tallied there)."""
        return self._precommits.get(round_)

    def _tally(self, vote: Vote) -> tuple[AddResult, tuple[Vote, Vote] | None]:
        sets = self._prevotes if vote.type == PREVOTE else self._precommits
        r = vote.round
        vs = sets.get(r)
        if vs is None:
            vs = sets[r] = VoteSet(self.height, r, vote.type, self._powers, self.total_power)
        res, ev = vs.add(vote)
        if res is AddResult.ADDED:
            voters = self._round_voters.get(r)
            if voters is None:
                voters = self._round_voters[r] = set()
                self._round_power[r] = 0
            if vote.validator not in voters:
                voters.add(vote.validator)
                self._round_power[r] += self._powers[vote.validator]
        if vote.type == PRECOMMIT and vs.maj23 and r not in self.precommit_majorities:
            self.precommit_majorities[r] = vs.maj23
        return res, ev

    def add_vote(self, vote: Vote) -> tuple[AddResult, tuple[Vote, Vote] | None]:
        """Tally or buffer ``vote``; returns (result, evidence or None)."""
        if vote.height != self.height or vote.validator not in self._powers:
            return AddResult.INVALID, None
        if vote.type != PREVOTE and vote.type != PRECOMMIT:
            return AddResult.INVALID, None
        if vote.round < 0:
            return AddResult.INVALID, None
        if vote.round <= self._round + 1:
            return self._tally(vote)
        return self._buffer(vote)

    def _buffer(self, vote: Vote) -> tuple[AddResult, tuple[Vote, Vote] | None]:
        rounds = self._future.get(vote.validator)
        if rounds is None:
            rounds = self._future[vote.validator] = {}
        by_type = rounds.get(vote.round)
        if by_type is None:
            if len(rounds) >= self.max_future_rounds:
                lowest = min(rounds)
                if vote.round < lowest:
                    return AddResult.IGNORED, None
                del rounds[lowest]
            rounds[vote.round] = {vote.type: [vote]}
            return AddResult.ADDED, None
        kept = by_type.get(vote.type)
        if kept is None:
            by_type[vote.type] = [vote]
            return AddResult.ADDED, None
        for k in kept:
            if k.block_hash == vote.block_hash:
                return AddResult.DUPLICATE, None
        if len(kept) < MAX_VALUES_PER_VALIDATOR:
            kept.append(vote)
        return AddResult.CONFLICTING, (kept[0], vote)

    def set_round(self, round_: int) -> None:
        """Move the window to ``round_`` (never backwards), tallying buffered votes that enter it.

        Evidence among buffered votes was reported when they were added."""
        if round_ < self._round:
            raise ValueError("rounds only move forward")
        self._round = round_
        limit = round_ + 1
        moved: list[Vote] = []
        for rounds in self._future.values():
            for r in [r for r in rounds if r <= limit]:
                for kept in rounds.pop(r).values():
                    moved.extend(kept)  # arrival order within one (validator, round, type)
        moved.sort(key=lambda v: (v.round, v.type, v.validator))  # stable: keeps arrival order
        for v in moved:
            self._tally(v)

    def round_power(self, round_: int) -> int:
        """Power of distinct validators with a prevote or precommit in ``round_`` (buffered ones too)."""
        if round_ <= self._round + 1:
            return self._round_power.get(round_, 0)
        return sum(self._powers[v] for v, rounds in self._future.items() if round_ in rounds)

    def has_one_third_plus_in_round(self, round_: int) -> bool:
        """More than 1/3 of the power sent votes in ``round_`` (the f+1 of the round-skip rule)."""
        return 3 * self.round_power(round_) > self.total_power

    def highest_round_with_one_third_plus(self, above: int) -> int | None:
        """The highest round > ``above`` with more than 1/3 of the power voting in it, or None."""
        candidates = {r for rounds in self._future.values() for r in rounds}
        candidates.update(self._round_power)
        for r in sorted((r for r in candidates if r > above), reverse=True):
            if self.has_one_third_plus_in_round(r):
                return r
        return None


def bft_time(precommits: Iterable[Vote], powers: Mapping[bytes, int]) -> int:
    """Power-weighted median of the votes' ``time_ms`` (CometBFT ``MedianTime``).

    Votes from validators outside ``powers`` are skipped, and only the first
    vote of each validator counts. With the votes sorted by time, the result
    is the time of the first vote at which the accumulated power reaches
    ``total // 2`` (CometBFT's exact rule, including its rounding: three equal
    votes give the earliest time). If less than 1/3 of the counted power is
    faulty, the result lies between two correct validators' times.
    """
    seen: set[bytes] = set()
    weighted: list[tuple[int, int]] = []
    total = 0
    for v in precommits:
        power = powers.get(v.validator)
        if power is None or v.validator in seen:
            continue
        seen.add(v.validator)
        weighted.append((v.time_ms, power))
        total += power
    if not weighted:
        raise ValueError("bft_time needs at least one vote from the validator set")
    weighted.sort(key=lambda tw: tw[0])
    median = total // 2
    for t, w in weighted:
        if median <= w:
            return t
        median -= w
    return weighted[-1][0]  # unreachable: the weights sum to total > median
