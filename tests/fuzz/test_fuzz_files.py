"""Fuzz the files a node reads at start: config.toml, genesis.json, key files, the signer
state, the consensus WAL and the store's own files (issue 8).

Properties (hypothesis), whatever the bytes (random, or a valid file mutated):
* load_config / load_genesis / load_key / load_last_signed return a value or raise their
  own typed error (ConfigError, GenesisError, KeyFileError, SignerStateError) whose message
  names the file: never another exception, never a raw traceback;
* WAL(path) never raises on a damaged log: it keeps the longest valid prefix of records
  (each [int height, known kind, body]) and cuts the file to it;
* a store whose files are damaged opens, or raises a StoreError naming the store.

The default suite runs a couple of hundred cases per file; `-m slow` runs thousands. Cases
and crashes are counted in FUZZ_CASES (printed at the end with `-s`).
"""

import json
import os
import shutil
import struct
import tempfile
import zlib
from collections import Counter
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from consensus import wal as W
from consensus.messages import PREVOTE, Vote, sign_vote, LastSigned
from consensus.signer_state import SignerStateError, load_last_signed, save_last_signed
from node.config import Config, ConfigError, load_config, render_config
from node.genesis import GenesisError, load_genesis, make_genesis_doc
from node.keys import KeyFileError, KeyPair, load_key
from node.store import StoreError
from node.store_check import open_verified
from tests.fuzz.mutation import mutate

FAST = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
SLOW = settings(FAST, max_examples=3_000)
FUZZ_CASES: Counter = Counter()
TMP = Path(tempfile.mkdtemp(prefix="perpchain-fuzz-files-"))


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    print("\nfuzz cases (files):", dict(FUZZ_CASES))
    shutil.rmtree(TMP, ignore_errors=True)


# -- valid files to mutate ------------------------------------------------------------------

KEY = KeyPair.from_seed(bytes(range(32)))
VALID_CONFIG = render_config(Config()).encode()
VALID_GENESIS = json.dumps(make_genesis_doc("fuzz-chain", 1_700_000_000_000,
                                            [(KEY.pub_key, 10, "v0")]), indent=1).encode()
VALID_KEY = json.dumps(KEY.to_json()).encode()


def _valid_signer_state() -> bytes:
    v = sign_vote(KEY.private, Vote(PREVOTE, 7, 1, b"\1" * 32, KEY.pub_key,
                                    1_700_000_000_000, b""), "fuzz-chain")
    path = TMP / "ss-valid.bin"
    save_last_signed(path, LastSigned(7, 1, 2, v))
    return path.read_bytes()


@st.composite
def mutated(draw, valid: bytes) -> bytes:
    return mutate(draw, valid, fresh=True)


json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.text(max_size=12),
              st.floats(allow_nan=False, allow_infinity=False)),
    lambda kids: st.one_of(st.lists(kids, max_size=4),
                           st.dictionaries(st.text(max_size=10), kids, max_size=4)),
    max_leaves=15)


@st.composite
def json_mutated(draw, valid: bytes) -> bytes:
    """Replace one value (at any depth) of a valid JSON document."""
    doc = json.loads(valid)
    node = doc
    for _ in range(draw(st.integers(0, 4))):
        if isinstance(node, dict) and node:
            k = draw(st.sampled_from(sorted(node)))
            if draw(st.booleans()) or not isinstance(node[k], (dict, list)):
                node[k] = draw(json_value)
                break
            node = node[k]
        elif isinstance(node, list) and node:
            i = draw(st.integers(0, len(node) - 1))
            if draw(st.booleans()) or not isinstance(node[i], (dict, list)):
                node[i] = draw(json_value)
                break
            node = node[i]
    return json.dumps(doc).encode()


def _write(name: str, data: bytes) -> Path:
    path = TMP / name
    path.write_bytes(data)
    return path


def _expect_typed(kind: str, fn, path: Path, error) -> None:
    """`fn(path)` succeeds or raises `error` naming `path`; anything else is a crash."""
    FUZZ_CASES[kind] += 1
    try:
        fn(path)
    except error as e:
        assert str(path) in str(e), f"{kind}: the error does not name the file: {e}"
    except Exception:
        FUZZ_CASES[f"{kind} crashes"] += 1
        raise


# -- config.toml, genesis.json, key files, signer state ---------------------------------------

def _config_case(data: bytes) -> None:
    _expect_typed("config.toml", load_config, _write("config.toml", data), ConfigError)


def _genesis_case(data: bytes) -> None:
    _expect_typed("genesis.json", load_genesis, _write("genesis.json", data), GenesisError)


def _key_case(data: bytes) -> None:
    _expect_typed("key files", load_key, _write("key.json", data), KeyFileError)


def _signer_case(data: bytes) -> None:
    _expect_typed("signer state", load_last_signed, _write("signer.bin", data),
                  SignerStateError)


config_inputs = st.one_of(mutated(VALID_CONFIG), st.binary(max_size=200),
                          st.text(max_size=200).map(str.encode))
genesis_inputs = st.one_of(mutated(VALID_GENESIS), json_mutated(VALID_GENESIS))
key_inputs = st.one_of(mutated(VALID_KEY), json_mutated(VALID_KEY))
signer_inputs = st.one_of(st.just(b"").flatmap(lambda _: mutated(_valid_signer_state())),
                          st.binary(max_size=200))


@FAST
@given(config_inputs)
@example(b"\x80")                                      # found: not UTF-8 (UnicodeDecodeError)
@example(VALID_CONFIG.replace(b'"tcp://127.0.0.1:26657"', b'"ucp://x:1"'))  # found: no file name
def test_config(data):
    _config_case(data)


@FAST
@given(genesis_inputs)
def test_genesis(data):
    _genesis_case(data)


@FAST
@given(key_inputs)
@example(VALID_KEY.replace(KEY.to_json()["pub_key"]["value"].encode(), b"x")
         .replace(b'"x"', b"null"))                    # found: pub_key.value null (TypeError)
@example(b"[1]")
def test_key_file(data):
    _key_case(data)


@FAST
@given(signer_inputs)
def test_signer_state(data):
    _signer_case(data)


# -- the consensus WAL --------------------------------------------------------------------------

def _record(height, kind, body) -> bytes:
    payload = msgpack.packb([height, kind, body], use_bin_type=True)
    return struct.pack(">II", len(payload), zlib.crc32(payload)) + payload


VALID_WAL = b"".join(_record(5, k, b) for k, b in [(W.VOTE, b"v" * 40), (W.TIMEOUT, [1, 5, 0]),
                                                  (W.SIGNED, ["vote", b"s" * 30])])
odd_record = st.builds(lambda p: struct.pack(">II", len(p), zlib.crc32(p)) + p,
                       st.one_of(st.binary(max_size=40),
                                 st.lists(st.one_of(st.integers(-5, 2**64 - 1), st.text(max_size=8),
                                                    st.binary(max_size=8)), max_size=4)
                                 .map(lambda o: msgpack.packb(o, use_bin_type=True))))
wal_inputs = st.one_of(mutated(VALID_WAL), st.binary(max_size=200),
                       st.tuples(mutated(VALID_WAL), odd_record).map(lambda t: t[0] + t[1]))


def _wal_case(data: bytes) -> None:
    FUZZ_CASES["WAL"] += 1
    path = _write("cs.wal", data)
    try:
        w = W.WAL(path)
    except Exception:
        FUZZ_CASES["WAL crashes"] += 1
        raise
    w.close()
    kept = path.read_bytes()
    assert data.startswith(kept), "the WAL kept bytes that were not a prefix"
    for h, kind, _ in w.records:
        assert type(h) is int and h >= 0 and kind in W.KINDS
    assert W.WAL(path).records == w.records    # what was kept reads back the same


@FAST
@given(wal_inputs)
def test_wal(data):
    _wal_case(data)


# -- the store's own files -----------------------------------------------------------------------

def _store_template() -> Path:
    from tests.unit.test_store import build
    base = TMP / "store-template"
    if not base.exists():
        build(base, 4, txs_per_block=8)
    return base


@st.composite
def store_damage(draw):
    names = sorted(n for n in os.listdir(_store_template()) if n not in ("LOCK", "LOG"))
    return draw(st.sampled_from(names)), draw(st.data())


def test_store_marker_not_utf8_regression():
    """Found by test_store_files: a COMMITTED_HEIGHT that is not UTF-8 (UnicodeDecodeError)."""
    db = TMP / "store-marker"
    shutil.rmtree(db, ignore_errors=True)
    shutil.copytree(_store_template(), db)
    (db / "COMMITTED_HEIGHT").write_bytes(b"\xb00000000000000000004\n")
    with pytest.raises(StoreError, match="COMMITTED_HEIGHT"):
        open_verified(db)


def _store_case(name: str, data) -> None:
    FUZZ_CASES["store files"] += 1
    db = TMP / "store"
    shutil.rmtree(db, ignore_errors=True)
    shutil.copytree(_store_template(), db)
    f = db / name
    f.write_bytes(data.draw(mutated(f.read_bytes())))
    try:
        open_verified(db).close()
    except StoreError as e:
        assert str(db) in str(e)
    except Exception:
        FUZZ_CASES["store files crashes"] += 1
        raise


@settings(FAST, max_examples=60)
@given(store_damage())
def test_store_files(case):
    _store_case(*case)


# -- long runs ----------------------------------------------------------------------------------

@pytest.mark.slow
@SLOW
@given(st.one_of(config_inputs.map(lambda d: ("config", d)),
                 genesis_inputs.map(lambda d: ("genesis", d)),
                 key_inputs.map(lambda d: ("key", d)),
                 signer_inputs.map(lambda d: ("signer", d)),
                 wal_inputs.map(lambda d: ("wal", d))))
def test_all_files_long(case):
    kind, data = case
    {"config": _config_case, "genesis": _genesis_case, "key": _key_case,
     "signer": _signer_case, "wal": _wal_case}[kind](data)


@pytest.mark.slow
@settings(FAST, max_examples=600)
@given(store_damage())
def test_store_files_long(case):
    _store_case(*case)
