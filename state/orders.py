"""Order records and their indexes in the KV view: the durable truth the books are built from.

Keys (market ids 4 bytes, order ids / prices / times 8 bytes, all big-endian so byte order is
numeric order):

    ord/<m><id>                 a resting order's record (the book of market m = these keys)
    trg/<m><id>                 a trigger order waiting for its mark price
    tix/<m><dir><price><id>     trigger index: dir 0 fires when mark >= price (ascending
                                price), dir 1 when mark <= price (stored as MAX - price so
                                ascending keys are descending prices)
    aord/<addr><m><id>          the account's open orders (resting and waiting)
    cloid/<addr><cloid>         [m, id] of the account's open order with this client id
    exp/<time><m><id>           good-til-time index, ascending expiry
    seq/order                   the next order id (ids double as time priority)
    rord/<addr><m>              [id, ...] ascending: the account's resting reduce-only orders
                                on market m (written only while there is one: state.reduce_only)

Record: [owner, is_buy, kind, price_ticks, size_lots, orig_lots, tif, reduce_only,
trigger_ticks, cloid, expiry_ms, placed_ms]; `size_lots` is what remains.
Invariant: an order id is under exactly one of ord/ and trg/ while it is open, and then has
exactly one aord/ entry, a cloid/ entry iff cloid != 0, an exp/ entry iff expiry_ms != 0, a
tix/ entry iff it is under trg/, and its id in the rord/ list of its owner and market iff it is
under ord/ with reduce_only set.
"""

from dataclasses import dataclass

from state.codec import encode, load
from state.kv import KVView, Overlay

P_ORDER = b"ord/"
P_TRIGGER = b"trg/"
P_TRIGGER_INDEX = b"tix/"
P_ACCOUNT_ORDERS = b"aord/"
P_CLOID = b"cloid/"
P_EXPIRY = b"exp/"
K_ORDER_SEQ = b"seq/order"
P_REDUCE_ONLY = b"rord/"

# Order kinds (the `kind` field of the order action).
LIMIT = 0
MARKET = 1
STOP_MARKET = 2
STOP_LIMIT = 3
TAKE_PROFIT_MARKET = 4
TAKE_PROFIT_LIMIT = 5
KIND_NAMES = ("limit", "market", "stop_market", "stop_limit", "take_profit_market",
              "take_profit_limit")
MARKET_KINDS = (MARKET, STOP_MARKET, TAKE_PROFIT_MARKET)
TRIGGER_KINDS = (STOP_MARKET, STOP_LIMIT, TAKE_PROFIT_MARKET, TAKE_PROFIT_LIMIT)
TIF_NAMES = ("gtc", "ioc", "fok", "alo")

FIRE_UP = 0     # fires when mark >= trigger price
FIRE_DOWN = 1   # fires when mark <= trigger price
_MAX64 = 2**64 - 1


def fire_direction(kind: int, is_buy: bool) -> int:
    """A stop buy and a take-profit sell fire on a rise; a stop sell and a TP buy on a fall."""
    stop = kind in (STOP_MARKET, STOP_LIMIT)
    return FIRE_UP if stop == is_buy else FIRE_DOWN


@dataclass(slots=True)
class RestingFields:
    """The record fields that never change while an order rests, in record order. The book
    keeps them with each resting order (`state.book.Order.info`), so that a fill or a cancel
    rewrites or deletes the record and its indexes without reading it back. (A slotted
    dataclass, not a named tuple: one per resting order, and a named tuple's Python __new__
    is slow to call.)"""
    kind: int
    orig_lots: int
    tif: int
    reduce_only: bool
    trigger_ticks: int
    cloid: int
    expiry_ms: int
    placed_ms: int


@dataclass(slots=True)
class OrderRecord:
    id: int
    market: int
    owner: bytes
    is_buy: bool
    kind: int
    price_ticks: int
    size_lots: int
    orig_lots: int
    tif: int
    reduce_only: bool
    trigger_ticks: int
    cloid: int
    expiry_ms: int
    placed_ms: int

    def to_stored(self) -> list:
        """The stored value (kept decoded in an overlay: state.kv)."""
        return [self.owner, self.is_buy, self.kind, self.price_ticks, self.size_lots,
                self.orig_lots, self.tif, self.reduce_only, self.trigger_ticks, self.cloid,
                self.expiry_ms, self.placed_ms]

    def resting_fields(self) -> RestingFields:
        return RestingFields(self.kind, self.orig_lots, self.tif, self.reduce_only,
                             self.trigger_ticks, self.cloid, self.expiry_ms, self.placed_ms)


def resting_record(market: int, order_id: int, owner: bytes, is_buy: bool, price_ticks: int,
                   size_lots: int, f: RestingFields) -> OrderRecord:
    """The record of a resting order from what the book holds of it."""
    return OrderRecord(order_id, market, owner, is_buy, f.kind, price_ticks, size_lots,
                       f.orig_lots, f.tif, f.reduce_only, f.trigger_ticks, f.cloid,
                       f.expiry_ms, f.placed_ms)


def _mid(market: int, order_id: int) -> bytes:
    """market (4 bytes) + order id (8 bytes), big-endian, in one conversion."""
    return (market << 64 | order_id).to_bytes(12, "big")


def record_from(market: int, order_id: int, value: bytes | list) -> OrderRecord:
    """The record of order `order_id` on `market` from its stored value (bytes, or the decoded
    list an overlay may hold: state.kv)."""
    return OrderRecord(order_id, market, *(value if type(value) is list else load(value)))


def get_resting(view: KVView, market: int, order_id: int) -> OrderRecord | None:
    raw = view.get(P_ORDER + _mid(market, order_id))
    return None if raw is None else record_from(market, order_id, raw)


def get_trigger(view: KVView, market: int, order_id: int) -> OrderRecord | None:
    raw = view.get(P_TRIGGER + _mid(market, order_id))
    return None if raw is None else record_from(market, order_id, raw)


def get_open(view: KVView, market: int, order_id: int) -> OrderRecord | None:
    """The open order (resting or waiting trigger) with this id, or None."""
    return get_resting(view, market, order_id) or get_trigger(view, market, order_id)


def iter_resting(view: KVView, market: int):
    """Resting orders of a market in id (= time) order."""
    prefix = P_ORDER + market.to_bytes(4, "big")
    n = len(prefix)
    for k, raw in view.iterate(prefix):
        yield record_from(market, int.from_bytes(k[n:], "big"), raw)


def account_order_ids(view: KVView, owner: bytes, market: int | None = None) -> list[tuple[int, int]]:
    """(market, order id) of the account's open orders, ascending."""
    prefix = P_ACCOUNT_ORDERS + owner + (b"" if market is None else market.to_bytes(4, "big"))
    n = len(P_ACCOUNT_ORDERS) + len(owner)
    return [(int.from_bytes(k[n:n + 4], "big"), int.from_bytes(k[n + 4:], "big"))
            for k, _ in view.iterate(prefix)]


def cloid_lookup(view: KVView, owner: bytes, cloid: int) -> tuple[int, int] | None:
    raw = view.get(P_CLOID + owner + cloid.to_bytes(8, "big"))
    return None if raw is None else tuple(load(raw))


def reduce_only_ids(view: KVView, owner: bytes, market: int) -> list[int]:
    """Ids of the account's resting reduce-only orders on `market`, ascending (one read)."""
    key = P_REDUCE_ONLY + owner + market.to_bytes(4, "big")
    raw = view.get_stored(key) if type(view) is Overlay else view.get(key)
    return [] if raw is None else raw if type(raw) is list else load(raw)


def _note_reduce_only(view: Overlay, o: OrderRecord, add: bool) -> None:
    """Add or drop a resting reduce-only order's id in its owner's rord/ list (a new list)."""
    key = P_REDUCE_ONLY + o.owner + o.market.to_bytes(4, "big")
    ids = [i for i in reduce_only_ids(view, o.owner, o.market) if i != o.id]
    if add:
        ids = sorted(ids + [o.id])
        d = view.root.derived  # (state.derived rule 5: the holders index learns of it first)
        if d is not None:
            d.note_reduce_only(o.market, o.owner)
    if ids:
        view.put(key, ids)
    else:
        view.delete(key)


def next_order_id(view: Overlay) -> int:
    raw = view.get_stored(K_ORDER_SEQ)
    oid = 1 if raw is None else raw if type(raw) is int else load(raw)
    view.put(K_ORDER_SEQ, oid + 1)  # kept as an int in the overlay (state.kv)
    return oid


def _trigger_index_key(o: OrderRecord) -> bytes:
    d = fire_direction(o.kind, o.is_buy)
    p = o.trigger_ticks if d == FIRE_UP else _MAX64 - o.trigger_ticks
    return (P_TRIGGER_INDEX + o.market.to_bytes(4, "big") + bytes([d]) + p.to_bytes(8, "big")
            + o.id.to_bytes(8, "big"))


def _open_indexes(view: Overlay, o: OrderRecord, mid: bytes) -> None:
    """`mid`: _mid(o.market, o.id), which the caller has already made."""
    view.put(P_ACCOUNT_ORDERS + o.owner + mid, b"")
    if o.cloid:
        view.put(P_CLOID + o.owner + o.cloid.to_bytes(8, "big"), encode([o.market, o.id]))
    if o.expiry_ms:
        view.put(P_EXPIRY + o.expiry_ms.to_bytes(8, "big") + mid, b"")


def _close_indexes(view: Overlay, o: OrderRecord, mid: bytes) -> None:
    view.delete(P_ACCOUNT_ORDERS + o.owner + mid)
    if o.cloid:
        view.delete(P_CLOID + o.owner + o.cloid.to_bytes(8, "big"))
    if o.expiry_ms:
        view.delete(P_EXPIRY + o.expiry_ms.to_bytes(8, "big") + mid)


# -- the writers: the only code that writes order records and their indexes ------------------

def rest(view: Overlay, o: OrderRecord) -> None:
    """A new resting order: its record and indexes."""
    mid = _mid(o.market, o.id)
    view.put(P_ORDER + mid, o.to_stored())
    _open_indexes(view, o, mid)
    if o.reduce_only:
        _note_reduce_only(view, o, True)


def resize_resting(view: Overlay, o: OrderRecord) -> None:
    """A resting order whose remaining size changed (a partial fill, a modify in place)."""
    view.put(P_ORDER + _mid(o.market, o.id), o.to_stored())


def remove_resting(view: Overlay, o: OrderRecord) -> None:
    mid = _mid(o.market, o.id)
    view.delete(P_ORDER + mid)
    _close_indexes(view, o, mid)
    if o.reduce_only:
        _note_reduce_only(view, o, False)


def put_trigger(view: Overlay, o: OrderRecord) -> None:
    mid = _mid(o.market, o.id)
    view.put(P_TRIGGER + mid, o.to_stored())
    view.put(_trigger_index_key(o), b"")
    _open_indexes(view, o, mid)


def remove_trigger(view: Overlay, o: OrderRecord) -> None:
    mid = _mid(o.market, o.id)
    view.delete(P_TRIGGER + mid)
    view.delete(_trigger_index_key(o))
    _close_indexes(view, o, mid)


def fired_triggers(view: KVView, market: int, mark_ticks_up: int, mark_ticks_down: int,
                   limit: int) -> list[int]:
    """Ids of waiting triggers of `market` that fire: FIRE_UP ones with trigger <= mark and
    FIRE_DOWN ones with trigger >= mark; at most `limit`, ascending id (time priority).
    `mark_ticks_up` / `_down` are the mark rounded down / up to ticks (a trigger fires only
    once the mark has really reached it)."""
    base = P_TRIGGER_INDEX + market.to_bytes(4, "big")
    out: list[int] = []
    for d, bound in ((FIRE_UP, mark_ticks_up), (FIRE_DOWN, _MAX64 - mark_ticks_down)):
        prefix = base + bytes([d])
        for k, _ in view.iterate(prefix):
            if int.from_bytes(k[len(prefix):len(prefix) + 8], "big") > bound:
                break
            out.append(int.from_bytes(k[len(prefix) + 8:], "big"))
    out.sort()
    return out[:limit]


def expired(view: KVView, now_ms: int, limit: int) -> list[tuple[int, int]]:
    """(market, id) of open orders with expiry <= now_ms, ascending expiry, at most `limit`."""
    out = []
    n = len(P_EXPIRY)
    for k, _ in view.iterate(P_EXPIRY):
        if int.from_bytes(k[n:n + 8], "big") > now_ms or len(out) >= limit:
            break
        out.append((int.from_bytes(k[n + 8:n + 12], "big"), int.from_bytes(k[n + 12:], "big")))
    return out
