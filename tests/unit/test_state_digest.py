"""state/state_digest.py: the incremental full-state digest equals one computed from scratch,
lane by lane as the definition says, and becomes the app hash every N blocks."""

import dataclasses
import hashlib
import random
import struct

import pytest

from state import state_digest as SD
from state.errors import InvalidBlock
from state.genesis import genesis_writes
from state.hashing import chain_app_hash
from tests.chain_helpers import Chain, genesis, key, transfer, trading_genesis


def naive_lanes(pairs) -> bytes:
    """The definition, lane by lane (independent of the packed-integer arithmetic)."""
    acc = [0] * SD.LANES
    for k, v in pairs:
        if k == SD.K_DIGEST:
            continue
        e = hashlib.shake_128(SD.TAG + len(k).to_bytes(4, "big") + k + v).digest(SD.LANE_BYTES)
        for i, lane in enumerate(struct.unpack(f"<{SD.LANES}H", e)):
            acc[i] = (acc[i] + lane) % 65536
    return struct.pack(f"<{SD.LANES}H", *acc)


def random_state(rng, n):
    return {rng.randbytes(rng.randrange(1, 12)): rng.randbytes(rng.randrange(0, 40))
            for _ in range(n)}


def test_of_pairs_follows_the_definition():
    rng = random.Random(7)
    pairs = sorted(random_state(rng, 60).items())
    assert SD.of_pairs(pairs) == naive_lanes(pairs)
    assert SD.of_pairs([]) == SD.ZERO_LANES
    # order does not matter; the digest key itself is not covered
    assert SD.of_pairs(reversed(pairs)) == SD.of_pairs(pairs + [(SD.K_DIGEST, b"x")])


@pytest.mark.parametrize("batch", [SD._BATCH, 3])
def test_incremental_updates_equal_a_recomputation(monkeypatch, batch):
    monkeypatch.setattr(SD, "_BATCH", batch)   # 3: the per-batch reduction runs often
    rng = random.Random(batch)
    state = random_state(rng, 40)
    lanes = SD.of_pairs(state.items())
    for _ in range(30):
        changes = []
        for k in rng.sample(sorted(state), 5) + [rng.randbytes(5) for _ in range(3)]:
            new = None if rng.random() < 0.3 else rng.randbytes(rng.randrange(0, 30))
            changes.append((k, state.get(k), new))
            if new is None:
                state.pop(k, None)
            else:
                state[k] = new
        lanes = SD.updated(lanes, changes)
        assert lanes == naive_lanes(state.items())


def test_one_changed_value_changes_the_digest():
    pairs = [(b"acct/bal/a", b"\x01"), (b"acct/bal/b", b"\x02")]
    other = [(b"acct/bal/a", b"\x01"), (b"acct/bal/b", b"\x03")]
    assert SD.digest(SD.of_pairs(pairs)) != SD.digest(SD.of_pairs(other))


def test_off_by_default_no_record_and_the_chained_app_hash():
    writes, app_hash = genesis_writes(genesis())
    keys = {k for k, _ in writes}
    assert SD.K_DIGEST not in keys and SD.K_INTERVAL not in keys
    assert app_hash == chain_app_hash(b"\x00" * 32, writes)


def test_every_nth_app_hash_commits_to_the_whole_state():
    g = dataclasses.replace(trading_genesis(), state_digest_interval=3)
    c = Chain(g)
    assert c.app_hash == SD.folded_app_hash(SD.of_pairs(c.kv.data.items()))
    prev = c.app_hash
    for h in range(1, 8):
        res = c.block([transfer(key(0), c.time_ms + 1000, key(1).pub_key, 1 + h)])
        assert res.tx_results[0].code == 0, res.tx_results
        lanes = SD.of_pairs(c.kv.data.items())
        assert SD.stored_lanes(c.kv) == lanes == naive_lanes(c.kv.data.items())
        if h % 3 == 0:
            assert res.app_hash == SD.folded_app_hash(lanes)
        else:
            assert res.app_hash == chain_app_hash(prev, res.writes)
        prev = res.app_hash


def test_genesis_refuses_a_bad_interval():
    with pytest.raises(InvalidBlock, match="state_digest_interval"):
        genesis_writes(dataclasses.replace(genesis(), state_digest_interval=0))
