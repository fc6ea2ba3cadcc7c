"""Keeps docs/PROTOCOL.md true.

The encoder and signer here are written from the document alone, with only `msgpack`,
`hashlib` and `cryptography` (and a hand-written canonical msgpack encoder that follows the
document's format table). They must agree with the node's code (state.tx, state.codec,
consensus.types), and every value, table and name the document prints must match.
"""

import base64
import hashlib
import re
import struct
from pathlib import Path

import msgpack
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md"
DOC = DOC_PATH.read_text(encoding="utf-8")

# The worked example's inputs (docs/PROTOCOL.md section 2.6).
SEED = bytes([0x01]) * 32
RECIPIENT_SEED = bytes([0x02]) * 32
CHAIN_ID = "perpchain-localnet"
NONCE = 1_700_000_000_000
ASSET, AMOUNT = "USDC", 12_500_000
TX_DOMAIN = "perpchain/tx/1"


# -- an independent implementation of the spec -------------------------------------------

def spec_encode(obj) -> bytes:
    """Canonical msgpack per the document's section 1 table (no msgpack library)."""
    if obj is None:
        return b"\xc0"
    if obj is False:
        return b"\xc2"
    if obj is True:
        return b"\xc3"
    if isinstance(obj, int):
        if 0 <= obj <= 0x7F:
            return bytes([obj])
        if 0 <= obj:
            for tag, fmt, top in ((0xCC, ">B", 2**8), (0xCD, ">H", 2**16),
                                  (0xCE, ">I", 2**32), (0xCF, ">Q", 2**64)):
                if obj < top:
                    return bytes([tag]) + struct.pack(fmt, obj)
            raise OverflowError(obj)
        if obj >= -32:
            return struct.pack(">b", obj)
        for tag, fmt, bits in ((0xD0, ">b", 8), (0xD1, ">h", 16), (0xD2, ">i", 32),
                               (0xD3, ">q", 64)):
            if obj >= -(2 ** (bits - 1)):
                return bytes([tag]) + struct.pack(fmt, obj)
        raise OverflowError(obj)
    if isinstance(obj, str):
        b = obj.encode("utf-8")
        n = len(b)
        if n <= 31:
            head = bytes([0xA0 | n])
        elif n <= 0xFF:
            head = b"\xd9" + struct.pack(">B", n)
        elif n <= 0xFFFF:
            head = b"\xda" + struct.pack(">H", n)
        else:
            head = b"\xdb" + struct.pack(">I", n)
        return head + b
    if isinstance(obj, bytes):
        n = len(obj)
        if n <= 0xFF:
            head = b"\xc4" + struct.pack(">B", n)
        elif n <= 0xFFFF:
            head = b"\xc5" + struct.pack(">H", n)
        else:
            head = b"\xc6" + struct.pack(">I", n)
        return head + obj
    if isinstance(obj, (list, tuple)):
        n = len(obj)
        if n <= 15:
            head = bytes([0x90 | n])
        elif n <= 0xFFFF:
            head = b"\xdc" + struct.pack(">H", n)
        else:
            head = b"\xdd" + struct.pack(">I", n)
        return head + b"".join(spec_encode(x) for x in obj)
    raise TypeError(type(obj))


def enc(obj) -> bytes:
    """The document's enc(): both encoders must agree on everything we sign or hash."""
    a = spec_encode(obj)
    assert a == msgpack.packb(obj, use_bin_type=True)
    return a


def raw_pub(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)


def spec_signing_bytes(chain_id: str, signer: bytes, nonce: int, action: list) -> bytes:
    return enc([TX_DOMAIN, chain_id, action[0], signer, nonce, action])


def spec_sign_tx(chain_id: str, key: Ed25519PrivateKey, nonce: int, action: list):
    signer = raw_pub(key)
    sb = spec_signing_bytes(chain_id, signer, nonce, action)
    sig = key.sign(sb)
    wire = enc([chain_id, signer, nonce, action, sig])
    return sb, sig, wire, hashlib.sha256(wire).hexdigest().upper()


def example():
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    recipient = raw_pub(Ed25519PrivateKey.from_private_bytes(RECIPIENT_SEED))
    action = ["transfer", recipient, ASSET, AMOUNT]
    sb, sig, wire, th = spec_sign_tx(CHAIN_ID, key, NONCE, action)
    return {"key": key, "signer": raw_pub(key), "recipient": recipient, "action": action,
            "signing bytes": sb, "signature": sig, "wire bytes": wire, "tx hash": th}


# -- helpers to read the document ---------------------------------------------------------

def doc_section(start_heading: str, end_prefix: str = "\n## ") -> str:
    i = DOC.index(start_heading)
    j = DOC.find(end_prefix, i + len(start_heading))
    return DOC[i:] if j < 0 else DOC[i:j]


def doc_values() -> dict[str, str]:
    """The `label: value` lines of the worked example's code block."""
    sec = doc_section("### 2.6 Worked example")
    block = re.search(r"```\n(seed:.*?)```", sec, re.S).group(1)
    out = {}
    for line in block.strip().splitlines():
        label, value = line.split(":", 1)
        out[label.strip()] = value.strip()
    return out


def doc_byte_table(caption: str) -> list[tuple[int, bytes]]:
    """(offset, bytes) rows of the annotated table that follows `caption`."""
    sec = DOC[DOC.index(caption):]
    rows = []
    for line in sec.splitlines()[1:]:
        m = re.match(r"^\|\s*(\d+)\s*\|\s*`([0-9a-f]+)`\s*\|", line)
        if m:
            rows.append((int(m.group(1)), bytes.fromhex(m.group(2))))
        elif rows and not line.startswith("|"):
            break
    assert rows, f"no byte table after {caption!r}"
    return rows


def table_row_has(number: int, name: str) -> bool:
    pat = rf"^\|\s*{re.escape(str(number))}\s*\|\s*`{re.escape(name)}`\s*\|"
    return re.search(pat, DOC, re.M) is not None


# -- (a) the spec implementation agrees with the node --------------------------------------

BOUNDARY_VALUES = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1,
                   -1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, -(2**63),
                   "", "a" * 31, "a" * 32, "a" * 255, "a" * 256, "é",
                   b"", b"\x00" * 255, b"\x00" * 256, None, True, False,
                   [], list(range(15)), list(range(16)), [[b"k", None], [b"k2", b"v"]]]


@pytest.mark.parametrize("value", BOUNDARY_VALUES, ids=lambda v: repr(v)[:20])
def test_spec_encoder_is_the_node_codec(value):
    from state.codec import decode

    data = spec_encode(value)
    assert data == msgpack.packb(value, use_bin_type=True)
    assert decode(data) == value


def test_worked_example_is_what_the_node_builds_and_accepts():
    from state.tx import build_tx, decode_tx, signature_ok

    ex = example()
    assert build_tx(CHAIN_ID, ex["key"], NONCE, ex["action"]) == ex["wire bytes"]
    tx = decode_tx(ex["wire bytes"])
    assert tx.chain_id == CHAIN_ID and tx.signer == ex["signer"] and tx.nonce == NONCE
    assert list(tx.action) == ex["action"] and tx.signature == ex["signature"]
    assert tx.sign_bytes() == ex["signing bytes"]
    assert tx.hash.hex().upper() == ex["tx hash"]
    assert signature_ok(tx)
    # A signature over anything else (another chain id) must not verify.
    other = spec_sign_tx("perpchain-other", ex["key"], NONCE, ex["action"])[1]
    forged = decode_tx(enc([CHAIN_ID, ex["signer"], NONCE, ex["action"], other]))
    assert not signature_ok(forged)


def test_faucet_example_is_what_the_node_builds():
    from state.tx import build_tx, decode_tx, signature_ok

    key = Ed25519PrivateKey.from_private_bytes(SEED)
    sb, sig, wire, th = spec_sign_tx(CHAIN_ID, key, NONCE, ["faucet"])
    assert build_tx(CHAIN_ID, key, NONCE, ["faucet"]) == wire
    assert signature_ok(decode_tx(wire))
    for value in (sb.hex(), wire.hex(), th):
        assert value in DOC
    assert f"wire bytes ({len(wire)} bytes)" in DOC


def test_protocol_constants_in_doc():
    from consensus.types import PRECOMMIT, PREVOTE, VOTE_DOMAIN, data_hash, vote_sign_bytes
    from state import constants as C
    from state import tx as T

    assert T.TX_DOMAIN == TX_DOMAIN and f'"{TX_DOMAIN}"' in DOC
    assert f"MAX_TX_BYTES` = {C.MAX_TX_BYTES}" in DOC
    assert f"1..{C.MAX_CHAIN_ID_LEN} characters (`MAX_CHAIN_ID_LEN`" in DOC
    assert f"1..{C.MAX_ASSET_SYMBOL_LEN} characters (`MAX_ASSET_SYMBOL_LEN`" in DOC
    assert f"**{C.NONCE_SET_SIZE} highest**" in DOC
    assert (f"`T - {C.NONCE_PAST_WINDOW_MS} < n < T + {C.NONCE_FUTURE_WINDOW_MS}`") in DOC
    assert f"`MAX_BLOCK_TXS` = {C.MAX_BLOCK_TXS} txs" in DOC
    assert f"`MAX_BLOCK_BYTES` = {C.MAX_BLOCK_BYTES}" in DOC
    # Action schemas: each type's row lists its fields in order as `name: kind`.
    for typ, schema in T.ACTION_SCHEMAS.items():
        row = re.search(rf"^\| `{typ}` \|([^|]*)\|", DOC, re.M)
        assert row, f"action {typ!r} has no row in the actions table"
        fields = re.findall(r"`(\w+): (\w+)`", row.group(1))
        assert fields == [tuple(f) for f in schema], typ
    # Votes and data hash as the document defines them.
    assert f'"{VOTE_DOMAIN}"' in DOC and f"{PREVOTE} = prevote, {PRECOMMIT} = precommit" in DOC
    bh = hashlib.sha256(b"block").digest()
    assert vote_sign_bytes(CHAIN_ID, PRECOMMIT, 7, 1, bh, 123) == \
        enc([VOTE_DOMAIN, CHAIN_ID, PRECOMMIT, 7, 1, bh, 123])
    empty = hashlib.sha256(b"\x90").hexdigest().upper()
    assert data_hash([]).hex().upper() == empty and empty in DOC
    txs = [b"a", b"bc"]
    assert data_hash(txs) == hashlib.sha256(enc([hashlib.sha256(t).digest() for t in txs])).digest()


def test_app_hash_chain_as_documented():
    from state.hashing import ZERO_HASH, chain_app_hash

    writes = [(b"a", b"\x01"), (b"b", None)]
    want = hashlib.sha256(bytes(32) + hashlib.sha256(enc([[b"a", b"\x01"], [b"b", None]]))
                          .digest()).digest()
    assert chain_app_hash(ZERO_HASH, writes) == want


# -- (b) the printed worked example is verbatim what the spec produces ---------------------

def test_worked_example_values_in_doc():
    ex = example()
    want = {
        "seed": SEED.hex(),
        "signer": ex["signer"].hex(),
        "recipient": ex["recipient"].hex(),
        "signing bytes": ex["signing bytes"].hex(),
        "signature": ex["signature"].hex(),
        "wire bytes": ex["wire bytes"].hex(),
        "wire base64": base64.b64encode(ex["wire bytes"]).decode(),
        "tx hash": ex["tx hash"],
    }
    assert doc_values() == want
    for value in want.values():
        assert value in DOC
    # The curl examples send these exact bytes.
    assert f'"tx":"{want["wire base64"]}"' in DOC
    assert f"broadcast_tx_sync?tx=0x{want['wire bytes']}" in DOC
    assert f"signing bytes ({len(ex['signing bytes'])} bytes)" in DOC
    assert f"wire bytes ({len(ex['wire bytes'])} bytes)" in DOC


@pytest.mark.parametrize("caption,name", [("The signing bytes (", "signing bytes"),
                                          ("The wire bytes (", "wire bytes")])
def test_annotated_byte_tables(caption, name):
    rows = doc_byte_table(caption)
    offset = 0
    for off, chunk in rows:
        assert off == offset, f"{name}: row at {off} should start at {offset}"
        offset += len(chunk)
    assert b"".join(c for _, c in rows) == example()[name]


def test_key_file_example():
    from node.keys import KeyPair

    kp = KeyPair.from_seed(SEED)
    pub = example()["signer"]
    assert kp.pub_key == pub
    j = kp.to_json()
    assert j["pub_key"]["value"] == base64.b64encode(pub).decode()
    assert j["priv_key"]["value"] == base64.b64encode(SEED + pub).decode()
    for s in (f'"address": "{j["address"]}"', f'"value": "{j["pub_key"]["value"]}"',
              f'"value": "{j["priv_key"]["value"]}"', j["pub_key"]["type"],
              j["priv_key"]["type"]):
        assert s in DOC
    node_id = hashlib.sha256(pub).digest()[:20].hex()
    assert kp.node_id == node_id and f"`{node_id}`" in DOC


# -- (c) every error code is in its table --------------------------------------------------

def test_every_tx_result_code_documented():
    from state.errors import CODESPACE, Code

    sec = doc_section("## 5. Transaction result codes")
    missing = [f"{c.value} {c.name}" for c in Code
               if not re.search(rf"^\|\s*{c.value}\s*\|\s*`{c.name}`\s*\|", sec, re.M)]
    assert not missing, f"add to docs/PROTOCOL.md section 5: {missing}"
    assert f'"{CODESPACE}"' in DOC


def test_every_rpc_error_code_documented():
    from rpc.errors import RPCCode

    sec = doc_section("### 8.2 JSON-RPC error codes", "\n### ")
    missing = [f"{c.value} {c.name}" for c in RPCCode
               if not re.search(rf"^\|\s*{c.value}\s*\|\s*`{c.name}`\s*\|", sec, re.M)]
    assert not missing, f"add to docs/PROTOCOL.md section 8.2: {missing}"


# -- (d) every RPC method has a heading, and no heading names a missing method ---------------

def test_every_rpc_method_documented():
    from rpc.methods import METHODS

    sec = doc_section("### 8.3 Methods", "\n### ")
    headed = set(re.findall(r"^#### `(\w+)`", sec, re.M))
    assert set(METHODS) - headed == set(), "methods missing from docs/PROTOCOL.md 8.3"
    assert headed - set(METHODS) == set(), "docs/PROTOCOL.md 8.3 documents unknown methods"
    listed = re.search(r"available: ([a-z_, ]+)\"", DOC).group(1).split(", ")
    assert listed == sorted(METHODS)


# -- (e) the trading section names what the code does ------------------------------------------

def test_trading_doc_matches_the_code():
    from state import constants as C, governance, orders

    sec = doc_section("### 4.2 Trading", "\n---")
    for i, name in enumerate(orders.KIND_NAMES):
        assert f"{i} {name.replace('_', '-')}" in sec, name
    for i, name in enumerate(("GTC", "IOC", "FOK", "ALO")):
        assert f"{i} {name}" in sec
    for p in governance.SET_MARKET_PARAMS + governance.SET_GLOBAL_PARAMS:
        assert f"`{p}`" in sec, p
    assert f"1..{C.MAX_BATCH_ACTIONS} (`MAX_BATCH_ACTIONS`)" in DOC
    assert f"at most {C.MAX_OPEN_ORDERS_PER_ACCOUNT} open orders" in sec
    keys = doc_section("State keys and values", "\n## ")
    for prefix in (orders.P_ORDER, orders.P_TRIGGER, orders.P_TRIGGER_INDEX,
                   orders.P_ACCOUNT_ORDERS, orders.P_CLOID, orders.P_EXPIRY, orders.K_ORDER_SEQ,
                   governance.P_PENDING):
        assert f"| `{prefix.decode()}`" in keys, prefix
