"""Hyperliquid order wires on this chain: field access, cloids, an order wire as native order
fields, the per-item `hl_status` events, and running one item as its own sub-transaction.

Shared by state.hl_actions (order, cancel, modify) and state.hl_grouping (normalTpsl,
positionTpsl). See state.hl_actions for the mapping of each field.
"""

from state import hl_universe as U
from state import constants as C, orders as O
from state.amounts import format_amount
from state.errors import Code, TxError
from state.events import Event
from state.markets import Market
from state.scope import Scope, SubTransaction

CLOID_HEX_LEN = 34        # "0x" + 16 bytes
TIFS = {"Gtc": 0, "Ioc": 1, "Alo": 3}
_LIVE = ("open", "partially_filled_open", "filled", "partially_filled_cancelled",
         "cancelled_unfilled", "waiting_trigger", "modified_in_place")


def unsupported(what: str) -> TxError:
    return TxError(Code.HL_UNSUPPORTED, what)


# -- field access --------------------------------------------------------------------------

def field(d, key: str, kind, where: str):
    """d[key], which must be of type `kind` (bool is never an int); INVALID_FIELD otherwise."""
    if type(d) is not dict or key not in d:
        raise TxError(Code.INVALID_FIELD, f"{where}: missing field {key!r}")
    v = d[key]
    if type(v) is not kind:
        raise TxError(Code.INVALID_FIELD, f"{where}: field {key!r} must be a {kind.__name__}")
    return v


def items(action: dict, key: str) -> list:
    v = field(action, key, list, action["type"])
    if not v:
        raise TxError(Code.INVALID_FIELD, f"{action['type']}: {key!r} is empty")
    if len(v) > C.MAX_BATCH_ACTIONS:
        raise TxError(Code.BATCH_TOO_LARGE, f"{action['type']} has {len(v)} items; the limit "
                      f"is {C.MAX_BATCH_ACTIONS}")
    return v


def native_cloid(text) -> int:
    """A Hyperliquid cloid "0x" + 32 hex -> the native uint64 client id (see the docstring)."""
    if type(text) is not str or len(text) != CLOID_HEX_LEN or not text.startswith("0x"):
        raise TxError(Code.INVALID_FIELD, f"cloid {text!r} must be '0x' and 32 hex digits")
    try:
        value = int(text[2:], 16)
    except ValueError:
        raise TxError(Code.INVALID_FIELD, f"cloid {text!r} is not hex") from None
    if not 0 < value <= C.MAX_UINT64:
        raise TxError(Code.INVALID_FIELD, f"cloid {text} is not supported: this chain keeps "
                      "64-bit client ids, so a cloid's first 8 bytes must be zero and the "
                      "rest not all zero (e.g. the SDK's Cloid.from_int(n))")
    return value


def cloid_text(cloid: int) -> str:
    return "0x" + cloid.to_bytes(16, "big").hex() if cloid else ""


# -- orders --------------------------------------------------------------------------------

def order_fields(view, wire, where: str = "order") -> tuple[Market, list]:
    """An order wire -> (market, native `order` fields)."""
    m = U.market_for_asset(view, field(wire, "a", int, where))
    is_buy = field(wire, "b", bool, where)
    price = U.ticks_of(m, field(wire, "p", str, where)) * m.tick_size
    size = U.lots_of(m, field(wire, "s", str, where)) * m.lot_size
    reduce_only = field(wire, "r", bool, where)
    cloid = native_cloid(wire["c"]) if wire.get("c") is not None else 0
    t = field(wire, "t", dict, where)
    if list(t) == ["limit"]:
        tif = TIFS.get(field(t, "limit", dict, where).get("tif"))
        if tif is None:
            raise TxError(Code.INVALID_FIELD, f"{where}: limit tif must be Gtc, Ioc or Alo")
        return m, [m.id, is_buy, O.LIMIT, price, size, tif, reduce_only, 0, cloid, 0]
    if list(t) == ["trigger"]:
        trig = t["trigger"]
        is_market = field(trig, "isMarket", bool, where)
        tpsl = field(trig, "tpsl", str, where)
        if tpsl not in ("tp", "sl"):
            raise TxError(Code.INVALID_FIELD, f"{where}: trigger tpsl must be tp or sl")
        trigger = U.ticks_of(m, field(trig, "triggerPx", str, where)) * m.tick_size
        kind = {("sl", True): O.STOP_MARKET, ("sl", False): O.STOP_LIMIT,
                ("tp", True): O.TAKE_PROFIT_MARKET, ("tp", False): O.TAKE_PROFIT_LIMIT}[
            (tpsl, is_market)]
        return m, [m.id, is_buy, kind, price, size, 1 if is_market else 0, reduce_only,
                   trigger, cloid, 0]
    raise TxError(Code.INVALID_FIELD, f"{where}: order type t must be {{limit: ...}} or "
                  "{trigger: ...}")


def attrs_of(e: Event) -> dict:
    return dict(e.attrs)


def placed_status(scope: Scope, m: Market, owner: bytes, events, index: int) -> Event:
    """The Hyperliquid status of the order an item placed, from that item's events."""
    me = owner.hex()
    order = next((attrs_of(e) for e in events if e.type == "order"
                  and attrs_of(e)["owner"] == me and attrs_of(e)["status"] in _LIVE), None)
    if order is None:
        return status(index, "error", ("error", "no order was placed"))
    oid, cloid = order["order_id"], cloid_text(int(order["cloid"]))
    asset = str(U.asset_of_market(scope.view, m.id))
    if order["status"] in ("open", "partially_filled_open", "waiting_trigger",
                           "modified_in_place"):
        return status(index, "resting", ("oid", oid), ("cloid", cloid))
    if order["status"] == "cancelled_unfilled":
        return status(index, "error", ("error", "Order could not immediately match against "
                                       f"any resting orders. asset={asset}"))
    lots = notional = 0
    for e in events:
        a = attrs_of(e) if e.type == "fill" else None
        if a is not None and a["taker_order_id"] == oid:
            size_lots = U.lots_of(m, a["size"])
            lots += size_lots
            notional += U.ticks_of(m, a["price"]) * m.tick_size * size_lots
    avg = notional // lots if lots else 0   # quote quantums per whole base unit, rounded down
    return status(index, "filled", ("oid", oid), ("cloid", cloid),
                  ("total_sz", U.size_text(m, lots)),
                  ("avg_px", format_amount(avg, m.quote_decimals)))


def status(index: int, kind: str, *attrs: tuple[str, str]) -> Event:
    return Event("hl_status", (("index", str(index)), ("status", kind)) + attrs)


def run_item(scope: Scope, index: int, work) -> None:
    """Run `work(item_scope) -> status Event` as its own sub-transaction; a TxError becomes
    an `error` status and leaves no trace."""
    try:
        with SubTransaction(scope.view, scope.ctx) as item:
            st = work(item)
    except TxError as e:
        scope.events.append(status(index, "error", ("error", e.log)))
        return
    scope.events.extend(item.events)
    scope.events.append(st)
