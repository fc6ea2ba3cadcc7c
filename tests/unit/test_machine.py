import pytest

from state import ledger, nonces, constants as C
from state.codec import decode, encode
from state.errors import Code, InvalidBlock
from state.machine import BlockInput, apply_block
from state.tx import decode_tx
from tests.chain_helpers import GENESIS_MS, USDC, Chain, faucet, genesis, key, transfer

A, B = key(0), key(1)


def bal(chain, k, asset="USDC"):
    return ledger.balance(chain.kv, k.pub_key, asset)


def test_transfer_moves_balance_and_emits_event():
    c = Chain()
    n = c.time_ms
    r = c.block([transfer(A, n, B.pub_key, 12_500_000)])
    assert r.tx_results[0].code == 0
    assert bal(c, A) == 1000 * USDC - 12_500_000 and bal(c, B) == 1000 * USDC + 12_500_000
    ev = r.tx_results[0].events[0]
    assert ev.type == "transfer" and ("amount", "12.5") in ev.attrs


@pytest.mark.parametrize("action,code", [
    (["transfer", B.pub_key, "USDC", 2000 * USDC], Code.INSUFFICIENT_BALANCE),
    (["transfer", B.pub_key, "DOGE", 1], Code.UNKNOWN_ASSET),
    (["transfer", B.pub_key, "USDC", 0], Code.INVALID_AMOUNT),
    (["transfer", B.pub_key, "BTC", 1], Code.INSUFFICIENT_BALANCE),
])
def test_rejected_action_changes_only_the_nonce(action, code):
    from state.tx import build_tx
    c = Chain()
    before = (bal(c, A), bal(c, B))
    raw = build_tx("test-chain", A.private, c.time_ms, action)
    r = c.block([raw])
    assert r.tx_results[0].code == code and r.tx_results[0].log
    assert (bal(c, A), bal(c, B)) == before
    # the nonce is consumed, so the same bytes can never execute later
    assert nonces.nonces(c.kv, A.pub_key) == [decode_tx(raw).nonce]
    assert c.block([raw]).tx_results[0].code == Code.NONCE_DUPLICATE


def test_bad_signature_in_block_leaves_no_trace():
    c = Chain()
    obj = decode(transfer(A, c.time_ms, B.pub_key, 5))
    obj[4] = bytes(64)
    r = c.block([encode(obj)])
    assert r.tx_results[0].code == Code.BAD_SIGNATURE
    assert nonces.nonces(c.kv, A.pub_key) == []


def test_wrong_chain_and_malformed_in_block():
    c = Chain()
    r = c.block([transfer(A, c.time_ms, B.pub_key, 5, chain_id="other"), b"\x00garbage"])
    assert [x.code for x in r.tx_results] == [Code.WRONG_CHAIN_ID, Code.MALFORMED_TX]


def test_nonce_rules():
    c = Chain()
    t = c.time_ms + 1000  # the block time of the next block
    r = c.block([transfer(A, t, B.pub_key, 1), transfer(A, t, B.pub_key, 2),
                 transfer(A, t - 5, B.pub_key, 3),
                 transfer(A, t - C.NONCE_PAST_WINDOW_MS, B.pub_key, 1),
                 transfer(A, t + C.NONCE_FUTURE_WINDOW_MS, B.pub_key, 1)])
    assert [x.code for x in r.tx_results] == [0, Code.NONCE_DUPLICATE, 0,
                                              Code.NONCE_OUT_OF_WINDOW, Code.NONCE_OUT_OF_WINDOW]


def test_nonce_set_keeps_highest_100():
    c = Chain()
    t = c.time_ms + 1000
    txs = [transfer(A, t + i, B.pub_key, 1) for i in range(C.NONCE_SET_SIZE + 5)]
    assert all(x.code == 0 for x in c.block(txs).tx_results)
    kept = nonces.nonces(c.kv, A.pub_key)
    assert kept == [t + i for i in range(5, C.NONCE_SET_SIZE + 5)]
    r = c.block([transfer(A, t + 4, B.pub_key, 1),       # below the smallest kept
                 transfer(A, t + 5, B.pub_key, 1),       # duplicate
                 transfer(A, t + 3000, B.pub_key, 1)])
    assert [x.code for x in r.tx_results] == [Code.NONCE_TOO_LOW, Code.NONCE_DUPLICATE, 0]


def test_faucet_rate_limit_and_supply():
    c = Chain()
    newbie = key(9)
    s0 = ledger.supply(c.kv, "USDC")
    r = c.block([faucet(newbie, c.time_ms + 1), faucet(newbie, c.time_ms + 2)])
    assert [x.code for x in r.tx_results] == [0, Code.FAUCET_RATE_LIMITED]
    assert bal(c, newbie) == 100 * USDC
    assert ledger.supply(c.kv, "USDC") == s0 + 100 * USDC
    r = c.block([faucet(newbie, c.time_ms + 10)], dt_ms=60_000)
    assert r.tx_results[0].code == 0 and bal(c, newbie) == 200 * USDC


def test_faucet_disabled():
    c = Chain(genesis(faucet=False))
    assert c.block([faucet(A, c.time_ms + 1)]).tx_results[0].code == Code.FAUCET_DISABLED


def test_invalid_blocks_raise():
    c = Chain()
    with pytest.raises(InvalidBlock, match="height"):
        apply_block(c.kv, BlockInput(2, GENESIS_MS + 1, ()), c.app_hash)
    with pytest.raises(InvalidBlock, match="time"):
        apply_block(c.kv, BlockInput(1, GENESIS_MS, ()), c.app_hash)


def test_known_txs_skip_verification_but_same_result():
    c1, c2 = Chain(), Chain()
    raw = transfer(A, c1.time_ms + 1, B.pub_key, 7)
    tx = decode_tx(raw)
    r1 = c1.block([raw])
    r2 = c2.block([raw], known={tx.hash: tx})
    assert r1.app_hash == r2.app_hash and r1.results_bytes() == r2.results_bytes()


def test_given_tx_hashes_find_known_txs_and_a_wrong_one_never_runs_another_tx():
    """BlockInput.tx_hashes (computed by consensus) only look txs up in `known`: a known tx
    runs only if its bytes are the block's, so a wrong hash costs a verify, never a wrong tx."""
    from hashlib import sha256

    def run(hashes, known):
        c = Chain()
        res = apply_block(c.kv, BlockInput(1, c.time_ms + 1, (t1, t2), (), hashes), c.app_hash,
                          known)
        return res.app_hash, res.results_bytes(), [r.code for r in res.tx_results]

    t1 = transfer(A, GENESIS_MS + 1, B.pub_key, 7)
    t2 = transfer(B, GENESIS_MS + 1, A.pub_key, 9)
    other = decode_tx(transfer(A, GENESIS_MS + 2, B.pub_key, 500))  # valid, not in the block
    right = (sha256(t1).digest(), sha256(t2).digest())
    expected = run(None, None)
    assert expected[2] == [0, 0]
    assert run(right, {right[0]: decode_tx(t1), right[1]: decode_tx(t2)}) == expected
    # Both block txs "hashed" to the key of a different tx: it is not applied in their place.
    assert run((other.hash, other.hash), {other.hash: other}) == expected


def test_app_hash_chains_and_depends_on_every_write():
    c1, c2 = Chain(), Chain()
    e1, e2 = c1.block([]), c2.block([])
    assert e1.app_hash == e2.app_hash
    r1 = c1.block([transfer(A, c1.time_ms + 1, B.pub_key, 7)])
    r2 = c2.block([transfer(A, c2.time_ms + 1, B.pub_key, 8)])
    assert r1.app_hash != r2.app_hash


def test_mint_past_int64_is_refused():
    from state.errors import TxError
    from state.kv import Overlay
    c = Chain()
    view = Overlay(c.kv)
    with pytest.raises(TxError) as e:
        ledger.mint(view, key(7).pub_key, "USDC", C.MAX_INT64)
    assert e.value.code == Code.BALANCE_OVERFLOW


def test_deeply_nested_tx_in_a_block_is_rejected_not_a_halt():
    c = Chain()
    r = c.block([b"\x91" * 2000 + b"\x00"])
    assert r.tx_results[0].code == Code.MALFORMED_TX


def test_nonce_set_in_any_order_keeps_the_highest_accepted():
    """Nonces used in random order: the kept set is always the highest NONCE_SET_SIZE of those
    accepted, ascending, and a refused nonce changes nothing (a reference model)."""
    import random

    from state.kv import MemoryKV, Overlay
    rng = random.Random(5)
    view, addr, now = Overlay(MemoryKV()), b"\x01" * 32, 10**12
    model: list[int] = []
    for n in rng.sample(range(now - 10_000, now + 10_000), 3 * C.NONCE_SET_SIZE):
        ok = n not in model and (len(model) < C.NONCE_SET_SIZE or n > model[0])
        try:
            nonces.use_nonce(view, addr, n, now)
        except Exception as e:
            assert not ok and e.code in (Code.NONCE_TOO_LOW, Code.NONCE_DUPLICATE)
        else:
            assert ok
            model = sorted(model + [n])[-C.NONCE_SET_SIZE:]
        assert view.get_stored(nonces.P_NONCE + addr) == (model or None)
