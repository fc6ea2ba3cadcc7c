"""Vote tallies (consensus.vote_set) and the wire messages they count (consensus.messages)."""

from __future__ import annotations

import hashlib

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from consensus.messages import (
    NIL,
    PRECOMMIT,
    PREVOTE,
    DecodeError,
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
from consensus.vote_set import (
    MAX_VALUES_PER_VALIDATOR,
    AddResult,
    HeightVoteSet,
    VoteSet,
    bft_time,
    has_one_third_plus,
    has_quorum,
)

CHAIN = "test-chain"
KEYS = [Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"vs-%d" % i).digest()) for i in range(5)]
ADDRS = [public_key_bytes(k) for k in KEYS]
V1 = hashlib.sha256(b"v1").digest()
V2 = hashlib.sha256(b"v2").digest()


def vote(i: int, value: bytes, round_: int = 0, type_: int = PREVOTE, height: int = 1, t: int = 1000) -> Vote:
    return Vote(type_, height, round_, value, ADDRS[i], t, b"")


def powers(*ps: int) -> dict[bytes, int]:
    return {ADDRS[i]: p for i, p in enumerate(ps)}


# -- quorum arithmetic ------------------------------------------------------------------------


def test_quorum_is_strictly_more_than_two_thirds() -> None:
    assert not has_quorum(2, 3)  # exactly 2/3
    assert not has_quorum(20, 30)
    assert has_quorum(21, 30)
    assert has_quorum(3, 4)
    assert not has_quorum(4, 6)
    assert not has_one_third_plus(1, 3)  # exactly 1/3
    assert has_one_third_plus(2, 4)
    assert not has_one_third_plus(2, 7)
    assert has_one_third_plus(3, 7)


# -- VoteSet -----------------------------------------------------------------------------------


def test_exactly_two_thirds_power_is_no_majority() -> None:
    vs = VoteSet(1, 0, PREVOTE, powers(2, 1, 1, 2))  # total 6
    assert vs.add(vote(0, V1))[0] is AddResult.ADDED
    assert vs.add(vote(3, V1))[0] is AddResult.ADDED  # 4/6 == 2/3
    assert vs.power_for(V1) == 4
    assert not vs.has_two_thirds_for(V1)
    assert vs.two_thirds_majority() is None
    assert not vs.has_two_thirds_any()
    vs.add(vote(1, V1))
    assert vs.two_thirds_majority() == V1
    assert vs.has_two_thirds_any()


def test_rejects_non_validators_and_wrong_slots() -> None:
    vs = VoteSet(1, 0, PREVOTE, powers(1, 1, 1))
    assert vs.add(vote(4, V1))[0] is AddResult.INVALID
    assert vs.add(vote(0, V1, round_=1))[0] is AddResult.INVALID
    assert vs.add(vote(0, V1, height=2))[0] is AddResult.INVALID
    assert vs.add(vote(0, V1, type_=PRECOMMIT))[0] is AddResult.INVALID
    assert len(vs) == 0 and vs.sum_power == 0


def test_duplicate_ignored_even_with_other_time() -> None:
    vs = VoteSet(1, 0, PREVOTE, powers(1, 1, 1))
    assert vs.add(vote(0, V1))[0] is AddResult.ADDED
    assert vs.add(vote(0, V1)) == (AddResult.DUPLICATE, None)
    assert vs.add(vote(0, V1, t=5000)) == (AddResult.DUPLICATE, None)
    assert vs.power_for(V1) == 1 and vs.sum_power == 1


def test_equivocation_is_evidence_and_never_counted_twice_for_any() -> None:
    vs = VoteSet(1, 0, PRECOMMIT, powers(1, 1, 1, 1))
    a, b = vote(0, V1, type_=PRECOMMIT), vote(0, NIL, type_=PRECOMMIT)
    vs.add(a)
    res, ev = vs.add(b)
    assert res is AddResult.CONFLICTING and ev == (a, b)
    assert vs.sum_power == 1  # once towards "+2/3 any"
    assert vs.get(ADDRS[0]) == a
    # ... but its signature for nil is a real nil vote (the paper's counting).
    assert vs.power_for(V1) == 1 and vs.power_for(NIL) == 1
    assert vs.add(b) == (AddResult.DUPLICATE, None)
    assert vs.votes_for(NIL) == (b,)


def test_equivocator_cannot_make_two_majorities_below_one_third() -> None:
    vs = VoteSet(1, 0, PREVOTE, powers(1, 1, 1, 1))
    for i in (0, 1, 2):
        vs.add(vote(i, V1))
    assert vs.maj23 == V1
    vs.add(vote(3, V2))
    vs.add(vote(0, V2))  # the equivocator
    assert vs.power_for(V2) == 2
    assert vs.maj23 == V1  # stable


def test_values_per_validator_are_bounded() -> None:
    vs = VoteSet(1, 0, PREVOTE, powers(1, 1, 1, 1))
    values = [hashlib.sha256(b"%d" % i).digest() for i in range(MAX_VALUES_PER_VALIDATOR + 3)]
    for v in values:
        vs.add(vote(0, v))
    counted = [v for v in values if vs.power_for(v)]
    assert counted == values[:MAX_VALUES_PER_VALIDATOR]
    res, ev = vs.add(vote(0, hashlib.sha256(b"more").digest()))
    assert res is AddResult.CONFLICTING and ev is not None


def test_votes_for_are_sorted_by_validator() -> None:
    vs = VoteSet(1, 0, PRECOMMIT, powers(1, 1, 1, 1))
    for i in (3, 1, 2):
        vs.add(vote(i, V1, type_=PRECOMMIT))
    assert [v.validator for v in vs.votes_for(V1)] == sorted(ADDRS[i] for i in (1, 2, 3))
    assert vs.votes_for(V2) == ()


# -- HeightVoteSet --------------------------------------------------------------------------


def test_height_vote_set_tallies_window_and_buffers_future() -> None:
    hvs = HeightVoteSet(1, powers(1, 1, 1, 1), round_=0, max_future_rounds=2)
    assert hvs.add_vote(vote(0, V1, round_=1))[0] is AddResult.ADDED  # round + 1: tallied
    assert hvs.prevotes(1) is not None
    assert hvs.add_vote(vote(0, V1, round_=5))[0] is AddResult.ADDED  # buffered
    assert hvs.prevotes(5) is None
    assert hvs.round_power(5) == 1
    assert not hvs.has_one_third_plus_in_round(5)
    hvs.add_vote(vote(1, NIL, round_=5, type_=PRECOMMIT))
    assert hvs.has_one_third_plus_in_round(5)  # 2 of 4 > 1/3
    assert hvs.highest_round_with_one_third_plus(0) == 5
    hvs.set_round(5)
    assert hvs.prevotes(5) is not None and hvs.prevotes(5).power_for(V1) == 1
    assert hvs.precommits(5).power_for(NIL) == 1
    assert hvs.round_power(5) == 2


def test_future_buffer_keeps_each_validators_highest_rounds() -> None:
    hvs = HeightVoteSet(1, powers(1, 1, 1, 1), round_=0, max_future_rounds=2)
    for r in (3, 4, 9, 7):
        hvs.add_vote(vote(0, V1, round_=r))
    assert [r for r in (3, 4, 7, 9) if hvs.round_power(r)] == [7, 9]
    assert hvs.add_vote(vote(0, V1, round_=2))[0] is AddResult.IGNORED
    assert hvs.add_vote(vote(0, V1, round_=9))[0] is AddResult.DUPLICATE
    res, ev = hvs.add_vote(vote(0, V2, round_=9))
    assert res is AddResult.CONFLICTING and ev is not None


def test_height_vote_set_rejects_other_heights_and_strangers() -> None:
    hvs = HeightVoteSet(3, powers(1, 1, 1))
    assert hvs.add_vote(vote(0, V1, height=2))[0] is AddResult.INVALID
    assert hvs.add_vote(vote(4, V1, height=3))[0] is AddResult.INVALID


def test_precommit_majorities_are_recorded_per_round() -> None:
    hvs = HeightVoteSet(1, powers(1, 1, 1, 1))
    for i in range(3):
        hvs.add_vote(vote(i, V1, round_=1, type_=PRECOMMIT))
    assert hvs.precommit_majorities == {1: V1}
    for i in range(3):
        hvs.add_vote(vote(i, NIL, round_=0, type_=PRECOMMIT))
    assert hvs.precommit_majorities == {1: V1}  # nil majorities are not decisions


def test_set_round_never_goes_back() -> None:
    hvs = HeightVoteSet(1, powers(1, 1, 1, 1), round_=3)
    with pytest.raises(ValueError):
        hvs.set_round(2)


# -- BFT time --------------------------------------------------------------------------------


def _timed(i: int, t: int) -> Vote:
    return vote(i, V1, type_=PRECOMMIT, t=t)


def test_bft_time_weighted_median_like_cometbft() -> None:
    # CometBFT TestWeightedMedian: faulty 33 at t1, correct 40 at t2 and 27 at t3 -> t2.
    pw = powers(33, 40, 27)
    assert bft_time([_timed(0, 1000), _timed(1, 6000), _timed(2, 11000)], pw) == 6000
    pw = powers(40, 27, 33)
    assert bft_time([_timed(0, 1000), _timed(1, 6000), _timed(2, 11000)], pw) == 6000
    # Five votes, weights 10, 10, 10, 23, 20: half of 73 is 36, reached inside the 23 at t3.
    pw = powers(10, 10, 10, 23, 20)
    votes = [_timed(0, 1000), _timed(1, 6000), _timed(2, 6000), _timed(3, 11000), _timed(4, 16000)]
    assert bft_time(votes, pw) == 11000


def test_bft_time_ignores_strangers_and_duplicates() -> None:
    pw = powers(1, 1, 1, 1)
    base = [_timed(0, 100), _timed(1, 200), _timed(2, 300), _timed(3, 400)]
    assert bft_time(base, pw) == 200
    noisy = base + [_timed(0, 10), _timed(0, 20), _timed(4, 5)]  # validator 0 again, and a stranger
    assert bft_time(noisy, pw) == 200
    with pytest.raises(ValueError):
        bft_time([], pw)


def test_bft_time_keeps_cometbft_rounding() -> None:
    # CometBFT returns the first time at which the accumulated power reaches total // 2:
    # with three equal votes that is the earliest one (still a correct process's time).
    assert bft_time([_timed(0, 100), _timed(1, 200), _timed(2, 300)], powers(1, 1, 1)) == 100


def test_bft_time_is_within_correct_times_when_faulty_below_one_third() -> None:
    pw = powers(10, 10, 10, 9)  # validator 3 faulty, < 1/3
    for faulty_time in (0, 10**12):
        t = bft_time([_timed(0, 500), _timed(1, 700), _timed(2, 600), _timed(3, faulty_time)], pw)
        assert 500 <= t <= 700


# -- messages: encoding ---------------------------------------------------------------------


def _signed_vote(value: bytes = V1, type_: int = PREVOTE) -> Vote:
    return sign_vote(KEYS[0], Vote(type_, 7, 2, value, ADDRS[0], 1_700_000_000_000, b""), CHAIN)


def _signed_proposal(pol: int = -1) -> Proposal:
    return sign_proposal(KEYS[1], Proposal(7, 2, V1, pol, ADDRS[1], b"", 1_700_000_000_000), CHAIN)


def test_vote_and_proposal_round_trip() -> None:
    for v in (_signed_vote(), _signed_vote(NIL, PRECOMMIT)):
        data = v.encode()
        assert Vote.decode(data) == v
        assert Vote.decode(data).encode() == data
    p = _signed_proposal(1)
    assert Proposal.decode(p.encode()) == p


def test_sign_bytes_are_domain_separated_msgpack_arrays() -> None:
    v = _signed_vote()
    assert msgpack.unpackb(v.sign_bytes(CHAIN)) == ["perpchain/vote/1", CHAIN, PREVOTE, 7, 2, V1, 1_700_000_000_000]
    p = _signed_proposal()
    assert msgpack.unpackb(p.sign_bytes(CHAIN))[0] == "perpchain/proposal/1"


@pytest.mark.parametrize(
    "fields",
    [
        [PREVOTE, 7, 2, V1, ADDRS[0], 5],  # too short
        [PREVOTE, 7, 2, V1, ADDRS[0], 5, bytes(64), 0],  # too long
        [3, 7, 2, V1, ADDRS[0], 5, bytes(64)],  # unknown type
        [True, 7, 2, V1, ADDRS[0], 5, bytes(64)],  # bool is not an int
        [PREVOTE, 0, 2, V1, ADDRS[0], 5, bytes(64)],  # height 0
        [PREVOTE, 7, -1, V1, ADDRS[0], 5, bytes(64)],  # negative round
        [PREVOTE, 7, 2, V1[:31], ADDRS[0], 5, bytes(64)],  # short hash
        [PREVOTE, 7, 2, "nil", ADDRS[0], 5, bytes(64)],  # str instead of bytes
        [PREVOTE, 7, 2, V1, ADDRS[0][:31], 5, bytes(64)],  # short key
        [PREVOTE, 7, 2, V1, ADDRS[0], -5, bytes(64)],  # negative time
        [PREVOTE, 7, 2, V1, ADDRS[0], 5, bytes(63)],  # short signature
    ],
)
def test_vote_decode_rejects_bad_fields(fields: list) -> None:
    with pytest.raises(DecodeError):
        Vote.decode(msgpack.packb(fields))


def test_decode_rejects_trailing_bytes_non_canonical_and_garbage() -> None:
    data = _signed_vote().encode()
    with pytest.raises(DecodeError):
        Vote.decode(data + b"\x00")
    with pytest.raises(DecodeError):
        Vote.decode(b"\xc1")
    with pytest.raises(DecodeError):
        Vote.decode(msgpack.packb({"type": 1}))
    with pytest.raises(DecodeError):
        Vote.decode(bytearray(data))  # type: ignore[arg-type]
    # Height 7 as a uint32 instead of a fixint: same value, not the canonical bytes.
    fields = msgpack.unpackb(data)
    non_canonical = b"\x97" + msgpack.packb(fields[0]) + b"\xce\x00\x00\x00\x07" + b"".join(
        msgpack.packb(f) for f in fields[2:]
    )
    assert msgpack.unpackb(non_canonical) == fields
    with pytest.raises(DecodeError):
        Vote.decode(non_canonical)


def test_proposal_decode_rejects_bad_pol_round() -> None:
    p = _signed_proposal()
    for pol in (2, 3, -2):  # must be -1 <= pol < round (2)
        fields = msgpack.unpackb(p.encode())
        fields[3] = pol
        with pytest.raises(DecodeError):
            Proposal.decode(msgpack.packb(fields))


# -- messages: signatures ----------------------------------------------------------------------


def test_signatures_verify_and_bind_everything() -> None:
    v = _signed_vote()
    assert verify_vote(v, CHAIN)
    assert not verify_vote(v, "other-chain")
    assert not verify_vote(Vote(v.type, v.height, v.round, V2, v.validator, v.time_ms, v.signature), CHAIN)
    assert not verify_vote(Vote(PRECOMMIT, v.height, v.round, V1, v.validator, v.time_ms, v.signature), CHAIN)
    assert not verify_vote(Vote(v.type, v.height, v.round, V1, ADDRS[1], v.time_ms, v.signature), CHAIN)
    p = _signed_proposal()
    assert verify_proposal(p, CHAIN)
    assert not verify_proposal(Proposal(p.height, p.round, p.block_hash, 1, p.proposer, p.signature, p.time_ms), CHAIN)
    with pytest.raises(ValueError):
        sign_vote(KEYS[1], Vote(PREVOTE, 1, 0, V1, ADDRS[0], 0, b""), CHAIN)


# -- messages: double-sign protection ----------------------------------------------------------


def test_safe_signer_refuses_regressions_and_conflicts() -> None:
    s = SafeSigner(KEYS[0], CHAIN)
    pv = s.sign_vote(Vote(PREVOTE, 5, 1, V1, ADDRS[0], 100, b""))
    assert verify_vote(pv, CHAIN)
    # Same content again (even at another time): the same signed vote comes back.
    assert s.sign_vote(Vote(PREVOTE, 5, 1, V1, ADDRS[0], 999, b"")) == pv
    with pytest.raises(DoubleSignError):
        s.sign_vote(Vote(PREVOTE, 5, 1, NIL, ADDRS[0], 100, b""))  # conflicting
    pc = s.sign_vote(Vote(PRECOMMIT, 5, 1, NIL, ADDRS[0], 100, b""))
    with pytest.raises(DoubleSignError):
        s.sign_vote(Vote(PREVOTE, 5, 1, V1, ADDRS[0], 100, b""))  # step went back
    with pytest.raises(DoubleSignError):
        s.sign_vote(Vote(PRECOMMIT, 5, 0, NIL, ADDRS[0], 100, b""))  # round went back
    with pytest.raises(DoubleSignError):
        s.sign_proposal(Proposal(5, 1, V1, -1, ADDRS[0], b"", 100))  # propose step < precommit step
    # A restarted signer with the persisted state keeps refusing.
    restarted = SafeSigner(KEYS[0], CHAIN, s.last_signed)
    assert restarted.sign_vote(Vote(PRECOMMIT, 5, 1, NIL, ADDRS[0], 7, b"")) == pc
    with pytest.raises(DoubleSignError):
        restarted.sign_vote(Vote(PRECOMMIT, 5, 1, V1, ADDRS[0], 7, b""))
    p = restarted.sign_proposal(Proposal(5, 2, V2, 1, ADDRS[0], b"", 100))
    assert verify_proposal(p, CHAIN)
    assert restarted.sign_vote(Vote(PREVOTE, 6, 0, V1, ADDRS[0], 100, b"")).height == 6
    with pytest.raises(ValueError):
        restarted.sign_vote(Vote(PREVOTE, 7, 0, V1, ADDRS[1], 100, b""))
