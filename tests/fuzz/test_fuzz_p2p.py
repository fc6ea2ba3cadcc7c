"""Fuzz what a peer can send a node: the p2p frame decoder and handshake, every consensus
and sync message handler, and the block and commit verifier (issue 8).

Properties (hypothesis), whatever the bytes:
* `FrameReader.next` returns [int, body] or None, or raises `Misbehaviour`;
* `P2P._handshake` returns a peer or raises `Misbehaviour` / `TooSlowError` / a link error;
* `check_body` accepts or raises `DecodeError`; what it accepts has the documented shape;
* `Block.decode` / `Commit.decode` raise only `MalformedBlock`, and `validate_block` /
  `Commit.verify` on what decodes raise only `InvalidBlockHeader` / `InvalidCommit`;
* a real `Driver` (around a real Application and LevelDB store), fed any message of any
  type, with real signed votes, proposals, blocks and commits mutated field by field or
  byte by byte, never lets an exception escape and never reaches its "BUG" path
  (`handler_bugs`): a bad message only ever drops the peer.

The default suite runs a few hundred cases per property; `-m slow` runs thousands. Cases
and crashes are counted in FUZZ_CASES (printed at the end with `-s`).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import msgpack
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consensus import messages as M
from consensus.driver import Driver, build_block, vals_of
from consensus.messages import (PRECOMMIT, PREVOTE, DecodeError, Proposal, Vote, check_body,
                                sign_proposal, sign_vote)
from consensus.types import (Block, Commit, CommitSig, InvalidBlockHeader, InvalidCommit,
                             MalformedBlock, validate_block)
from node.app import Application
from node.p2p import FrameReader, Misbehaviour, P2P, _pack
from node.store import Store
from node.run import driver_config
from tests.fuzz.mutation import mutate
from tests.sim.driver_harness import (CHAIN_ID, GENESIS_MS, NODE_KEYS, VAL_KEYS, make_config,
                                      make_genesis)
from tests.sim.test_driver_sim import _calm

FAST = settings(max_examples=250, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SLOW = settings(FAST, max_examples=5_000)
FUZZ_CASES: Counter = Counter()
PEER = NODE_KEYS[3].node_id
MSG_TYPES = (M.MSG_PROPOSAL, M.MSG_VOTE, M.MSG_STATUS, M.MSG_GET_BLOCKS, M.MSG_BLOCKS,
             M.MSG_GET_BLOCK, M.MSG_BLOCK, M.MSG_EVIDENCE)

# -- strategies ----------------------------------------------------------------------------

leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**64), 2**64 - 1),
                 st.sampled_from([0, 1, -1, 2**31, 2**63 - 1, 2**63, 2**64 - 1]),
                 st.text(max_size=10), st.binary(max_size=70), st.floats(allow_nan=False))
msgpack_obj = st.recursive(leaf, lambda kids: st.one_of(
    st.lists(kids, max_size=5), st.dictionaries(st.text(max_size=4), kids, max_size=3)),
    max_leaves=20)


def _mutate_obj(draw, obj):
    """Replace one field (at any depth) of a decoded message by an arbitrary value."""
    if type(obj) is not list or not obj or draw(st.booleans()):
        return draw(msgpack_obj) if draw(st.integers(0, 3)) == 0 else obj
    out = list(obj)
    i = draw(st.integers(0, len(out) - 1))
    out[i] = _mutate_obj(draw, out[i]) if type(out[i]) is list else draw(msgpack_obj)
    return out


def _mutated(draw, data: bytes) -> bytes:
    if draw(st.booleans()):
        return mutate(draw, data)
    try:
        obj = msgpack.unpackb(data, raw=False, use_list=True)
    except Exception:  # noqa: BLE001 - a mutation base that is not msgpack: bytes only
        return mutate(draw, data)
    try:
        return msgpack.packb(_mutate_obj(draw, obj), use_bin_type=True)
    except (OverflowError, TypeError, ValueError):
        return data


# -- a world: 4 genesis validators, a node at height 0, and real signed messages ------------


class _Applied(BaseException):
    """The driver committed a block (the example ends there)."""


class World:
    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="perpchain-fuzz-p2p-"))
        sc = _calm(4, label="fuzz")
        self.genesis = make_genesis(sc)
        cfg = make_config(sc)
        self.store = Store(self.root / "db")
        self.app = Application(cfg, self.genesis, self.store, NODE_KEYS[0], None)
        self.driver = Driver(CHAIN_ID, self.app, driver_config(cfg), self.root / "cs.wal",
                             self.root / "signer.bin", clock=lambda: GENESIS_MS + 10_000)
        self.drops: list[str] = []
        world = self

        class Net:
            def broadcast(self, *a, **k): pass
            def send(self, *a, **k): pass
            def drop(self, peer, why): world.drops.append(why)
        self.driver.net = Net()
        # Every example starts from the same place: height 1 undecided. A block the driver
        # would commit (a valid proposal with +2/3 precommits, a valid synced block) is
        # recorded instead of executed and ends the example, so the node stays at height 1.
        self.applied: list[int] = []

        def apply(block, commit):
            self.applied.append(block.header.height)
            raise _Applied()
        self.driver._apply = apply
        sel = self.app.selector(1)
        self.tip0 = self.app.tip          # genesis: block 1 follows it
        self.block1 = build_block(CHAIN_ID, self.app.tip, [b"tx"], VAL_KEYS[0].pub_key,
                                  vals_of(sel), None)
        bh = self.block1.hash()
        t = GENESIS_MS + 5
        self.votes = [sign_vote(k.private, Vote(typ, 1, 0, bh, k.pub_key, t, b""), CHAIN_ID)
                      for typ in (PREVOTE, PRECOMMIT) for k in VAL_KEYS[:4]]
        self.proposal = sign_proposal(VAL_KEYS[0].private,
                                      Proposal(1, 0, bh, -1, VAL_KEYS[0].pub_key, b"", t), CHAIN_ID)
        sigs = tuple(sorted((CommitSig(v.validator, v.time_ms, v.signature)
                             for v in self.votes if v.type == PRECOMMIT),
                            key=lambda s: s.validator))
        self.commit1 = Commit(1, 0, bh, sigs)
        other = sign_vote(VAL_KEYS[1].private, Vote(PREVOTE, 1, 0, b"", VAL_KEYS[1].pub_key, t,
                                                    b""), CHAIN_ID)
        self.evidence = [self.votes[1].encode(), other.encode()]

    def valid_bodies(self) -> dict[int, list]:
        b1, c1 = self.block1.encode(), msgpack.packb(self.commit1.to_wire(), use_bin_type=True)
        return {
            M.MSG_PROPOSAL: [self.proposal.encode(), b1],
            M.MSG_VOTE: self.votes[0].encode(),
            M.MSG_STATUS: [3, 0],
            M.MSG_GET_BLOCKS: [1, 5],
            M.MSG_BLOCKS: [[b1, c1]],
            M.MSG_GET_BLOCK: [1, self.block1.hash()],
            M.MSG_BLOCK: b1,
            M.MSG_EVIDENCE: list(self.evidence),
        }

    def close(self):
        self.driver.wal.f.close()
        self.store.close()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def world():
    w = World()
    yield w
    w.close()


@st.composite
def peer_message(draw, world: World):
    """(msg_type, body): mostly a real message with one part mutated, sometimes junk."""
    valid = world.valid_bodies()
    how = draw(st.sampled_from(("mutate", "mutate", "mutate", "junk", "valid")))
    msg_type = draw(st.sampled_from(MSG_TYPES)) if how != "junk" else \
        draw(st.one_of(st.sampled_from(MSG_TYPES), st.integers(-5, 300)))
    body = valid.get(msg_type, [])
    if how == "junk":
        return msg_type, draw(msgpack_obj)
    if how == "valid":
        return msg_type, body
    if type(body) is bytes:
        return msg_type, _mutated(draw, body)
    body = [list(x) if type(x) is list else x for x in body]
    if msg_type == M.MSG_BLOCKS:
        i = draw(st.integers(0, 1))
        body[0][i] = _mutated(draw, body[0][i])
        return msg_type, body
    i = draw(st.integers(0, len(body) - 1))
    if type(body[i]) is bytes and draw(st.booleans()):
        body[i] = _mutated(draw, body[i])
    else:
        body = _mutate_obj(draw, body)
    return msg_type, body


def _wire(body):
    return msgpack.unpackb(msgpack.packb(body, use_bin_type=True), raw=False, use_list=True)


async def _feed(world: World, msgs) -> None:
    d = world.driver
    async with trio.open_nursery() as nursery:
        d.nursery = nursery
        d.rs = None
        d._start_height(1)
        try:
            for msg_type, body in msgs:
                await d._process("net", PEER, (msg_type, _wire(body)))
        except _Applied:
            pass
        nursery.cancel_scope.cancel()


def _run_driver_case(world: World, msgs) -> None:
    bugs = world.driver.handler_bugs
    FUZZ_CASES["driver messages"] += len(msgs)
    try:
        trio.run(_feed, world, msgs)
    except BaseException:
        FUZZ_CASES["driver crashes"] += 1
        raise
    if world.driver.handler_bugs != bugs:
        FUZZ_CASES["driver crashes"] += 1
        pytest.fail(f"a peer message reached the driver's BUG path: {msgs!r}")


# -- properties -------------------------------------------------------------------------------


def _encodable(msgs) -> bool:
    try:
        _wire(msgs)
        return True
    except (OverflowError, TypeError, ValueError):
        return False


def _driver_property(world, data):
    msgs = data.draw(st.lists(peer_message(world), min_size=1, max_size=8))
    if _encodable(msgs):
        _run_driver_case(world, msgs)


@FAST
@given(data=st.data())
def test_fuzz_driver_messages_never_kill_the_node(world, data):
    _driver_property(world, data)


@pytest.mark.slow
@SLOW
@given(data=st.data())
def test_fuzz_driver_messages_never_kill_the_node_long(world, data):
    _driver_property(world, data)


def test_the_valid_messages_are_accepted(world):
    """The mutation bases really are valid (so mutations explore near-valid inputs): none
    of them gets the peer dropped."""
    valid = world.valid_bodies()
    before = len(world.drops)
    for msg_type in (M.MSG_STATUS, M.MSG_GET_BLOCKS, M.MSG_GET_BLOCK, M.MSG_VOTE,
                     M.MSG_EVIDENCE, M.MSG_PROPOSAL):
        check_body(msg_type, valid[msg_type])
    _run_driver_case(world, [(t, valid[t]) for t in (M.MSG_STATUS, M.MSG_GET_BLOCKS,
                                                     M.MSG_GET_BLOCK, M.MSG_VOTE)])
    assert world.drops[before:] == []
    _run_driver_case(world, [(M.MSG_BLOCKS, valid[M.MSG_BLOCKS])])
    assert world.applied[-1:] == [1] and world.drops[before:] == []
    validate_block(world.block1, world.tip0, CHAIN_ID, vals_of(world.app.selector(1)))
    world.commit1.verify(CHAIN_ID, vals_of(world.app.selector(1)), world.block1.hash(), 1)


class _Stream:
    """A fake trio stream: hands out `chunks`, records what is sent."""

    def __init__(self, chunks: list[bytes]):
        self.chunks, self.sent = list(chunks), []

    async def receive_some(self, n=None):
        await trio.lowlevel.checkpoint()
        return self.chunks.pop(0) if self.chunks else b""

    async def send_all(self, data):
        self.sent.append(data)


def _chunks(draw, data: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=5)))
    out, last = [], 0
    for c in cuts + [len(data)]:
        if c > last:
            out.append(data[last:c])
            last = c
    return out


@st.composite
def frame_streams(draw):
    frames = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(("good", "junk", "raw", "len")))
        if kind == "good":
            try:
                frames.append(_pack(draw(st.integers(0, 20)), draw(msgpack_obj)))
            except (OverflowError, TypeError, ValueError):
                frames.append(b"")
        elif kind == "junk":
            payload = draw(st.binary(max_size=60))
            frames.append(len(payload).to_bytes(4, "big") + payload)
        elif kind == "raw":
            frames.append(draw(st.binary(max_size=60)))
        else:
            frames.append(draw(st.integers(0, 2**32 - 1)).to_bytes(4, "big") +
                          draw(st.binary(max_size=10)))
    return _chunks(draw, b"".join(frames))


def _frame_property(chunks):
    async def main():
        r = FrameReader(_Stream(chunks), max_frame=4096)
        for _ in range(10):
            try:
                msg = await r.next()
            except Misbehaviour:
                return
            if msg is None:
                return
            assert type(msg) is list and len(msg) == 2 and type(msg[0]) is int
    FUZZ_CASES["frames"] += 1
    trio.run(main)


@FAST
@given(frame_streams())
def test_fuzz_frame_decoder(chunks):
    _frame_property(chunks)


@pytest.mark.slow
@SLOW
@given(frame_streams())
def test_fuzz_frame_decoder_long(chunks):
    _frame_property(chunks)


@st.composite
def handshakes(draw):
    """What a stranger sends after connecting: a HELLO that is near-valid or junk, then an
    AUTH frame (of random content)."""
    pub = draw(st.sampled_from([NODE_KEYS[1].pub_key, b"\x00" * 32, b"short"]))
    hello = [draw(st.sampled_from(["perpchain/p2p/1", "other"])),
             draw(st.sampled_from([CHAIN_ID, "x"])), pub, draw(st.binary(min_size=31, max_size=33))]
    if draw(st.booleans()):
        hello = _mutate_obj(draw, hello)
    try:
        data = _pack(draw(st.sampled_from([0, 0, 1, 7])), hello) + \
            _pack(1, draw(st.one_of(st.binary(max_size=70), msgpack_obj)))
    except (OverflowError, TypeError, ValueError):
        data = b""
    return _chunks(draw, data)


def _handshake_property(chunks):
    p2p = P2P(NODE_KEYS[0], CHAIN_ID, ("127.0.0.1", 0), [], lambda *a: None,
              allowed_ids=(NODE_KEYS[1].node_id,))

    async def main():
        try:
            await p2p._handshake(_Stream(chunks), expected=None)
        except (Misbehaviour, trio.TooSlowError):
            pass
        FUZZ_CASES["handshakes"] += 1
    trio.run(main)


@FAST
@given(handshakes())
def test_fuzz_handshake(chunks):
    _handshake_property(chunks)


@st.composite
def bodies(draw):
    return draw(st.one_of(st.sampled_from(MSG_TYPES), st.integers(-2, 300))), draw(msgpack_obj)


@FAST
@given(bodies())
def test_fuzz_check_body_raises_only_decode_error(mb):
    FUZZ_CASES["bodies"] += 1
    try:
        check_body(*mb)
    except DecodeError:
        return
    msg_type, body = mb
    if msg_type in (M.MSG_STATUS, M.MSG_GET_BLOCKS, M.MSG_GET_BLOCK):
        assert all(type(x) in (int, bytes) for x in body)


def _verifier_property(world, data):
    block_bytes = _mutated(data.draw, world.block1.encode())
    commit_bytes = _mutated(data.draw, msgpack.packb(world.commit1.to_wire(), use_bin_type=True))
    FUZZ_CASES["blocks and commits"] += 1
    vals = vals_of(world.app.selector(1))
    try:
        block = Block.decode(block_bytes)
    except MalformedBlock:
        block = None
    if block is not None:
        try:
            validate_block(block, world.tip0, CHAIN_ID, vals)
        except InvalidBlockHeader:
            pass
    try:
        commit = Commit.decode(commit_bytes)
    except MalformedBlock:
        return
    try:
        commit.verify(CHAIN_ID, vals, world.block1.hash(), 1)
    except InvalidCommit:
        pass


@FAST
@given(data=st.data())
def test_fuzz_block_and_commit_verifier(world, data):
    _verifier_property(world, data)


@pytest.mark.slow
@SLOW
@given(data=st.data())
def test_fuzz_block_and_commit_verifier_long(world, data):
    _verifier_property(world, data)


def test_report_fuzz_counts():
    """Runs last in this module: prints what was tried (see -s)."""
    print(f"\np2p fuzz cases: {dict(FUZZ_CASES)}")
    assert FUZZ_CASES.get("driver crashes", 0) == 0


def test_regression_commit_fields_of_the_wrong_type_are_malformed_not_a_crash():
    """Found by this fuzz on the old code (56 of ~23,000 driver messages): a synced commit
    whose block hash or signature fields were not bytes reached Commit.verify, whose error
    message called .hex() on them (AttributeError: the node died); a negative GET_BLOCKS
    height raised OverflowError in the store. Both are now refused by the decoders."""
    for wire in ([1, 0, [1], []], [1, 0, {"a": 1}, []], [1, 0, b"x" * 32, [[b"v" * 32, 1, None]]],
                 [-1, 0, b"x" * 32, []], [1, 2**31, b"x" * 32, []]):
        with pytest.raises(MalformedBlock):
            Commit.decode(msgpack.packb(wire, use_bin_type=True))
    with pytest.raises(DecodeError, match="get_blocks from height"):
        check_body(M.MSG_GET_BLOCKS, [-1, 1])
