import pytest

from state import constants as C
from state.codec import decode, encode
from state.errors import Code, TxError
from state.tx import decode_tx, signature_ok
from tests.chain_helpers import CHAIN_ID, key, transfer


def _code(raw):
    with pytest.raises(TxError) as e:
        decode_tx(raw)
    return e.value.code


def test_decode_valid():
    raw = transfer(key(0), 5, key(1).pub_key, 10)
    tx = decode_tx(raw)
    assert tx.signer == key(0).pub_key and tx.nonce == 5 and tx.chain_id == CHAIN_ID
    assert tx.action == ("transfer", key(1).pub_key, "USDC", 10)
    assert signature_ok(tx)


def test_tampered_signature_and_body():
    raw = transfer(key(0), 5, key(1).pub_key, 10)
    obj = decode(raw)
    obj[4] = bytes(64)
    assert not signature_ok(decode_tx(encode(obj)))
    obj = decode(raw)
    obj[3][3] = 11            # change the amount after signing
    assert not signature_ok(decode_tx(encode(obj)))
    obj = decode(raw)
    obj[0] = "other-chain"    # the chain id is part of the signed message
    assert not signature_ok(decode_tx(encode(obj)))


@pytest.mark.parametrize("mutate,code", [
    (lambda o: o[:4], Code.MALFORMED_TX),
    (lambda o: o + [1], Code.MALFORMED_TX),
    (lambda o: [o[0], o[1][:31], *o[2:]], Code.MALFORMED_TX),
    (lambda o: [o[0], o[1], -1, *o[3:]], Code.MALFORMED_TX),
    (lambda o: [o[0], o[1], o[2], ["mint", 1], o[4]], Code.UNKNOWN_ACTION),
    (lambda o: [o[0], o[1], o[2], ["transfer", o[3][1], "USDC"], o[4]], Code.MALFORMED_TX),
    (lambda o: [o[0], o[1], o[2], ["transfer", o[3][1], "USDC", "10"], o[4]], Code.MALFORMED_TX),
    (lambda o: [o[0], o[1], o[2], ["transfer", o[3][1], "USDC", True], o[4]], Code.MALFORMED_TX),
    (lambda o: [o[0], o[1], o[2], o[3], o[4][:10]], Code.MALFORMED_TX),
])
def test_shape_errors(mutate, code):
    obj = decode(transfer(key(0), 5, key(1).pub_key, 10))
    assert _code(encode(mutate(obj))) == code


def test_trailing_bytes_and_garbage():
    raw = transfer(key(0), 5, key(1).pub_key, 10)
    assert _code(raw + b"\x00") == Code.MALFORMED_TX
    assert _code(b"\xc1\xff") == Code.MALFORMED_TX
    assert _code(b"") == Code.MALFORMED_TX


def test_oversized():
    assert _code(b"\x00" * (C.MAX_TX_BYTES + 1)) == Code.TX_TOO_LARGE
