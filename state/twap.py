"""TWAP orders: a parent order that trades its size in IOC slices every 30 s of block time.

What this module owns
---------------------
* `place_twap` (the `twap_order` action: market, is_buy, size, duration_ms, reduce_only):
  checks the market (an expired future: MARKET_EXPIRED), the size (lot, minimum), the
  duration (5 min .. 24 h), reduce-only (spot: refused; else a position to reduce now), a
  fresh oracle for other perp and future TWAPs, and at most MAX_TWAPS_PER_ACCOUNT active
  TWAPs; stores the parent; event `twap`.
* `cancel_twap` (the `twap_cancel` action: market, twap_id): ends an active TWAP of the
  signer; event `twap_end` with reason `user`.
* `run_slices` (end-block, after the triggers): the TWAPs with a slice due, by twap id.
  With n = duration_ms // SLICE_INTERVAL_MS slices, slice k (k = 1..n) is due at
  start_ms + k * SLICE_INTERVAL_MS. In a block at time T the slices due so far are
  k = min(n, (T - start_ms) // SLICE_INTERVAL_MS); the `owed` = k - done of them are traded as
  one IOC order of
      min(ceil(remaining * owed / (n - done)), CATCH_UP_FACTOR * ceil(size / n), remaining)
  lots: the remaining size (unfilled slices carry over) spread over the remaining slices,
  never more than 3 normal slices at once. Its limit price is the mark price * (1 + 3%) for
  a buy rounded down to a tick, * (1 - 3%) for a sell rounded up (never past the band). A
  slice is an ordinary order (state.placement.execute: fills, fees, margin check; reduce-only
  slices are clipped to the position); event `twap_slice` after the slice's own `order` and
  `fill` events. A rejected slice leaves no trace but a `twap_slice_failed` event; its size
  carries over, except that INSUFFICIENT_MARGIN, INSUFFICIENT_BALANCE,
  REDUCE_ONLY_WOULD_INCREASE and MARKET_EXPIRED (a dated future that expired) end the TWAP.
  The TWAP ends (`twap_end`) once nothing remains (reason `filled`), after its last slice
  (`duration_elapsed`) or on such a failure (the code's reason). At most
  MAX_SLICES_PER_BLOCK slices per block: the earliest due, the rest next block (they then
  catch up).

Keys:
    twap/<id:8>             [owner, market, is_buy, size_lots, filled_lots, reduce_only,
                             start_ms, duration_ms, slices_done]
    twapq/<due_ms:8><id:8>  the time its next slice is due (one entry per active TWAP)
    atwap/<addr><id:8>      the account's active TWAPs
    seq/twap                the next twap id
An ended TWAP leaves all of them (its events are its history). Nothing is written while no
account uses TWAPs.
"""

from dataclasses import dataclass

from state import constants as C, orders as O
from state.codec import load
from state.errors import Code, TxError
from state.event_text import price_text, size_text
from state.events import Event
from state.kv import KVView, Overlay
from state.margin import mark_price
from state.futures import check_trading
from state.markets import SPOT, Market, get as get_market
from state.oracle import fresh_price
from state.placement import check_notional, check_size, execute, reduce_only_size
from state.scope import SubTransaction

P_TWAP = b"twap/"
P_QUEUE = b"twapq/"
P_ACCOUNT = b"atwap/"
K_SEQ = b"seq/twap"

SLICE_INTERVAL_MS = 30_000
MIN_DURATION_MS = 5 * 60_000
MAX_DURATION_MS = 24 * 3_600_000
PRICE_BAND_PPM = 30_000          # 3% of the mark
CATCH_UP_FACTOR = 3              # a slice is at most 3 normal slices
MAX_TWAPS_PER_ACCOUNT = 10
MAX_SLICES_PER_BLOCK = 2_000
# Slice rejections that end the TWAP, with the `twap_end` reason they give.
ENDING = {Code.INSUFFICIENT_MARGIN: "insufficient_margin",
          Code.INSUFFICIENT_BALANCE: "insufficient_balance",
          Code.REDUCE_ONLY_WOULD_INCREASE: "nothing_to_reduce",
          Code.MARKET_EXPIRED: "market_expired"}
_LIMIT, _IOC = 0, 1


@dataclass(slots=True)
class Twap:
    id: int
    owner: bytes
    market: int
    is_buy: bool
    size_lots: int
    filled_lots: int
    reduce_only: bool
    start_ms: int
    duration_ms: int
    slices_done: int

    def to_stored(self) -> list:
        return [self.owner, self.market, self.is_buy, self.size_lots, self.filled_lots,
                self.reduce_only, self.start_ms, self.duration_ms, self.slices_done]

    @property
    def slices(self) -> int:
        return self.duration_ms // SLICE_INTERVAL_MS

    @property
    def normal_lots(self) -> int:
        return -(-self.size_lots // self.slices)

    @property
    def remaining_lots(self) -> int:
        return self.size_lots - self.filled_lots

    def due_ms(self) -> int:
        """When its next slice is due."""
        return self.start_ms + (self.slices_done + 1) * SLICE_INTERVAL_MS


# -- records ----------------------------------------------------------------------------------

def _id8(i: int) -> bytes:
    return i.to_bytes(8, "big")


def get(view: KVView, twap_id: int) -> Twap | None:
    raw = view.get_stored(P_TWAP + _id8(twap_id)) if type(view) is Overlay else \
        view.get(P_TWAP + _id8(twap_id))
    if raw is None:
        return None
    return Twap(twap_id, *(raw if type(raw) is list else load(raw)))


def account_twaps(view: KVView, owner: bytes) -> list[int]:
    """Ids of the account's active TWAPs, ascending."""
    n = len(P_ACCOUNT) + len(owner)
    return [int.from_bytes(k[n:], "big") for k, _ in view.iterate(P_ACCOUNT + owner)]


def iter_twaps(view: KVView):
    """Every active TWAP, ascending id (audits, RPC)."""
    n = len(P_TWAP)
    for k, raw in view.iterate(P_TWAP):
        yield Twap(int.from_bytes(k[n:], "big"), *load(raw))


def queued(view: KVView) -> list[tuple[int, int]]:
    """(due_ms, id) of every queue entry, ascending (audits)."""
    n = len(P_QUEUE)
    return [(int.from_bytes(k[n:n + 8], "big"), int.from_bytes(k[n + 8:], "big"))
            for k, _ in view.iterate(P_QUEUE)]


def _save(view: Overlay, tw: Twap, old_due_ms: int | None) -> None:
    if old_due_ms is not None:
        view.delete(P_QUEUE + _id8(old_due_ms) + _id8(tw.id))
    view.put(P_TWAP + _id8(tw.id), tw.to_stored())
    view.put(P_QUEUE + _id8(tw.due_ms()) + _id8(tw.id), b"")
    view.put(P_ACCOUNT + tw.owner + _id8(tw.id), b"")


def _remove(view: Overlay, tw: Twap, due_ms: int) -> None:
    view.delete(P_TWAP + _id8(tw.id))
    view.delete(P_QUEUE + _id8(due_ms) + _id8(tw.id))
    view.delete(P_ACCOUNT + tw.owner + _id8(tw.id))


def _next_id(view: Overlay) -> int:
    raw = view.get_stored(K_SEQ)
    i = 1 if raw is None else raw if type(raw) is int else load(raw)
    view.put(K_SEQ, i + 1)
    return i


# -- the actions ------------------------------------------------------------------------------

def place_twap(scope, owner: bytes, fields) -> None:
    """The `twap_order` action (see the module docstring)."""
    market_id, is_buy, size, duration_ms, reduce_only = fields
    m = scope.market(market_id)
    if reduce_only and m.kind == SPOT:
        raise TxError(Code.INVALID_ORDER, f"{m.symbol} is a spot market: no reduce-only")
    if not MIN_DURATION_MS <= duration_ms <= MAX_DURATION_MS:
        raise TxError(Code.INVALID_ORDER, f"duration_ms {duration_ms} is outside "
                      f"{MIN_DURATION_MS}..{MAX_DURATION_MS} (5 min .. 24 h)")
    lots = check_size(m, size)
    check_trading(scope.view, m, scope.ctx.time_ms)
    if reduce_only:
        reduce_only_size(scope.ledger.account(owner), m, is_buy, lots)
    elif m.perp_like:
        fresh_price(scope.view, m.base, scope.ctx.time_ms)
    if len(account_twaps(scope.view, owner)) >= MAX_TWAPS_PER_ACCOUNT:
        raise TxError(Code.TOO_MANY_OPEN_ORDERS, f"the account has {MAX_TWAPS_PER_ACCOUNT} "
                      "active TWAP orders (the limit)")
    tw = Twap(_next_id(scope.view), owner, m.id, is_buy, lots, 0, reduce_only,
              scope.ctx.time_ms, duration_ms, 0)
    _save(scope.view, tw, None)
    scope.events.append(Event("twap", _attrs(m, tw) + (
        ("side", "buy" if is_buy else "sell"), ("size", size_text(m, lots)),
        ("duration_ms", str(duration_ms)), ("slices", str(tw.slices)),
        ("slice_size", size_text(m, tw.normal_lots)),
        ("reduce_only", "true" if reduce_only else "false"))))


def cancel_twap(scope, owner: bytes, fields) -> None:
    """The `twap_cancel` action."""
    market_id, twap_id = fields
    m = scope.market(market_id)
    tw = get(scope.view, twap_id)
    if tw is None or tw.owner != owner or tw.market != m.id:
        raise TxError(Code.ORDER_NOT_FOUND, f"no active TWAP order {twap_id} of this account "
                      f"on {m.symbol}")
    _remove(scope.view, tw, tw.due_ms())
    scope.events.append(_end_event(m, tw, "user"))


def _attrs(m: Market, tw: Twap) -> tuple:
    return (("twap_id", str(tw.id)), ("market", m.symbol), ("owner", tw.owner.hex()))


def _end_event(m: Market, tw: Twap, reason: str) -> Event:
    return Event("twap_end", _attrs(m, tw) + (
        ("reason", reason), ("filled", size_text(m, tw.filled_lots)),
        ("remaining", size_text(m, tw.remaining_lots))))


# -- the end-block step -----------------------------------------------------------------------

def run_slices(view: Overlay, ctx) -> list[Event]:
    """Trade the slices due at the block time (see the module docstring)."""
    now = ctx.time_ms
    n = len(P_QUEUE)
    due: list[int] = []
    for k, _ in view.iterate(P_QUEUE):
        if int.from_bytes(k[n:n + 8], "big") > now or len(due) >= MAX_SLICES_PER_BLOCK:
            break
        due.append(int.from_bytes(k[n + 8:], "big"))
    events: list[Event] = []
    for twap_id in sorted(due):
        events += _run_one(view, ctx, get(view, twap_id))
    return events


def slice_lots(tw: Twap, now_ms: int) -> tuple[int, int]:
    """(slices due so far, lots of this block's slice) of an active TWAP with a slice due."""
    n = tw.slices
    k = min(n, (now_ms - tw.start_ms) // SLICE_INTERVAL_MS)
    owed, left = k - tw.slices_done, n - tw.slices_done
    target = -(-tw.remaining_lots * owed // left)
    return k, min(target, CATCH_UP_FACTOR * tw.normal_lots, tw.remaining_lots)


def band_ticks(m: Market, mark: int, is_buy: bool) -> int:
    """The slice's limit: mark +3% for a buy rounded down, -3% for a sell rounded up (ticks),
    within 1..MAX_PRICE."""
    scale = C.PPM * m.tick_size
    if is_buy:
        ticks = mark * (C.PPM + PRICE_BAND_PPM) // scale
    else:
        ticks = -(-(mark * (C.PPM - PRICE_BAND_PPM)) // scale)
    return min(max(ticks, 1), C.MAX_PRICE // m.tick_size)


def _run_one(view: Overlay, ctx, tw: Twap) -> list[Event]:
    m = get_market(view, tw.market)
    due_ms = tw.due_ms()
    k, lots = slice_lots(tw, ctx.time_ms)
    events: list[Event] = []
    reason = None
    try:
        with SubTransaction(view, ctx) as scope:
            oid, ticks, lots, filled = _slice(scope, m, tw, lots)
        tw.filled_lots += filled
        events += scope.events
        events.append(Event("twap_slice", _attrs(m, tw) + (
            ("slice", str(k)), ("order_id", str(oid)), ("size", size_text(m, lots)),
            ("price", price_text(m, ticks)), ("filled", size_text(m, filled)),
            ("twap_filled", size_text(m, tw.filled_lots)),
            ("twap_remaining", size_text(m, tw.remaining_lots)))))
    except TxError as e:
        events.append(Event("twap_slice_failed", _attrs(m, tw) + (
            ("slice", str(k)), ("size", size_text(m, lots)), ("code", str(int(e.code))),
            ("log", e.log))))
        reason = ENDING.get(e.code)
    tw.slices_done = k
    if reason is None and not tw.remaining_lots:
        reason = "filled"
    elif reason is None and k == tw.slices:
        reason = "duration_elapsed"
    if reason is None:
        _save(view, tw, due_ms)
    else:
        _remove(view, tw, due_ms)
        events.append(_end_event(m, tw, reason))
    return events


def _slice(scope, m: Market, tw: Twap, lots: int) -> tuple[int, int, int, int]:
    """Place one slice as an IOC order; (order id, limit ticks, lots sent, lots filled)."""
    check_trading(scope.view, m, scope.ctx.time_ms)
    mark = mark_price(scope.view, m)
    if mark is None:
        raise TxError(Code.ORACLE_STALE, f"{m.symbol} has no mark or oracle price")
    ticks = band_ticks(m, mark, tw.is_buy)
    if tw.reduce_only:
        lots = reduce_only_size(scope.ledger.account(tw.owner), m, tw.is_buy, lots)
    elif m.perp_like:
        fresh_price(scope.view, m.base, scope.ctx.time_ms)
    check_notional(m, ticks, lots)
    o = O.OrderRecord(O.next_order_id(scope.view), m.id, tw.owner, tw.is_buy, _LIMIT, ticks,
                      lots, lots, _IOC, tw.reduce_only, 0, 0, 0, scope.ctx.time_ms)
    return o.id, ticks, lots, execute(scope, m, o)
