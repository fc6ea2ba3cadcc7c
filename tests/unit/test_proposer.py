"""Proposer selection: CometBFT's weighted round-robin, checked against CometBFT's own test vectors."""

from __future__ import annotations

from collections import Counter

import pytest

from consensus.proposer import MAX_TOTAL_VOTING_POWER, ProposerSelector


def addr(i: int) -> bytes:
    return bytes(19) + bytes([i])


def test_cometbft_proposer_selection_1_sequence() -> None:
    # types/validator_set_test.go TestProposerSelection1
    vset = ProposerSelector.genesis({b"foo": 1000, b"bar": 300, b"baz": 330})
    got = []
    for _ in range(99):
        got.append(vset.proposer.decode())
        vset.increment(1)
    expected = (
        "foo baz foo bar foo foo baz foo bar foo foo baz foo foo bar foo baz foo foo bar foo foo baz foo bar "
        "foo foo baz foo bar foo foo baz foo foo bar foo baz foo foo bar foo baz foo foo bar foo baz foo foo "
        "bar foo baz foo foo foo baz bar foo foo foo baz foo bar foo foo baz foo bar foo foo baz foo bar foo "
        "foo baz foo bar foo foo baz foo foo bar foo baz foo foo bar foo baz foo foo bar foo baz foo foo"
    )
    assert " ".join(got) == expected


def test_equal_power_goes_in_address_order() -> None:
    # TestProposerSelection2, first part: ties break by the smaller address.
    vset = ProposerSelector.genesis({addr(2): 100, addr(0): 100, addr(1): 100})
    for i in range(15):
        assert vset.proposer == addr(i % 3)
        vset.increment(1)


def test_heavier_validator_first_but_not_twice_unless_enough_power() -> None:
    # TestProposerSelection2, middle part.
    vset = ProposerSelector.genesis({addr(0): 100, addr(1): 100, addr(2): 400})
    assert vset.proposer == addr(2)
    vset.increment(1)
    assert vset.proposer == addr(0)

    vset = ProposerSelector.genesis({addr(0): 100, addr(1): 100, addr(2): 401})
    assert vset.proposer == addr(2)
    vset.increment(1)
    assert vset.proposer == addr(2)
    vset.increment(1)
    assert vset.proposer == addr(0)


def test_proposer_frequency_is_proportional_to_power() -> None:
    # TestProposerSelection2, last part.
    vset = ProposerSelector.genesis({addr(0): 4, addr(1): 5, addr(2): 3})
    counts: Counter[bytes] = Counter()
    for _ in range(120):
        counts[vset.proposer] += 1
        vset.increment(1)
    assert counts == {addr(0): 40, addr(1): 50, addr(2): 30}


@pytest.mark.parametrize(
    "times, proposer, priorities",
    [
        (1, 0, [-2, 1, 1]),
        (2, 0, [-4, 2, 2]),
        (4, 0, [-8, 4, 4]),
        (5, 1, [2, -7, 5]),
        (6, 0, [0, -6, 6]),
        (9, 2, [6, -3, -3]),
        (11, 0, [2, -1, -1]),
    ],
)
def test_priorities_match_cometbft_averaging_test(times: int, proposer: int, priorities: list[int]) -> None:
    # TestAveragingInIncrementProposerPriorityWithVotingPower: powers 10, 1, 1 from priority 0.
    vset = ProposerSelector({bytes([0]): 10, bytes([1]): 1, bytes([2]): 1})
    assert vset.increment(times) == bytes([proposer])
    assert [vset.priorities[bytes([i])] for i in range(3)] == priorities


def test_increment_many_equals_single_steps_for_equal_powers() -> None:
    # TestProposerSelection3: the order never changes, whatever the step sizes.
    a = ProposerSelector.genesis({b"a": 1, b"b": 1, b"c": 1, b"d": 1})
    b = a.copy()
    for times in [1, 3, 2, 5, 1, 4]:
        a.increment(times)
        for _ in range(times):
            b.increment(1)
        assert a.proposer == b.proposer
        assert a.priorities == b.priorities


def test_centering_keeps_sum_small() -> None:
    vset = ProposerSelector.genesis({addr(i): p for i, p in enumerate([7, 1, 3, 9, 2])})
    for _ in range(200):
        vset.increment(1)
        prios = vset.priorities
        assert abs(sum(prios.values())) < len(prios)
        assert max(prios.values()) - min(prios.values()) <= 2 * vset.total_power


def test_rescale_divides_like_go() -> None:
    # Spread 100 with total 2 -> ratio ceil(100 / 4) = 25; Go truncates toward zero.
    vset = ProposerSelector({b"a": 1, b"b": 1}, {b"a": 51, b"b": -49})
    vset.increment(1)
    # after rescale: 51/25 = 2, -49/25 = -1 (trunc); centering by floor(1/2)=0; +1 each: 3, 0; a wins: 3-2=1
    assert vset.priorities == {b"a": 1, b"b": 0}
    assert vset.proposer == b"a"


def test_proposer_for_round_is_round_single_steps_and_cached() -> None:
    vset = ProposerSelector.genesis({addr(0): 5, addr(1): 3, addr(2): 2})
    walk = vset.copy()
    expected = [walk.proposer]
    for _ in range(12):
        expected.append(walk.increment(1))
    assert [vset.proposer_for_round(r) for r in range(13)] == expected
    assert vset.proposer_for_round(4) == expected[4]  # cached path
    assert vset.proposer == expected[0]  # the height's own set is unchanged


def test_next_height_is_one_increment() -> None:
    vset = ProposerSelector.genesis({addr(0): 5, addr(1): 3, addr(2): 2})
    nxt = vset.next_height()
    assert nxt.proposer == vset.proposer_for_round(1)
    assert vset.proposer == vset.proposer_for_round(0)


def test_new_validator_starts_behind() -> None:
    vset = ProposerSelector.genesis({addr(0): 10, addr(1): 10, addr(2): 10})
    updated = vset.with_updates({addr(3): 10})
    # -1.125 * 40 before centering: the newcomer is last in line.
    prios = updated.priorities
    assert prios[addr(3)] == min(prios.values())
    upd = updated.copy()
    first_four = [upd.increment(1) for _ in range(3)]
    assert addr(3) not in first_four


def test_removal_and_errors() -> None:
    vset = ProposerSelector.genesis({addr(0): 10, addr(1): 10})
    smaller = vset.with_updates({addr(1): 0})
    assert list(smaller.powers) == [addr(0)]
    with pytest.raises(ValueError):
        vset.with_updates({addr(0): 0, addr(1): 0})
    with pytest.raises(ValueError):
        vset.with_updates({addr(5): 0})
    with pytest.raises(ValueError):
        ProposerSelector({})
    with pytest.raises(ValueError):
        ProposerSelector({b"a": 0})
    with pytest.raises(ValueError):
        ProposerSelector({b"a": MAX_TOTAL_VOTING_POWER + 1})
    with pytest.raises(ValueError):
        vset.increment(0)


def test_deterministic_regardless_of_input_order() -> None:
    items = [(addr(i), p) for i, p in enumerate([3, 8, 1, 8, 5])]
    a = ProposerSelector.genesis(dict(items))
    b = ProposerSelector.genesis(dict(reversed(items)))
    assert [a.proposer_for_round(r) for r in range(30)] == [b.proposer_for_round(r) for r in range(30)]
