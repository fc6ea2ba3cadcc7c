"""Weighted round-robin proposer selection, as CometBFT's ``ValidatorSet`` does it.

What this module owns: the proposer priorities of one validator set and the
question "who proposes at (height, round)".

The algorithm (CometBFT ``types/validator_set.go``):

* ``increment(times)``: first *rescale* the priorities so that
  ``max - min <= 2 * total_power`` (divide every priority by
  ``ceil(diff / (2 * total))``, truncating towards zero like Go's ``/``), then
  *center* them (subtract the floor of their average), then ``times`` times:
  add each validator's power to its priority, pick the validator with the
  highest priority (ties: the smaller address bytes win) and subtract the total
  power from the winner. The last winner is ``proposer``.
* Genesis (``NewValidatorSet``): every validator starts at ``-1.125 * total``
  (the priority CometBFT gives a newly added validator), is rescaled and
  centered (so all become 0), then ``increment(1)`` picks the first proposer.
* Height ``h + 1`` uses the set of height ``h`` incremented once
  (``next_height``); round ``r`` of a height uses the height's set incremented
  ``r`` times, one step at a time (``proposer_for_round``).

Invariants:

* Every validator has power > 0 and the total is at most
  ``MAX_TOTAL_VOTING_POWER``; priorities stay within int64 (sums are clipped
  like Go's ``safeAddClip``/``safeSubClip``).
* ``increment`` keeps the sum of priorities unchanged (it adds ``total`` and
  subtracts ``total``), so after the first centering the average stays 0.
* Over ``k * total`` consecutive selections a validator with power ``p`` is
  chosen exactly ``k * p`` times when priorities start centered.
* Pure and deterministic: no clock, no randomness, integer arithmetic only.

Divergence from CometBFT, on purpose: CometBFT's ``enterNewRound`` increments a
copy by ``round - current_round`` in one call, so a node that skips rounds
rescales once where a node walking round by round may rescale several times.
Rescaling only triggers when priorities spread more than ``2 * total``, which
the algorithm does not produce from centered priorities, so the results agree
in practice; here the proposer of round ``r`` is always defined by ``r``
single steps, independent of the path a node took.
"""

from __future__ import annotations

from typing import Iterable, Mapping

__all__ = [
    "MAX_INT64",
    "MIN_INT64",
    "MAX_TOTAL_VOTING_POWER",
    "PRIORITY_WINDOW_SIZE_FACTOR",
    "ProposerSelector",
]

MAX_INT64 = (1 << 63) - 1
MIN_INT64 = -(1 << 63)
# CometBFT: MaxTotalVotingPower = MaxInt64 / 8 so that priorities can't overflow.
MAX_TOTAL_VOTING_POWER = MAX_INT64 // 8
# CometBFT: the spread of priorities is kept within this many times the total power.
PRIORITY_WINDOW_SIZE_FACTOR = 2


def _clip(value: int) -> int:
    """Clip to int64, like Go's safeAddClip / safeSubClip."""
    if value > MAX_INT64:
        return MAX_INT64
    if value < MIN_INT64:
        return MIN_INT64
    return value


def _div_trunc(a: int, b: int) -> int:
    """Integer division rounding towards zero (Go's ``/`` on int64), b > 0."""
    q = abs(a) // b
    return q if a >= 0 else -q


class ProposerSelector:
    """A validator set with CometBFT proposer priorities.

    ``powers`` maps address (bytes) -> voting power (int > 0). The object is
    mutable only through ``increment``; every other operation returns a new
    selector, so a selector handed to consensus for a height can be shared.
    """

    __slots__ = ("powers", "total_power", "_priorities", "proposer", "_round_proposers", "_round_cursor")

    def __init__(
        self,
        powers: Mapping[bytes, int] | Iterable[tuple[bytes, int]],
        priorities: Mapping[bytes, int] | None = None,
        proposer: bytes | None = None,
    ) -> None:
        """Build a set with the given priorities (default 0) without incrementing.

        Use ``genesis`` to build a set the way CometBFT does at chain start.
        """
        items = dict(powers.items() if isinstance(powers, Mapping) else powers)
        if not items:
            raise ValueError("empty validator set")
        for address, power in items.items():
            if type(address) is not bytes or not address:
                raise ValueError("validator address must be non-empty bytes")
            if type(power) is not int or power <= 0:
                raise ValueError(f"validator power must be a positive int, got {power!r}")
        total = sum(items.values())
        if total > MAX_TOTAL_VOTING_POWER:
            raise ValueError("total voting power exceeds MAX_TOTAL_VOTING_POWER")
        # Sorted by address so that iteration order never depends on input order.
        self.powers: dict[bytes, int] = {a: items[a] for a in sorted(items)}
        self.total_power: int = total
        prio = priorities or {}
        unknown = set(prio) - set(self.powers)
        if unknown:
            raise ValueError("priorities given for addresses outside the set")
        self._priorities: dict[bytes, int] = {a: int(prio.get(a, 0)) for a in self.powers}
        if proposer is not None and proposer not in self.powers:
            raise ValueError("proposer is not in the set")
        self.proposer: bytes | None = proposer
        self._round_proposers: list[bytes] | None = None
        self._round_cursor: ProposerSelector | None = None

    # -- construction -------------------------------------------------------

    @classmethod
    def genesis(cls, powers: Mapping[bytes, int] | Iterable[tuple[bytes, int]]) -> "ProposerSelector":
        """The set as CometBFT's ``NewValidatorSet`` builds it (first proposer chosen)."""
        items = dict(powers.items() if isinstance(powers, Mapping) else powers)
        total = sum(items.values())
        start = -(total + (total >> 3))
        sel = cls(items, {a: start for a in items})
        sel._rescale_and_center()
        sel.increment(1)
        return sel

    def copy(self) -> "ProposerSelector":
        """An independent copy (priorities and proposer)."""
        return ProposerSelector(self.powers, self._priorities, self.proposer)

    # -- CometBFT's algorithm ------------------------------------------------

    @property
    def priorities(self) -> dict[bytes, int]:
        """A copy of the current priorities (address -> int)."""
        return dict(self._priorities)

    def _rescale(self, diff_max: int) -> None:
        if diff_max <= 0:
            return
        prio = self._priorities
        diff = max(prio.values()) - min(prio.values())
        if diff > diff_max:
            ratio = (diff + diff_max - 1) // diff_max
            for a in prio:
                prio[a] = _div_trunc(prio[a], ratio)

    def _center(self) -> None:
        prio = self._priorities
        # Go's big.Int Div is Euclidean; for a positive divisor that is floor division.
        avg = sum(prio.values()) // len(prio)
        for a in prio:
            prio[a] = _clip(prio[a] - avg)

    def _rescale_and_center(self) -> None:
        self._rescale(PRIORITY_WINDOW_SIZE_FACTOR * self.total_power)
        self._center()

    def _step(self) -> bytes:
        prio = self._priorities
        best: bytes | None = None
        best_p = 0
        for a, power in self.powers.items():  # ascending address order
            p = _clip(prio[a] + power)
            prio[a] = p
            # Strictly greater: on a tie the earlier (smaller) address stays.
            if best is None or p > best_p:
                best, best_p = a, p
        assert best is not None
        prio[best] = _clip(best_p - self.total_power)
        return best

    def increment(self, times: int = 1) -> bytes:
        """CometBFT ``IncrementProposerPriority(times)``; returns the new proposer."""
        if times <= 0:
            raise ValueError("times must be positive")
        self._rescale_and_center()
        proposer = b""
        for _ in range(times):
            proposer = self._step()
        self.proposer = proposer
        self._round_proposers = None
        self._round_cursor = None
        return proposer

    def _current_proposer(self) -> bytes:
        if self.proposer is not None:
            return self.proposer
        # CometBFT findProposer: highest priority without incrementing.
        return min(self._priorities, key=lambda a: (-self._priorities[a], a))

    # -- consensus-facing API -----------------------------------------------

    def proposer_for_round(self, round_: int) -> bytes:
        """Proposer of ``round_`` at the height this set belongs to (cached)."""
        if round_ < 0:
            raise ValueError("round must be >= 0")
        rp = self._round_proposers
        if rp is None:
            rp = self._round_proposers = [self._current_proposer()]
            self._round_cursor = self.copy()
        cursor = self._round_cursor
        assert cursor is not None
        while len(rp) <= round_:
            rp.append(cursor.increment(1))
        return rp[round_]

    def next_height(self) -> "ProposerSelector":
        """The set for the next height (a copy incremented once)."""
        nxt = self.copy()
        nxt.increment(1)
        return nxt

    def with_updates(self, changes: Mapping[bytes, int]) -> "ProposerSelector":
        """Apply validator power changes (power 0 removes), as CometBFT's UpdateWithChangeSet.

        A new validator starts at ``-1.125 * total`` where ``total`` is the
        power after the updates but before the removals, so that leaving and
        re-joining cannot reset a negative priority. The result is rescaled
        and centered; its ``proposer`` is unset until the next ``increment``.
        """
        for address, power in changes.items():
            if type(power) is not int or power < 0:
                raise ValueError("power must be an int >= 0")
            if power == 0 and address not in self.powers:
                raise ValueError("cannot remove a validator that is not in the set")
        updates = {a: p for a, p in changes.items() if p > 0}
        removals = [a for a, p in changes.items() if p == 0]
        tvp_before_removals = self.total_power + sum(p - self.powers.get(a, 0) for a, p in updates.items())
        new_prio = -(tvp_before_removals + (tvp_before_removals >> 3))
        powers = dict(self.powers)
        prios = dict(self._priorities)
        for a, p in updates.items():
            if a not in powers:
                prios[a] = new_prio
            powers[a] = p
        for a in removals:
            del powers[a]
            del prios[a]
        if not powers:
            raise ValueError("validator set would be empty")
        sel = ProposerSelector(powers, prios)
        sel._rescale_and_center()
        return sel

    def two_heights_on(self, changes: Mapping[bytes, int]) -> "ProposerSelector":
        """Given the set of height h+1 and the changes block h made, the set of h+2
        (CometBFT: updates returned by block h take effect at h+2)."""
        return (self.with_updates(changes) if changes else self).next_height()

    def __repr__(self) -> str:
        return f"ProposerSelector(n={len(self.powers)}, total={self.total_power}, proposer={self.proposer!r})"
