"""Running aggregates of the fills, kept as blocks commit: candles and the 24-hour figures.

Queries that summed the whole fill log (node/fill_log.py) decoded every kept fill, about
0.7 s per 200,000; these aggregates answer them by reading a few small records instead:
* candles: per market and interval (INTERVAL_MS), one record per bucket with trades: open,
  high, low, close (the prices' own text), base volume and trade count. A bucket's key
  holds its start time, so a `candleSnapshot` reads only the buckets it returns. Each
  (market, interval) keeps its last `keep_candles` bucket widths (old ones are deleted as
  new buckets open): 5,000 buckets, as many as one answer returns;
* the 24-hour window: per market, one record per block time with trades (notional, base
  volume, last price) and running totals; records leave the window (and are deleted) as
  later blocks commit, and the last price of the newest one to leave is the price 24 hours
  ago. A query between commits subtracts what has left the window since, read-only.
* the last trade price per market: the close of its newest 1-minute candle.

Sums are exact: prices and sizes are added as decimals (DECIMALS: no rounding, or an
error), so an answer equals a scan of the same fills (tests/unit/test_fill_stats.py
compares them, after restarts and fill-log trimming too). The aggregates do not depend on
the fill log's bound (`[store] keep_fills`): trimming old fills changes no candle.

Everything is on disk beside the fill log, written in the fill log's own batch, so the
two never disagree after a crash:

    k/<len:1><market><interval:1><bucket start ms:8>   [open, high, low, close, volume, n]
    d/<len:1><market><time ms:8>                       [notional, volume, last price]
    m/fillstats                                        [height, {market: [notional,
                                                         volume, price 24 h ago or None]}]

A store whose fill log predates the aggregates has them built from its kept fills once, on
open (`FillStats.rebuild`).
"""

from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow, Rounded
from typing import Iterable

import msgpack

P_CANDLE = b"k/"
P_DAY = b"d/"
K_STATS_META = b"m/fillstats"
DAY_MS = 86_400_000
INTERVAL_MS = {"1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000,
               "30m": 1_800_000, "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000,
               "8h": 28_800_000, "12h": 43_200_000, "1d": DAY_MS, "3d": 3 * DAY_MS,
               "1w": 7 * DAY_MS}
INTERVALS = tuple(INTERVAL_MS)
KEEP_CANDLES = 5_000
# Exact decimal arithmetic: a result that would need rounding raises instead.
DECIMALS = Context(prec=120, traps=[Inexact, Rounded, InvalidOperation, Overflow])
ZERO = Decimal(0)


def _text(d: Decimal) -> str:
    """A decimal as plain text (no exponent), as the fills write amounts."""
    return format(d.normalize(DECIMALS), "f") if d else "0"


def _market_key(prefix: bytes, market: str) -> bytes:
    m = market.encode()
    return prefix + bytes([len(m)]) + m


def _candle_prefix(market: str, interval: str) -> bytes:
    return _market_key(P_CANDLE, market) + bytes([INTERVALS.index(interval)])


def _ms(n: int) -> bytes:
    return n.to_bytes(8, "big")


def _pack(o) -> bytes:
    return msgpack.packb(o, use_bin_type=True)


def _unpack(raw: bytes):
    return msgpack.unpackb(raw, raw=False)


def _trade(f) -> tuple[str, str, str] | None:
    """(market, price text, size text) of a fill, None if it lacks one."""
    a = dict(f.attrs)
    market, price, size = a.get("market"), a.get("price"), a.get("size")
    if not market or price is None or size is None or len(market.encode()) > 255:
        return None
    return market, price, size


def _summarize(fills: list) -> dict[tuple[str, int], list]:
    """The trades of `fills` (oldest first) per (market, time), in order: [open, high, low,
    close (price texts), volume, count, notional (decimals)]. A block's fills share its time,
    so each market's trades in a block merge into its candles once."""
    out: dict[tuple[str, int], list] = {}
    for f in fills:
        t = _trade(f)
        if t is None:
            continue
        market, price, size = t
        px, sz = Decimal(price), Decimal(size)
        g = out.get((market, f.time_ms))
        if g is None:
            out[(market, f.time_ms)] = [price, price, price, price, sz, 1,
                                        DECIMALS.multiply(px, sz)]
            continue
        g[3] = price
        if px > Decimal(g[1]):
            g[1] = price
        if px < Decimal(g[2]):
            g[2] = price
        g[4] = DECIMALS.add(g[4], sz)
        g[5] += 1
        g[6] = DECIMALS.add(g[6], DECIMALS.multiply(px, sz))
    return out


class FillStats:
    """The aggregates over a plyvel DB (module docstring); `height`: the last fill-log height
    they include."""

    def __init__(self, db, keep_candles: int = KEEP_CANDLES):
        self._db, self.keep_candles = db, keep_candles
        raw = db.get(K_STATS_META)
        self.present = raw is not None
        self.height, day = (0, {}) if raw is None else _unpack(raw)
        self.day: dict[str, list] = day   # market -> [notional, volume, price 24 h ago]

    # -- writing ---------------------------------------------------------------------------
    def prepare(self, wb, fills: list, height: int, time_ms: int | None):
        """Write into `wb` the aggregates of `fills` (oldest first) at `height`, the window
        moved to `time_ms` (the block's time; None: not moved); returns what `applied` takes
        once the batch is written."""
        day = {k: list(v) for k, v in self.day.items()}
        candles: dict[bytes, list] = {}
        records: dict[bytes, list] = {}
        newest: dict[bytes, int] = {}     # (market, interval) prefix -> its newest bucket
        for (market, t), g in _summarize(fills).items():
            self._add(candles, records, newest, day, market, t, g)
        cutoffs = {p: b - self.keep_candles * INTERVAL_MS[INTERVALS[p[-1]]]
                   for p, b in newest.items()}
        for p, before in cutoffs.items():
            self._drop_old_candles(wb, p, before)
        for k, c in candles.items():
            if int.from_bytes(k[-8:], "big") > cutoffs.get(k[:-8], -1):
                wb.put(k, _pack(c))
        for k, r in records.items():
            wb.put(k, _pack(r))
        if time_ms is not None:
            self._expire(wb, day, time_ms - DAY_MS, records)
        wb.put(K_STATS_META, _pack([height, day]))
        return height, day

    def applied(self, update) -> None:
        self.height, self.day = update
        self.present = True

    def _add(self, candles, records, newest, day, market: str, time_ms: int, g: list) -> None:
        """Merge `g`, the trades on `market` at `time_ms` (`_summarize`), into its candles,
        its window record and the market's totals."""
        o, h, low, c, vol, n, ntl = g
        for iv in INTERVALS:
            width = INTERVAL_MS[iv]
            start = time_ms - time_ms % width
            prefix = _candle_prefix(market, iv)
            key = prefix + _ms(start)
            b = candles.get(key)
            if b is None:
                raw = self._db.get(key)
                if raw is None:
                    if start > newest.get(prefix, -1):
                        newest[prefix] = start        # a new bucket: older ones may go
                    candles[key] = [o, h, low, c, _text(vol), n]
                    continue
                b = candles[key] = _unpack(raw)
            b[3] = c
            if Decimal(h) > Decimal(b[1]):
                b[1] = h
            if Decimal(low) < Decimal(b[2]):
                b[2] = low
            b[4] = _text(DECIMALS.add(Decimal(b[4]), vol))
            b[5] += n
        key = _market_key(P_DAY, market) + _ms(time_ms)
        r = records.get(key)
        if r is None:
            raw = self._db.get(key)
            r = records[key] = ["0", "0", c] if raw is None else _unpack(raw)
        r[0] = _text(DECIMALS.add(Decimal(r[0]), ntl))
        r[1] = _text(DECIMALS.add(Decimal(r[1]), vol))
        r[2] = c
        tot = day.setdefault(market, ["0", "0", None])
        tot[0] = _text(DECIMALS.add(Decimal(tot[0]), ntl))
        tot[1] = _text(DECIMALS.add(Decimal(tot[1]), vol))

    def _drop_old_candles(self, wb, prefix: bytes, before_ms: int) -> None:
        """Delete the buckets under `prefix` (a market and interval) that start at or
        before `before_ms`."""
        if before_ms < 0:
            return
        for k in self._db.iterator(start=prefix, stop=prefix + _ms(before_ms + 1),
                                   include_value=False):
            wb.delete(k)

    def _expire(self, wb, day: dict, since_ms: int, written: dict) -> None:
        """Move each market's window to start at `since_ms`: its records older than that
        (stored, or `written` in this batch) leave the totals and the store, oldest first;
        the newest of them gives the price 24 hours ago."""
        for market, tot in day.items():
            gone = [(k, r) for k, r in self._older(market, since_ms) if k not in written]
            prefix = _market_key(P_DAY, market)
            gone += [(k, r) for k, r in written.items() if k.startswith(prefix)
                     and len(k) == len(prefix) + 8 and int.from_bytes(k[-8:], "big") < since_ms]
            for k, r in sorted(gone, key=lambda kr: kr[0]):
                tot[0] = _text(DECIMALS.subtract(Decimal(tot[0]), Decimal(r[0])))
                tot[1] = _text(DECIMALS.subtract(Decimal(tot[1]), Decimal(r[1])))
                tot[2] = r[2]
                wb.delete(k)
        for market in [m for m, t in day.items() if t[0] == "0" and t[1] == "0" and t[2] is None]:
            del day[market]

    def _older(self, market: str, since_ms: int) -> Iterable[tuple[bytes, list]]:
        """The stored window records of `market` older than `since_ms`, oldest first."""
        if since_ms <= 0:
            return
        prefix = _market_key(P_DAY, market)
        for k, v in self._db.iterator(start=prefix, stop=prefix + _ms(since_ms)):
            yield k, _unpack(v)

    # -- reading ---------------------------------------------------------------------------
    def candles(self, market: str, interval: str, start_ms: int, end_ms: int,
                limit: int) -> list[dict]:
        """The buckets of `interval` on `market` with trades, oldest first, from the one
        holding `start_ms` to the last starting at or before `end_ms`, at most `limit`:
        {"t": bucket start, "o", "h", "l", "c": price texts, "v": volume text, "n": trades}."""
        width = INTERVAL_MS[interval]
        prefix = _candle_prefix(market, interval)
        lo = max(0, start_ms - start_ms % width)
        if end_ms < lo:
            return []
        out = []
        for k, v in self._db.iterator(start=prefix + _ms(lo),
                                      stop=prefix + _ms(min(end_ms, 2**64 - 2) + 1)):
            o, h, low, c, vol, n = _unpack(v)
            out.append({"t": int.from_bytes(k[len(prefix):], "big"), "o": o, "h": h, "l": low,
                        "c": c, "v": vol, "n": n})
            if len(out) == limit:
                break
        return out

    def day_figures(self, now_ms: int) -> dict[str, tuple[str, str, str | None]]:
        """Per market with trades: (notional, base volume, price 24 hours ago or None) of
        the fills in (now_ms - 24 h, now_ms], as exact decimal texts."""
        out = {}
        for market, (ntl, vol, prev) in self.day.items():
            n, v = Decimal(ntl), Decimal(vol)
            for _, r in self._older(market, now_ms - DAY_MS):   # left since the last commit
                n, v, prev = DECIMALS.subtract(n, Decimal(r[0])), \
                    DECIMALS.subtract(v, Decimal(r[1])), r[2]
            out[market] = (_text(n), _text(v), prev)
        return out

    def last_price(self, market: str) -> str | None:
        """The price of the last trade on `market` the aggregates hold, None if none."""
        for _, v in self._db.iterator(prefix=_candle_prefix(market, INTERVALS[0]),
                                      reverse=True):
            return _unpack(v)[3]
        return None

    # -- building from a fill log ---------------------------------------------------------
    def rebuild(self, fills_oldest_first: Iterable, height: int, batch_fills: int = 10_000) -> None:
        """Replace the aggregates by those of `fills_oldest_first` (a fill log's kept fills,
        whose last height is `height`): for a store whose fill log predates them."""
        with self._db.write_batch() as wb:
            for prefix in (P_CANDLE, P_DAY):
                for k in self._db.iterator(prefix=prefix, include_value=False):
                    wb.delete(k)
            wb.delete(K_STATS_META)
        self.height, self.day = 0, {}
        chunk: list = []
        for f in fills_oldest_first:
            chunk.append(f)
            if len(chunk) >= batch_fills:
                self._write(chunk, f.height)
                chunk = []
        last_time = chunk[-1].time_ms if chunk else None
        self._write(chunk, height, last_time)

    def _write(self, fills: list, height: int, time_ms: int | None = None) -> None:
        with self._db.write_batch() as wb:
            update = self.prepare(wb, fills, height, time_ms)
        self.applied(update)
