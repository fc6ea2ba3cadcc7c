"""The node's LevelDB store: state, blocks, commits, results, tx index and chain tip.

One LevelDB holds everything, under key prefixes, so that a height is committed by ONE
`write_batch(transaction=True, sync=True)`: block, commit, results, tx index, state writes
and the new tip land together or not at all. A node killed at any moment restarts at the
last committed height with no half-written block.

    s/<state key>        state (read by the state machine through `StateView`)
    b/<height:8>         block bytes          c/<height:8>  its commit
    r/<height:8>         tx results           t/<tx hash>   [height, index]
    a/<height:8>         app hash after executing that height
    m/tip                [height, block_hash, time_ms, app_hash, results_hash]
    m/genesis            [app_hash_0, chain_id]
    v/<height:8>         the validator set with proposer priorities for that height
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import msgpack
import plyvel

P_STATE = b"s/"
P_BLOCK = b"b/"
P_COMMIT = b"c/"
P_RESULTS = b"r/"
P_TXINDEX = b"t/"
P_APPHASH = b"a/"
K_TIP = b"m/tip"
K_GENESIS = b"m/genesis"
P_VALSET = b"v/"


class StoreLocked(Exception):
    """Another process (a running node) holds the database."""


def _h(height: int) -> bytes:
    return height.to_bytes(8, "big")


def _enc(o) -> bytes:
    return msgpack.packb(o, use_bin_type=True)


def _dec(b: bytes):
    return msgpack.unpackb(b, raw=False)


@dataclass(frozen=True)
class Tip:
    height: int
    block_hash: bytes
    time_ms: int
    app_hash: bytes
    results_hash: bytes


STATE_CACHE_ENTRIES = 500_000
RECENT_TX_HASHES = 200_000


class StateView:
    """The state machine's read view of the committed state (state.kv.KVView).

    Reads go through a write-through cache of hot keys (absent keys included): every
    state write passes through `Store.commit_block`, which updates it, so it is always
    coherent with LevelDB. It is cleared when it grows past STATE_CACHE_ENTRIES."""

    __slots__ = ("_get", "_db", "_cache")

    def __init__(self, db):
        self._db = db
        self._get = db.get
        self._cache: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> bytes | None:
        c = self._cache
        if key in c:
            return c[key]
        v = self._get(P_STATE + key)
        if len(c) >= STATE_CACHE_ENTRIES:
            c.clear()
        c[key] = v
        return v

    def note_writes(self, writes) -> None:
        c = self._cache
        if len(c) + len(writes) >= STATE_CACHE_ENTRIES:
            c.clear()
        for k, v in writes:
            c[k] = v

    def iterate(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        n = len(P_STATE)
        for k, v in self._db.iterator(prefix=P_STATE + prefix):
            yield k[n:], v


class Store:
    def __init__(self, path: Path):
        Path(path).mkdir(parents=True, exist_ok=True)
        try:
            # A bloom filter spares reads of absent keys (most nonce and balance misses)
            # from touching every level; the block cache keeps hot state in memory.
            self.db = plyvel.DB(str(path), create_if_missing=True, bloom_filter_bits=10,
                                lru_cache_size=64 * 1024 * 1024,
                                write_buffer_size=64 * 1024 * 1024)
        except plyvel.IOError as e:
            if "lock" in str(e).lower():
                raise StoreLocked(f"{path} is in use by another process (is the node "
                                  "running? stop it first)") from None
            raise
        self.state = StateView(self.db)
        # Hashes of the most recently committed txs, so the mempool can name a replayed tx
        # without a disk read; older replays are refused by the nonce rules anyway.
        self.recent_txs: dict[bytes, None] = {}

    def close(self) -> None:
        self.db.close()

    # -- reads -------------------------------------------------------------------------
    def tip(self) -> Tip | None:
        raw = self.db.get(K_TIP)
        return None if raw is None else Tip(*_dec(raw))

    def genesis_app_hash(self) -> bytes | None:
        raw = self.db.get(K_GENESIS)
        return None if raw is None else _dec(raw)[0]

    def block_bytes(self, height: int) -> bytes | None:
        return self.db.get(P_BLOCK + _h(height))

    def commit_bytes(self, height: int) -> bytes | None:
        return self.db.get(P_COMMIT + _h(height))

    def results_bytes(self, height: int) -> bytes | None:
        return self.db.get(P_RESULTS + _h(height))

    def app_hash_at(self, height: int) -> bytes | None:
        if height == 0:
            return self.genesis_app_hash()
        return self.db.get(P_APPHASH + _h(height))

    def recently_committed(self, tx_hash: bytes) -> bool:
        return tx_hash in self.recent_txs

    def tx_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        raw = self.db.get(P_TXINDEX + tx_hash)
        return None if raw is None else tuple(_dec(raw))

    # -- writes ------------------------------------------------------------------------
    def valset_bytes(self, height: int) -> bytes | None:
        return self.db.get(P_VALSET + _h(height))

    def commit_genesis(self, writes, app_hash: bytes, chain_id: str, time_ms: int,
                       valsets: dict[int, bytes]) -> None:
        with self.db.write_batch(transaction=True, sync=True) as wb:
            for h, v in valsets.items():
                wb.put(P_VALSET + _h(h), v)
            for k, v in writes:
                if v is not None:
                    wb.put(P_STATE + k, v)
            wb.put(K_GENESIS, _enc([app_hash, chain_id]))
            wb.put(K_TIP, _enc([0, b"", time_ms, app_hash, b""]))
        self.state.note_writes(writes)

    def commit_block(self, height: int, block: bytes, commit: bytes, results: bytes,
                     tx_hashes: list[bytes], writes, tip: Tip,
                     valsets: dict[int, bytes] | None = None) -> None:
        """Everything about `height`, atomically and fsynced."""
        hb = _h(height)
        with self.db.write_batch(transaction=True, sync=True) as wb:
            put = wb.put
            for h, v in (valsets or {}).items():
                put(P_VALSET + _h(h), v)
            for k, v in writes:
                if v is None:
                    wb.delete(P_STATE + k)
                else:
                    put(P_STATE + k, v)
            put(P_BLOCK + hb, block)
            put(P_COMMIT + hb, commit)
            put(P_RESULTS + hb, results)
            put(P_APPHASH + hb, tip.app_hash)
            seen = set()
            for i, th in enumerate(tx_hashes):
                # Index a tx's first inclusion only: a replayed copy (rejected for its
                # nonce) must not hide where the original landed.
                if th not in seen and self.db.get(P_TXINDEX + th) is None:
                    put(P_TXINDEX + th, _enc([height, i]))
                seen.add(th)
            put(K_TIP, _enc([tip.height, tip.block_hash, tip.time_ms, tip.app_hash,
                             tip.results_hash]))
        self.state.note_writes(writes)
        recent = self.recent_txs
        for th in tx_hashes:
            recent[th] = None
        while len(recent) > RECENT_TX_HASHES:
            del recent[next(iter(recent))]
