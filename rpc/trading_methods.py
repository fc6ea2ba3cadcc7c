"""JSON-RPC methods of the exchange: markets, books, orders, fills, positions, margin, oracle.

Every method reads the latest committed state (`app.store.state`) and answers with decimal
strings for prices, sizes and amounts (prices in quote units per whole base unit, sizes in base
units), lower-case hex addresses and decimal-string heights, like rpc/methods.py.

What the state has no index for comes from the node's read model (`app.read_model`,
node/read_model.py), kept from committed data as blocks commit: the order books of the
committed height (`orderbook`, impact prices in `mark_prices`) and the last fills (`fills`).
This module keeps no state of its own.
"""

from state import ledger, constants as C, params
from state.amounts import format_amount
from state.book import Side
from state.codec import load
from state.machine import last_block
from state import futures as FU
from state import margin as MG
from state import mark as MK
from state import markets as MS
from state import oracle as OR
from state import orders as O
from state.isolated import iso_summary
from state import twap as TW
from state.liquidation_price import liquidation_price
from state.positions import load_account
from state.risk_index import index_for_reads
from node.read_model import Fill
from rpc import params as rpc_params
from rpc.errors import RPCCode, RPCError
from rpc.risk_methods import adl_place

MAX_PAGE = 1_000


def _view(app):
    return app.store.state


def _height(app) -> int:
    return last_block(_view(app))[0]


def _get(p: dict, name: str, pos: int, default=None, required: bool = False):
    v = p.get(name, p.get(pos, default))
    if isinstance(v, str) and len(v) >= 2 and v[0] == v[-1] == '"':
        v = v[1:-1]
    if required and v is None:
        raise RPCError(RPCCode.INVALID_PARAMS, f"missing parameter {name!r}")
    return v


def _int_param(p: dict, name: str, pos: int, default=None, required: bool = False) -> int | None:
    v = _get(p, name, pos, default, required)
    if v is None:
        return None
    try:
        if isinstance(v, bool):
            raise ValueError
        return int(v)
    except (TypeError, ValueError):
        raise RPCError(RPCCode.INVALID_PARAMS, f"parameter {name!r} must be an integer") from None


def _addr_param(p: dict, name: str = "address", pos: int = 0, required: bool = True) -> bytes | None:
    from node.keys import parse_address

    v = _get(p, name, pos, required=required)
    if v is None:
        return None
    try:
        return parse_address(v)
    except (ValueError, TypeError, AttributeError) as e:
        raise RPCError(RPCCode.INVALID_PARAMS, f"parameter {name!r}: {e}") from None


def _market_param(app, p: dict, pos: int = 0, required: bool = True) -> MS.Market | None:
    """A market by id (number or numeric string) or by symbol."""
    v = _get(p, "market", pos, required=required)
    if v is None:
        return None
    return rpc_params.market_value(_view(app), v)


class _Fmt:
    def __init__(self, app):
        view = _view(app)
        self.view = view
        self.quote = params.quote_asset(view)
        self.qdec = params.asset_decimals(view, self.quote)

    def px(self, m: MS.Market, ticks: int) -> str:
        return format_amount(ticks * m.tick_size, self.qdec)

    def price(self, units: int | None) -> str | None:
        return None if units is None else format_amount(units, self.qdec)

    def sz(self, m: MS.Market, lots: int) -> str:
        return format_amount(lots * m.lot_size, m.base_decimals)

    def amt(self, quantums: int) -> str:
        return format_amount(quantums, self.qdec)


# -- markets, oracle, marks ---------------------------------------------------------------------

def market_json(f: _Fmt, m: MS.Market) -> dict:
    return {
        "id": m.id, "symbol": m.symbol, "kind": MS.KIND_NAMES[m.kind], "base": m.base,
        "quote": f.quote, "base_decimals": m.base_decimals,
        "tick_size": f.price(m.tick_size), "lot_size": format_amount(m.lot_size, m.base_decimals),
        "min_size": f.sz(m, m.min_size_lots), "tick_size_units": str(m.tick_size),
        "lot_size_units": str(m.lot_size),
        "max_leverage": m.max_leverage if m.perp_like else 1,
        "margin_tiers": [{"notional": f.amt(t.lower_bound), "max_leverage": t.max_leverage,
                          "maintenance_margin_ppm": t.mmr_ppm} for t in m.tiers]
        if m.perp_like else [],
        "maker_fee_ppm": m.maker_fee_ppm, "taker_fee_ppm": m.taker_fee_ppm,
        "impact_notional": f.amt(m.impact_notional),
        **future_json(f, m),
    }


def future_json(f: _Fmt, m: MS.Market) -> dict:
    """A dated future's expiry, window, status (trading / expired / settled) and settlement
    price (null until settled); {} for other markets."""
    if m.kind != MS.FUTURE:
        return {}
    s = FU.settled(f.view, m.id)
    status = "settled" if s else \
        "expired" if FU.expired(m, last_block(f.view)[1]) else "trading"
    return {"expiry_ms": str(m.expiry_ms), "settlement_window_ms": str(m.settlement_window_ms),
            "status": status, "settlement_price": f.price(s.price) if s else None}


async def markets(app, p: dict) -> dict:
    f = _Fmt(app)
    out = []
    for m in MS.list_markets(f.view):
        j = market_json(f, m)
        o = OR.price(f.view, m.base)
        j["oracle_price"] = f.price(o[0]) if o else None
        j["mark_price"] = f.price(MG.mark_price(f.view, m)) if m.perp_like else None
        out.append(j)
    fp = MS.fee_params(f.view)
    return {"height": str(_height(app)), "markets": out,
            "fee_account": fp.fee_account.hex(),
            "fee_tiers": [{"min_volume_30d": f.amt(t.min_volume),
                           "taker_reduction_ppm": t.taker_reduction_ppm,
                           "maker_reduction_ppm": t.maker_reduction_ppm} for t in fp.tiers]}


async def oracle(app, p: dict) -> dict:
    f = _Fmt(app)
    view = f.view
    h, now = last_block(view)
    op = MS.oracle_params(view)
    vals = dict(params.validators(view))
    out = []
    for asset in MS.oracle_assets(view):
        pr = OR.price(view, asset)
        prefix = OR.P_UPDATE + asset.encode() + b"\x00"
        updates = []
        for k, raw in view.iterate(prefix):
            px, t = load(raw)
            key = k[len(prefix):]
            updates.append({"validator": key.hex(), "power": str(vals.get(key, 0)),
                            "price": f.price(px), "time_ms": str(t)})
        out.append({"asset": asset, "price": f.price(pr[0]) if pr else None,
                    "time_ms": str(pr[1]) if pr else None,
                    "stale": pr is None or now - pr[1] > op.max_age_ms, "updates": updates})
    return {"height": str(h), "block_time_ms": str(now), "max_age_ms": str(op.max_age_ms),
            "min_power_ppm": op.min_power_ppm, "assets": out}


async def mark_prices(app, p: dict) -> dict:
    f = _Fmt(app)
    view = f.view
    out = []
    for m in MS.list_markets(view):
        if not m.perp_like:
            continue
        rec = MK.read(view, m)
        o = OR.price(view, m.base)
        book = _book(app, m)
        out.append({"market": m.symbol, "id": m.id,
                    "mark_price": f.price(rec[0]) if rec else f.price(o[0] if o else None),
                    "oracle_price": f.price(o[0]) if o else None,
                    "ema_basis": f.price(rec[1]) if rec else "0",
                    "impact_bid": f.price(MK.impact_price(book, m, Side.BUY)),
                    "impact_ask": f.price(MK.impact_price(book, m, Side.SELL)),
                    "time_ms": str(rec[2]) if rec else None})
    return {"height": str(_height(app)), "marks": out}


# -- order books ------------------------------------------------------------------------------

def _book(app, m: MS.Market):
    """`m`'s book at the committed height (node/read_model.py: CommittedBooks)."""
    return app.read_model.books.book(m.id)


async def orderbook(app, p: dict) -> dict:
    m = _market_param(app, p)
    depth = _int_param(p, "depth", 1, 20)
    if not 1 <= depth <= C.MAX_L2_DEPTH:
        raise RPCError(RPCCode.INVALID_PARAMS, f"depth must be 1..{C.MAX_L2_DEPTH}")
    f = _Fmt(app)
    h = _height(app)
    book = _book(app, m)
    bids, asks = book.l2_snapshot(depth)
    row = (lambda lv: {"price": f.px(m, lv.price_ticks), "size": f.sz(m, lv.size_lots),
                       "orders": lv.order_count})
    return {"market": m.symbol, "id": m.id, "height": str(h), "sequence": str(h),
            "bids": [row(lv) for lv in bids], "asks": [row(lv) for lv in asks]}


# -- orders -------------------------------------------------------------------------------------

def order_json(f: _Fmt, m: MS.Market, o: O.OrderRecord, status: str) -> dict:
    return {"order_id": str(o.id), "market": m.symbol, "market_id": m.id,
            "owner": o.owner.hex(), "side": "buy" if o.is_buy else "sell",
            "kind": O.KIND_NAMES[o.kind], "tif": O.TIF_NAMES[o.tif],
            "price": f.px(m, o.price_ticks), "size": f.sz(m, o.size_lots),
            "orig_size": f.sz(m, o.orig_lots), "filled": f.sz(m, o.orig_lots - o.size_lots),
            "reduce_only": o.reduce_only,
            "trigger_price": f.px(m, o.trigger_ticks) if o.trigger_ticks else None,
            "cloid": str(o.cloid), "expiry_ms": str(o.expiry_ms) if o.expiry_ms else None,
            "placed_ms": str(o.placed_ms), "status": status}


async def open_orders(app, p: dict) -> dict:
    addr = _addr_param(p)
    m = _market_param(app, p, 1, required=False)
    f = _Fmt(app)
    out = []
    for mid, oid in O.account_order_ids(f.view, addr, m.id if m else None):
        mk = MS.get(f.view, mid)
        o = O.get_resting(f.view, mid, oid)
        if o is not None:
            out.append(order_json(f, mk, o, "open"))
        else:
            out.append(order_json(f, mk, O.get_trigger(f.view, mid, oid), "waiting_trigger"))
    return {"address": addr.hex(), "height": str(_height(app)), "orders": out}


async def order(app, p: dict) -> dict:
    """An open order by market + order_id, or by address + cloid."""
    f = _Fmt(app)
    oid = _int_param(p, "order_id", 1)
    cloid = _int_param(p, "cloid", 2)
    if oid is None:
        addr = _addr_param(p, "address", 3)
        if cloid is None:
            raise RPCError(RPCCode.INVALID_PARAMS, "give market and order_id, or address and "
                           "cloid")
        hit = O.cloid_lookup(f.view, addr, cloid)
        if hit is None:
            raise RPCError(RPCCode.INVALID_PARAMS, f"no open order with client id {cloid} "
                           f"for {addr.hex()}")
        mid, oid = hit
        m = MS.get(f.view, mid)
    else:
        m = _market_param(app, p)
    o = O.get_resting(f.view, m.id, oid)
    if o is not None:
        return order_json(f, m, o, "open")
    o = O.get_trigger(f.view, m.id, oid)
    if o is not None:
        return order_json(f, m, o, "waiting_trigger")
    raise RPCError(RPCCode.INVALID_PARAMS, f"order {oid} on {m.symbol} is not open (filled, "
                   "cancelled or never placed: see `fills` and the tx events)")


async def twap_orders(app, p: dict) -> dict:
    """The account's active TWAP orders with their progress (state.twap)."""
    addr = _addr_param(p)
    f = _Fmt(app)
    out = []
    for twap_id in TW.account_twaps(f.view, addr):
        tw = TW.get(f.view, twap_id)
        m = MS.get(f.view, tw.market)
        out.append({"twap_id": str(tw.id), "market": m.symbol, "market_id": m.id,
                    "side": "buy" if tw.is_buy else "sell", "size": f.sz(m, tw.size_lots),
                    "filled": f.sz(m, tw.filled_lots), "remaining": f.sz(m, tw.remaining_lots),
                    "reduce_only": tw.reduce_only, "start_ms": str(tw.start_ms),
                    "duration_ms": str(tw.duration_ms),
                    "end_ms": str(tw.start_ms + tw.slices * TW.SLICE_INTERVAL_MS),
                    "slices": str(tw.slices), "slices_done": str(tw.slices_done),
                    "slice_size": f.sz(m, tw.normal_lots), "next_slice_ms": str(tw.due_ms())})
    return {"address": addr.hex(), "height": str(_height(app)), "twaps": out}


# -- fills ----------------------------------------------------------------------------------

def fill_json(f: Fill) -> dict:
    """A fill event's attributes plus where it happened (`index`: the tx's index in the
    block, or the number of txs for a triggered order's fill at the end of the block)."""
    d = dict(f.attrs)
    d.update(height=str(f.height), index=f.index, time_ms=str(f.time_ms))
    return d


async def fills(app, p: dict) -> dict:
    """Fills newest first, filtered by account (taker or maker) and/or market; paged."""
    addr = _addr_param(p, "address", 0, required=False)
    m = _market_param(app, p, 1, required=False)
    page = _int_param(p, "page", 2, 1)
    per_page = _int_param(p, "per_page", 3, 100)
    if page < 1 or not 1 <= per_page <= MAX_PAGE:
        raise RPCError(RPCCode.INVALID_PARAMS, f"page >= 1 and per_page 1..{MAX_PAGE}")
    history = app.read_model.fills
    history.catch_up(_height(app))
    total, sel = history.page(addr.hex() if addr else None, m.symbol if m else None,
                              (page - 1) * per_page, per_page)
    return {"height": str(history.height), "total": total, "page": page,
            "per_page": per_page, "fills": [fill_json(x) for x in sel]}


# -- positions and margin -----------------------------------------------------------------------

def _positions(f: _Fmt, acct) -> list[dict]:
    """Each perp entry of the account with its margin, liquidation-price estimate
    (state.liquidation_price) and place in the ADL queue (rpc.risk_methods.adl_place)."""
    out = []
    s = idx = None
    for mid in sorted(acct.entries):
        e = acct.entries[mid]
        m = MS.get(f.view, mid)
        if not m.perp_like or not (e.size or e.buy_lots or e.sell_lots or e.leverage):
            continue
        mark = MG.mark_price(f.view, m)
        upnl, im, mm, notional = MG.market_requirements(m, e, mark) if mark else (0, 0, 0, 0)
        entry = liq = adl = None
        if e.size:
            entry = format_amount(abs(e.entry_tl) * m.tick_size // abs(e.size), f.qdec)
            if e.isolated:  # its own isolated equity, no other positions
                iso = iso_summary(f.view, m, e, mark)
                liq = liquidation_price(m, e.size, e.entry_tl, iso.equity - iso.unrealized_pnl, 0)
            else:
                s = s or MG.maintenance_summary(f.view, acct)  # (liquidation's weights)
                liq = liquidation_price(m, e.size, e.entry_tl, s.equity - upnl,
                                        s.maintenance_margin - mm)
            idx = idx or index_for_reads(f.view)
            adl = adl_place(f.view, m, acct.addr, e.size > 0, idx)
        out.append({"market": m.symbol, "market_id": m.id,
                    "size": format_amount(e.size * m.lot_size, m.base_decimals),
                    "side": "long" if e.size > 0 else "short" if e.size < 0 else "flat",
                    "entry_price": entry, "mark_price": f.price(mark),
                    "liquidation_price": None if liq is None else f.price(liq),
                    "notional": f.amt(notional), "unrealized_pnl": f.amt(upnl),
                    "leverage": e.leverage or m.max_leverage,
                    "initial_margin": f.amt(im), "maintenance_margin": f.amt(mm),
                    "open_buy_size": f.sz(m, e.buy_lots), "open_sell_size": f.sz(m, e.sell_lots),
                    "open_orders": e.orders, "adl": adl, **future_json(f, m),
                    **_margin_mode(f, m, e, mark)})
    return out


def _margin_mode(f: _Fmt, m, e, mark) -> dict:
    """`margin_mode`; for an isolated position also its margin and equity (state.isolated)."""
    if not e.isolated:
        return {"margin_mode": "cross"}
    s = iso_summary(f.view, m, e, mark)
    return {"margin_mode": "isolated", "isolated_margin": f.amt(e.iso_margin),
            "isolated_equity": f.amt(s.equity)}


async def positions(app, p: dict) -> dict:
    addr = _addr_param(p)
    f = _Fmt(app)
    return {"address": addr.hex(), "height": str(_height(app)),
            "positions": _positions(f, load_account(f.view, addr))}


async def margin_account(app, p: dict) -> dict:
    """Hyperliquid's clearinghouseState: equity, margin used, free collateral, leverage."""
    addr = _addr_param(p)
    f = _Fmt(app)
    view = f.view
    acct = load_account(view, addr)
    s = MG.summary(view, acct)
    today = last_block(view)[1] // C.DAY_MS
    vol = acct.volume_30d(today)
    tier = 0
    for i, t in enumerate(MS.fee_params(view).tiers):
        if t.min_volume <= vol:
            tier = i
    bal = {sym: format_amount(q, params.asset_decimals(view, sym))
           for sym, q in ledger.balances(view, addr).items()}
    lev = None
    if s.equity > 0:
        whole, frac = divmod(s.notional * 100 // s.equity, 100)
        lev = f"{whole}.{frac:02d}"
    return {"address": addr.hex(), "height": str(_height(app)), "balances": bal,
            "collateral": f.amt(s.collateral), "unrealized_pnl": f.amt(s.unrealized_pnl),
            "equity": f.amt(s.equity), "initial_margin": f.amt(s.initial_margin),
            "margin_used": f.amt(s.initial_margin),
            "maintenance_margin": f.amt(s.maintenance_margin),
            "free_collateral": f.amt(max(s.free_collateral, 0)),
            "total_notional": f.amt(s.notional), "account_leverage": lev,
            "volume_30d": f.amt(vol), "fee_tier": tier,
            "positions": _positions(f, acct)}


TRADING_METHODS = {fn.__name__: fn for fn in (markets, orderbook, open_orders, order, fills,
                                              positions, margin_account, oracle, mark_prices,
                                              twap_orders)}
