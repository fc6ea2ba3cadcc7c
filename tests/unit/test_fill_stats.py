"""node/fill_stats.py and the fill log's pages: the running aggregates answer as a full scan
of the fills does (a differential test), through restarts, fill-log trimming and a rebuild
from a log that predates them."""

import random
from decimal import Decimal
from types import SimpleNamespace

import plyvel
import pytest

from node.fill_log import FillLog
from node.fill_stats import DAY_MS, INTERVAL_MS, P_CANDLE, P_DAY, K_STATS_META, FillStats
from node.read_model import Fill
from rpc import hl_info

MARKETS = {"BTC-USD": SimpleNamespace(id=0, symbol="BTC-USD", base_decimals=4),
           "ETH-USD": SimpleNamespace(id=1, symbol="ETH-USD", base_decimals=3)}
UNI = SimpleNamespace(name={0: "BTC", 1: "ETH"})
T0 = 1_700_000_000_000


def random_blocks(rng: random.Random, n_blocks: int, t0: int = T0):
    """(height, time_ms, fills) per block: times step by up to ~9 hours (crossing the 24-hour
    window and every candle width), up to 6 fills on random markets."""
    t, out = t0, []
    for h in range(1, n_blocks + 1):
        t += rng.choice([250, 1_000, 61_000, 3_600_000, 9 * 3_600_000 + 17])
        fills = []
        for i in range(rng.choice([0, 0, 1, 2, 6])):
            sym = rng.choice(sorted(MARKETS))
            px = f"{rng.randint(900, 1100)}.{rng.randint(0, 99):02d}".rstrip("0").rstrip(".")
            sz = str(Decimal(rng.randint(1, 5000)).scaleb(-MARKETS[sym].base_decimals))
            fills.append(Fill(h, i, t, (("market", sym), ("price", px), ("size", sz),
                                        ("taker", "ab" * 32), ("maker", "cd" * 32))))
        out.append((h, t, fills))
    return out


def scan_day(fills: list, now_ms: int) -> dict:
    """The 24-hour figures by scanning every fill (exact decimals)."""
    out: dict = {}
    for f in fills:
        s = out.setdefault(f.attr("market"), [Decimal(0), Decimal(0), None])
        if f.time_ms < now_ms - DAY_MS:
            s[2] = f.attr("price")
        else:
            s[0] += Decimal(f.attr("price")) * Decimal(f.attr("size"))
            s[1] += Decimal(f.attr("size"))
    return out


def scan_candles(fills: list, sym: str, interval: str, start: int, end: int, keep: int) -> list:
    """hl_info.candles (the scan) over the whole buckets the aggregates answer with, limited to
    the buckets they keep (the last `keep` widths of the market's newest)."""
    m, width = MARKETS[sym], INTERVAL_MS[interval]
    mine = [f for f in fills if f.attr("market") == sym]
    if not mine:
        return []
    newest = max(f.time_ms - f.time_ms % width for f in mine)
    lo = max(start - start % width, newest - (keep - 1) * width)
    return hl_info.candles(UNI, m, interval, mine, lo, end - end % width + width - 1)


def check(log: FillLog, all_fills: list, now_ms: int, rng: random.Random, keep: int) -> None:
    stats = log.stats
    day = stats.day_figures(now_ms)
    want = scan_day(all_fills, now_ms)
    for sym, (ntl, base, prev) in want.items():
        got = day.get(sym, ("0", "0", None))
        assert (Decimal(got[0]), Decimal(got[1]), got[2]) == (ntl, base, prev), sym
    assert set(day) <= set(want)
    for sym in MARKETS:
        last = [f.attr("price") for f in all_fills if f.attr("market") == sym]
        assert stats.last_price(sym) == (last[-1] if last else None)
        for interval in rng.sample(sorted(INTERVAL_MS), 4):
            start = rng.choice([0, T0, now_ms - rng.randint(0, 3 * DAY_MS)])
            end = rng.choice([2**63, now_ms - rng.randint(0, DAY_MS)])
            got = hl_info.stats_candles(stats, UNI, MARKETS[sym], interval, start, end)
            assert got == scan_candles(all_fills, sym, interval, start, end, keep), \
                (sym, interval, start, end)
    kept = list(reversed(list(log)))
    for sym in (None, *MARKETS):
        sel = [f for f in kept if sym is None or f.attr("market") == sym]
        for offset, limit in ((0, 5), (3, 7), (len(sel) - 2, 10), (len(sel) + 1, 3)):
            offset = max(0, offset)
            assert log.newest_page(sym, offset, limit) == (len(sel), sel[offset:offset + limit])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_aggregates_answer_as_a_scan_through_restarts_and_trimming(tmp_path, seed):
    rng = random.Random(seed)
    keep = 40
    db = plyvel.DB(str(tmp_path / "db"), create_if_missing=True)
    log = FillLog(db, max_fills=60)             # trims: far fewer than the fills made
    log.stats.keep_candles = keep
    every: list[Fill] = []
    blocks = random_blocks(rng, 300)
    for h, t, fills in blocks:
        log.append(fills, h, t)
        every += fills
        if h % 25 == 0:
            check(log, every, t, rng, keep)
            check(log, every, t + rng.randint(1, 2 * DAY_MS), rng, keep)   # between commits
        if h % 60 == 0:                         # a restart: everything read back from disk
            log = FillLog(db, max_fills=60)
            log.stats.keep_candles = keep
    assert len(every) > 300 and len(log) == 60
    db.close()


def test_a_fill_log_from_before_the_aggregates_gets_them_built_from_its_fills(tmp_path):
    rng = random.Random(7)
    db = plyvel.DB(str(tmp_path / "db"), create_if_missing=True)
    log = FillLog(db, max_fills=10_000)
    every: list[Fill] = []
    for h, t, fills in random_blocks(rng, 120):
        log.append(fills, h, t)
        every += fills
    last_t = t
    # what an older node wrote: the log only, without the market index and aggregates
    with db.write_batch() as wb:
        for prefix in (P_CANDLE, P_DAY, b"M/"):
            for k in db.iterator(prefix=prefix, include_value=False):
                wb.delete(k)
        wb.delete(K_STATS_META)
        wb.delete(b"m/fillmarkets")
    assert db.get(K_STATS_META) is None
    log = FillLog(db, max_fills=10_000)
    assert log.stats.height == log.height == 120
    check(log, every, last_t, rng, 5_000)
    db.close()


def test_candle_buckets_beyond_the_kept_widths_are_deleted(tmp_path):
    db = plyvel.DB(str(tmp_path / "db"), create_if_missing=True)
    stats = FillStats(db, keep_candles=3)
    for k in range(10):
        t = T0 - T0 % DAY_MS + k * 60_000
        with db.write_batch() as wb:
            update = stats.prepare(wb, [Fill(k + 1, 0, t, (("market", "BTC-USD"),
                                                            ("price", "10"), ("size", "1")))],
                                   k + 1, t)
        stats.applied(update)
    got = stats.candles("BTC-USD", "1m", 0, 2**63, 100)
    assert [c["t"] for c in got] == [T0 - T0 % DAY_MS + k * 60_000 for k in (7, 8, 9)]
    assert [c["t"] for c in stats.candles("BTC-USD", "3m", 0, 2**63, 100)] == \
        [T0 - T0 % DAY_MS + k * 180_000 for k in (1, 2, 3)]       # 4 opened, 3 kept
    assert len(list(db.iterator(prefix=P_CANDLE))) == 3 + 3 + 2 + 10   # 1m, 3m, 5m, the rest
    db.close()


def test_amounts_are_added_exactly_or_not_at_all(tmp_path):
    db = plyvel.DB(str(tmp_path / "db"), create_if_missing=True)
    stats = FillStats(db)
    fills = [Fill(1, i, T0, (("market", "X"), ("price", "0.1"), ("size", "0.2")))
             for i in range(3)]
    with db.write_batch() as wb:
        stats.applied(stats.prepare(wb, fills, 1, T0))
    ntl, vol, prev = stats.day_figures(T0)["X"]
    assert (ntl, vol, prev) == ("0.06", "0.6", None)     # 0.1 * 0.2 three times, no float error
    db.close()
