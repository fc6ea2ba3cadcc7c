"""The fill history on disk: the read model's last `max_fills` fills, in the node's LevelDB.

A fill is an event of the block results (node/read_model.py `FillHistory` feeds this log);
kept as Python objects, 200,000 of them took about 300 MiB, so the log keeps them on disk,
compactly, and decodes them only when a query reads them. Nothing here is consensus state:
the keys sit beside the store's tables (node/store.py), never under its `s/` state prefix,
and are written in their own unsynced batch after the block's commit, so a crash can only
leave the log behind the chain, never ahead (`FillHistory.catch_up` fills the gap).

    f/<seq:8>                              one fill: msgpack [height, index, time_ms, attrs]
    F/<len:1><account><seq:8>              b"": the fill `seq` has `account` as taker or maker
    m/fills                                [first seq kept, next seq, last height indexed]

`attrs` is the event's attributes flattened to [name, value, ...]; a value that is 64
lowercase hex digits (an account) is stored as its 32 bytes and given back as the same text.
Sequence numbers only grow; the oldest fills (and their account entries) are deleted as new
ones arrive, a bounded number per block, and reads never see more than the newest
`max_fills` (so lowering the bound takes effect at once). Scans of the whole log bypass
LevelDB's block cache, which keeps hot state.
"""

from typing import Iterator, NamedTuple

import msgpack

P_FILL = b"f/"
P_FILL_BY_ACCOUNT = b"F/"
K_FILLS_META = b"m/fills"
TRIM_PER_BLOCK = 10_000    # old fills deleted per appended block at most
_HEX = frozenset("0123456789abcdef")


class Fill(NamedTuple):
    """One `fill` event and where it happened. `index` is the tx's index in the block, or
    the number of txs for the end-block entry (a triggered order's fill)."""

    height: int
    index: int
    time_ms: int
    attrs: tuple[tuple[str, str], ...]   # the event's attributes, in event order

    def attr(self, name: str) -> str | None:
        for k, v in self.attrs:
            if k == name:
                return v
        return None

    def involves(self, account_hex: str | None, market_symbol: str | None) -> bool:
        """Whether the fill has `account_hex` as taker or maker and is on `market_symbol`
        (None: any)."""
        taker = maker = market = None
        for k, v in self.attrs:
            if k == "taker":
                taker = v
            elif k == "maker":
                maker = v
            elif k == "market":
                market = v
        return ((account_hex is None or account_hex in (taker, maker))
                and (market_symbol is None or market == market_symbol))


def _is_account_hex(v: str) -> bool:
    return len(v) == 64 and _HEX.issuperset(v)


def pack_fill(f: Fill) -> bytes:
    flat = []
    for k, v in f.attrs:
        flat.append(k)
        flat.append(bytes.fromhex(v) if _is_account_hex(v) else v)
    return msgpack.packb([f.height, f.index, f.time_ms, flat], use_bin_type=True)


def unpack_fill(raw: bytes) -> Fill:
    h, i, t, flat = msgpack.unpackb(raw, raw=False)
    vals = [v.hex() if type(v) is bytes else v for v in flat[1::2]]
    return Fill(h, i, t, tuple(zip(flat[::2], vals)))


def _seq(n: int) -> bytes:
    return n.to_bytes(8, "big")


def _account_prefix(account: bytes) -> bytes:
    return P_FILL_BY_ACCOUNT + bytes([len(account)]) + account


def _accounts(f: Fill) -> list[bytes]:
    """The taker and maker of a fill, as bytes (once each; readers still compare the text,
    so an odd spelling can only add a candidate, never lose one)."""
    out = []
    for name in ("taker", "maker"):
        v = f.attr(name)
        try:
            b = bytes.fromhex(v or "")
        except ValueError:
            continue
        if b and len(b) < 256 and b not in out:
            out.append(b)
    return out


class FillLog:
    """The on-disk log (a reversible sequence of Fill, oldest first) over a plyvel DB."""

    def __init__(self, db, max_fills: int):
        self._db, self.max_fills = db, max_fills
        raw = db.get(K_FILLS_META)
        self.first, self.next, self.height = (0, 0, 0) if raw is None else msgpack.unpackb(raw)

    def _lo(self) -> int:
        """The oldest sequence number readers see."""
        return max(self.first, self.next - self.max_fills)

    def __len__(self) -> int:
        return self.next - self._lo()

    def __iter__(self) -> Iterator[Fill]:
        for _, v in self._db.iterator(start=P_FILL + _seq(self._lo()),
                                      stop=P_FILL + _seq(self.next), fill_cache=False):
            yield unpack_fill(v)

    def __reversed__(self) -> Iterator[Fill]:
        # by prefix: plyvel's reverse iterator with start/stop skips everything when no key
        # follows the range (as here, the newest fill being the last f/ key)
        lo, n = _seq(self._lo()), len(P_FILL)
        for k, v in self._db.iterator(prefix=P_FILL, reverse=True, fill_cache=False):
            if k[n:] < lo:
                return
            yield unpack_fill(v)

    def of_account(self, account: bytes) -> Iterator[Fill]:
        """The kept fills with `account` as taker or maker, newest first."""
        if not 0 < len(account) < 256:
            return
        prefix, lo, get = _account_prefix(account), self._lo(), self._db.get
        for k in self._db.iterator(prefix=prefix, include_value=False, reverse=True):
            seq = int.from_bytes(k[len(prefix):], "big")
            if seq < lo:
                return
            raw = get(P_FILL + _seq(seq))
            if raw is not None:
                yield unpack_fill(raw)

    def append(self, fills: list[Fill], height: int) -> None:
        """Add a block's fills and mark `height` indexed, dropping the oldest beyond the
        bound: one batch. Fills that would be dropped at once are never written."""
        n0 = self.next
        n = n0 + len(fills)
        with self._db.write_batch() as wb:
            for j in range(max(0, len(fills) - self.max_fills), len(fills)):
                f, s = fills[j], _seq(n0 + j)
                wb.put(P_FILL + s, pack_fill(f))
                for a in _accounts(f):
                    wb.put(_account_prefix(a) + s, b"")
            first = self._trim(wb, n)
            wb.put(K_FILLS_META, msgpack.packb([first, n, height]))
        self.first, self.next, self.height = first, n, height

    def _trim(self, wb, next_seq: int) -> int:
        """Delete stored fills below next_seq - max_fills (at most TRIM_PER_BLOCK); returns
        the new first sequence number."""
        first, get = self.first, self._db.get
        stop = min(next_seq - self.max_fills, first + TRIM_PER_BLOCK)
        while first < stop:
            if first >= self.next:     # the rest were never written (see append)
                return stop
            s = _seq(first)
            raw = get(P_FILL + s)
            if raw is not None:
                wb.delete(P_FILL + s)
                for a in _accounts(unpack_fill(raw)):
                    wb.delete(_account_prefix(a) + s)
            first += 1
        return first
