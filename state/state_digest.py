"""The full-state digest: a lattice multiset hash of every (key, value) of the state, kept up to
date from each block's write set, and folded into the app hash every N blocks.

Off unless genesis sets `state_digest_interval` N (then K_INTERVAL holds N; absent, nothing
here writes a byte, so existing chains keep their app hashes). On, every block:
    lanes(S) = sum over (k, v) in S, k != K_DIGEST, of E(k, v)   (1024 lanes, each mod 2^16)
    E(k, v)  = SHAKE128(TAG || len(k):4 || k || v), first 2048 bytes, as 1024 uint16 lanes LE
so a write (k, old -> new) adds E(k, new) and subtracts E(k, old): a block pays two XOF
calls per written key, never a pass over the state. The lanes are stored at K_DIGEST (part
of the write set like any record) and, at each height h with h % N == 0 (genesis included),
the app hash is not the write-set chain but
    app_hash(h) = sha256(FOLD_TAG || sha256(lanes))
which vouches for the whole state at h: a snapshot of it (`perpchain export`) is checked by
recomputing `lanes` from its pairs. This is LtHash (Bellare-Micciancio 1997; Lewi et al.,
"Securing update propagation with homomorphic hashing", 2019) with its LtHash16 parameters,
also used by Solana for its accounts hash; docs/SECURITY.md says why it is sound.

Implementation: a lane vector is handled as the little-endian integer of its 2048 bytes. For
up to 2^16 elements, sum(x & EVEN) and sum(x) - sum(x & EVEN) keep every lane's sum in its own
32-bit field (even lanes at bit 32j, odd lanes at 32j + 16), so the per-lane reduction mod 2^16
happens once per batch, not per element.
"""

import hashlib

from state.codec import encode, load
from state.kv import KVView, Overlay

K_INTERVAL = b"params/state_digest_interval"   # N (blocks), only when genesis sets it
K_DIGEST = b"meta/state_digest"                # the lane vector (2048 bytes, as msgpack bin)
TAG = b"perpchain/lthash16/v1"
FOLD_TAG = b"perpchain/state-digest/v1"
LANES = 1024
LANE_BYTES = 2 * LANES
_EVEN = int.from_bytes(b"\xff\xff\x00\x00" * (LANES // 2), "little")
_TWO16 = int.from_bytes(b"\x00\x00\x01\x00" * (LANES // 2), "little")
_BATCH = 65_535          # elements summed before a reduction (each lane sum stays < 2^32)
ZERO_LANES = bytes(LANE_BYTES)


def interval(view: KVView) -> int | None:
    """N if this chain commits to a state digest every N blocks, else None."""
    raw = view.get(K_INTERVAL)
    return None if raw is None else load(raw)


def _element(key: bytes, value: bytes) -> int:
    h = hashlib.shake_128(TAG + len(key).to_bytes(4, "big") + key + value)
    return int.from_bytes(h.digest(LANE_BYTES), "little")


class _Sum:
    """A running sum of elements, split into even and odd lanes (see the module docstring)."""

    __slots__ = ("even", "odd", "_all", "_even", "_n")

    def __init__(self):
        self.even = self.odd = 0          # reduced sums: lanes in 32-bit fields, < 2^16 each
        self._all = self._even = self._n = 0

    def add(self, x: int) -> None:
        self._all += x
        self._even += x & _EVEN
        self._n += 1
        if self._n == _BATCH:
            self.reduce()

    def reduce(self) -> None:
        odd = self._all - self._even      # odd lane sums, in fields at bit 32j + 16
        self.even = (self.even + self._even) & _EVEN
        self.odd = (self.odd + (odd >> 16)) & _EVEN
        self._all = self._even = self._n = 0


def _combine(lanes: bytes, plus: _Sum, minus: _Sum) -> bytes:
    """lanes + plus - minus, lane by lane mod 2^16."""
    plus.reduce()
    minus.reduce()
    x = int.from_bytes(lanes, "little")
    even = ((x & _EVEN) + plus.even + _TWO16 - minus.even) & _EVEN
    odd = (((x >> 16) & _EVEN) + plus.odd + _TWO16 - minus.odd) & _EVEN
    return (even | (odd << 16)).to_bytes(LANE_BYTES, "little")


def of_pairs(pairs) -> bytes:
    """The lanes of a whole state given as (key, value) pairs (K_DIGEST is skipped)."""
    plus = _Sum()
    for k, v in pairs:
        if k != K_DIGEST:
            plus.add(_element(k, v))
    return _combine(ZERO_LANES, plus, _Sum())


def updated(lanes: bytes, changes) -> bytes:
    """The lanes after `changes`: (key, old value or None, new value or None) triples."""
    plus, minus = _Sum(), _Sum()
    for k, old, new in changes:
        if old == new or k == K_DIGEST:
            continue
        if old is not None:
            minus.add(_element(k, old))
        if new is not None:
            plus.add(_element(k, new))
    return _combine(lanes, plus, minus)


def stored_lanes(view: KVView) -> bytes:
    raw = view.get(K_DIGEST)
    return ZERO_LANES if raw is None else load(raw)


def digest(lanes: bytes) -> bytes:
    """The 32-byte state digest of a lane vector."""
    return hashlib.sha256(lanes).digest()


def folded_app_hash(lanes: bytes) -> bytes:
    """The app hash of a digest height: it commits to the whole state."""
    return hashlib.sha256(FOLD_TAG + digest(lanes)).digest()


def seal(view: KVView, overlay: Overlay, writes: list, height: int,
         every: int) -> tuple[list, bytes | None]:
    """Update K_DIGEST in `overlay` from `writes` (the block's sorted write set over the
    committed `view`); returns the new sorted write set and, at a digest height, the folded
    app hash (None otherwise: the caller chains the write set as usual)."""
    get = view.get
    lanes = updated(stored_lanes(view), ((k, get(k), v) for k, v in writes))
    overlay.put(K_DIGEST, encode(lanes))
    return overlay.sorted_writes(), (folded_app_hash(lanes) if height % every == 0 else None)
