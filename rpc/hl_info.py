"""Hyperliquid's `POST /info`: one answer per request `type`, in Hyperliquid's shapes.

Every answer reads the node's latest committed state (`app.store.state`) and its read model
(`app.read_model`: the committed books and the last fills, node/read_model.py); several are
the native JSON-RPC answers (rpc/trading_methods.py, rpc/funding_methods.py) renamed, so the
two APIs cannot disagree. The façade keeps nothing of its own. Shapes: docs/HYPERLIQUID.md.

What comes from the read model's fill history (the last node.read_model.MAX_FILLS fills of
the chain) is bounded by it: userFills, userFillsByTime and a fill's `startPosition` (the
account's position now, minus its later fills). candleSnapshot, the 24-hour figures of
metaAndAssetCtxs and allMids' last-trade fallback come from the read model's running
aggregates of every fill (node/fill_stats.py), which trimming the history does not change.

`info(app, body)` returns the JSON answer or raises HLError (HTTP 4xx, {"code", "msg"}).
"""

import hashlib
import math
from decimal import Decimal

from node import fill_stats
from rpc import hl_format as H, hl_lending
from rpc.hl_format import HLError, Universe, bad, field as _field, ms_field as _ms, \
    token_names as _tokens
from rpc.funding_methods import funding_history as native_funding_history
from rpc.trading_methods import margin_account, mark_prices
from state import funding as F, funding_index as FI, ledger, markets as MS, orders as O
from state import params
from state.machine import last_block
from state.margin import mark_price, spot_reserved
from state.positions import load_account
from state.hl_universe import sz_decimals
from state.risk_index import index_for_reads

L2_DEPTH = 20               # levels per side, as Hyperliquid
MAX_FILLS = 2000            # userFills / userFillsByTime rows per answer
MAX_FUNDING_ROWS = 500      # fundingHistory / userFunding rows per answer
MAX_CANDLES = 5000
DAY_MS = 86_400_000
INTERVAL_MS = fill_stats.INTERVAL_MS   # candle widths: those the read model aggregates


def _dex(body: dict) -> None:
    if body.get("dex") not in (None, ""):
        raise bad("unknown_dex", f"dex {body['dex']!r}: this chain has only the first perp "
                  'dex (""); builder-deployed perp dexs do not exist here')


def _now_ms(app) -> int:
    return last_block(app.store.state)[1]


# -- metadata ------------------------------------------------------------------------------

def meta_json(uni: Universe) -> dict:
    universe, tables = [], []
    for i, m in enumerate(uni.perps):
        row = {"name": uni.name[m.id], "szDecimals": sz_decimals(m),
               "maxLeverage": m.max_leverage, "marginTableId": i}
        if m.kind == MS.FUTURE:
            from state import futures as FU
            if FU.settled(uni.view, m.id):
                row["isDelisted"] = True
        universe.append(row)
        tables.append([i, {"description": m.symbol, "marginTiers": [
            {"lowerBound": H.amt(t.lower_bound, uni.qdec), "maxLeverage": t.max_leverage}
            for t in m.tiers]}])
    return {"universe": universe, "marginTables": tables}


def spot_meta_json(uni: Universe) -> dict:
    tokens = _tokens(uni)
    index = {t: i for i, t in enumerate(tokens)}
    sz = {}
    for m in uni.spots:
        sz[m.base] = min(sz.get(m.base, 99), sz_decimals(m))
    out_tokens = []
    for i, t in enumerate(tokens):
        dec = params.asset_decimals(uni.view, t)
        token_id = "0x" + hashlib.sha256(t.encode()).hexdigest()[:32]   # stable, 16 bytes
        out_tokens.append({"name": t, "szDecimals": sz.get(t, dec), "weiDecimals": dec,
                           "index": i, "tokenId": token_id, "isCanonical": True,
                           "evmContract": None, "fullName": None})
    return {"universe": [{"tokens": [index[m.base], index[uni.quote]],
                          "name": uni.name[m.id], "index": i, "isCanonical": True}
                         for i, m in enumerate(uni.spots)],
            "tokens": out_tokens}


def _quantums(text: str, decimals: int) -> int:
    """An exact decimal text (node/fill_stats.py) in quantums of `decimals`, rounded down."""
    return math.floor(fill_stats.DECIMALS.scaleb(Decimal(text), decimals))


def _day_stats(app, uni: Universe, now_ms: int) -> dict[str, tuple]:
    """Per market symbol: (notional volume in quote quantums, rounded down once; base volume
    in base quantums; price 24 h ago or None) of the fills of the last 24 hours, from the
    read model's running aggregates (node/fill_stats.py), not a scan of the fills."""
    fills = app.read_model.fills
    fills.catch_up(last_block(app.store.state)[0])
    out = {}
    for sym, (ntl, base, prev) in fills.stats.day_figures(now_ms).items():
        m = uni.by_symbol.get(sym)
        if m is not None:
            out[sym] = (_quantums(ntl, m.quote_decimals), _quantums(base, m.base_decimals),
                        prev)
    return out


def _predicted_rate(view, m: MS.Market, fp) -> str:
    """The hourly rate the current window would pay now (Hyperliquid's ctx `funding`)."""
    acc = F.read_accumulator(view, m.id)
    if fp is None or acc is None:
        return "0.0"
    w = F.Window(acc.window_start_ms, acc.window_start_ms + fp.interval_ms, acc.weighted_sum,
                 acc.weight_ms)
    f8 = F.rate_8h(F.average_premium(w), fp)
    return H.amt(F.window_rate(f8, 3_600_000, fp), F.RATE_DECIMALS)


async def meta_and_asset_ctxs(app, body: dict) -> list:
    view = app.store.state
    uni = Universe(view)
    marks = {r["market"]: r for r in (await mark_prices(app, {}))["marks"]}
    stats = _day_stats(app, uni, _now_ms(app))
    funded = MS.funding_params(view)
    idx = index_for_reads(view)
    ctxs = []
    for m in uni.perps:
        mk = marks.get(m.symbol, {})
        ntl, base, prev = stats.get(m.symbol, (0, 0, None))
        oi = sum(s for _, s in idx.holders(m.id) if s > 0)
        acc = F.read_accumulator(view, m.id)
        prem = acc.last_premium if acc is not None and acc.last_premium is not None else 0
        bid, ask = mk.get("impact_bid"), mk.get("impact_ask")
        mid = H.mid_text(m, app.read_model.books.book(m.id))
        oracle = mk.get("oracle_price")
        ctxs.append({"funding": _predicted_rate(view, m, funded.get(m.id)),
                     "openInterest": H.sz_of(m, oi),
                     "prevDayPx": H.num(prev or mk.get("mark_price") or "0"),
                     "dayNtlVlm": H.amt(ntl, uni.qdec), "dayBaseVlm": H.amt(base, m.base_decimals),
                     "premium": H.amt(prem, F.RATE_DECIMALS),
                     "oraclePx": H.num(oracle) if oracle else None,
                     "markPx": H.num(mk["mark_price"]) if mk.get("mark_price") else None,
                     "midPx": mid,
                     "impactPxs": [H.num(bid), H.num(ask)] if bid and ask else None})
    return [meta_json(uni), ctxs]


def mids(app) -> dict:
    """Each market's book mid; a market with a one-sided or empty book shows its last trade
    price if the read model holds one (as Hyperliquid falls back), else a perp-like market
    its mark price (so the SDK's market_open works on a fresh localnet), else nothing."""
    uni = Universe(app.store.state)
    out, missing = {}, {}
    for m in uni.perps + uni.spots:
        mid = H.mid_text(m, app.read_model.books.book(m.id))
        if mid is None:
            missing[m.symbol] = uni.name[m.id]
        else:
            out[uni.name[m.id]] = mid
    if missing:
        app.read_model.fills.catch_up(last_block(uni.view)[0])
        stats = app.read_model.fills.stats
        for sym in list(missing):
            px = stats.last_price(sym)
            if px is not None:
                out[missing.pop(sym)] = H.num(px)
    for sym, coin in missing.items():
        m = uni.by_symbol[sym]
        mark = mark_price(uni.view, m) if m.perp_like else None
        if mark is not None:
            out[coin] = H.amt(mark, uni.qdec)
    return out


async def all_mids(app, body: dict) -> dict:
    _dex(body)
    return mids(app)


async def l2_book(app, body: dict) -> dict:
    if body.get("nSigFigs") is not None or body.get("mantissa") is not None:
        raise bad("unsupported", "nSigFigs / mantissa aggregation is not supported: leave "
                  "them out (or null) for the full-precision book")
    uni = Universe(app.store.state)
    m = uni.market(_field(body, "coin"))
    return {"coin": uni.name[m.id], "time": _now_ms(app),
            "levels": H.levels_json(m, app.read_model.books.book(m.id), L2_DEPTH)}


# -- accounts ------------------------------------------------------------------------------

def _d(text) -> Decimal:
    return Decimal(text) if text is not None else Decimal(0)


def _position_json(uni: Universe, p: dict) -> dict:
    """A native `positions` row (rpc/trading_methods.py) as an assetPositions entry."""
    m = uni.by_symbol[p["market"]]
    size, lev = _d(p["size"]), p["leverage"]
    entry_ntl = abs(size) * _d(p["entry_price"])
    leverage = {"type": p["margin_mode"], "value": lev}
    if p["margin_mode"] == "isolated":
        leverage["rawUsd"] = H.dec_text(_d(p["isolated_margin"]) - size * _d(p["entry_price"]),
                                        uni.qdec)
    roe = _d(p["unrealized_pnl"]) * lev / entry_ntl if entry_ntl else Decimal(0)
    liq = p["liquidation_price"]
    return {"type": "oneWay", "position": {
        "coin": uni.name[m.id], "szi": H.num(p["size"]), "leverage": leverage,
        "entryPx": H.num(p["entry_price"]) if p["entry_price"] else None,
        "positionValue": H.num(p["notional"]), "unrealizedPnl": H.num(p["unrealized_pnl"]),
        "returnOnEquity": H.dec_text(roe), "liquidationPx": H.num(liq) if liq else None,
        "marginUsed": H.num(p["initial_margin"]), "maxLeverage": m.max_leverage}}


def _summary(equity: Decimal, ntl: Decimal, signed_value: Decimal, used: Decimal,
             qdec: int) -> dict:
    return {"accountValue": H.dec_text(equity, qdec), "totalNtlPos": H.dec_text(ntl, qdec),
            "totalRawUsd": H.dec_text(equity - signed_value, qdec),
            "totalMarginUsed": H.dec_text(used, qdec)}


async def clearinghouse_state(app, body: dict) -> dict:
    """The native `margin_account` answer in Hyperliquid's shape. crossMarginSummary covers
    the cross positions (the native summary); marginSummary adds isolated positions."""
    _dex(body)
    account = H.parse_user(_field(body, "user"))
    view = app.store.state
    uni = Universe(view)
    native = await margin_account(app, {"address": account.hex()})
    open_pos = [p for p in native["positions"] if _d(p["size"]) != 0]
    cross = [p for p in open_pos if p["margin_mode"] == "cross"]
    iso = [p for p in open_pos if p["margin_mode"] == "isolated"]
    equity = _d(native["equity"])
    value = (lambda ps: sum((_d(p["notional"]) * (1 if _d(p["size"]) > 0 else -1)
                             for p in ps), Decimal(0)))
    ntl = (lambda ps: sum((_d(p["notional"]) for p in ps), Decimal(0)))
    cross_s = _summary(equity, ntl(cross), value(cross), _d(native["margin_used"]), uni.qdec)
    iso_equity = sum((_d(p["isolated_equity"]) for p in iso), Decimal(0))
    iso_used = sum((_d(p["isolated_margin"]) for p in iso), Decimal(0))
    all_s = _summary(equity + iso_equity, ntl(open_pos), value(open_pos),
                     _d(native["margin_used"]) + iso_used, uni.qdec)
    return {"assetPositions": [_position_json(uni, p) for p in open_pos],
            "marginSummary": all_s, "crossMarginSummary": cross_s,
            "crossMaintenanceMarginUsed": H.num(native["maintenance_margin"]),
            "withdrawable": H.num(native["free_collateral"]), "time": _now_ms(app)}


async def spot_clearinghouse_state(app, body: dict) -> dict:
    account = H.parse_user(_field(body, "user"))
    view = app.store.state
    uni = Universe(view)
    index = {t: i for i, t in enumerate(_tokens(uni))}
    held = spot_reserved(view, load_account(view, account))
    out = []
    for sym, q in sorted(ledger.balances(view, account).items(), key=lambda kv: index[kv[0]]):
        if q == 0:
            continue
        dec = params.asset_decimals(view, sym)
        out.append({"coin": sym, "token": index[sym], "hold": H.amt(held.get(sym, 0), dec),
                    "total": H.amt(q, dec), "entryNtl": "0.0"})
    return {"balances": out}


# -- orders --------------------------------------------------------------------------------

def _open_orders(view, uni: Universe, account: bytes) -> list[tuple[MS.Market, O.OrderRecord]]:
    """The account's open orders (resting and waiting triggers), newest first."""
    out = []
    for mid, oid in O.account_order_ids(view, account):
        o = O.get_open(view, mid, oid)
        if o is not None:
            out.append((uni.markets[mid], o))
    out.sort(key=lambda mo: mo[1].id, reverse=True)
    return out


async def open_orders(app, body: dict) -> list:
    _dex(body)
    account = H.parse_user(_field(body, "user"))
    uni = Universe(app.store.state)
    return [H.order_json(uni, m, o) for m, o in _open_orders(app.store.state, uni, account)]


async def frontend_open_orders(app, body: dict) -> list:
    _dex(body)
    account = H.parse_user(_field(body, "user"))
    uni = Universe(app.store.state)
    return [H.frontend_order_json(uni, m, o)
            for m, o in _open_orders(app.store.state, uni, account)]


def _oid(v) -> tuple[int | None, int | None]:
    """(order id, client order id) of orderStatus's `oid`: a number or a 0x cloid."""
    if type(v) is int and v >= 0:
        return v, None
    if isinstance(v, str) and v.startswith("0x") and len(v) == 34:
        try:
            return None, int(v[2:], 16)
        except ValueError:
            pass
    raise bad("invalid_field", "oid must be an order id (integer) or a client order id "
              "(0x + 32 hex digits)")


async def order_status(app, body: dict) -> dict:
    """An open order from the state; a closed one from the account's fills in the read
    model ("filled", sz 0); else {"status": "unknownOid"}."""
    account = H.parse_user(_field(body, "user"))
    oid, cloid = _oid(_field(body, "oid"))
    view = app.store.state
    uni = Universe(view)
    if cloid is not None:
        hit = O.cloid_lookup(view, account, cloid) if cloid < 2**64 else None
        if hit is not None:
            oid = hit[1]
    for m, o in _open_orders(view, uni, account):
        if o.id == oid:
            return {"status": "order", "order": {"order": H.frontend_order_json(uni, m, o),
                                                 "status": "open",
                                                 "statusTimestamp": o.placed_ms}}
    filled = _filled_order(app, uni, account, oid, cloid)
    return filled or {"status": "unknownOid"}


def _filled_order(app, uni: Universe, account: bytes, oid, cloid) -> dict | None:
    fills = app.read_model.fills
    fills.catch_up(last_block(app.store.state)[0])
    me = account.hex()
    mine = []
    for f in fills.newest_first(me):
        role = "taker" if f.attr("taker") == me else "maker"
        if (oid is not None and int(f.attr(f"{role}_order_id")) == oid) or \
                (cloid is not None and int(f.attr(f"{role}_cloid") or 0) == cloid):
            mine.append((f, role))
    if not mine:
        return None
    last, role = mine[0]
    first = mine[-1][0]
    m = uni.by_symbol[last.attr("market")]
    total = sum(H.fill_size(m, f) for f, _ in mine)
    bought = H.account_bought(last, me)
    order = {"coin": uni.name[m.id], "side": "B" if bought else "A",
             "limitPx": H.num(last.attr("price")), "sz": "0.0",
             "oid": int(last.attr(f"{role}_order_id")), "timestamp": first.time_ms,
             "origSz": H.amt(total, m.base_decimals), "children": [], "isPositionTpsl": False,
             "isTrigger": False, "orderType": "Limit", "reduceOnly": False, "tif": None,
             "triggerCondition": "N/A", "triggerPx": "0.0",
             "cloid": H.cloid_text(int(last.attr(f"{role}_cloid") or 0))}
    return {"status": "order", "order": {"order": order, "status": "filled",
                                         "statusTimestamp": last.time_ms}}


# -- fills ---------------------------------------------------------------------------------

def _position_now(view, account: bytes, m: MS.Market, acct) -> int:
    """The account's position (perp) or base balance (spot) now, in base quantums."""
    if m.kind == MS.SPOT:
        return ledger.balance(view, account, m.base)
    e = acct.entries.get(m.id)
    return 0 if e is None else e.size * m.lot_size


def user_fill_rows(app, account: bytes, fills_newest_first: list, keep=None) -> list[dict]:
    """userFills rows of the fills `keep(fill)` selects (all when None), newest first;
    startPosition walks back from today's position over every fill given, so they must be
    all of the account's fills from the newest one down."""
    view = app.store.state
    uni = Universe(view)
    acct = load_account(view, account)
    me = account.hex()
    hashes = H.TxHashes(app.store)
    pos: dict[int, int] = {}
    out = []
    for f in fills_newest_first:
        m = uni.by_symbol[f.attr("market")]
        if m.id not in pos:
            pos[m.id] = _position_now(view, account, m, acct)
        size = H.fill_size(m, f)
        start = pos[m.id] - (size if H.account_bought(f, me) else -size)
        pos[m.id] = start
        if keep is None or keep(f):
            out.append(H.fill_json(uni, f, me, start, hashes(f.height, f.index)))
    return out


def _account_fills(app, account: bytes) -> list:
    fills = app.read_model.fills
    fills.catch_up(last_block(app.store.state)[0])
    return fills.newest_first(account.hex())


async def user_fills(app, body: dict) -> list:
    """The account's last MAX_FILLS fills, newest first."""
    account = H.parse_user(_field(body, "user"))
    return user_fill_rows(app, account, _account_fills(app, account)[:MAX_FILLS])


async def user_fills_by_time(app, body: dict) -> list:
    """The account's fills with startTime <= time <= endTime, oldest first, at most
    MAX_FILLS (page on with the last time + 1). aggregateByTime is not supported."""
    account = H.parse_user(_field(body, "user"))
    start, end = _ms(body, "startTime", True), _ms(body, "endTime", False)
    if body.get("aggregateByTime"):
        raise bad("unsupported", "aggregateByTime is not supported: every fill is its own row")
    rows = user_fill_rows(app, account, _account_fills(app, account),
                          lambda f: f.time_ms >= start and (end is None or f.time_ms <= end))
    return list(reversed(rows))[:MAX_FILLS]


# -- funding -------------------------------------------------------------------------------

async def funding_history(app, body: dict) -> list:
    """The market's settled windows with startTime <= time <= endTime, oldest first (the
    chain keeps the last state.funding.HISTORY_LEN per market). fundingRate is the rate the
    window paid (per its interval, an hour by default)."""
    uni = Universe(app.store.state)
    m = uni.market(_field(body, "coin"))
    start, end = _ms(body, "startTime", True), _ms(body, "endTime", False)
    native = await native_funding_history(app, {"market": m.id, "limit": F.HISTORY_LEN})
    rows = [{"coin": uni.name[m.id], "fundingRate": H.num(h["rate"]),
             "premium": H.num(h["premium"]), "time": int(h["time_ms"])}
            for h in reversed(native["history"])]
    return [r for r in rows if r["time"] >= start and (end is None or r["time"] <= end)][
        :MAX_FUNDING_ROWS]


async def user_funding(app, body: dict) -> list:
    """What each settled window paid the account's position (usdc > 0: received), oldest
    first. The position of each window is today's minus the account's later fills (read
    model); the chain settles funding lazily (a `funding_payment` event when the account is
    next touched), so a row is that window's share, rounded as the index rounds."""
    account = H.parse_user(_field(body, "user"))
    start, end = _ms(body, "startTime", True), _ms(body, "endTime", False)
    view = app.store.state
    uni = Universe(view)
    acct = load_account(view, account)
    fills = _account_fills(app, account)
    me = account.hex()
    rows = []
    for m in uni.perps:
        hist = F.history(view, m.id)          # oldest first
        size = _position_now(view, account, m, acct)
        later = [f for f in fills if f.attr("market") == m.symbol]   # newest first
        sizes, j = [0] * len(hist), 0
        for k in range(len(hist) - 1, -1, -1):
            while j < len(later) and later[j].time_ms >= hist[k].time_ms:
                q = H.fill_size(m, later[j])
                size -= q if H.account_bought(later[j], me) else -q
                j += 1
            sizes[k] = size
        for k, s in enumerate(hist):
            before = hist[k - 1].index if k else (0 if len(hist) < F.HISTORY_LEN else None)
            if before is None or sizes[k] == 0 or s.time_ms < start or \
                    (end is not None and s.time_ms > end):
                continue
            paid = FI.owed(sizes[k] // m.lot_size, s.index - before)
            rows.append((s.time_ms, m.id, {"time": s.time_ms, "hash": H.ZERO_HASH, "delta": {
                "type": "funding", "coin": uni.name[m.id], "usdc": H.amt(-paid, uni.qdec),
                "szi": H.amt(sizes[k], m.base_decimals),
                "fundingRate": H.amt(s.rate, F.RATE_DECIMALS), "nSamples": None}}))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [r[2] for r in rows[:MAX_FUNDING_ROWS]]


# -- candles -------------------------------------------------------------------------------

def candles(uni: Universe, m: MS.Market, interval: str, fills_oldest_first, start: int,
            end: int) -> list[dict]:
    """OHLCV candles of `interval` from fills on `m` (only intervals with trades)."""
    width = INTERVAL_MS[interval]
    out: list[dict] = []
    cur = None
    for f in fills_oldest_first:
        if f.attr("market") != m.symbol or not start <= f.time_ms <= end:
            continue
        t = f.time_ms - f.time_ms % width
        px, sz = f.attr("price"), H.fill_size(m, f)
        if cur is None or cur["t"] != t:
            if len(out) == MAX_CANDLES:
                break
            cur = {"t": t, "T": t + width - 1, "s": uni.name[m.id], "i": interval, "o": px,
                   "c": px, "h": px, "l": px, "v": 0, "n": 0}
            out.append(cur)
        cur["c"] = px
        if Decimal(px) > Decimal(cur["h"]):
            cur["h"] = px
        if Decimal(px) < Decimal(cur["l"]):
            cur["l"] = px
        cur["v"] += sz
        cur["n"] += 1
    for c in out:
        c["v"] = H.amt(c["v"], m.base_decimals)
        for k in "ochl":
            c[k] = H.num(c[k])
    return out


def interval_of(v) -> str:
    if v not in INTERVAL_MS:
        raise bad("invalid_field", f"interval must be one of {', '.join(INTERVAL_MS)}; "
                  f"got {str(v)[:20]!r} (1M is not supported)")
    return v


async def candle_snapshot(app, body: dict) -> list:
    """Whole candles from the read model's running aggregates of the fills (`candle_rows`)."""
    req = _field(body, "req")
    if not isinstance(req, dict):
        raise bad("invalid_field", 'req must be {"coin", "interval", "startTime", "endTime"}')
    uni = Universe(app.store.state)
    m = uni.market(_field(req, "coin"))
    interval = interval_of(_field(req, "interval"))
    start, end = _ms(req, "startTime", True), _ms(req, "endTime", False)
    return candle_rows(app, uni, m, interval, start, end if end is not None else 2**63)


def candle_rows(app, uni: Universe, m: MS.Market, interval: str, start: int, end: int) -> list:
    """The whole candles of `interval` on `m` from the one holding `start` to the last
    opening at or before `end` (only intervals with trades), from the read model's running
    aggregates (node/fill_stats.py): the same candles `candles` makes of those fills."""
    fills = app.read_model.fills
    fills.catch_up(last_block(app.store.state)[0])
    return stats_candles(fills.stats, uni, m, interval, start, end)


def stats_candles(stats, uni: Universe, m: MS.Market, interval: str, start: int,
                  end: int) -> list:
    """`candle_rows` from a node.fill_stats.FillStats."""
    out = []
    width = INTERVAL_MS[interval]
    for c in stats.candles(m.symbol, interval, start, end, MAX_CANDLES):
        out.append({"t": c["t"], "T": c["t"] + width - 1, "s": uni.name[m.id], "i": interval,
                    "o": H.num(c["o"]), "c": H.num(c["c"]), "h": H.num(c["h"]),
                    "l": H.num(c["l"]), "v": H.amt(_quantums(c["v"], m.base_decimals),
                                                   m.base_decimals), "n": c["n"]})
    return out


# -- dispatch ------------------------------------------------------------------------------

async def _meta(app, body):
    _dex(body)
    return meta_json(Universe(app.store.state))


async def _spot_meta(app, body):
    return spot_meta_json(Universe(app.store.state))


INFO_TYPES = {
    "meta": _meta, "spotMeta": _spot_meta, "metaAndAssetCtxs": meta_and_asset_ctxs,
    "allMids": all_mids, "l2Book": l2_book, "clearinghouseState": clearinghouse_state,
    "spotClearinghouseState": spot_clearinghouse_state, "openOrders": open_orders,
    "frontendOpenOrders": frontend_open_orders, "userFills": user_fills,
    "userFillsByTime": user_fills_by_time, "orderStatus": order_status,
    "fundingHistory": funding_history, "userFunding": user_funding,
    "candleSnapshot": candle_snapshot, **hl_lending.INFO_TYPES,
}


async def info(app, body) -> object:
    """The answer to one /info request body; HLError for a bad one."""
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise bad("invalid_request", 'the body must be a JSON object with a "type", e.g. '
                  '{"type": "meta"}')
    handler = INFO_TYPES.get(body["type"])
    if handler is None:
        raise HLError(422, "unknown_type", f"unknown info type {body['type'][:40]!r}; "
                      f"supported: {', '.join(INFO_TYPES)}")
    return await handler(app, body)
