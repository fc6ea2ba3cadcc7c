"""Hyperliquid order grouping: `normalTpsl` (an order with its take-profit and stop-loss) and
`positionTpsl` (a take-profit and stop-loss of the whole position), run with native trigger
orders and the links of state.hl_tpsl.

normalTpsl {orders: [parent, tp and/or sl]}: the parent is a limit order (not reduce-only);
then one or two trigger orders (at most one tp and one sl) on the same perp market and the
other side. As on Hyperliquid, the tp/sl have no order id until they are placed, and are
placed with the size the parent filled:
- the parent filled at once (completely, or an IOC partly): they are placed now as waiting
  trigger orders of that size; their status is "waitingForTrigger";
- the parent rests: they wait ("waitingForFill") in a group record. When the parent leaves
  the book (completely filled, or cancelled for any reason after filling part of its size),
  the end-block step below places them with the size it filled (before the block's triggers
  are checked, so they may fire in the same block); a parent cancelled without any fill
  cancels them (`tpsl_cancelled`). Hyperliquid places them the moment the parent fills; here
  it is the end of that block, the nearest point every node computes alike.
- the parent is rejected or an IOC parent fills nothing: they are not placed (an error each).
A waiting parent cannot be modified (cancel it and send the group again).

positionTpsl {orders: [tp and/or sl]}: reduce-only trigger orders on one perp market and one
side (closing the position). Size "0" means the whole position: it needs a position to close,
is placed with its size now and, when it fires, closes the whole position then (grown or
shrunk); another size is fixed (and, like any reduce-only order, never more than the
position). Each status is "waitingForTrigger".

The tp and the sl placed together are siblings: when one fires, the other is cancelled
(reason `sibling_filled`, state.triggers).
"""

from state import hl_tpsl, orders as O, placement
from state.errors import Code, TxError
from state.events import Event
from state.hl_universe import lots_of
from state.hl_orders import attrs_of, order_fields, placed_status, run_item, status
from state.markets import Market, get as get_market
from state.scope import Scope, SubTransaction

WAITING_FOR_FILL = "waitingForFill"
WAITING_FOR_TRIGGER = "waitingForTrigger"
_TP_KINDS = (O.TAKE_PROFIT_MARKET, O.TAKE_PROFIT_LIMIT)
_SIZE, _BUY, _KIND, _REDUCE = 4, 1, 2, 6      # indexes of the native order fields


def _bad(where: str, why: str) -> TxError:
    return TxError(Code.INVALID_FIELD, f"{where}: {why}")


def _check_tpsl(where: str, m: Market, parsed: list, side: bool) -> None:
    """Trigger orders on market m, all buying (side True) or all selling, one tp at most and
    one sl at most."""
    if not m.perp_like:
        raise _bad(where, f"{m.symbol} is a spot market: tp/sl need a perp market")
    tps = 0
    for cm, f in parsed:
        if cm.id != m.id or f[_KIND] not in O.TRIGGER_KINDS or f[_BUY] != side:
            raise _bad(where, "the tp/sl orders must be trigger orders on the same asset, "
                       f"{'buying' if side else 'selling'} (closing the position)")
        tps += f[_KIND] in _TP_KINDS
    if tps > 1 or len(parsed) - tps > 1:
        raise _bad(where, "at most one tp and one sl")


def _place_trigger(item: Scope, owner: bytes, m: Market, fields: list) -> int:
    """Place a tp/sl trigger order; its order id."""
    placement.place(item, owner, fields)
    for e in reversed(item.events):
        a = attrs_of(e)
        if e.type == "order" and a.get("status") == "waiting_trigger":
            return int(a["order_id"])
    raise AssertionError("a trigger order was placed without its event")


def _sized(fields: list, m: Market, lots: int) -> list:
    f = list(fields)
    f[_SIZE] = lots * m.lot_size
    return f


def _link(view, m: Market, placed: list[int]) -> None:
    if len(placed) == 2:
        hl_tpsl.link_siblings(view, m.id, placed[0], placed[1])


# -- normalTpsl ----------------------------------------------------------------------------

def _parent_outcome(scope: Scope, m: Market) -> tuple[str, int, int]:
    """(status, order id, filled lots) of the parent from its hl_status event."""
    a = attrs_of(scope.events[-1])
    if a["status"] == "error":
        return "error", 0, 0
    oid = int(a["oid"])
    if a["status"] == "filled":
        return "filled", oid, lots_of(m, a["total_sz"])
    return "resting", oid, 0


def normal_tpsl(scope: Scope, owner: bytes, wires: list) -> None:
    where = "normalTpsl"
    if not 2 <= len(wires) <= 3:
        raise _bad(where, "send the parent order, then one or two tp/sl trigger orders")
    parsed = [order_fields(scope.view, w, f"order {i}") for i, w in enumerate(wires)]
    m, parent = parsed[0]
    if parent[_KIND] != O.LIMIT or parent[_REDUCE]:
        raise _bad(where, "the first order (the parent) must be a limit order, not reduce-only")
    _check_tpsl(where, m, parsed[1:], not parent[_BUY])
    children = [f for _, f in parsed[1:]]

    def place_parent(item: Scope) -> Event:
        placement.place(item, owner, parent)
        return placed_status(item, m, owner, item.events, 0)
    run_item(scope, 0, place_parent)
    kind, oid, filled = _parent_outcome(scope, m)
    if kind == "resting":
        hl_tpsl.put_group(scope.view, m.id, oid, owner, children)
        for i in range(1, len(wires)):
            scope.events.append(status(i, WAITING_FOR_FILL, ("parent", str(oid))))
        return
    if kind == "error":
        for i in range(1, len(wires)):
            scope.events.append(status(i, "error", ("error", "the parent order did not fill: "
                                                    "its tp/sl orders are not placed")))
        return
    placed: list[int] = []
    for i, f in enumerate(children, 1):
        def place_child(item: Scope, f=f, i=i) -> Event:
            placed.append(_place_trigger(item, owner, m, _sized(f, m, filled)))
            return status(i, WAITING_FOR_TRIGGER, ("oid", str(placed[-1])))
        run_item(scope, i, place_child)
    _link(scope.view, m, placed)


def check_modifiable(view, m: Market, order_id: int) -> None:
    """A waiting group's parent cannot be modified (state.hl_actions modify)."""
    if hl_tpsl.group(view, m.id, order_id) is not None:
        raise TxError(Code.INVALID_ORDER, f"order {order_id} is the parent of tp/sl orders "
                      "waiting for it to fill (normalTpsl): cancel it and send the group again")


def end_block(view, ctx) -> list[Event]:
    """Place the tp/sl of each group whose parent left the book (see the module docstring)."""
    events: list[Event] = []
    for market, parent, filled in hl_tpsl.due(view):
        owner, children = hl_tpsl.take_group(view, market, parent)
        m = get_market(view, market)
        head = (("parent_order_id", str(parent)), ("market", m.symbol), ("owner", owner.hex()))
        if not filled:
            events.append(Event("tpsl_cancelled", head + (("reason", "parent_unfilled"),)))
            continue
        placed: list[int] = []
        for f in children:
            try:
                with SubTransaction(view, ctx) as scope:
                    placed.append(_place_trigger(scope, owner, m, _sized(f, m, filled)))
                    scope.events.append(Event("tpsl_placed", head + (
                        ("order_id", str(placed[-1])),)))
            except TxError as e:
                events.append(Event("tpsl_rejected", head + (("code", str(int(e.code))),
                                                             ("log", e.log))))
                continue
            events.extend(scope.events)
        _link(view, m, placed)
    return events


# -- positionTpsl --------------------------------------------------------------------------

def position_tpsl(scope: Scope, owner: bytes, wires: list) -> None:
    where = "positionTpsl"
    if not 1 <= len(wires) <= 2:
        raise _bad(where, "send one or two tp/sl trigger orders")
    parsed = [order_fields(scope.view, w, f"order {i}") for i, w in enumerate(wires)]
    m = parsed[0][0]
    _check_tpsl(where, m, parsed, parsed[0][1][_BUY])
    placed: list[int] = []
    for i, (_, fields) in enumerate(parsed):
        def place(item: Scope, f=list(fields), i=i) -> Event:
            f[_REDUCE] = True
            whole = f[_SIZE] == 0
            if whole:
                pos = item.ledger.account(owner).size(m.id)
                if pos == 0 or (pos > 0) == f[_BUY]:
                    raise TxError(Code.REDUCE_ONLY_WOULD_INCREASE, f"a positionTpsl order of "
                                  f"size 0 closes the whole position: there is no "
                                  f"{'short' if f[_BUY] else 'long'} position on {m.symbol}")
                f[_SIZE] = abs(pos) * m.lot_size
            oid = _place_trigger(item, owner, m, f)
            if whole:
                hl_tpsl.mark_whole_position(item.view, m.id, oid)
            placed.append(oid)
            return status(i, WAITING_FOR_TRIGGER, ("oid", str(oid)))
        run_item(scope, i, place)
    _link(scope.view, m, placed)
