"""WAL durability rules and the signer's persisted double-sign guard."""

import logging

import pytest

from consensus import wal as W
from consensus.driver import _load_last_signed, _save_last_signed
from consensus.messages import PRECOMMIT, PREVOTE, DoubleSignError, SafeSigner, Vote
from node.keys import KeyPair


def test_records_survive_reopen_and_next_height_empties(tmp_path):
    w = W.WAL(tmp_path / "cs.wal")
    w.write(5, W.VOTE, b"v1")
    w.write(5, W.SIGNED, ["vote", b"mine"], sync=True)
    w.write(6, W.TIMEOUT, [1, 6, 0])
    w.close()
    w = W.WAL(tmp_path / "cs.wal")
    assert w.for_height(5) == [(W.VOTE, b"v1"), (W.SIGNED, ["vote", b"mine"])]
    assert w.for_height(6) == [(W.TIMEOUT, [1, 6, 0])]
    w.next_height()
    w.close()
    assert W.WAL(tmp_path / "cs.wal").records == []


@pytest.mark.parametrize("damage", ["torn", "crc"])
def test_damaged_tail_is_truncated_with_a_warning(tmp_path, caplog, damage):
    path = tmp_path / "cs.wal"
    w = W.WAL(path)
    w.write(3, W.VOTE, b"a")
    w.write(3, W.VOTE, b"b")
    w.close()
    data = path.read_bytes()
    good = len(data)
    if damage == "torn":
        path.write_bytes(data + data[: len(data) // 2 - 3])       # a half-written record
    else:
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))    # last record corrupted
        good = len(data) // 2
    with caplog.at_level(logging.WARNING, logger="perpchain.wal"):
        w = W.WAL(path)
    assert "truncating" in caplog.text
    assert path.stat().st_size == good
    assert [b for _, b in w.for_height(3)] == ([b"a", b"b"] if damage == "torn" else [b"a"])
    w.write(3, W.VOTE, b"c")   # appending after a repair works
    w.close()
    assert [b for _, b in W.WAL(path).for_height(3)][-1] == b"c"


def test_signer_state_survives_restart_and_refuses_double_signs(tmp_path):
    key = KeyPair.from_seed(b"\x07" * 32)
    state = tmp_path / "priv_validator_state.bin"
    signer = SafeSigner(key.private, "c", None)
    v = Vote(PRECOMMIT, 9, 1, b"\x01" * 32, key.pub_key, 1000, b"")
    signer.sign_vote(v)
    _save_last_signed(state, signer.last_signed)

    again = SafeSigner(key.private, "c", _load_last_signed(state))
    with pytest.raises(DoubleSignError):            # lower step, same height/round
        again.sign_vote(Vote(PREVOTE, 9, 1, b"\x01" * 32, key.pub_key, 1001, b""))
    with pytest.raises(DoubleSignError):            # conflicting precommit
        again.sign_vote(Vote(PRECOMMIT, 9, 1, b"\x02" * 32, key.pub_key, 1001, b""))
    same = again.sign_vote(Vote(PRECOMMIT, 9, 1, b"\x01" * 32, key.pub_key, 1005, b""))
    assert same.time_ms == 1000                     # the earlier signature is returned
    assert again.sign_vote(Vote(PREVOTE, 10, 0, b"", key.pub_key, 2000, b"")).height == 10
