"""Fuzz the tx decoder and its stateless checks, and the JSON-RPC parser and parameters.

Properties (hypothesis): whatever the bytes or JSON,
* `state.tx.decode_tx` returns a Tx or raises TxError with a code of the table (never any
  other exception), and what it accepts re-encodes to the same bytes, carries a
  schema-valid action and survives `signature_ok` / `check_chain_id` without raising;
* `rpc.params` readers return a value or raise RPCError INVALID_PARAMS;
* the JSON-RPC server (rpc/server.py over the node's methods, on a real in-process chain)
  answers every body with JSON-RPC objects whose error codes are in the table and never
  -32603 INTERNAL_ERROR (which means an unexpected exception inside a method).

The default suite runs a few hundred cases per property; `-m slow` runs thousands. Cases
are counted in FUZZ_CASES (printed at the end with `-s`).
"""

import base64
import json
from collections import Counter

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpc import params as P
from rpc.errors import RPCCode, RPCError
from state.codec import encode
from state.errors import Code, TxError
from state.machine import Ctx, check_chain_id
from state.tx import ACTION_SCHEMAS, BATCHABLE, check_action, decode_tx, signature_ok

FAST = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
SLOW = settings(FAST, max_examples=5_000)
FUZZ_CASES: Counter = Counter()

# -- strategies ----------------------------------------------------------------------------

leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**64), 2**64 + 5),
                 st.text(max_size=20), st.binary(max_size=70), st.floats(allow_nan=False))
msgpack_obj = st.recursive(leaf, lambda kids: st.one_of(
    st.lists(kids, max_size=6), st.dictionaries(st.text(max_size=5), kids, max_size=3)),
    max_leaves=25)
VALID_FIELDS = {
    "uint": st.integers(0, 2**64 - 1),
    "int": st.integers(-(2**63) + 1, 2**63 - 1),
    "bool": st.booleans(),
    "addr": st.binary(min_size=32, max_size=32),
    "str": st.text(min_size=1, max_size=16),
    "bin": st.binary(max_size=8),
    "list": st.lists(leaf, max_size=4),
    "prices": st.lists(st.tuples(st.text(min_size=1, max_size=16), st.integers(0, 2**64 - 1))
                       .map(list), min_size=1, max_size=64),
}
BAD_FIELDS = st.one_of(st.integers(-3, 2**64 + 3), st.booleans(), st.text(max_size=18),
                       st.binary(max_size=34), st.none(), st.lists(leaf, max_size=3))


def mostly(valid, bad):
    """`valid` seven times in eight, else `bad`."""
    return st.integers(0, 7).flatmap(lambda i: bad if i == 0 else valid)


def _field(kind: str):
    return mostly(VALID_FIELDS[kind], BAD_FIELDS)


@st.composite
def actions(draw, depth: int = 0):
    """Mostly schema-shaped actions with some fields off by a little."""
    typ = draw(mostly(st.sampled_from(sorted(ACTION_SCHEMAS)), st.sampled_from(["mint", ""])))
    schema = ACTION_SCHEMAS.get(typ, (("x", "uint"),))
    fields = []
    for _name, kind in schema:
        if kind == "action_list":
            if depth:
                fields.append(draw(leaf))
            else:
                n = draw(st.integers(0, 52))
                sub = draw(st.lists(actions(depth=1), min_size=min(n, 3), max_size=min(n, 3)))
                fields.append(sub + [sub[0]] * (n - len(sub)) if sub else [])
        else:
            fields.append(draw(_field(kind)))
    extra = draw(mostly(st.just(0), st.sampled_from([1, -1])))
    if extra > 0:
        fields.append(draw(leaf))
    elif extra < 0 and fields:
        fields.pop()
    return [typ, *fields]


@st.composite
def envelopes(draw):
    return [draw(mostly(st.text(min_size=1, max_size=50), st.one_of(st.text(max_size=52), leaf))),
            draw(mostly(st.binary(min_size=32, max_size=32),
                        st.one_of(st.binary(max_size=33), leaf))),
            draw(mostly(st.integers(0, 2**64 - 1), st.one_of(st.integers(-2, 2**64 + 2), leaf))),
            draw(mostly(actions(), leaf)),
            draw(mostly(st.binary(min_size=64, max_size=64),
                        st.one_of(st.binary(max_size=65), leaf)))]


def _pack(obj) -> bytes:
    try:
        return msgpack.packb(obj, use_bin_type=True)
    except (OverflowError, TypeError, ValueError):
        return b"\xc1"  # never valid msgpack


# -- the tx decoder --------------------------------------------------------------------------

def _judge_raw(raw: bytes) -> None:
    FUZZ_CASES["decode_tx"] += 1
    try:
        tx = decode_tx(raw)
    except TxError as e:
        assert isinstance(e.code, Code) and e.code != Code.OK and e.log
        return
    FUZZ_CASES["decode_tx accepted"] += 1
    assert encode([tx.chain_id, tx.signer, tx.nonce, list(tx.action), tx.signature]) == raw
    assert check_action(list(tx.action)) == tx.action
    assert signature_ok(tx) in (True, False)
    try:
        check_chain_id(tx, Ctx(1, 0, "perpchain-localnet"))
    except TxError as e:
        assert e.code == Code.WRONG_CHAIN_ID


def _tx_bytes_cases(fn):
    return given(st.integers(0, 3).flatmap(lambda i: (
        st.binary(max_size=300), msgpack_obj.map(_pack), envelopes().map(_pack),
        envelopes().map(_pack))[i]))(fn)


@FAST
@_tx_bytes_cases
def test_decode_tx_gives_a_tx_or_a_coded_error(raw):
    _judge_raw(raw)


@pytest.mark.slow
@SLOW
@_tx_bytes_cases
def test_decode_tx_gives_a_tx_or_a_coded_error_long(raw):
    _judge_raw(raw)


@FAST
@given(st.one_of(actions(), msgpack_obj))
def test_check_action_gives_a_tuple_or_a_coded_error(action):
    FUZZ_CASES["check_action"] += 1
    try:
        out = check_action(action)
    except TxError as e:
        assert e.code in (Code.MALFORMED_TX, Code.UNKNOWN_ACTION, Code.BATCH_TOO_LARGE)
        return
    assert out[0] in ACTION_SCHEMAS and len(out) == 1 + len(ACTION_SCHEMAS[out[0]])
    if out[0] == "batch":
        assert all(a[0] in BATCHABLE for a in out[1])


# -- rpc.params ----------------------------------------------------------------------------

json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30)),
    lambda kids: st.one_of(st.lists(kids, max_size=4),
                           st.dictionaries(st.text(max_size=8), kids, max_size=4)),
    max_leaves=12)
param_text = st.one_of(st.text(max_size=70), st.from_regex(r'"?(0x)?[0-9a-fA-F +/=]{0,66}"?',
                                                           fullmatch=True))


def _params_case(v) -> None:
    FUZZ_CASES["rpc.params"] += 1
    for fn in (lambda: P.optional_height({"height": v}),
               lambda: P.uint_value(v, "n"),
               lambda: P.tx_bytes(v),
               lambda: P.hash_bytes(v),
               lambda: P.param({0: v}, "x", 0)):
        try:
            out = fn()
        except RPCError as e:
            assert e.code == RPCCode.INVALID_PARAMS and e.message
            continue
        assert out is None or isinstance(out, (int, bytes, str, list, dict, float, bool))
    if type(v) is str and v.isdigit() and v.isascii() and len(v) <= 20:
        n = int(v)
        if n < 2**64:
            assert P.optional_height({"height": v}) == n


@FAST
@given(st.one_of(json_value, param_text))
def test_rpc_param_readers_give_a_value_or_invalid_params(v):
    _params_case(v)


# -- the JSON-RPC server on a real chain -----------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from consensus.driver import check_evidence
    from tests.protocol_chain import example_chain

    c, _ = example_chain(tmp_path_factory.mktemp("fuzz_chain"))

    class Driver:  # what broadcast_evidence needs of a node's driver: the real check
        rs = None

        def submit_evidence(self, a, b):
            check_evidence(c.app.chain_id, *sorted((a, b)), c.app.tip.height + 1)

    c.app.driver = Driver()
    yield c
    c.close()


def _methods():
    from rpc.methods import METHODS
    return sorted(METHODS)


PARAM_NAMES = ["height", "minHeight", "maxHeight", "hash", "tx", "address", "market", "depth",
               "order_id", "cloid", "page", "per_page", "validator", "evidence"]
request = st.fixed_dictionaries(
    {"jsonrpc": st.sampled_from(["2.0", "2.0", "2.0", "1.0", 2]),
     "method": st.one_of(st.sampled_from(_methods()), st.text(max_size=8), st.integers()),
     "id": st.one_of(st.none(), st.integers(), st.text(max_size=4))},
    optional={"params": st.one_of(
        st.dictionaries(st.sampled_from(PARAM_NAMES), st.one_of(json_value, param_text),
                        max_size=4),
        st.lists(st.one_of(json_value, param_text), max_size=4), json_value)})
bodies = st.one_of(
    request.map(json.dumps), st.lists(st.one_of(request, json_value), max_size=5).map(json.dumps),
    json_value.map(json.dumps), st.binary(max_size=60).map(lambda b: b.decode("latin-1")))


def _check_response(out) -> None:
    items = out if isinstance(out, list) else [out]
    assert items
    known = {int(c) for c in RPCCode}
    for r in items:
        assert r["jsonrpc"] == "2.0" and ("result" in r) != ("error" in r), r
        if "error" in r:
            assert r["error"]["code"] in known and r["error"]["message"], r
            assert r["error"]["code"] != RPCCode.INTERNAL_ERROR, r
    json.dumps(out)


def _server_case(server, body: str) -> None:
    import trio

    FUZZ_CASES["rpc.server"] += 1
    out = trio.run(server.server.handle_body, body.encode("utf-8", "surrogatepass"))
    _check_response(out)


@FAST
@given(body=bodies)
def test_rpc_server_answers_every_body_with_a_typed_error_or_a_result(server, body):
    _server_case(server, body)


@pytest.mark.slow
@SLOW
@given(body=bodies)
def test_rpc_server_answers_every_body_long(server, body):
    _server_case(server, body)


@FAST
@given(method=st.sampled_from(_methods()), query=st.dictionaries(
    st.sampled_from(PARAM_NAMES), st.text(max_size=70), max_size=3))
def test_rpc_uri_form_never_crashes(server, method, query):
    """GET /method?k=v: every value a string (as parse_qsl gives them)."""
    import trio

    FUZZ_CASES["rpc.uri"] += 1
    out = trio.run(server.server.handle_one, {"jsonrpc": "2.0", "id": -1, "method": method,
                                              "params": query})
    _check_response(out)


def test_fuzz_regressions(server):
    """Inputs the fuzzers found, kept as plain cases: `evidence` with a non-string validator
    was an internal error (-32603); an address with spaces inside was read as 31 bytes;
    heights such as "+5" or "٥" were accepted."""
    for method, params in (("evidence", {"validator": True}), ("evidence", [5]),
                           ("account", {"address": "00 00 " + "0" * 58}),
                           ("account", {"address": " " + "0" * 64}),
                           ("block", {"height": "+5"}), ("block", {"height": "٥"})):
        out = server.request({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        assert out["error"]["code"] == RPCCode.INVALID_PARAMS, (method, params, out)
    with pytest.raises(RPCError):
        P.tx_bytes("0xab cd")
    assert P.tx_bytes(base64.b64encode(b"\x01").decode()) == b"\x01"
    assert P.tx_bytes("0xAb01") == b"\xab\x01"


def teardown_module(module):
    print(f"\nfuzz cases run: {dict(FUZZ_CASES)}")
