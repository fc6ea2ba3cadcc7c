"""Seeded multi-node simulations of the consensus core (see harness.py for what each run checks).

Default suite: ``SIM_SEEDS_4`` seeds with 4 validators and ``SIM_SEEDS_7`` seeds
with 7 (400 and 250 unless overridden; ``SIM_SEEDS=N`` sets both), plus every
Byzantine behaviour forced on a few seeds. Each seed is its own test, so a
failure replays alone::

    pytest tests/sim -k 'n4_seed_123]'                           # a seed of the default range
    SIM_N=4 SIM_SEED=123 pytest tests/sim/test_sim.py::test_sim  # any seed

More seeds: ``pytest tests/sim -m slow`` (``SIM_SOAK_SEEDS`` per validator
count, 2000 by default, beyond the default range) or ``SIM_SEEDS=5000``.
"""

from __future__ import annotations

import os

import pytest

from consensus.rounds import RoundState
from tests.sim.harness import BEHAVIOURS, SimFailure, make_scenario, run_scenario, run_seed


def _count(name: str, default: int) -> int:
    return int(os.environ.get(name, os.environ.get("SIM_SEEDS", default)))


def _params() -> list:
    only_seed = os.environ.get("SIM_SEED")
    if only_seed is not None:
        ns = [int(os.environ["SIM_N"])] if "SIM_N" in os.environ else [4, 7]
        return [pytest.param(n, int(only_seed), id=f"n{n}_seed_{only_seed}") for n in ns]
    out = [pytest.param(4, s, id=f"n4_seed_{s}") for s in range(_count("SIM_SEEDS_4", 400))]
    out += [pytest.param(7, s, id=f"n7_seed_{s}") for s in range(_count("SIM_SEEDS_7", 250))]
    return out


@pytest.mark.parametrize("n, seed", _params())
def test_sim(n: int, seed: int) -> None:
    run_seed(n, seed)  # raises SimFailure (an AssertionError) naming the seed and how to replay it


# Each behaviour on a few seeds of its own, so none depends on how the random mix falls.
FORCED_SEEDS = range(100_000, 100_004)


@pytest.mark.parametrize("kind", ("none",) + BEHAVIOURS)
@pytest.mark.parametrize("n", [4, 7])
def test_sim_each_behaviour(n: int, kind: str) -> None:
    for seed in FORCED_SEEDS:
        sc = make_scenario(n, seed, kind)
        try:
            run_scenario(sc)
        except SimFailure as e:
            raise SimFailure(f"{e}\n  (forced kind {kind!r}: make_scenario({n}, {seed}, {kind!r}))") from None


@pytest.mark.parametrize("n", [4, 7])
def test_sim_is_deterministic(n: int) -> None:
    for seed in (3, 17):
        a, b = run_seed(n, seed), run_seed(n, seed)
        assert a == b, f"n={n} seed={seed}: two runs of one seed differ"


def test_checker_catches_a_lock_rule_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness is only as good as its checks: plant "ignore the lock when prevoting"."""
    original = RoundState._prevote_on_proposal

    def ignores_lock(self: RoundState, proposal, out):  # type: ignore[no-untyped-def]
        saved = self.locked_value, self.locked_round
        self.locked_value, self.locked_round = None, -1
        try:
            return original(self, proposal, out)
        finally:
            self.locked_value, self.locked_round = saved

    monkeypatch.setattr(RoundState, "_prevote_on_proposal", ignores_lock)
    caught = []
    # Seeds where the planted bug is known to be exercised (update if the harness's randomness changes).
    for n, seed in [(4, 2), (4, 11), (4, 19), (7, 7), (7, 8)]:
        try:
            run_seed(n, seed)
        except SimFailure as e:
            caught.append(str(e))
    assert caught and all("LOCK" in c for c in caught), caught


def test_checker_catches_a_quorum_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plant "exactly 2/3 is a quorum": the commit check must notice."""
    from consensus import vote_set

    def add(self, vote):  # type: ignore[no-untyped-def]
        res, ev = original(self, vote)
        p = self._power_by_value.get(vote.block_hash, 0)
        if self.maj23 is None and 3 * p >= 2 * self.total_power:
            self.maj23 = vote.block_hash
        return res, ev

    original = vote_set.VoteSet.add
    monkeypatch.setattr(vote_set.VoteSet, "add", add)
    failures = 0
    for seed in range(60):
        sc = make_scenario(4, seed)
        if len(set(sc.powers)) == 1:
            continue  # with equal powers no set of votes weighs exactly 2/3
        try:
            run_scenario(sc)
        except SimFailure as e:
            assert "power" in str(e), str(e)
            failures += 1
    assert failures > 0


@pytest.mark.slow
@pytest.mark.parametrize("n", [4, 7])
def test_sim_soak(n: int) -> None:
    start = _count(f"SIM_SEEDS_{n}", 400 if n == 4 else 250)
    count = int(os.environ.get("SIM_SOAK_SEEDS", 2000))
    failures = []
    for seed in range(start, start + count):
        try:
            run_seed(n, seed)
        except SimFailure as e:
            failures.append(str(e))
    assert not failures, f"{len(failures)} failing seeds; first:\n" + "\n".join(failures[:3])
