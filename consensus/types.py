"""Blocks, headers, commits and validator sets: what consensus orders and signs.

Consensus knows nothing of markets: a block carries opaque tx bytes, and the header
carries the app hash the application returned for the previous block (as CometBFT: block
h commits to the state after h-1). Encodings are msgpack arrays in a fixed field order;
hashes are sha256 of those bytes.

    Header = [chain_id, height, time_ms, last_block_hash, last_commit_hash, data_hash,
              validators_hash, app_hash, last_results_hash, evidence_hash, proposer]
    Block  = [Header, [tx...], Commit or nil, [[vote_a, vote_b]...]]
             (last commit nil only at the initial height; evidence = pairs of encoded votes)
    Commit = [height, round, block_hash, [[validator, time_ms, signature]...]]

A commit signature is an Ed25519 signature by the validator over its precommit vote:
    encode(["perpchain/vote/1", chain_id, PRECOMMIT, height, round, block_hash, time_ms])
A commit is valid when validators holding strictly more than 2/3 of the voting power
signed it. A block's time is the power-weighted median of its last commit's vote times
(BFT time, as CometBFT), and one ms after the genesis time for the first block.
Decoding is strict: a block from a peer that is not the canonical encoding of a
well-typed block is refused.
"""

import hashlib
from dataclasses import dataclass
from functools import cached_property

import msgpack
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from consensus.vote_set import bft_time

VOTE_DOMAIN = "perpchain/vote/1"
PREVOTE = 1
PRECOMMIT = 2
EMPTY_HASH = b""
MAX_INT64 = (1 << 63) - 1
MAX_ROUND = (1 << 31) - 1
HASH_LEN, KEY_LEN, SIG_LEN = 32, 32, 64


class InvalidCommit(Exception):
    """A commit that does not prove its block."""


def _enc(obj) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def _dec(data: bytes):
    return msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


@dataclass(frozen=True, slots=True)
class Validator:
    pub_key: bytes
    power: int
    name: str = ""


@dataclass(frozen=True)
class ValidatorSet:
    validators: tuple[Validator, ...]   # sorted by pub_key

    @staticmethod
    def of(vals) -> "ValidatorSet":
        return ValidatorSet(tuple(sorted(vals, key=lambda v: v.pub_key)))

    @property
    def total_power(self) -> int:
        return sum(v.power for v in self.validators)

    def power_of(self, pub_key: bytes) -> int:
        for v in self.validators:
            if v.pub_key == pub_key:
                return v.power
        return 0

    def hash(self) -> bytes:
        return sha256(_enc([[v.pub_key, v.power] for v in self.validators]))

    def has_quorum(self, power: int) -> bool:
        """Strictly more than 2/3 of the total power (exactly 2/3 is not a quorum)."""
        return 3 * power > 2 * self.total_power


def vote_sign_bytes(chain_id: str, vote_type: int, height: int, round_: int,
                    block_hash: bytes, time_ms: int) -> bytes:
    return _enc([VOTE_DOMAIN, chain_id, vote_type, height, round_, block_hash, time_ms])


@dataclass(frozen=True, slots=True)
class CommitSig:
    validator: bytes
    time_ms: int
    signature: bytes


@dataclass(frozen=True)
class Commit:
    height: int
    round: int
    block_hash: bytes
    sigs: tuple[CommitSig, ...]

    def to_wire(self) -> list:
        return [self.height, self.round, self.block_hash,
                [[s.validator, s.time_ms, s.signature] for s in self.sigs]]

    @staticmethod
    def from_wire(o) -> "Commit":
        h, r, bh, sigs = o
        return Commit(h, r, bh, tuple(CommitSig(v, t, s) for v, t, s in sigs))

    @staticmethod
    def decode(data: bytes) -> "Commit":
        """Strict, for bytes from a peer: MalformedBlock unless `data` is a well-typed
        commit with every field in range."""
        try:
            o = _dec(data)
        except (ValueError, TypeError, msgpack.UnpackException) as e:
            raise MalformedBlock(f"commit is not msgpack: {e}") from None
        if not _commit_wire_ok(o):
            raise MalformedBlock("malformed commit")
        return Commit.from_wire(o)

    def hash(self) -> bytes:
        return sha256(_enc(self.to_wire()))

    def verify(self, chain_id: str, vals: ValidatorSet, block_hash: bytes, height: int) -> None:
        """Raise InvalidCommit unless this is a +2/3 commit of `block_hash` at `height`."""
        if self.height != height or self.block_hash != block_hash:
            raise InvalidCommit(f"commit is for height {self.height} block "
                                f"{self.block_hash.hex()[:16]}, not {height} {block_hash.hex()[:16]}")
        seen, power = set(), 0
        for s in self.sigs:
            p = vals.power_of(s.validator)
            if p == 0:
                raise InvalidCommit(f"signer {s.validator.hex()} is not a validator")
            if s.validator in seen:
                raise InvalidCommit(f"validator {s.validator.hex()} signed twice")
            seen.add(s.validator)
            msg = vote_sign_bytes(chain_id, PRECOMMIT, self.height, self.round,
                                  self.block_hash, s.time_ms)
            try:
                Ed25519PublicKey.from_public_bytes(s.validator).verify(s.signature, msg)
            except (InvalidSignature, ValueError):
                raise InvalidCommit(f"bad signature from {s.validator.hex()}") from None
            power += p
        if not vals.has_quorum(power):
            raise InvalidCommit(f"signers hold {power} of {vals.total_power} power: "
                                "not more than 2/3")


@dataclass(frozen=True)
class Header:
    chain_id: str
    height: int
    time_ms: int
    last_block_hash: bytes
    last_commit_hash: bytes
    data_hash: bytes
    validators_hash: bytes
    app_hash: bytes
    last_results_hash: bytes
    evidence_hash: bytes
    proposer: bytes

    def to_wire(self) -> list:
        return [self.chain_id, self.height, self.time_ms, self.last_block_hash,
                self.last_commit_hash, self.data_hash, self.validators_hash, self.app_hash,
                self.last_results_hash, self.evidence_hash, self.proposer]

    def hash(self) -> bytes:
        return sha256(_enc(self.to_wire()))


def data_hash(txs, tx_hashes=None) -> bytes:
    """sha256 over the list of tx hashes (each sha256 of the tx bytes); `tx_hashes`: those
    hashes, if the caller has them already."""
    return sha256(_enc(list(tx_hashes) if tx_hashes is not None else [sha256(t) for t in txs]))


def evidence_hash(evidence) -> bytes:
    return sha256(_enc([list(e) for e in evidence])) if evidence else b""


class MalformedBlock(ValueError):
    """Bytes that are not the canonical encoding of a well-typed block."""


_HEADER_TYPES = (str, int, int, bytes, bytes, bytes, bytes, bytes, bytes, bytes, bytes)


def _int_in(x, lo: int, hi: int) -> bool:
    return type(x) is int and lo <= x <= hi


def _commit_wire_ok(c) -> bool:
    """[height, round, block_hash, [[validator, time_ms, signature]...]], every field
    typed and in range (a field out of range could not even be re-encoded)."""
    return (type(c) is list and len(c) == 4 and _int_in(c[0], 1, MAX_INT64)
            and _int_in(c[1], 0, MAX_ROUND) and type(c[2]) is bytes and len(c[2]) == HASH_LEN
            and type(c[3]) is list and
            all(type(s) is list and len(s) == 3 and type(s[0]) is bytes and len(s[0]) == KEY_LEN
                and _int_in(s[1], 0, MAX_INT64) and type(s[2]) is bytes and len(s[2]) == SIG_LEN
                for s in c[3]))


def _check_block_wire(o) -> None:
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise MalformedBlock(what)

    need(type(o) is list and len(o) == 4, "block must be [header, txs, last_commit, evidence]")
    h, txs, lc, ev = o
    need(type(h) is list and len(h) == len(_HEADER_TYPES) and
         all(type(x) is t for x, t in zip(h, _HEADER_TYPES)), "malformed header")
    need(_int_in(h[1], 1, MAX_INT64) and _int_in(h[2], 0, MAX_INT64),
         "header height or time out of range")
    need(type(txs) is list and all(type(t) is bytes for t in txs), "txs must be byte strings")
    if lc is not None:
        need(_commit_wire_ok(lc), "malformed last commit")
    need(type(ev) is list and all(type(e) is list and len(e) == 2 and
                                  all(type(x) is bytes for x in e) for e in ev),
         "malformed evidence")


@dataclass(frozen=True)
class Block:
    header: Header
    txs: tuple[bytes, ...]
    last_commit: Commit | None
    evidence: tuple[tuple[bytes, bytes], ...] = ()

    def hash(self) -> bytes:
        return self.header.hash()

    @cached_property
    def tx_hashes(self) -> tuple[bytes, ...]:
        """sha256 of each tx, computed once per Block object: validation (data_hash),
        execution (the pre-verified txs are found by hash) and the tx index all need them."""
        return tuple(sha256(t) for t in self.txs)

    def encode(self) -> bytes:
        return _enc([self.header.to_wire(), list(self.txs),
                     None if self.last_commit is None else self.last_commit.to_wire(),
                     [list(e) for e in self.evidence]])

    @staticmethod
    def decode(data: bytes) -> "Block":
        """Strict: raises MalformedBlock unless `data` is a canonical, well-typed block."""
        try:
            o = _dec(data)
        except (ValueError, TypeError, msgpack.UnpackException) as e:
            raise MalformedBlock(f"block is not msgpack: {e}") from None
        _check_block_wire(o)
        h, txs, lc, ev = o
        b = Block(Header(*h), tuple(txs), None if lc is None else Commit.from_wire(lc),
                  tuple((a, c) for a, c in ev))
        if b.encode() != data:
            raise MalformedBlock("not the canonical encoding")
        return b


@dataclass(frozen=True)
class ChainTip:
    """What the next block must follow."""
    height: int               # last committed height (0 before the first block)
    time_ms: int              # its time (genesis time at height 0)
    block_hash: bytes         # b"" at height 0
    last_commit: Commit | None
    app_hash: bytes           # application state after `height`
    results_hash: bytes       # sha256 of the tx results of `height` (b"" at height 0)


class InvalidBlockHeader(Exception):
    """A block that does not follow the chain tip."""


def block_time(last_commit: Commit, vals: ValidatorSet) -> int:
    """BFT time: the power-weighted median of the commit's vote times."""
    powers = {v.pub_key: v.power for v in vals.validators}
    return bft_time(last_commit.sigs, powers)


def validate_block(block: Block, tip: ChainTip, chain_id: str, vals: ValidatorSet,
                   last_vals: ValidatorSet | None = None) -> None:
    """Check that `block` correctly follows `tip` (not its txs: the application does).
    `vals` is the validator set of the block's height, `last_vals` that of the tip
    (defaults to `vals`)."""
    h = block.header

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise InvalidBlockHeader(f"block {h.height}: {what}")

    need(h.chain_id == chain_id, f"chain id {h.chain_id!r} is not {chain_id!r}")
    need(h.height == tip.height + 1, f"height does not follow {tip.height}")
    need(h.time_ms > tip.time_ms, f"time {h.time_ms} is not after {tip.time_ms}")
    need(h.last_block_hash == tip.block_hash, "last_block_hash does not match the tip")
    need(h.app_hash == tip.app_hash, "app_hash differs from this node's state after "
                                     f"height {tip.height}")
    need(h.last_results_hash == tip.results_hash, "last_results_hash does not match")
    need(h.validators_hash == vals.hash(), "validators_hash does not match")
    need(vals.power_of(h.proposer) > 0, "proposer is not a validator")
    need(h.data_hash == data_hash(block.txs, block.tx_hashes), "data_hash does not match the txs")
    need(h.evidence_hash == evidence_hash(block.evidence), "evidence_hash does not match")
    if tip.height == 0:
        need(block.last_commit is None and h.last_commit_hash == b"",
             "first block must carry no last commit")
        need(h.time_ms == tip.time_ms + 1, "the first block's time must be genesis time + 1 ms")
    else:
        need(block.last_commit is not None, "missing the commit of the previous block")
        need(h.last_commit_hash == block.last_commit.hash(), "last_commit_hash does not match")
        try:
            block.last_commit.verify(chain_id, last_vals or vals, tip.block_hash, tip.height)
        except InvalidCommit as e:
            raise InvalidBlockHeader(f"block {h.height}: last commit: {e}") from None
        need(h.time_ms == block_time(block.last_commit, last_vals or vals),
             "time is not the weighted median of the last commit's vote times")
