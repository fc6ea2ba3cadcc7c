"""Hyperliquid signatures (state/hl_signing.py) and the envelope that carries them (state/tx.py):
fixed vectors made by the official SDK's own signing functions, recovery, refusals."""

import msgpack
import pytest
from hyperliquid.utils import signing as sdk

from state import hl_signing
from state.errors import Code, TxError
from state.tx import HlTx, build_hl_tx, decode_tx, hl_digest, hl_signature_error, signature_ok
from tests.hl_helpers import WALLETS, address20, l1_tx, usd_send_tx

NONCE = 1_700_000_001_000
ORDER = {"type": "order", "orders": [{"a": 0, "b": True, "p": "60000", "s": "0.01", "r": False,
                                      "t": {"limit": {"tif": "Gtc"}}}], "grouping": "na"}
# Produced by hyperliquid-python-sdk 0.24.0 (sign_l1_action / sign_usd_transfer_action) with the
# key 0x1111...11 (address 0x19E7E376E7C213B7E7e7e46cc70A5dD086DAff2A); RFC 6979 signatures
# are deterministic, so these never change.
ADDRESS = "19e7e376e7c213b7e7e7e46cc70a5dd086daff2a"
ORDER_HASH = "37e3260cdeb13fc84edbbfcf2afd1b945790d26ecda7e01bacb0d56533e7c30e"
ORDER_SIG_TESTNET = {"r": "0x2674dce25268c64b7e70e34ec1b64287a288152e06e0b729d7903ef0fe176f1e",
                     "s": "0x44a37220774c8a2be2709617eef175c8ea716aa8f09c7671aa6499c8b575f201",
                     "v": 27}
ORDER_SIG_MAINNET = {"r": "0x83e634a6e9f7c5f5d34d05b5dd775b6e7ebe99e4fd0aee5d8283b3077554cfe4",
                     "s": "0x224dcc3dd5aa402a6c60b33fa7334e36cb3e239cfd9be12b6abeb92302002600",
                     "v": 28}
USD_SEND = {"destination": "0x" + "22" * 20, "amount": "12.5", "time": NONCE, "type": "usdSend",
            "signatureChainId": "0x66eee", "hyperliquidChain": "Testnet"}
USD_SEND_SIG = {"r": "0x6ebe5c114e94185d21b21bc7f40504093c2ae37491175e05a3bca6135499596",
                "s": "0x5bc0cf94b975353f159ee2b07f97d7b466bc1793acf02fae2f8b34f272294ca0",
                "v": 27}


def envelope(action: dict, sig: dict, address: str = ADDRESS, nonce: int = NONCE) -> HlTx:
    return decode_tx(build_hl_tx(bytes.fromhex(address), msgpack.packb(action), nonce, None,
                                 None, hl_signing.signature_bytes(sig)))


def test_the_vectors_are_the_sdks():
    w = WALLETS[0]
    assert w.address.lower() == "0x" + ADDRESS
    assert sdk.action_hash(ORDER, None, NONCE, None).hex() == ORDER_HASH
    assert sdk.sign_l1_action(w, ORDER, None, NONCE, None, False) == ORDER_SIG_TESTNET
    assert sdk.sign_l1_action(w, ORDER, None, NONCE, None, True) == ORDER_SIG_MAINNET
    action = {k: v for k, v in USD_SEND.items() if k not in ("signatureChainId",
                                                             "hyperliquidChain")}
    assert sdk.sign_usd_transfer_action(w, action, False) == USD_SEND_SIG
    assert action == USD_SEND   # the SDK adds the two fields to the action it posts


def test_action_hash_matches_the_sdk_with_vault_and_expiry():
    vault = "0x" + "ab" * 20
    for v, exp in ((None, None), (vault, None), (None, NONCE + 5), (vault, NONCE + 5)):
        mine = hl_signing.action_hash(msgpack.packb(ORDER), NONCE,
                                      None if v is None else bytes.fromhex(v[2:]), exp)
        assert mine == sdk.action_hash(ORDER, v, NONCE, exp)
    assert hl_signing.action_hash(msgpack.packb(ORDER), NONCE, None, None).hex() == ORDER_HASH


def test_l1_signature_recovers_the_signer():
    tx = envelope(ORDER, ORDER_SIG_TESTNET)
    assert signature_ok(tx)
    assert tx.signer == bytes(12) + bytes.fromhex(ADDRESS)
    assert hl_signing.recover(hl_digest(tx), tx.signature).hex() == ADDRESS


def test_user_signed_usd_send_recovers_the_signer():
    tx = envelope(USD_SEND, USD_SEND_SIG)
    assert signature_ok(tx)
    assert tx.hl_type == "usdSend"


def test_mainnet_signature_is_refused_with_a_clear_error():
    tx = envelope(ORDER, ORDER_SIG_MAINNET)
    assert not signature_ok(tx)
    assert "mainnet" in hl_signature_error(tx)
    main_send = dict(USD_SEND, hyperliquidChain="Mainnet")
    sig = sdk.sign_usd_transfer_action(WALLETS[0], {k: v for k, v in USD_SEND.items()
                                                    if k in ("destination", "amount", "time",
                                                             "type")}, True)
    tx = envelope(main_send, sig)
    assert not signature_ok(tx) and "mainnet" in hl_signature_error(tx)


def test_wrong_address_or_tampered_byte_fails():
    assert not signature_ok(envelope(ORDER, ORDER_SIG_TESTNET, address="22" * 20))
    raw = bytearray(l1_tx(WALLETS[0], ORDER, NONCE))
    i = raw.index(b"60000")
    raw[i] = ord("7")                       # the price in the signed action bytes
    tx = decode_tx(bytes(raw))
    assert not signature_ok(tx)
    assert "recovers to" in hl_signature_error(tx)


def test_signature_shape_rules():
    good = hl_signing.signature_bytes(ORDER_SIG_TESTNET)
    high_s = good[:32] + (hl_signing.SECP256K1_N - int.from_bytes(good[32:64], "big")
                          ).to_bytes(32, "big") + bytes([55 - good[64]])
    for bad, why in ((good[:64] + b"\x01", "v is 1"), (high_s, "lower half")):
        with pytest.raises(hl_signing.SignatureError, match=why):
            hl_signing.split_signature(bad)
    with pytest.raises(hl_signing.SignatureError):
        hl_signing.signature_bytes({"r": "0x1", "s": "zz", "v": 27})


def test_envelope_shape_errors():
    sig = hl_signing.signature_bytes(ORDER_SIG_TESTNET)
    addr = bytes.fromhex(ADDRESS)
    cases = [
        (build_hl_tx(addr[:19], msgpack.packb(ORDER), NONCE, None, None, sig), "address"),
        (build_hl_tx(addr, b"\xc1", NONCE, None, None, sig), "not msgpack"),
        (build_hl_tx(addr, msgpack.packb({"type": "spotDeploy"}), NONCE, None, None, sig),
         "not supported"),
        (build_hl_tx(addr, msgpack.packb({"type": "order", "x": 1.5}), NONCE, None, None, sig),
         "float"),
        (build_hl_tx(addr, msgpack.packb(USD_SEND), NONCE + 1, None, None, sig),
         "must equal the nonce"),
        (build_hl_tx(addr, msgpack.packb(ORDER), NONCE, None, None, sig[:64]), "65"),
    ]
    for raw, why in cases:
        with pytest.raises(TxError, match=why) as e:
            decode_tx(raw)
        assert e.value.code in (Code.MALFORMED_TX, Code.UNKNOWN_ACTION)


def test_usd_send_helper_signs_what_the_envelope_checks():
    raw = usd_send_tx(WALLETS[1], "0x" + "33" * 20, "1", NONCE)
    tx = decode_tx(raw)
    assert signature_ok(tx) and tx.address == address20(WALLETS[1])


@pytest.mark.parametrize("threads,processes", [(-1, 0), (1, 0), (0, 1)])
def test_verifier_checks_hyperliquid_envelopes_in_every_mode(threads, processes):
    """Mixed Ed25519 and secp256k1 txs, good and bad, in the verifier's workers."""
    import trio

    from node.verifier import Verifier
    from tests.chain_helpers import key, transfer
    good_hl = decode_tx(l1_tx(WALLETS[0], ORDER, NONCE))
    bad_hl = decode_tx(l1_tx(WALLETS[0], ORDER, NONCE, signer=WALLETS[1]))
    ed = decode_tx(transfer(key(0), NONCE, key(1).pub_key, 1))
    txs = [good_hl, ed, bad_hl] * 12
    v = Verifier(threads, processes)
    try:
        assert trio.run(v.verify, txs) == [True, True, False] * 12
    finally:
        v.close()
