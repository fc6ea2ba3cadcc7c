"""Consensus wire messages: proposals and votes, their canonical encodings and signatures.

What this module owns:

* ``Proposal`` and ``Vote``: frozen dataclasses, the only messages the round
  state machine (``consensus.rounds``) consumes besides timeouts and block
  validity answers.
* Canonical encodings. ``encode()`` is a msgpack array of the fields in
  declaration order; ``decode()`` accepts exactly that and nothing else
  (wrong types, lengths, ranges, non-canonical integers, trailing bytes are
  all ``DecodeError``). ``sign_bytes(chain_id)`` is a msgpack array that
  starts with a domain string, so a vote signature can never be replayed as a
  proposal, a transaction, or on another chain.
* Ed25519 signing/verification helpers and ``SafeSigner``, a signer that
  refuses to double-sign (the analogue of CometBFT's FilePV last-sign state):
  it never signs a lower (height, round, step) than the last one it signed,
  nor different content for the same (height, round, step).

Invariants:

* A vote for nil has ``block_hash == b""``; every other hash is 32 bytes.
* ``-1 <= pol_round < round`` for every decodable proposal.
* ``decode(encode(m)) == m`` and ``encode(decode(b)) == b`` for every ``b`` that
  decodes.
* No clock, no randomness, no I/O: time values are passed in by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import msgpack
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "PREVOTE",
    "PRECOMMIT",
    "VOTE_TYPES",
    "NIL",
    "HASH_LEN",
    "KEY_LEN",
    "SIG_LEN",
    "PROPOSAL_DOMAIN",
    "VOTE_DOMAIN",
    "SIGN_STEP_PROPOSE",
    "SIGN_STEP_PREVOTE",
    "SIGN_STEP_PRECOMMIT",
    "DecodeError",
    "DoubleSignError",
    "Proposal",
    "Vote",
    "LastSigned",
    "SafeSigner",
    "public_key_bytes",
    "sign_vote",
    "verify_vote",
    "sign_proposal",
    "verify_proposal",
    "check_body",
]

# Vote types: the same numbers as CometBFT's SignedMsgType.
PREVOTE = 1
PRECOMMIT = 2
VOTE_TYPES = (PREVOTE, PRECOMMIT)

NIL = b""  # block_hash of a vote for nil
HASH_LEN = 32
KEY_LEN = 32  # Ed25519 public key = validator address
SIG_LEN = 64
MAX_INT64 = (1 << 63) - 1
MAX_ROUND = (1 << 31) - 1  # CometBFT rounds are int32
MAX_MESSAGE_BYTES = 512  # far above any valid proposal/vote; bounds decode work

PROPOSAL_DOMAIN = "perpchain/proposal/1"
VOTE_DOMAIN = "perpchain/vote/1"

# Steps in the double-sign protection order (CometBFT privval stepPropose/Prevote/Precommit).
SIGN_STEP_PROPOSE = 1
SIGN_STEP_PREVOTE = 2
SIGN_STEP_PRECOMMIT = 3


class DecodeError(ValueError):
    """Bytes that are not the canonical encoding of a valid message."""


class DoubleSignError(Exception):
    """The signer refused: signing would regress or conflict with what it signed before."""



def _check_int(name: str, x: Any, lo: int, hi: int) -> None:
    if type(x) is not int or not (lo <= x <= hi):
        raise DecodeError(f"{name}: expected int in [{lo}, {hi}], got {x!r}")


def _check_bytes(name: str, x: Any, lengths: tuple[int, ...]) -> None:
    if type(x) is not bytes or len(x) not in lengths:
        raise DecodeError(f"{name}: expected bytes of length {lengths}, got {type(x).__name__}")


def _unpack_array(data: bytes, n: int, what: str) -> list:
    if type(data) is not bytes:
        raise DecodeError(f"{what}: expected bytes")
    if len(data) > MAX_MESSAGE_BYTES:
        raise DecodeError(f"{what}: too large ({len(data)} bytes)")
    try:
        obj = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
    except (msgpack.ExtraData, ValueError, TypeError, msgpack.UnpackException) as e:
        raise DecodeError(f"{what}: malformed msgpack: {e}") from None
    if type(obj) is not list or len(obj) != n:
        raise DecodeError(f"{what}: expected an array of {n} fields")
    return obj


@dataclass(frozen=True, slots=True)
class Proposal:
    """A proposer's signed claim: "at (height, round) I propose block_hash".

    ``pol_round`` is the round of the proof-of-lock (+2/3 prevotes) that
    justifies re-proposing a value, or -1 for a fresh value.
    """

    height: int
    round: int
    block_hash: bytes
    pol_round: int
    proposer: bytes
    signature: bytes
    time_ms: int

    def sign_bytes(self, chain_id: str) -> bytes:
        """Canonical bytes the proposer signs (domain-separated, chain-bound)."""
        return msgpack.packb(
            [PROPOSAL_DOMAIN, chain_id, self.height, self.round, self.block_hash, self.pol_round, self.time_ms]
        )

    def encode(self) -> bytes:
        """Canonical wire encoding: msgpack array of the fields in order."""
        return msgpack.packb(
            [self.height, self.round, self.block_hash, self.pol_round, self.proposer, self.signature, self.time_ms]
        )

    def validate(self) -> None:
        """Raise DecodeError unless every field has a valid type and range."""
        _check_int("height", self.height, 1, MAX_INT64)
        _check_int("round", self.round, 0, MAX_ROUND)
        _check_bytes("block_hash", self.block_hash, (HASH_LEN,))
        _check_int("pol_round", self.pol_round, -1, MAX_ROUND)
        if self.pol_round >= self.round:
            raise DecodeError("pol_round must be < round")
        _check_bytes("proposer", self.proposer, (KEY_LEN,))
        _check_bytes("signature", self.signature, (SIG_LEN,))
        _check_int("time_ms", self.time_ms, 0, MAX_INT64)

    @classmethod
    def decode(cls, data: bytes) -> "Proposal":
        """Inverse of ``encode``; rejects anything that is not canonical and valid."""
        f = _unpack_array(data, 7, "proposal")
        p = cls(f[0], f[1], f[2], f[3], f[4], f[5], f[6])
        p.validate()
        if p.encode() != data:
            raise DecodeError("proposal: non-canonical encoding")
        return p

    def content(self) -> tuple:
        """What the double-sign guard compares: everything except time and signature."""
        return (self.height, self.round, self.block_hash, self.pol_round)


@dataclass(frozen=True, slots=True)
class Vote:
    """A validator's signed prevote or precommit for ``block_hash`` (b"" = nil)."""

    type: int
    height: int
    round: int
    block_hash: bytes
    validator: bytes
    time_ms: int
    signature: bytes

    @property
    def is_nil(self) -> bool:
        return not self.block_hash

    def sign_bytes(self, chain_id: str) -> bytes:
        """Canonical bytes the validator signs (domain-separated, chain-bound)."""
        return msgpack.packb(
            [VOTE_DOMAIN, chain_id, self.type, self.height, self.round, self.block_hash, self.time_ms]
        )

    def encode(self) -> bytes:
        """Canonical wire encoding: msgpack array of the fields in order."""
        return msgpack.packb(
            [self.type, self.height, self.round, self.block_hash, self.validator, self.time_ms, self.signature]
        )

    def validate(self) -> None:
        """Raise DecodeError unless every field has a valid type and range."""
        if type(self.type) is not int or self.type not in VOTE_TYPES:
            raise DecodeError(f"type: expected one of {VOTE_TYPES}, got {self.type!r}")
        _check_int("height", self.height, 1, MAX_INT64)
        _check_int("round", self.round, 0, MAX_ROUND)
        _check_bytes("block_hash", self.block_hash, (0, HASH_LEN))
        _check_bytes("validator", self.validator, (KEY_LEN,))
        _check_int("time_ms", self.time_ms, 0, MAX_INT64)
        _check_bytes("signature", self.signature, (SIG_LEN,))

    @classmethod
    def decode(cls, data: bytes) -> "Vote":
        """Inverse of ``encode``; rejects anything that is not canonical and valid."""
        f = _unpack_array(data, 7, "vote")
        v = cls(f[0], f[1], f[2], f[3], f[4], f[5], f[6])
        v.validate()
        if v.encode() != data:
            raise DecodeError("vote: non-canonical encoding")
        return v

    def content(self) -> tuple:
        """What the double-sign guard compares: everything except time and signature."""
        return (self.type, self.height, self.round, self.block_hash, self.validator)


# -- signatures ---------------------------------------------------------------


def public_key_bytes(private_key: Ed25519PrivateKey) -> bytes:
    """The 32-byte raw public key (the validator address) of a private key."""
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@lru_cache(maxsize=4096)
def _public_key(raw: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(raw)


def _verify(raw_key: bytes, signature: bytes, message: bytes) -> bool:
    if type(raw_key) is not bytes or len(raw_key) != KEY_LEN:
        return False
    if type(signature) is not bytes or len(signature) != SIG_LEN:
        return False
    try:
        _public_key(raw_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def sign_vote(private_key: Ed25519PrivateKey, vote: Vote, chain_id: str) -> Vote:
    """Return ``vote`` with its Ed25519 signature filled in (no double-sign check)."""
    if public_key_bytes(private_key) != vote.validator:
        raise ValueError("vote.validator is not this key's public key")
    return replace(vote, signature=private_key.sign(vote.sign_bytes(chain_id)))


def verify_vote(vote: Vote, chain_id: str) -> bool:
    """True iff ``vote.signature`` is the validator's signature of ``vote.sign_bytes(chain_id)``."""
    return _verify(vote.validator, vote.signature, vote.sign_bytes(chain_id))


def sign_proposal(private_key: Ed25519PrivateKey, proposal: Proposal, chain_id: str) -> Proposal:
    """Return ``proposal`` with its Ed25519 signature filled in (no double-sign check)."""
    if public_key_bytes(private_key) != proposal.proposer:
        raise ValueError("proposal.proposer is not this key's public key")
    return replace(proposal, signature=private_key.sign(proposal.sign_bytes(chain_id)))


def verify_proposal(proposal: Proposal, chain_id: str) -> bool:
    """True iff ``proposal.signature`` is the proposer's signature of its sign bytes."""
    return _verify(proposal.proposer, proposal.signature, proposal.sign_bytes(chain_id))


# -- double-sign protection -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LastSigned:
    """The signer's persistent state: the highest (height, round, step) signed and the message.

    A driver must persist this (fsync) before the signed message leaves the
    process, and hand it back to ``SafeSigner`` after a restart.
    """

    height: int
    round: int
    step: int
    message: Proposal | Vote


class SafeSigner:
    """Signs proposals and votes, refusing anything that could be a double sign.

    Rules (CometBFT FilePV): with ``(H, R, S)`` the last signed height, round and
    step (propose=1 < prevote=2 < precommit=3):

    * a request below ``(H, R, S)`` in lexicographic order is refused;
    * a request at exactly ``(H, R, S)`` returns the message signed before if
      it has the same content (time may differ: the old time is kept), and is
      refused otherwise;
    * a request above ``(H, R, S)`` is signed and becomes the new state.
    """

    __slots__ = ("_key", "chain_id", "address", "last_signed")

    def __init__(self, private_key: Ed25519PrivateKey, chain_id: str, last_signed: LastSigned | None = None) -> None:
        self._key = private_key
        self.chain_id = chain_id
        self.address = public_key_bytes(private_key)
        self.last_signed = last_signed

    def _check(self, height: int, round_: int, step: int, content: tuple) -> Proposal | Vote | None:
        last = self.last_signed
        if last is None:
            return None
        cur = (height, round_, step)
        prev = (last.height, last.round, last.step)
        if cur < prev:
            raise DoubleSignError(f"refusing to sign {cur}: already signed {prev}")
        if cur == prev:
            if last.message.content() == content:
                return last.message
            raise DoubleSignError(f"refusing to sign conflicting content at {cur}")
        return None

    def sign_vote(self, vote: Vote) -> Vote:
        """Sign ``vote`` (its signature field is ignored) or raise DoubleSignError."""
        if vote.validator != self.address:
            raise ValueError("vote.validator is not this signer's address")
        step = SIGN_STEP_PREVOTE if vote.type == PREVOTE else SIGN_STEP_PRECOMMIT
        again = self._check(vote.height, vote.round, step, vote.content())
        if again is not None:
            return again  # type: ignore[return-value]
        signed = replace(vote, signature=self._key.sign(vote.sign_bytes(self.chain_id)))
        self.last_signed = LastSigned(vote.height, vote.round, step, signed)
        return signed

    def sign_proposal(self, proposal: Proposal) -> Proposal:
        """Sign ``proposal`` (its signature field is ignored) or raise DoubleSignError."""
        if proposal.proposer != self.address:
            raise ValueError("proposal.proposer is not this signer's address")
        again = self._check(proposal.height, proposal.round, SIGN_STEP_PROPOSE, proposal.content())
        if again is not None:
            return again  # type: ignore[return-value]
        signed = replace(proposal, signature=self._key.sign(proposal.sign_bytes(self.chain_id)))
        self.last_signed = LastSigned(proposal.height, proposal.round, SIGN_STEP_PROPOSE, signed)
        return signed


# -- p2p message bodies ---------------------------------------------------------------
#
# node/p2p.py carries [msg_type, body] frames (types 0 and 1 are its handshake). Every body
# a peer sends is checked here, field by field, before the driver uses any of it: a body
# of the wrong shape, type or range is a DecodeError, which disconnects (and scores down)
# the peer and never reaches the store or the round state. Signed payloads (proposal,
# vote, block, commit bytes) are only bounded here; their own strict decoders check them.

MSG_TXS = 10
MSG_PROPOSAL = 11        # [proposal bytes, block bytes]
MSG_VOTE = 12            # vote bytes
MSG_STATUS = 13          # [committed height, current round]
MSG_GET_BLOCKS = 14      # [from height, count]
MSG_BLOCKS = 15          # [[block bytes, commit bytes]...]  ([] = "I have none of those")
MSG_GET_BLOCK = 16       # [height, block hash]
MSG_BLOCK = 17           # block bytes
MSG_EVIDENCE = 18        # [vote a bytes, vote b bytes]

SYNC_BATCH = 20                    # blocks per GET_BLOCKS request and BLOCKS reply
MAX_SYNC_COUNT = 1 << 16           # a larger GET_BLOCKS count is refused (served: SYNC_BATCH)
MAX_BLOCK_WIRE_BYTES = 64 << 20    # above any frame limit: the frame size bounds it first
MAX_COMMIT_WIRE_BYTES = 1 << 20    # ~10k signatures


def _check_list(name: str, body: Any, n: int) -> list:
    if type(body) is not list or len(body) != n:
        raise DecodeError(f"{name}: expected an array of {n} fields")
    return body


def _check_blob(name: str, x: Any, max_len: int) -> None:
    if type(x) is not bytes or not 0 < len(x) <= max_len:
        raise DecodeError(f"{name}: expected 1 to {max_len} bytes, got {type(x).__name__}"
                          + (f" of {len(x)}" if type(x) is bytes else ""))


def check_body(msg_type: Any, body: Any) -> None:
    """Raise DecodeError unless `body` is a well-formed body for consensus message
    `msg_type` (every field's type and range; signed payloads only by size)."""
    if msg_type == MSG_PROPOSAL:
        p, b = _check_list("proposal message", body, 2)
        _check_blob("proposal", p, MAX_MESSAGE_BYTES)
        _check_blob("proposal block", b, MAX_BLOCK_WIRE_BYTES)
    elif msg_type == MSG_VOTE:
        _check_blob("vote", body, MAX_MESSAGE_BYTES)
    elif msg_type == MSG_STATUS:
        h, r = _check_list("status", body, 2)
        _check_int("status height", h, 0, MAX_INT64)
        _check_int("status round", r, 0, MAX_ROUND)
    elif msg_type == MSG_GET_BLOCKS:
        start, count = _check_list("get_blocks", body, 2)
        _check_int("get_blocks from height", start, 1, MAX_INT64)
        _check_int("get_blocks count", count, 1, MAX_SYNC_COUNT)
    elif msg_type == MSG_BLOCKS:
        if type(body) is not list or len(body) > SYNC_BATCH:
            raise DecodeError(f"blocks: expected an array of at most {SYNC_BATCH} entries")
        for entry in body:
            b, c = _check_list("blocks entry", entry, 2)
            _check_blob("synced block", b, MAX_BLOCK_WIRE_BYTES)
            _check_blob("synced commit", c, MAX_COMMIT_WIRE_BYTES)
    elif msg_type == MSG_GET_BLOCK:
        h, bh = _check_list("get_block", body, 2)
        _check_int("get_block height", h, 1, MAX_INT64)
        _check_bytes("get_block hash", bh, (HASH_LEN,))
    elif msg_type == MSG_BLOCK:
        _check_blob("block", body, MAX_BLOCK_WIRE_BYTES)
    elif msg_type == MSG_EVIDENCE:
        a, b = _check_list("evidence", body, 2)
        _check_blob("evidence vote", a, MAX_MESSAGE_BYTES)
        _check_blob("evidence vote", b, MAX_MESSAGE_BYTES)
        if a == b:
            raise DecodeError("evidence: the same vote twice")
    else:
        raise DecodeError(f"unknown message type {msg_type!r}")
