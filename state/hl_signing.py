"""Hyperliquid signatures: what a Hyperliquid-signed action signs, and who signed it.

Two kinds of action, as the official Python SDK (`hyperliquid/utils/signing.py`) signs them:

- L1 actions (order, cancel, modify, updateLeverage, ...). The SDK hashes
      connection_id = keccak256(msgpack(action) || nonce as 8 bytes big-endian
                                || 0x00                      (no vault)
                                 | 0x01 || vault address     (20 bytes)
                                || [0x00 || expiresAfter as 8 bytes big-endian, if set])
  and signs the EIP-712 "phantom agent" Agent{source: string, connectionId: bytes32} in the
  domain {name "Exchange", version "1", chainId 1337, verifyingContract 0x0}. `source` is
  "a" for Hyperliquid mainnet and "b" for anything else: a perpchain chain accepts only "b".
  `msgpack(action)` is exactly the bytes the client packed (the envelope carries them), so
  the hash is recomputed from those bytes, never from a re-encoding.
- User-signed actions (usdSend, withdraw3, usdClassTransfer): EIP-712 of the action's own
  fields (USER_SIGNED below) in the domain {name "HyperliquidSignTransaction", version "1",
  chainId int(signatureChainId, 16), verifyingContract 0x0}. `hyperliquidChain` must be
  "Testnet" here ("Mainnet" is Hyperliquid's own chain).

Neither binds a perpchain chain id: see docs/HYPERLIQUID.md "Signatures".

The signer is recovered from the 65-byte signature r || s || v (v = 27 or 28, s in the lower
half of the curve order, as eth-account signs) with eth-keys (coincurve when installed), and
the EIP-712 encoding is eth-account's `encode_typed_data`; keccak is eth-hash's. Nothing here
is a hand-written curve or hash.
"""

from eth_hash.auto import keccak

# eth-account and eth-keys are imported on first use (`_digest`, `recover`): importing them
# costs seconds of CPU on a busy machine, and every process that imports state.tx (each node,
# verifier worker and CLI command) would pay it, Hyperliquid-signed txs or not.

L1_SOURCE = "b"            # the only phantom-agent source a perpchain chain accepts
MAINNET_SOURCE = "a"       # Hyperliquid mainnet's: refused with a clear error
USER_CHAIN = "Testnet"     # the only hyperliquidChain a perpchain chain accepts
MAINNET_USER_CHAIN = "Mainnet"
SIGNATURE_BYTES = 65       # r (32) || s (32) || v (1, 27 or 28)
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

_ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
_DOMAIN_TYPES = [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                 {"name": "chainId", "type": "uint256"},
                 {"name": "verifyingContract", "type": "address"}]
_AGENT_TYPES = [{"name": "source", "type": "string"}, {"name": "connectionId", "type": "bytes32"}]


def _fields(*pairs: tuple[str, str]) -> list[dict]:
    return [{"name": n, "type": t} for n, t in pairs]


# action type -> (EIP-712 primary type, its fields, the action field that must equal the nonce)
USER_SIGNED: dict[str, tuple[str, list[dict], str]] = {
    "usdSend": ("HyperliquidTransaction:UsdSend", _fields(
        ("hyperliquidChain", "string"), ("destination", "string"), ("amount", "string"),
        ("time", "uint64")), "time"),
    "withdraw3": ("HyperliquidTransaction:Withdraw", _fields(
        ("hyperliquidChain", "string"), ("destination", "string"), ("amount", "string"),
        ("time", "uint64")), "time"),
    "usdClassTransfer": ("HyperliquidTransaction:UsdClassTransfer", _fields(
        ("hyperliquidChain", "string"), ("amount", "string"), ("toPerp", "bool"),
        ("nonce", "uint64")), "nonce"),
}


class SignatureError(ValueError):
    """A signature that cannot be checked (bad length, v, r or s, or bad typed data)."""


def action_hash(action_bytes: bytes, nonce: int, vault: bytes | None,
                expires_after: int | None) -> bytes:
    """The L1 connection id (the SDK's `action_hash`, over the packed action bytes)."""
    data = action_bytes + nonce.to_bytes(8, "big")
    data += b"\x00" if vault is None else b"\x01" + vault
    if expires_after is not None:
        data += b"\x00" + expires_after.to_bytes(8, "big")
    return keccak(data)


def _digest(full_message: dict) -> bytes:
    """The EIP-712 digest keccak(0x19 || 0x01 || domain separator || struct hash)."""
    from eth_account.messages import encode_typed_data

    try:
        m = encode_typed_data(full_message=full_message)
    except (ValueError, TypeError, KeyError, OverflowError) as e:
        raise SignatureError(f"the action cannot be EIP-712 encoded: {e}") from None
    return keccak(b"\x19" + m.version + m.header + m.body)


def l1_digest(connection_id: bytes, source: str = L1_SOURCE) -> bytes:
    """The digest an L1 action's signature signs (the SDK's `l1_payload`)."""
    return _digest({
        "domain": {"chainId": 1337, "name": "Exchange", "verifyingContract": _ZERO_ADDRESS,
                   "version": "1"},
        "types": {"Agent": _AGENT_TYPES, "EIP712Domain": _DOMAIN_TYPES},
        "primaryType": "Agent", "message": {"source": source, "connectionId": connection_id}})


def user_signed_digest(action: dict, chain: str = USER_CHAIN) -> bytes:
    """The digest a user-signed action's signature signs (the SDK's `user_signed_payload`),
    with `hyperliquidChain` taken as `chain` (the action's own value is checked apart)."""
    primary, types, _ = USER_SIGNED[action["type"]]
    chain_hex = action.get("signatureChainId")
    if type(chain_hex) is not str or not chain_hex.startswith("0x"):
        raise SignatureError("signatureChainId must be a 0x-prefixed hex string")
    try:
        chain_id = int(chain_hex, 16)
    except ValueError:
        raise SignatureError(f"signatureChainId {chain_hex!r} is not hex") from None
    message = {f["name"]: action.get(f["name"]) for f in types}
    message["hyperliquidChain"] = chain
    return _digest({
        "domain": {"name": "HyperliquidSignTransaction", "version": "1", "chainId": chain_id,
                   "verifyingContract": _ZERO_ADDRESS},
        "types": {primary: types, "EIP712Domain": _DOMAIN_TYPES},
        "primaryType": primary, "message": message})


def split_signature(sig: bytes) -> tuple[int, int, int]:
    """r || s || v -> (r, s, v), refusing what eth-account never produces."""
    if type(sig) is not bytes or len(sig) != SIGNATURE_BYTES:
        raise SignatureError(f"a signature is {SIGNATURE_BYTES} bytes r || s || v")
    r, s, v = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]
    if v not in (27, 28):
        raise SignatureError(f"signature v is {v}; it must be 27 or 28")
    if not 0 < r < SECP256K1_N or not 0 < s <= SECP256K1_N // 2:
        raise SignatureError("signature r or s out of range (s must be in the lower half of "
                             "the curve order, as eth-account signs)")
    return r, s, v


def recover(digest: bytes, sig: bytes) -> bytes:
    """The 20-byte address whose key signed `digest`; SignatureError if none can."""
    from eth_keys import keys
    from eth_keys.exceptions import BadSignature, ValidationError

    r, s, v = split_signature(sig)
    try:
        pub = keys.Signature(vrs=(v - 27, r, s)).recover_public_key_from_msg_hash(digest)
    except (BadSignature, ValidationError) as e:
        raise SignatureError(f"no public key recovers from this signature: {e}") from None
    return pub.to_canonical_address()


def signature_bytes(sig: dict) -> bytes:
    """The SDK's {"r": "0x..", "s": "0x..", "v": 27} -> r || s || v (65 bytes)."""
    if type(sig) is not dict or sorted(sig) != ["r", "s", "v"]:
        raise SignatureError('signature must be {"r": hex, "s": hex, "v": 27 or 28}')
    r, s, v = sig["r"], sig["s"], sig["v"]
    if type(r) is not str or type(s) is not str or type(v) is not int or not 0 <= v < 256:
        raise SignatureError("signature r and s must be hex strings and v an integer")
    try:
        ri, si = int(r, 16), int(s, 16)
    except ValueError:
        raise SignatureError("signature r and s must be hex strings") from None
    if ri >= 1 << 256 or si >= 1 << 256 or ri < 0 or si < 0:
        raise SignatureError("signature r and s must fit 32 bytes")
    return ri.to_bytes(32, "big") + si.to_bytes(32, "big") + bytes([v])
