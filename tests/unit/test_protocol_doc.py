"""Keeps docs/PROTOCOL.md true.

The encoder and signer here are written from the document alone, with only `msgpack`,
`hashlib` and `cryptography` (and a hand-written canonical msgpack encoder that follows the
document's format table). They must agree with the node's code (state.tx, state.codec,
consensus.types), and every value, table and name the document prints must match.
"""

import base64
import hashlib
import json
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


# -- (f) the rules the first foreign client tripped over -----------------------------------

def _block_codes_and_nonces(txs_by_key):
    """Apply one block of (key, raw tx) on a trading chain; [(code, nonce consumed?)]."""
    from state.nonces import nonces
    from state.tx import decode_tx
    from tests.chain_helpers import Chain, trading_genesis

    c = Chain(trading_genesis())
    res = c.block([raw for _, raw in txs_by_key])
    out = []
    for (k, raw), r in zip(txs_by_key, res.tx_results):
        try:
            n = decode_tx(raw).nonce
        except Exception:
            n = _unpack(raw)[2]
        out.append((r.code, n in nonces(c.kv, k.pub_key)))
    return out


def _unpack(raw):
    return msgpack.unpackb(raw, raw=False)


def doc_nonce_rule() -> tuple[set[int], set[int]]:
    """The codes that leave no trace in a block and those that consume the nonce (section 5)."""
    sec = doc_section("## 5. Transaction result codes")
    m = re.search(r"In a block, codes ([\d–, and]+) leave no trace.*?every other non-zero code\s+"
                  r"\(([\d–, ]+)\) consumes the nonce", sec, re.S)
    assert m, "section 5 must state which codes consume the nonce"

    def codes(text):
        out = set()
        for part in re.split(r",\s*|\s+and\s+", text.strip()):
            lo, _, hi = part.partition("–")
            out |= set(range(int(lo), int(hi or lo) + 1))
        return out
    return codes(m.group(1)), codes(m.group(2))


def test_which_codes_consume_the_nonce_as_documented():
    """Section 5 (and section 9, which refers to it): authentication failures leave no trace,
    action failures consume the nonce. Checked on a real block for one tx of each kind."""
    from state.tx import build_tx
    from tests.chain_helpers import CHAIN_ID as TEST_CHAIN, GENESIS_MS, VALIDATORS, key

    no_trace, consumed = doc_nonce_rule()
    assert not no_trace & consumed and {0} | no_trace | consumed >= set(range(37))
    sec9 = doc_section("## 9. Client recipe")
    assert "section 5" in sec9 and not re.search(r"codes\s+\d+[–-]\d+", sec9)
    a, v = key(0), VALIDATORS[0]
    t = GENESIS_MS + 1000

    def tx(k, n, action, chain=TEST_CHAIN):
        return k, build_tx(chain, k.private, n, action)

    bad_sig = bytearray(build_tx(TEST_CHAIN, a.private, t + 2, ["faucet"]))
    bad_sig[-1] ^= 1
    cases = [
        tx(a, t + 1, ["faucet"], chain="other-chain"),                         # 3
        (a, bytes(bad_sig)),                                                   # 4
        tx(a, t + 10**10, ["faucet"]),                                         # 7
        (a, spec_sign_tx(TEST_CHAIN, a.private, t + 3, ["batch", [["cancel", 1, 1]] * 51])[2]),
        tx(a, t + 4, ["transfer", key(1).pub_key, "ÜSDC", 1]),                 # 10
        tx(a, t + 5, ["transfer", key(1).pub_key, "USDC", 0]),                 # 11
        tx(a, t + 6, ["cancel", 99, 1]),                                       # 16
        tx(v, t + 7, ["oracle", [["BTC", 1], ["BTC", 2]]]),                    # 9
    ]
    got = _block_codes_and_nonces(cases)
    assert [c for c, _ in got] == [3, 4, 7, 27, 10, 11, 16, 9]
    for code, used in got:
        assert used == (code in consumed) and used != (code in no_trace), code


def test_unicode_text_is_judged_not_malformed():
    """Section 2.1/2.2: chain ids of 1..50 and symbols of 1..16 Unicode characters decode;
    a foreign chain id is WRONG_CHAIN_ID and an unlisted symbol UNKNOWN_ASSET, not code 1."""
    from state import constants as C
    from state.errors import Code, TxError
    from state.machine import Ctx, check_chain_id
    from state.tx import decode_tx

    key = Ed25519PrivateKey.from_private_bytes(SEED)
    to = raw_pub(Ed25519PrivateKey.from_private_bytes(RECIPIENT_SEED))
    long_id = "é" * C.MAX_CHAIN_ID_LEN       # 50 characters, 100 bytes
    tx = decode_tx(spec_sign_tx(long_id, key, NONCE, ["transfer", to, "€" * 16, 1])[2])
    with pytest.raises(TxError) as e:
        check_chain_id(tx, Ctx(1, NONCE, CHAIN_ID))
    assert e.value.code == Code.WRONG_CHAIN_ID
    for chain_id, asset in ((long_id + "é", "USDC"), (CHAIN_ID, "€" * 17), ("", "USDC")):
        with pytest.raises(TxError) as e:
            decode_tx(spec_sign_tx(chain_id, key, NONCE, ["transfer", to, asset, 1])[2])
        assert e.value.code == Code.MALFORMED_TX


def test_invalid_field_is_documented_for_the_oracle_duplicate():
    from state.errors import Code

    sec = doc_section("## 5. Transaction result codes")
    row = re.search(r"^\| 9 \| `INVALID_FIELD` \|([^\n]*)", sec, re.M).group(1)
    assert "twice" in row and "oracle" in row and "no code path" not in row
    assert Code.INVALID_FIELD == 9


def test_bft_time_rule_as_documented():
    """Section 7's BFT time, implemented from its words, agrees with the node."""
    import random

    from consensus.types import CommitSig
    from consensus.vote_set import bft_time

    assert "reaches half the signers' total power, rounded down" in DOC

    def spec(sigs, powers):
        total = sum(powers[s.validator] for s in sigs)
        acc = 0
        for s in sorted(sigs, key=lambda s: s.time_ms):
            acc += powers[s.validator]
            if acc >= total // 2:
                return s.time_ms
    rng = random.Random(5)
    for _ in range(300):
        n = rng.randint(1, 6)
        keys = [bytes([i]) * 32 for i in range(n)]
        powers = {k: rng.randint(1, 4) for k in keys}
        sigs = [CommitSig(k, rng.randint(0, 50), b"") for k in keys]
        assert bft_time(sigs, powers) == spec(sigs, powers)


def test_checktx_clock_is_documented_as_the_code_uses_it():
    """Sections 3.2 and 6: CheckTx judges time rules at the last committed block's time
    (node/mempool.py), and the doc shows the log that says so."""
    s32 = doc_section("### 3.2 Nonces", "\n### ")
    s6 = doc_section("## 6. The mempool")
    assert "node's clock" not in s32 + s6
    assert "at the last committed block's time" in s6 and "last committed block's time" in s32
    assert "checked at the last committed block's time" in DOC  # the log, in an example


# -- (g) JSON-RPC: the examples are real responses, checkable by the hashing rules ----------

@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    from tests.protocol_chain import example_chain

    c, at = example_chain(tmp_path_factory.mktemp("chain"))
    yield c, at
    c.close()


def doc_curl_examples() -> list[tuple[str, str]]:
    """(command, response) of every `$ curl` line of the document."""
    from tests.protocol_chain import curl_examples

    return [(cmd, resp) for _, cmd, resp in curl_examples(DOC)]


def run_curl(c, cmd: str) -> str:
    return c.curl(cmd)


def elided(cmd: str, resp: str) -> bool:
    from tests.protocol_chain import elided as shortened

    return shortened(cmd, resp)


def test_rpc_examples_are_real_responses(chain):
    """Every complete `$ curl` example is byte for byte what the example chain answers
    (tests/protocol_chain.py: the node's Application, store and RPC server). After a
    deliberate change: `python -m tests.protocol_chain docs/PROTOCOL.md` rewrites them."""
    c, _ = chain
    checked = []
    for cmd, resp in doc_curl_examples():
        if elided(cmd, resp):
            continue
        assert run_curl(c, cmd) == resp, f"docs/PROTOCOL.md example differs:\n{cmd}"
        checked.append(cmd)
    methods = {re.search(r"26657/?(\w*)", c_).group(1) for c_ in checked}
    methods |= {m for c_ in checked for m in re.findall(r'"method":"(\w+)"', c_)}
    from rpc.methods import METHODS

    shown = {"block", "block_results", "tx", "status", "account", "broadcast_tx_sync",
             "validators", "blockchain", "markets", "orderbook", "open_orders", "order",
             "fills", "positions", "margin_account", "oracle", "mark_prices"}
    assert shown <= methods, shown - methods
    assert methods - {""} <= set(METHODS) | {"nope"}


def _b(text: str) -> bytes:
    return bytes.fromhex(text)


def spec_ms(rfc3339: str) -> int:
    from datetime import datetime, timezone

    dt = datetime.strptime(rfc3339, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return round(dt.timestamp() * 1000)


def spec_commit_wire(c: dict) -> list:
    return [int(c["height"]), c["round"], _b(c["block_id"]["hash"]),
            [[_b(s["validator_address"]), spec_ms(s["timestamp"]),
              base64.b64decode(s["signature"])] for s in c["signatures"]]]


def check_block_response(res: dict, powers: dict[bytes, int]) -> None:
    """Section 7's rules, from the JSON alone: the header hash, data hash, last commit hash,
    BFT time and commit signatures of a `block` result."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    hd, blk = res["block"]["header"], res["block"]
    wire = [hd["chain_id"], int(hd["height"]), spec_ms(hd["time"]),
            _b(hd["last_block_id"]["hash"]), _b(hd["last_commit_hash"]), _b(hd["data_hash"]),
            _b(hd["validators_hash"]), _b(hd["app_hash"]), _b(hd["last_results_hash"]),
            _b(hd["evidence_hash"]), _b(hd["proposer_address"])]
    assert hashlib.sha256(enc(wire)).hexdigest().upper() == res["block_id"]["hash"]
    txs = [base64.b64decode(t) for t in blk["data"]["txs"]]
    assert hashlib.sha256(enc([hashlib.sha256(t).digest() for t in txs])).hexdigest().upper() \
        == hd["data_hash"]
    lc = blk["last_commit"]
    if lc is None:
        assert hd["height"] == "1" and hd["last_commit_hash"] == ""
        return
    cw = spec_commit_wire(lc)
    assert hashlib.sha256(enc(cw)).hexdigest().upper() == hd["last_commit_hash"]
    assert lc["block_id"]["hash"] == hd["last_block_id"]["hash"]
    assert int(lc["height"]) == int(hd["height"]) - 1
    sigs = sorted(cw[3], key=lambda s: s[1])
    half, acc = sum(powers[s[0]] for s in sigs) // 2, 0
    for who, t, _ in sigs:
        acc += powers[who]
        if acc >= half:
            assert t == spec_ms(hd["time"]), "header time is not the BFT time of its commit"
            break
    for who, t, sig in cw[3]:
        Ed25519PublicKey.from_public_bytes(who).verify(sig, enc(
            ["perpchain/vote/1", hd["chain_id"], 2, cw[0], cw[1], cw[2], t]))


def test_block_example_obeys_the_hashing_rules(chain):
    c, _ = chain
    powers = {bytes.fromhex(v["address"]): int(v["voting_power"])
              for v in c.call("validators", {"height": 1})["validators"]}
    for h in range(1, c.app.tip.height + 1):          # the checker accepts the real chain
        check_block_response(c.call("block", {"height": h}), powers)
    tampered = c.call("block", {"height": 3})
    tampered["block"]["header"]["time"] = tampered["block"]["header"]["time"][:-2] + "9Z"
    with pytest.raises(AssertionError):
        check_block_response(tampered, powers)
    [(_, resp)] = [(k, r) for k, r in doc_curl_examples()
                   if "/block?height=" in k and '"result"' in r]
    check_block_response(json.loads(resp)["result"], powers)


def spec_results_hash(res: dict) -> str:
    """Section 4.1: sha256(enc(results)), rebuilt from a `block_results` result."""
    def events(evs):
        return [[e["type"], [[a["key"], a["value"]] for a in e["attributes"]]] for e in evs]
    results = [[r["code"], r["log"], events(r["events"])] for r in res["txs_results"]]
    if res["finalize_block_events"]:
        results.append([0, "block", events(res["finalize_block_events"])])
    return hashlib.sha256(enc(results)).hexdigest().upper()


def test_block_results_give_the_next_last_results_hash(chain):
    """block_results serves every result entry, so last_results_hash is checkable."""
    c, _ = chain
    for h in range(1, c.app.tip.height):
        res = c.call("block_results", {"height": h})
        nxt = c.call("block", {"height": h + 1})["block"]["header"]
        assert spec_results_hash(res) == nxt["last_results_hash"] == res["results_hash"]
    [resp] = [r for k, r in doc_curl_examples() if "block_results" in k]
    res = json.loads(resp)["result"]
    assert res["finalize_block_events"] and spec_results_hash(res) == res["results_hash"]


def test_blockchain_block_size_is_the_encoding_length(chain):
    c, _ = chain
    metas = c.call("blockchain", {"minHeight": 1, "maxHeight": 3})["block_metas"]
    assert [m["block_size"] for m in metas] == \
        [str(len(c.store.block_bytes(h))) for h in (3, 2, 1)]


# -- (h) JSON-RPC parameters, as documented ---------------------------------------------------

def doc_method_params() -> dict[str, list[str]]:
    """Each method's parameters in positional order, from its `Parameters:` line."""
    sec = doc_section("### 8.3 Methods", "\n### ")
    out = {}
    for m in re.finditer(r"^#### `(\w+)`\n\n(.*?)\n\n", sec, re.M | re.S):
        first = m.group(2).replace("\n", " ")
        if first.startswith("No parameters."):
            out[m.group(1)] = []
            continue
        p = re.match(r"Parameters \(positional order\): (.*?)\.(?: |$)", first)
        assert p, f"`{m.group(1)}`: its section must start with its parameters"
        out[m.group(1)] = re.findall(r"`(\w+)`", p.group(1))
    return out


def test_positional_params_follow_the_documented_order(chain):
    """8.1/8.3: an array of params is read in the order each method documents."""
    from rpc.methods import METHODS
    from tests.protocol_chain import MAKER, USER, VALIDATOR

    c, at = chain
    documented = doc_method_params()
    assert set(documented) == set(METHODS)
    open_id = c.call("open_orders", {"address": USER.address})["orders"][0]["order_id"]
    wire = example()["wire bytes"]
    sample = {
        "tx": {"hash": c.call("block", {"height": at["transfer"]})["block"]["data"]["txs"][0]},
        "block": {"height": 3}, "commit": {"height": 3}, "block_results": {"height": 3},
        "validators": {"height": 2}, "blockchain": {"minHeight": 2, "maxHeight": 4},
        "account": {"address": USER.address}, "positions": {"address": USER.address},
        "margin_account": {"address": USER.address},
        "open_orders": {"address": MAKER.address, "market": 1},
        "order": {"market": "BTC-USD", "order_id": open_id},
        "fills": {"address": USER.address, "market": 1, "page": 1, "per_page": 5},
        "orderbook": {"market": "BTC-USD", "depth": 3},
        "funding_history": {"market": "BTC-USD", "limit": 5},
        "evidence": {"validator": VALIDATOR.address},
        "broadcast_tx_sync": {"tx": base64.b64encode(wire).decode()},
        "broadcast_tx_commit": {"tx": base64.b64encode(wire).decode()},
        "broadcast_evidence": {"evidence": {"vote_a": "AA==", "vote_b": "AA=="}},
        "liquidations": {"address": USER.address, "limit": 5},
        "adl_queue": {"address": MAKER.address},
        "twap_orders": {"address": USER.address},
        "lending_account": {"address": USER.address},
        "interest_history": {"asset": "USDC", "limit": 5},
        "sync_context": {"height": 3},
    }
    sample["tx"]["hash"] = hashlib.sha256(base64.b64decode(sample["tx"]["hash"])).hexdigest()
    for method, names in documented.items():
        if not names:
            continue
        named = sample[method]
        assert set(named) <= set(names), method
        positional = [named.get(n) for n in names]
        while positional and positional[-1] is None:
            positional.pop()
        a = c.request({"jsonrpc": "2.0", "id": 1, "method": method, "params": named})
        b = c.request({"jsonrpc": "2.0", "id": 1, "method": method, "params": positional})
        assert a == b, method
    # the other way to find an order: address and cloid (positions 3 and 2)
    by_cloid = [None, None, 3, USER.address]
    assert c.call("order", by_cloid)["order_id"] == open_id


BAD_HEIGHTS = ["1.5", "true", "+5", " 5", "5 ", "٥", "５", "1e3", "0x5", "-1", "5_0", 1.5,
               True, 2.0, [5], {"h": 5}, "1" * 30]


@pytest.mark.parametrize("method,name", [("block", "height"), ("commit", "height"),
                                         ("block_results", "height"),
                                         ("validators", "height"),
                                         ("blockchain", "minHeight"),
                                         ("blockchain", "maxHeight")])
def test_height_params_are_strict(chain, method, name):
    """8.1: a height is a JSON integer or a string of ASCII digits; anything else -32602."""
    c, _ = chain
    for bad in BAD_HEIGHTS:
        out = c.request({"jsonrpc": "2.0", "id": 1, "method": method, "params": {name: bad}})
        assert out.get("error", {}).get("code") == -32602, (bad, out)
    status, body = c.http("GET", f"/{method}?{name}=%2B5")
    assert json.loads(body)["error"]["code"] == -32602
    for good in (3, "3", '"3"'):
        out = c.request({"jsonrpc": "2.0", "id": 1, "method": method, "params": {name: good}})
        assert "result" in out, (good, out)
    sec = doc_section("### 8.1 Transport", "\n### ")
    assert "a JSON integer or a string of ASCII digits" in sec


def test_height_not_available_is_documented_for_every_method_that_returns_it(chain):
    c, _ = chain
    row = re.search(r"^\| -32002 \| `HEIGHT_NOT_AVAILABLE` \|([^\n]*)", DOC, re.M).group(1)
    for method, params in (("block", {"height": 999}), ("commit", {"height": 999}),
                           ("block_results", {"height": 999}), ("validators", {"height": 999}),
                           ("blockchain", {"minHeight": 999})):
        out = c.request({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        assert out["error"]["code"] == -32002, method
        assert f"`{method}`" in row, method


# -- (i) what a client reads: types, nulls, enums, events -------------------------------------

def _walk(obj, path=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk(v, k)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v, path)
    else:
        yield path, obj


def doc_key_list(label: str) -> set[str]:
    sec = doc_section("### 8.1 Transport", "\n### ")
    m = re.search(rf"\*\*{label}\*\*[^:]*:(.*?)\n\n", sec, re.S)
    assert m, f"8.1 must list the {label}"
    return set(re.findall(r"`(\w+)`", m.group(1)))


def all_results(c, at):
    from tests.protocol_chain import MAKER, USER

    out = []
    for cmd, resp in doc_curl_examples():
        if not elided(cmd, resp):
            got = json.loads(run_curl(c, cmd))
            out += got if isinstance(got, list) else [got]
    for method, params in (("open_orders", {"address": USER.address}),
                           ("positions", {"address": MAKER.address}),
                           ("margin_account", {"address": MAKER.address}),
                           ("account", {"address": MAKER.address}),
                           ("commit", {"height": 1}), ("block", {"height": 1}),
                           ("block_results", {"height": at["trigger"]}),
                           ("fills", {}), ("evidence", {}), ("consensus_state", {}),
                           ("net_info", {}), ("num_unconfirmed_txs", {}), ("assets", {})):
        out.append({"result": c.call(method, params)})
    return out


def test_json_numbers_and_nulls_are_the_documented_ones(chain):
    """8.1 lists the only keys whose values are JSON numbers and those that may be null;
    every other value is a string (or a bool / object / array as documented)."""
    c, at = chain
    numbers, strings, nulls = set(), set(), set()
    for res in all_results(c, at):
        if "result" not in res:
            continue
        for key, v in _walk(res["result"]):
            if type(v) is int:
                numbers.add(key)
            elif type(v) is str:
                strings.add(key)
            elif v is None:
                nulls.add(key)
    assert numbers == doc_key_list("JSON numbers")
    assert numbers & strings == doc_key_list("Both")
    assert nulls <= doc_key_list("May be null")


def test_enum_strings_and_default_leverage_documented(chain):
    from state import orders
    from tests.protocol_chain import MAKER

    c, at = chain
    sec = doc_section("### 4.2 Trading", "\n### 4.3")
    for name in orders.KIND_NAMES + orders.TIF_NAMES:
        assert f"`{name}`" in sec, name
    seen = {(k, v) for res in all_results(c, at) for k, v in _walk(res.get("result", {}))
            if k in ("side", "kind", "tif", "status", "taker_side", "reason")}
    for k, v in seen:
        assert f"`{v}`" in DOC, (k, v)
    pos = c.call("positions", {"address": MAKER.address})["positions"]
    max_lev = c.call("markets")["markets"][0]["max_leverage"]
    assert pos and pos[0]["leverage"] == max_lev
    assert "market's maximum leverage (`max_leverage`" in sec


def doc_events() -> dict[str, set[str]]:
    sec = doc_section("### 4.3 Events", "\n---")
    out = {}
    for m in re.finditer(r"^\| `(\w+)` \|[^|]*\|([^\n]*)\|$", sec, re.M):
        out[m.group(1)] = set(re.findall(r"`(\w+)`", m.group(2)))
    assert out, "section 4.3 must have the events table"
    return out


def code_event_literals() -> dict[str, set[str]]:
    """Event types the state machine names literally (calls such as Event("x", ...),
    event("x", ...) or a helper whose name ends in `ev`), with the literal attribute keys
    written in the same call."""
    import ast

    root = DOC_PATH.parents[1] / "state"
    out: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) \
                else ""
            first = node.args[0]
            if not (name.lower().endswith(("event", "ev")) and isinstance(first, ast.Constant)
                    and isinstance(first.value, str)):
                continue
            keys = out.setdefault(first.value, set())
            for sub in node.args[1:]:
                for t in ast.walk(sub):
                    if isinstance(t, ast.Tuple) and len(t.elts) == 2 and \
                            isinstance(t.elts[0], ast.Constant) and isinstance(t.elts[0].value, str):
                        keys.add(t.elts[0].value)
    return out


def test_every_event_type_and_attribute_is_documented(chain):
    """Section 4.3 lists every event the code can emit with all its attributes: the types
    and keys written in state/ (static), and every event the example chain emitted."""
    c, at = chain
    documented = doc_events()
    literal = code_event_literals()
    assert len(literal) >= 15
    for typ, keys in literal.items():
        assert typ in documented, f"event {typ!r} missing from docs/PROTOCOL.md 4.3"
        assert keys <= documented[typ], (typ, keys - documented[typ])
    emitted: dict[str, set[str]] = {}
    for h in range(1, c.app.tip.height + 1):
        res = c.call("block_results", {"height": h})
        for e in [e for r in res["txs_results"] for e in r["events"]] + \
                res["finalize_block_events"]:
            emitted.setdefault(e["type"], set()).update(a["key"] for a in e["attributes"])
    assert {"order", "fill", "cancel", "trigger", "batch_item"} <= set(emitted)
    for typ, keys in emitted.items():
        assert keys <= documented.get(typ, set()), (typ, keys - documented.get(typ, set()))
    assert set(documented) <= set(literal) | set(emitted), "documented events nobody emits"


def test_a_client_from_the_doc_alone_trades(tmp_path):
    """The document's recipe (section 9), with this file's encoder and signer and nothing
    but HTTP: read the chain id, sign an order and a faucet, broadcast them as JSON-RPC, and
    find them executed with `tx` once a block is made."""
    from tests.protocol_chain import RPCChain

    c = RPCChain(tmp_path)
    try:
        def rpc(method, **params):
            body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
            return json.loads(c.http("POST", "/", body.encode())[1])

        chain_id = rpc("status")["result"]["node_info"]["network"]
        key = Ed25519PrivateKey.from_private_bytes(SEED)
        now = c.time_ms + 1      # a client uses its clock; the chain's is at genesis here
        hashes = []
        for nonce, action in ((now, ["faucet"]),
                              (now + 1, ["order", 1, True, 0, 59_000_000_000, 100_000, 0,
                                         False, 0, 99, 0])):
            wire = spec_sign_tx(chain_id, key, nonce, action)[2]
            out = rpc("broadcast_tx_sync", tx=base64.b64encode(wire).decode())["result"]
            assert out["code"] == 0, out
            hashes.append(out["hash"])
        assert rpc("tx", hash=hashes[0])["error"]["code"] == -32001
        c.block([t.raw for t in c.app.mempool.reap(10, 1 << 20)])
        results = [rpc("tx", hash=h)["result"]["tx_result"] for h in hashes]
        assert [r["code"] for r in results] == [0, 0]
        order = {a["key"]: a["value"] for a in results[1]["events"][0]["attributes"]}
        assert results[1]["events"][0]["type"] == "order" and order["status"] == "open"
        assert order["price"] == "59000" and order["size"] == "0.001" and order["cloid"] == "99"
    finally:
        c.close()
