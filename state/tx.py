"""Transactions: the signed envelope, the action schemas, decoding and signature checks.

Wire form (canonical msgpack, see state/codec.py and docs/PROTOCOL.md):

    tx        = [chain_id: str, signer: bin(32), nonce: uint64, action: array, signature: bin(64)]
    action    = [type: str, field...]            fields per ACTION_SCHEMAS, in that order
    signed    = encode(["perpchain/tx/1", chain_id, type, signer, nonce, action])

The signature is Ed25519 by `signer` (the account address) over `signed`: the domain
string, the chain id and the tx type separate it from every other signed message.
A second envelope carries a Hyperliquid-signed action (secp256k1, as the Hyperliquid SDK
signs it; `HlTx` below, state/hl_signing.py, docs/PROTOCOL.md section 2.7):

    hl_tx     = ["hl/1", address: bin(20), action: bin, nonce: uint64,
                 vault: nil | bin(20), expires_after: nil | uint64, signature: bin(65)]

The tx hash is sha256 of the wire bytes. `decode_tx` only checks shape; the signature is
checked by `verify_tx` (the node does it once per tx, in a worker thread, and hands the
verified Tx objects to the state machine so it is never done twice).
"""

import hashlib
from dataclasses import dataclass

import msgpack
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from state import constants as C, hl_signing
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
    "schedule_cancel": (("time_ms", "uint"),),
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


def decode_tx(raw: bytes) -> "Tx | HlTx":
    """Bytes -> Tx, checking size, canonical encoding and shape (not the signature)."""
    if len(raw) > C.MAX_TX_BYTES:
        raise TxError(Code.TX_TOO_LARGE, f"tx is {len(raw)} bytes; the limit is {C.MAX_TX_BYTES}")
    try:
        obj = decode(raw)
    except CodecError as e:
        raise _bad(f"tx is not canonical msgpack: {e}") from None
    if type(obj) is list and len(obj) == 7 and obj[0] == HL_TX_TAG:
        return _decode_hl(obj, raw)
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


def signature_ok(tx: "Tx | HlTx") -> bool:
    """Check of the tx signature (Ed25519, or secp256k1 for a HlTx). Pure CPU."""
    if type(tx) is HlTx:
        return hl_signature_ok(tx)
    try:
        Ed25519PublicKey.from_public_bytes(tx.signer).verify(tx.signature, tx.sign_bytes())
        return True
    except (InvalidSignature, ValueError):
        return False


def verify_tx(tx: "Tx | HlTx") -> None:
    if not signature_ok(tx):
        raise TxError(Code.BAD_SIGNATURE, signature_error_log(tx))


def signature_error_log(tx: "Tx | HlTx") -> str:
    """Why a signature that failed `signature_ok` failed (the slow path: only on failure)."""
    if type(tx) is HlTx:
        return hl_signature_error(tx)
    return "signature does not verify for this signer, chain id and tx body"


def build_tx(chain_id: str, key: Ed25519PrivateKey, nonce: int, action: list) -> bytes:
    """Encode and sign a tx (what a client does). Returns the wire bytes."""
    from cryptography.hazmat.primitives import serialization

    signer = key.public_key().public_bytes(serialization.Encoding.Raw,
                                           serialization.PublicFormat.Raw)
    check_action(list(action))
    sig = key.sign(signing_bytes(chain_id, signer, nonce, list(action)))
    return encode([chain_id, signer, nonce, list(action), sig])


# -- the Hyperliquid envelope ----------------------------------------------------------------

HL_TX_TAG = "hl/1"
HL_ADDRESS_BYTES = 20
# Action types the envelope carries (their meaning: state/hl_actions.py). A user-signed one
# (hl_signing.USER_SIGNED) is signed as EIP-712 of its fields, the others as L1 actions.
HL_ACTION_TYPES = ("order", "cancel", "cancelByCloid", "modify", "batchModify",
                   "scheduleCancel", "updateLeverage", "updateIsolatedMargin", "usdSend",
                   "usdClassTransfer", "withdraw3")
HL_MAX_DEPTH = 6   # nesting of maps and arrays in an action (an order is 4 deep)


@dataclass(frozen=True, slots=True)
class HlTx:
    """A Hyperliquid-signed action. `action_bytes` are the msgpack bytes the client packed
    (and hashed); `hl_action` their decoded map. `signer` is the perpchain account of
    `address` (state.hl_universe.eth_account)."""
    address: bytes
    action_bytes: bytes
    nonce: int
    vault: bytes | None
    expires_after: int | None
    signature: bytes
    hl_action: dict
    signer: bytes
    raw: bytes
    hash: bytes

    chain_id = None          # Hyperliquid signatures bind no perpchain chain id
    action = ("hl",)         # the machine dispatches on `type`; the action is `hl_action`

    @property
    def type(self) -> str:
        return "hl"

    @property
    def hl_type(self) -> str:
        return self.hl_action["type"]


def _check_hl_value(value, depth: int) -> None:
    t = type(value)
    if t is dict:
        if depth >= HL_MAX_DEPTH:
            raise _bad(f"the Hyperliquid action is nested deeper than {HL_MAX_DEPTH}")
        for k, v in value.items():
            if type(k) is not str:
                raise _bad("Hyperliquid action map keys must be strings")
            _check_hl_value(v, depth + 1)
    elif t is list:
        if depth >= HL_MAX_DEPTH:
            raise _bad(f"the Hyperliquid action is nested deeper than {HL_MAX_DEPTH}")
        for v in value:
            _check_hl_value(v, depth + 1)
    elif t not in (str, int, bool, type(None)):
        raise _bad(f"a Hyperliquid action holds only maps, arrays, strings, integers, "
                   f"booleans and null, not {t.__name__}")


def decode_hl_action(action_bytes: bytes) -> dict:
    """The client's msgpack action bytes -> its map (any msgpack the SDK produces; the
    signature covers these exact bytes, so there is no second encoding of one action)."""
    try:
        action = msgpack.unpackb(action_bytes, raw=False, strict_map_key=True, use_list=True)
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as e:
        raise _bad(f"the Hyperliquid action is not msgpack: {e}") from None
    _check_hl_value(action, 0)
    if type(action) is not dict or type(action.get("type")) is not str:
        raise _bad('a Hyperliquid action is a map with a "type" string')
    if action["type"] not in HL_ACTION_TYPES:
        raise TxError(Code.UNKNOWN_ACTION, f"Hyperliquid action type {action['type']!r} is not "
                      f"supported; supported: {', '.join(HL_ACTION_TYPES)}")
    return action


def _decode_hl(obj: list, raw: bytes) -> HlTx:
    _, address, action_bytes, nonce, vault, expires_after, signature = obj
    if type(address) is not bytes or len(address) != HL_ADDRESS_BYTES:
        raise _bad(f"address must be {HL_ADDRESS_BYTES} raw bytes (the Ethereum signer)")
    if type(action_bytes) is not bytes:
        raise _bad("action must be raw bytes (the msgpack the client signed)")
    if type(nonce) is not int or not 0 <= nonce <= C.MAX_UINT64:
        raise _bad("nonce must be an unsigned 64-bit integer (milliseconds)")
    if vault is not None and (type(vault) is not bytes or len(vault) != HL_ADDRESS_BYTES):
        raise _bad(f"vault must be nil or {HL_ADDRESS_BYTES} raw bytes")
    if expires_after is not None and (type(expires_after) is not int
                                      or not 0 <= expires_after <= C.MAX_UINT64):
        raise _bad("expires_after must be nil or an unsigned 64-bit integer (milliseconds)")
    if type(signature) is not bytes or len(signature) != hl_signing.SIGNATURE_BYTES:
        raise _bad(f"signature must be {hl_signing.SIGNATURE_BYTES} raw bytes r || s || v")
    action = decode_hl_action(action_bytes)
    user = hl_signing.USER_SIGNED.get(action["type"])
    if user is not None and action.get(user[2]) != nonce:
        raise _bad(f"a {action['type']} action's {user[2]!r} must equal the nonce {nonce}")
    return HlTx(address, action_bytes, nonce, vault, expires_after, signature, action,
                bytes(12) + address, raw, tx_hash(raw))


def build_hl_tx(address: bytes, action_bytes: bytes, nonce: int, vault: bytes | None,
                expires_after: int | None, signature: bytes) -> bytes:
    """The wire bytes of a Hyperliquid envelope (what the /exchange façade submits)."""
    return encode([HL_TX_TAG, address, action_bytes, nonce, vault, expires_after, signature])


def hl_digest(tx: HlTx, source: str = hl_signing.L1_SOURCE,
              chain: str = hl_signing.USER_CHAIN) -> bytes:
    """What `tx.signature` must sign: the L1 phantom agent or the user-signed typed data."""
    if tx.hl_type in hl_signing.USER_SIGNED:
        return hl_signing.user_signed_digest(tx.hl_action, chain)
    cid = hl_signing.action_hash(tx.action_bytes, tx.nonce, tx.vault, tx.expires_after)
    return hl_signing.l1_digest(cid, source)


def hl_signature_ok(tx: HlTx) -> bool:
    """Whether `tx.address` signed `tx` for a non-mainnet chain (source "b" / "Testnet")."""
    try:
        return hl_signing.recover(hl_digest(tx), tx.signature) == tx.address
    except hl_signing.SignatureError:
        return False


def hl_signature_error(tx: HlTx) -> str:
    """The reason a HlTx signature fails, naming a mainnet signature as such."""
    try:
        got = hl_signing.recover(hl_digest(tx), tx.signature)
        mainnet = hl_signing.recover(hl_digest(tx, hl_signing.MAINNET_SOURCE,
                                               hl_signing.MAINNET_USER_CHAIN), tx.signature)
    except hl_signing.SignatureError as e:
        return f"bad Hyperliquid signature: {e}"
    if mainnet == tx.address:
        return ("the action is signed for Hyperliquid mainnet (phantom agent source 'a' / "
                "hyperliquidChain 'Mainnet'); a perpchain chain accepts only non-mainnet "
                "signatures (source 'b' / 'Testnet'): sign with is_mainnet=False, e.g. the "
                "SDK's Exchange with base_url set to this node")
    return (f"the signature recovers to 0x{got.hex()}, not the envelope's address "
            f"0x{tx.address.hex()}")
