"""The app hash: a chain of digests over each block's sorted write set
(docs/ARCHITECTURE.md, determinism rule 5).

app_hash(0) = H(ZERO || H(genesis write set));  app_hash(h) = H(app_hash(h-1) || H(writes_h)).
A write set is the canonical encoding of [[key, value or nil], ...] in ascending key order,
so every node that performs the same writes gets the same hash whatever its storage.
"""

import hashlib

from state.codec import encode

ZERO_HASH = b"\x00" * 32


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def writes_digest(writes: list[tuple[bytes, bytes | None]]) -> bytes:
    """H(canonical encoding of the write set); `writes` must already be sorted by key."""
    return sha256(encode([[k, v] for k, v in writes]))


def chain_app_hash(prev_app_hash: bytes, writes: list[tuple[bytes, bytes | None]]) -> bytes:
    return sha256(prev_app_hash + writes_digest(writes))
