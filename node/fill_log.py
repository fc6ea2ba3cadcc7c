"""The fill history on disk: the read model's last `max_fills` fills, in the node's LevelDB.

A fill is an event of the block results (node/read_model.py `FillHistory` feeds this log);
kept as Python objects, 200,000 of them took about 300 MiB, so the log keeps them on disk,
compactly, and decodes them only when a query reads them. Nothing here is consensus state:
the keys sit beside the store's tables (node/store.py), never under its `s/` state prefix,
and are written in their own unsynced batch after the block's commit, so a crash can only
leave the log behind the chain, never ahead (`FillHistory.catch_up` fills the gap).

    f/<seq:8>                              one fill: msgpack [height, index, time_ms, attrs]
    F/<len:1><account><seq:8>              b"": the fill `seq` has `account` as taker or maker
    M/<len:1><market><seq:8>               b"": the fill `seq` is on `market`
    m/fills                                [first seq kept, next seq, last height indexed]
    m/fillmarkets                          {market: its fills stored}

The same batch updates the running aggregates of node/fill_stats.py (candles, 24-hour
figures), so `fills` pages and those answers never decode the whole log: a page reads its
fills by sequence number (or through the market's index) and the totals are counted as
fills come and go. A store whose log predates the market index or the aggregates has them
built from its kept fills once, when the log is opened.

`attrs` is the event's attributes flattened to [name, value, ...]; a value that is 64
lowercase hex digits (an account) is stored as its 32 bytes and given back as the same text.
Sequence numbers only grow; the oldest fills (and their account entries) are deleted as new
ones arrive, a bounded number per block, and reads never see more than the newest
`max_fills` (so lowering the bound takes effect at once). Scans of the whole log bypass
LevelDB's block cache, which keeps hot state.
"""

from typing import Iterator, NamedTuple

import msgpack

from node.fill_stats import FillStats

P_FILL = b"f/"
P_FILL_BY_ACCOUNT = b"F/"
P_FILL_BY_MARKET = b"M/"
K_FILLS_META = b"m/fills"
K_MARKET_COUNTS = b"m/fillmarkets"
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


def _market_of(f: Fill) -> bytes | None:
    """The fill's market symbol as bytes, None if it has none (or an unindexable one)."""
    m = (f.attr("market") or "").encode()
    return m if 0 < len(m) < 256 else None


def _market_prefix(market: bytes) -> bytes:
    return P_FILL_BY_MARKET + bytes([len(market)]) + market


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
        raw = db.get(K_MARKET_COUNTS)
        self.market_counts: dict[str, int] = {} if raw is None else msgpack.unpackb(raw)
        if raw is None and self.next > self.first:
            self._index_markets()
        self.stats = FillStats(db)
        if self.stats.height != self.height or (not self.stats.present and self.next):
            self.stats.rebuild(iter(self), self.height)

    def _index_markets(self) -> None:
        """Index the stored fills by market (a log written before the market index)."""
        counts: dict[str, int] = {}
        with self._db.write_batch() as wb:
            for k, v in self._db.iterator(start=P_FILL + _seq(self.first),
                                          stop=P_FILL + _seq(self.next), fill_cache=False):
                m = _market_of(unpack_fill(v))
                if m is not None:
                    wb.put(_market_prefix(m) + k[len(P_FILL):], b"")
                    counts[m.decode()] = counts.get(m.decode(), 0) + 1
            wb.put(K_MARKET_COUNTS, msgpack.packb(counts))
        self.market_counts = counts

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

    def newest_page(self, market: str | None, offset: int, limit: int) -> tuple[int, list[Fill]]:
        """(how many kept fills are on `market` (None: any), the `limit` of them after the
        newest `offset`, newest first), without reading the others."""
        lo = self._lo()
        if market is None:
            top = self.next - 1 - offset
            get = self._db.get
            raws = (get(P_FILL + _seq(s)) for s in range(top, max(lo, top - limit + 1) - 1, -1))
            return len(self), [unpack_fill(r) for r in raws if r is not None]
        m = market.encode()
        if not 0 < len(m) < 256:
            return 0, []
        prefix = _market_prefix(m)
        n = len(prefix)
        hidden = sum(1 for _ in self._db.iterator(start=prefix + _seq(self.first),
                                                  stop=prefix + _seq(lo), include_value=False))
        out = []
        for k in self._db.iterator(prefix=prefix, include_value=False, reverse=True):
            if int.from_bytes(k[n:], "big") < lo or len(out) == limit:
                break
            if offset:
                offset -= 1
                continue
            raw = self._db.get(P_FILL + k[n:])
            if raw is not None:
                out.append(unpack_fill(raw))
        return self.market_counts.get(market, 0) - hidden, out

    def append(self, fills: list[Fill], height: int, time_ms: int | None = None) -> None:
        """Add a block's fills and mark `height` indexed, dropping the oldest beyond the
        bound, and update the aggregates (their 24-hour window moved to `time_ms`, the
        block's time, if given): one batch. Fills that would be dropped at once are never
        written to the log (the aggregates count them)."""
        n0 = self.next
        n = n0 + len(fills)
        counts = dict(self.market_counts)
        with self._db.write_batch() as wb:
            for j in range(max(0, len(fills) - self.max_fills), len(fills)):
                f, s = fills[j], _seq(n0 + j)
                wb.put(P_FILL + s, pack_fill(f))
                for a in _accounts(f):
                    wb.put(_account_prefix(a) + s, b"")
                m = _market_of(f)
                if m is not None:
                    wb.put(_market_prefix(m) + s, b"")
                    counts[m.decode()] = counts.get(m.decode(), 0) + 1
            first = self._trim(wb, n, counts)
            wb.put(K_FILLS_META, msgpack.packb([first, n, height]))
            wb.put(K_MARKET_COUNTS, msgpack.packb(counts))
            update = self.stats.prepare(wb, fills, height, time_ms)
        self.first, self.next, self.height = first, n, height
        self.market_counts = counts
        self.stats.applied(update)

    def _trim(self, wb, next_seq: int, counts: dict[str, int]) -> int:
        """Delete stored fills below next_seq - max_fills (at most TRIM_PER_BLOCK), with
        their index entries and from `counts`; returns the new first sequence number."""
        first, get = self.first, self._db.get
        stop = min(next_seq - self.max_fills, first + TRIM_PER_BLOCK)
        while first < stop:
            if first >= self.next:     # the rest were never written (see append)
                return stop
            s = _seq(first)
            raw = get(P_FILL + s)
            if raw is not None:
                wb.delete(P_FILL + s)
                f = unpack_fill(raw)
                for a in _accounts(f):
                    wb.delete(_account_prefix(a) + s)
                m = _market_of(f)
                if m is not None:
                    wb.delete(_market_prefix(m) + s)
                    left = counts.get(m.decode(), 0) - 1
                    if left > 0:
                        counts[m.decode()] = left
                    else:
                        counts.pop(m.decode(), None)
            first += 1
        return first
