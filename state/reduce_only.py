"""Resting reduce-only orders: they may never make a position grow, nor exceed it.

What this module owns
---------------------
A reduce-only GTC or ALO order may rest (as Hyperliquid's). Three rules keep it reduce-only:

1. Placement (`resting_room`): a resting reduce-only order is clipped to the position left
   uncovered by the account's other resting reduce-only orders on the closing side:
   min(size, |position| - their total); none left is REDUCE_ONLY_WOULD_INCREASE.
2. Matching (`first_overshoot`, used by state.placement): a taker order may reach a resting
   reduce-only order after other orders of the same owner already filled in the same match
   (they shrank its position). The first reduce-only maker fill that would take its owner's
   position past zero is found; that order is shrunk to what is left of the position (or
   cancelled if nothing is), and the match runs again from the untouched book. So a
   reduce-only fill never increases a position.
3. After every trade that changed positions (`after_trade`: the taker and each maker of a
   match, each ADL counterparty), for each account with resting reduce-only orders on the
   market: those on the side that would now increase the position (it is flat or flipped)
   are cancelled; if those on the closing side total more than |position|, they are shrunk
   newest first (highest order id first), a whole order cancelled when the excess covers it.
   Events: `cancel` with reason `reduce_only`, `reduce_only_shrunk` for a shrink.

The account's resting reduce-only order ids are one record (`rord/`, state.orders); `holders`
(derived state: a superset of the owners of such records, state.derived rule 5) lets rule 3
skip, with one dict lookup, the accounts and markets that have none (nearly all).
"""

from state import orders as O
from state.book import Side
from state.cancellation import remove_resting
from state.derived import MAX_MEMO, derived_of
from state.errors import Code, TxError
from state.event_text import size_text
from state.events import Event
from state.kv import Overlay
from state.markets import Market


_NONE: dict = {}


def holders(view, market: int) -> dict:
    """Owners (as keys) that may have resting reduce-only orders on `market`: at least every
    one that has (state.derived rule 5)."""
    d = derived_of(view)
    held = d.reduce_only_holders
    if held is None or d.reduce_only_noted > MAX_MEMO:
        held = d.reduce_only_holders = _scan_holders(view)
        d.reduce_only_noted = 0
    return held.get(market, _NONE)


def _scan_holders(view) -> dict:
    """The owners of `rord/` records in `view` and in each overlay it is a child of: a record
    that an open sub-transaction deleted counts too, as a rollback may bring it back."""
    held: dict = {}
    n = len(O.P_REDUCE_ONLY)
    while True:
        for k, _ in view.iterate(O.P_REDUCE_ONLY):
            held.setdefault(int.from_bytes(k[-4:], "big"), {})[k[n:-4]] = None
        if not isinstance(view, Overlay):
            return held
        view = view.parent


def _resting(scope, m: Market, order_id: int) -> O.OrderRecord:
    """The resting order `order_id` of market `m`, from the book (it equals the record)."""
    bo = scope.book(m.id).get(order_id)
    return O.resting_record(m.id, order_id, bo.owner, bo.side is Side.BUY, bo.price_ticks,
                            bo.size_lots, bo.info)


def closing_room(position_lots: int, is_buy: bool) -> int:
    """How many lots an order of this side may trade without growing the position."""
    if is_buy:
        return -position_lots if position_lots < 0 else 0
    return position_lots if position_lots > 0 else 0


def resting_room(scope, m: Market, owner: bytes, is_buy: bool, lots: int) -> int:
    """Rule 1: the lots a new resting reduce-only order may keep."""
    room = closing_room(scope.ledger.account(owner).size(m.id), is_buy)
    for oid in O.reduce_only_ids(scope.view, owner, m.id):
        o = _resting(scope, m, oid)
        if o.is_buy == is_buy:
            room -= o.size_lots
    if room <= 0:
        raise TxError(Code.REDUCE_ONLY_WOULD_INCREASE, f"the account's resting reduce-only "
                      f"{'buys' if is_buy else 'sells'} on {m.symbol} already cover its "
                      "position: nothing is left to reduce")
    return min(lots, room)


def first_overshoot(scope, m: Market, taker_buys: bool, fills) -> tuple[int, int] | None:
    """Rule 2: (order id, lots left for it) of the first reduce-only maker fill that would
    take its owner past zero, or None (the usual case: no reduce-only maker at all)."""
    for f in fills:
        if f.maker_info is not None and f.maker_info.reduce_only:
            break
    else:
        return None
    used: dict[bytes, int] = {}
    for f in fills:
        prior = used.get(f.maker_owner, 0)
        used[f.maker_owner] = prior + f.size_lots
        if f.maker_info is None or not f.maker_info.reduce_only:
            continue
        pos = scope.ledger.account(f.maker_owner).size(m.id)
        room = closing_room(pos, not taker_buys) - prior
        if f.size_lots > room:
            return f.maker_order_id, max(room, 0)
    return None


def shrink_to(scope, m: Market, order_id: int, lots: int) -> None:
    """Shrink resting reduce-only order `order_id` to `lots` (0: cancel it)."""
    o = _resting(scope, m, order_id)
    position_lots = scope.ledger.account(o.owner).size(m.id)
    if lots <= 0:
        remove_resting(scope, m, o, "reduce_only")
        return
    by = o.size_lots - lots
    scope.book(m.id).reduce(o.id, by)
    o.size_lots = lots
    O.resize_resting(scope.view, o)
    scope.ledger.account(o.owner).entry(m.id).remove_open(o.is_buy, by, o.price_ticks)
    scope.events.append(Event("reduce_only_shrunk", (
        ("order_id", str(o.id)), ("market", m.symbol), ("owner", o.owner.hex()),
        ("cloid", str(o.cloid)), ("by", size_text(m, by)),
        ("remaining", size_text(m, lots)), ("position", size_text(m, position_lots)))))


def enforce(scope, m: Market, owner: bytes) -> None:
    """Rule 3 for one account on market `m`."""
    if owner not in holders(scope.view, m.id):
        return
    ids = O.reduce_only_ids(scope.view, owner, m.id)
    if not ids:
        return
    pos = scope.ledger.account(owner).size(m.id)
    closing = []
    for oid in ids:
        o = _resting(scope, m, oid)
        if closing_room(pos, o.is_buy) == 0:
            remove_resting(scope, m, o, "reduce_only")
        else:
            closing.append(o)
    excess = sum(o.size_lots for o in closing) - abs(pos)
    for o in reversed(closing):  # newest first
        if excess <= 0:
            break
        shrink_to(scope, m, o.id, o.size_lots - excess)
        excess -= o.size_lots


def after_trade(scope, m: Market, taker: bytes, fills) -> None:
    """Rule 3 for the taker and every maker of a match, in that order (fill order)."""
    if not holders(scope.view, m.id):
        return
    owners = {taker: None}
    for f in fills:
        owners[f.maker_owner] = None
    for owner in owners:
        enforce(scope, m, owner)
