"""Validators' last votes as this node saw them: consensus/driver.py keeps each validator's
newest verified vote and the precommits of the last committed height, including one that
arrives after the +2/3 commit; `validator_votes` (rpc/dashboard_methods.py) shows them, so a
late validator is not shown as not voting."""

from types import SimpleNamespace

import pytest

from consensus.driver import Driver, DriverConfig
from consensus.messages import PRECOMMIT, PREVOTE, Vote
from consensus.proposer import ProposerSelector
from consensus.rounds import TimeoutConfig
from consensus.types import Commit, CommitSig
from node.keys import KeyPair
from tests.unit.test_dashboard import _votes  # runs validator_votes to its answer
from state.codec import encode

CHAIN = "c"
KEYS = [KeyPair.from_seed(bytes([60 + i]) * 32) for i in range(3)]
BLOCK = bytes([9]) * 32


def _signed(k: KeyPair, type_: int, height: int, round_: int = 0, block=BLOCK,
            t: int = 5000) -> Vote:
    v = Vote(type_, height, round_, block, k.pub_key, t, b"")
    return Vote(type_, height, round_, block, k.pub_key, t, k.private.sign(v.sign_bytes(CHAIN)))


def _driver(tmp_path) -> Driver:
    powers = {k.pub_key: 10 for k in KEYS}
    app = SimpleNamespace(selector=lambda h: ProposerSelector(powers))
    d = Driver(CHAIN, app, DriverConfig(TimeoutConfig(1, 1, 1, 1, 1, 1), 1, 10, 10),
               tmp_path / "wal", tmp_path / "signer")
    d.height = 11                        # height 10 is committed, 11 under way
    return d


def test_a_precommit_after_the_commit_is_kept_and_checked(tmp_path):
    d = _driver(tmp_path)
    late = _signed(KEYS[2], PRECOMMIT, 10)
    d._on_vote("peer", late.encode())
    assert d.precommits[10][KEYS[2].pub_key] == late
    assert d.last_votes[KEYS[2].pub_key] == late
    forged = Vote(PRECOMMIT, 10, 0, BLOCK, KEYS[1].pub_key, 5000, b"x" * 64)
    with pytest.raises(ValueError, match="does not verify"):
        d._on_vote("peer", forged.encode())
    assert KEYS[1].pub_key not in d.precommits[10]
    stranger = KeyPair.from_seed(bytes([99]) * 32)
    with pytest.raises(ValueError, match="non-validator"):
        d._on_vote("peer", _signed(stranger, PRECOMMIT, 10).encode())
    # older heights, prevotes and nil precommits of the last height are not kept
    for v in (_signed(KEYS[0], PRECOMMIT, 9), _signed(KEYS[0], PREVOTE, 10),
              _signed(KEYS[0], PRECOMMIT, 10, block=b"")):
        d._on_vote("peer", v.encode())
    assert KEYS[0].pub_key not in d.last_votes
    # a copy of a kept one costs no signature check (a bad one would raise otherwise)
    d._on_vote("peer", Vote(PRECOMMIT, 10, 1, BLOCK, KEYS[2].pub_key, 1, b"y" * 64).encode())
    d.wal.f.close()


def test_the_newest_vote_wins_and_old_heights_are_dropped(tmp_path):
    d = _driver(tmp_path)
    a = KEYS[0].pub_key
    d._note_vote(_signed(KEYS[0], PRECOMMIT, 10))
    d._note_vote(_signed(KEYS[0], PREVOTE, 11, 1))
    d._note_vote(_signed(KEYS[0], PRECOMMIT, 11, 0))     # older round: not newer
    assert (d.last_votes[a].height, d.last_votes[a].round, d.last_votes[a].type) == \
        (11, 1, PREVOTE)
    assert set(d.precommits) == {10, 11}
    d._forget_old_votes(12, {a: 10})
    assert set(d.precommits) == {11} and a in d.last_votes
    d._forget_old_votes(14, {})                  # no longer a validator, vote too old
    assert d.precommits == {} and d.last_votes == {}
    d.wal.f.close()


def _commit(h: int, signers) -> Commit:
    return Commit(h, 0, BLOCK, tuple(CommitSig(k.pub_key, 1000 * h, b"s" * 64) for k in signers))


def test_validator_votes_shows_a_late_precommit_and_each_last_vote():
    commits = {10: _commit(10, KEYS[:2])}            # KEYS[2] voted after the commit
    store = SimpleNamespace(commit_bytes=lambda h: encode(commits[h].to_wire())
                            if h in commits else None)
    driver = SimpleNamespace(
        last_votes={KEYS[2].pub_key: _signed(KEYS[2], PREVOTE, 11, 0, t=12_000),
                    KEYS[1].pub_key: _signed(KEYS[1], PRECOMMIT, 11, 2, block=b"")},
        precommits={10: {KEYS[2].pub_key: _signed(KEYS[2], PRECOMMIT, 10)}})
    app = SimpleNamespace(tip=SimpleNamespace(height=10), store=store, driver=driver,
                          selector=lambda h: ProposerSelector({k.pub_key: 1 for k in KEYS}))
    rows = {r["address"]: r for r in _votes(app)["validators"]}
    late = rows[KEYS[2].pub_key.hex()]
    assert (late["signed_last_commit"], late["precommitted_last_height"]) == (False, True)
    assert late["last_signed_height"] is None
    assert late["last_vote"] == {"height": "11", "round": 0, "type": "prevote",
                                 "block_hash": BLOCK.hex().upper(),
                                 "time": "1970-01-01T00:00:12.000Z"}
    assert rows[KEYS[1].pub_key.hex()]["last_vote"]["block_hash"] is None    # nil
    first = rows[KEYS[0].pub_key.hex()]
    assert first["precommitted_last_height"] and first["last_vote"] is None
    app.driver = None                               # no consensus: the store's view only
    rows = {r["address"]: r for r in _votes(app)["validators"]}
    assert rows[KEYS[2].pub_key.hex()]["precommitted_last_height"] is False
