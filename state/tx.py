"""Transactions: the signed envelope, the action schemas, decoding and signature checks.

Wire form (canonical msgpack, see state/codec.py and docs/PROTOCOL.md):

    tx        = [chain_id: str, signer: bin(32), nonce: uint64, action: array, signature: bin(64)]
    action    = [type: str, field...]            fields per ACTION_SCHEMAS, in that order
    signed    = encode(["perpchain/tx/1", chain_id, type, signer, nonce, action])

The signature is Ed25519 by `signer` (the account address) over `signed`: the domain
string, the chain id and the tx type separate it from every other signed message.
The tx hash is sha256 of the wire bytes. `decode_tx` only checks shape; the signature is
checked by `verify_tx` (the node does it once per tx, in a worker thread, and hands the
verified Tx objects to the state machine so it is never done twice).
"""

import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from state import constants as C
from state.codec import CodecError, decode, encode
from state.errors import Code, TxError

TX_DOMAIN = "perpchain/tx/1"

# Field kinds: "uint" (0..2^64-1), "int" (signed int64), "bool", "addr" (bin 32), "str" (1..16
# Unicode code points: any text decodes; a symbol nobody listed is refused when the action
# runs, e.g. UNKNOWN_ASSET), "bin"; and nested kinds checked by their own functions below: "action_list"
# (a list of batchable actions), "prices" (a list of [asset, price]), "list" (any array; its
# meaning is checked when the action runs).
ORDER_FIELDS: tuple[tuple[str, str], ...] = (
    ("market", "uint"), ("is_buy", "bool"), ("kind", "uint"), ("price", "uint"),
    ("size", "uint"), ("tif", "uint"), ("reduce_only", "bool"), ("trigger_price", "uint"),
    ("cloid", "uint"), ("expiry_ms", "uint"))

ACTION_SCHEMAS: dict[str, tuple[tuple[str, str], ...]] = {
    "transfer": (("to", "addr"), ("asset", "str"), ("amount", "uint")),
    "faucet": (),
    "order": ORDER_FIELDS,
    "cancel": (("market", "uint"), ("order_id", "uint")),
    "cancel_cloid": (("market", "uint"), ("cloid", "uint")),
    "cancel_all": (("market", "uint"),),
    "modify": (("market", "uint"), ("order_id", "uint"), ("price", "uint"), ("size", "uint")),
    "modify_trigger": (("market", "uint"), ("order_id", "uint"), ("trigger_price", "uint"),
                       ("price", "uint"), ("size", "uint")),
    "twap_order": (("market", "uint"), ("is_buy", "bool"), ("size", "uint"),
                   ("duration_ms", "uint"), ("reduce_only", "bool")),
    "twap_cancel": (("market", "uint"), ("twap_id", "uint")),
    "batch": (("actions", "action_list"),),
    "set_leverage": (("market", "uint"), ("leverage", "uint")),
    "set_margin_mode": (("market", "uint"), ("isolated", "uint"), ("leverage", "uint")),
    "isolated_margin": (("market", "uint"), ("amount", "int")),
    "oracle": (("prices", "prices"),),
    "gov_set_param": (("market", "uint"), ("param", "str"), ("value", "int"),
                      ("effective_height", "uint")),
    "gov_add_market": (("spec", "list"), ("effective_height", "uint")),
    "gov_set_validator": (("pub_key", "addr"), ("power", "uint")),
    # lending (state.lending_actions)
    "withdraw": (("asset", "str"), ("amount", "uint")),
    "deposit": (("asset", "str"), ("amount", "uint")),
    "set_lending": (("enabled", "uint"),),
    "settle_pnl": (("market", "uint"),),
}
# Actions a batch may carry (each runs as its own sub-transaction with its own result).
BATCHABLE = ("order", "cancel", "cancel_cloid", "cancel_all", "modify")


@dataclass(frozen=True, slots=True)
class Tx:
    chain_id: str
    signer: bytes
    nonce: int
    action: tuple            # (type, field...)
    signature: bytes
    raw: bytes
    hash: bytes

    @property
    def type(self) -> str:
        return self.action[0]

    def sign_bytes(self) -> bytes:
        return signing_bytes(self.chain_id, self.signer, self.nonce, list(self.action))


def signing_bytes(chain_id: str, signer: bytes, nonce: int, action: list) -> bytes:
    return encode([TX_DOMAIN, chain_id, action[0], signer, nonce, action])


def tx_hash(raw: bytes) -> bytes:
    return hashlib.sha256(raw).digest()


def _bad(log: str) -> TxError:
    return TxError(Code.MALFORMED_TX, log)


def _check_field(name: str, kind: str, value) -> None:
    t = type(value)
    if kind == "uint":
        if t is not int or not 0 <= value <= C.MAX_UINT64:
            raise _bad(f"field {name!r} must be an unsigned 64-bit integer")
    elif kind == "int":
        if t is not int or not -C.MAX_INT64 <= value <= C.MAX_INT64:
            raise _bad(f"field {name!r} must be a signed 64-bit integer")
    elif kind == "bool":
        if t is not bool:
            raise _bad(f"field {name!r} must be true or false")
    elif kind == "addr":
        if t is not bytes or len(value) != C.PUBKEY_BYTES:
            raise _bad(f"field {name!r} must be {C.PUBKEY_BYTES} raw bytes (an address)")
    elif kind == "str":
        if t is not str or not 0 < len(value) <= C.MAX_ASSET_SYMBOL_LEN:
            raise _bad(f"field {name!r} must be a string of 1..{C.MAX_ASSET_SYMBOL_LEN} "
                       "characters")
    elif kind == "bin":
        if t is not bytes:
            raise _bad(f"field {name!r} must be raw bytes")
    elif kind == "list":
        if t is not list:
            raise _bad(f"field {name!r} must be an array")
    elif kind == "action_list":
        _check_batch(name, value)
    elif kind == "prices":
        _check_prices(name, value)
    else:  # pragma: no cover - schema table error
        raise AssertionError(f"unknown field kind {kind}")


def _check_batch(name: str, value) -> None:
    if type(value) is not list or not value:
        raise _bad(f"field {name!r} must be a non-empty array of actions")
    if len(value) > C.MAX_BATCH_ACTIONS:
        raise TxError(Code.BATCH_TOO_LARGE, f"batch has {len(value)} actions; the limit is "
                      f"{C.MAX_BATCH_ACTIONS}")
    for i, sub in enumerate(value):
        if type(sub) is not list or not sub or sub[0] not in BATCHABLE:
            raise _bad(f"batch action {i} must be one of {', '.join(BATCHABLE)}")
        _check_fields(sub, ACTION_SCHEMAS[sub[0]], f"batch action {i} ")


def _check_prices(name: str, value) -> None:
    if type(value) is not list or not 0 < len(value) <= C.MAX_ORACLE_PRICES:
        raise _bad(f"field {name!r} must be an array of 1..{C.MAX_ORACLE_PRICES} "
                   "[asset, price] pairs")
    for i, pair in enumerate(value):
        if type(pair) is not list or len(pair) != 2:
            raise _bad(f"{name}[{i}] must be [asset, price]")
        _check_field(f"{name}[{i}].asset", "str", pair[0])
        _check_field(f"{name}[{i}].price", "uint", pair[1])


def _check_fields(action: list, schema, where: str = "") -> None:
    if len(action) != 1 + len(schema):
        raise _bad(f"{where}action {action[0]!r} takes {len(schema)} fields "
                   f"({', '.join(n for n, _ in schema) or 'none'}), got {len(action) - 1}")
    for (name, kind), value in zip(schema, action[1:]):
        _check_field(name, kind, value)


def check_action(action) -> tuple:
    """Validate an action array against its schema; return it as a tuple."""
    if type(action) is not list or not action or type(action[0]) is not str:
        raise _bad("action must be an array starting with the action type string")
    schema = ACTION_SCHEMAS.get(action[0])
    if schema is None:
        raise TxError(Code.UNKNOWN_ACTION, f"unknown action type {action[0]!r}; "
                      f"known: {', '.join(sorted(ACTION_SCHEMAS))}")
    _check_fields(action, schema)
    return tuple(action)


def decode_tx(raw: bytes) -> Tx:
    """Bytes -> Tx, checking size, canonical encoding and shape (not the signature)."""
    if len(raw) > C.MAX_TX_BYTES:
        raise TxError(Code.TX_TOO_LARGE, f"tx is {len(raw)} bytes; the limit is {C.MAX_TX_BYTES}")
    try:
        obj = decode(raw)
    except CodecError as e:
        raise _bad(f"tx is not canonical msgpack: {e}") from None
    if type(obj) is not list or len(obj) != 5:
        raise _bad("tx must be an array of 5: [chain_id, signer, nonce, action, signature]")
    chain_id, signer, nonce, action, signature = obj
    if type(chain_id) is not str or not 0 < len(chain_id) <= C.MAX_CHAIN_ID_LEN:
        raise _bad(f"chain_id must be a string of 1..{C.MAX_CHAIN_ID_LEN} characters")
    if type(signer) is not bytes or len(signer) != C.PUBKEY_BYTES:
        raise _bad(f"signer must be {C.PUBKEY_BYTES} raw bytes (an Ed25519 public key)")
    if type(nonce) is not int or not 0 <= nonce <= C.MAX_UINT64:
        raise _bad("nonce must be an unsigned 64-bit integer (milliseconds)")
    if type(signature) is not bytes or len(signature) != C.SIGNATURE_BYTES:
        raise _bad(f"signature must be {C.SIGNATURE_BYTES} raw bytes")
    return Tx(chain_id, signer, nonce, check_action(action), signature, raw, tx_hash(raw))


def signature_ok(tx: Tx) -> bool:
    """Ed25519 check of the tx signature. Pure CPU; releases the GIL (safe in threads)."""
    try:
        Ed25519PublicKey.from_public_bytes(tx.signer).verify(tx.signature, tx.sign_bytes())
        return True
    except (InvalidSignature, ValueError):
        return False


def verify_tx(tx: Tx) -> None:
    if not signature_ok(tx):
        raise TxError(Code.BAD_SIGNATURE, "signature does not verify for this signer, "
                      "chain id and tx body")


def build_tx(chain_id: str, key: Ed25519PrivateKey, nonce: int, action: list) -> bytes:
    """Encode and sign a tx (what a client does). Returns the wire bytes."""
    from cryptography.hazmat.primitives import serialization

    signer = key.public_key().public_bytes(serialization.Encoding.Raw,
                                           serialization.PublicFormat.Raw)
    check_action(list(action))
    sig = key.sign(signing_bytes(chain_id, signer, nonce, list(action)))
    return encode([chain_id, signer, nonce, list(action), sig])
