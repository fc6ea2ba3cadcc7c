"""The dead-man switch (Hyperliquid's `scheduleCancel`): at a block time the account chose,
every open order of the account (resting and trigger, on every market) is cancelled.

Keys:
    sched/at/<addr32>                  -> time_ms (the account's one scheduled cancel)
    sched/q/<time_ms:8 BE><addr32>     -> b"" (the queue, ascending time then address)
    sched/n/<addr32>                   -> [utc_day, fired] (written when one fires)

`schedule_cancel [time_ms]` sets it (at least SCHEDULE_MIN_DELAY_MS and at most
SCHEDULE_MAX_DELAY_MS after the block time) or, with 0, removes it. Each begin-block cancels
the orders of the accounts whose time has come (at most MAX_SCHEDULED_CANCELS_PER_BLOCK
accounts; the rest the next block), each as its own sub-transaction, and removes their
schedule: it fires once.

Hyperliquid's daily limit: each firing counts for the UTC day of its block time (day =
time_ms // DAY_MS); once SCHEDULE_TRIGGERS_PER_DAY have fired in the day of the block time,
setting a new time is refused (SCHEDULE_LIMIT) until 00:00 UTC. Removing one is always
allowed, and a schedule already set still fires.
"""

from state import constants as C
from state.cancellation import cancel_open
from state.codec import encode, load
from state.errors import Code, TxError
from state.events import Event
from state.kv import KVView, Overlay
from state.markets import get as get_market
from state.orders import account_order_ids
from state.scope import SubTransaction

P_AT = b"sched/at/"
P_QUEUE = b"sched/q/"
P_FIRED = b"sched/n/"


def scheduled(view: KVView, addr: bytes) -> int | None:
    """The account's scheduled cancel time (ms), or None."""
    raw = view.get(P_AT + addr)
    return None if raw is None else raw if type(raw) is int else load(raw)


def fired_today(view: KVView, addr: bytes, now_ms: int) -> int:
    """How many scheduled cancels of the account fired in the UTC day of `now_ms`."""
    raw = view.get(P_FIRED + addr)
    if raw is None:
        return 0
    day, fired = raw if type(raw) is list else load(raw)
    return fired if day == now_ms // C.DAY_MS else 0


def _count_firing(view: Overlay, addr: bytes, now_ms: int) -> None:
    view.put(P_FIRED + addr, encode([now_ms // C.DAY_MS, fired_today(view, addr, now_ms) + 1]))


def _unset(view: Overlay, addr: bytes, at: int) -> None:
    view.delete(P_AT + addr)
    view.delete(P_QUEUE + at.to_bytes(8, "big") + addr)


def schedule(scope, signer: bytes, fields: tuple) -> None:
    """Set (time_ms > 0) or remove (0) the account's scheduled cancel."""
    (time_ms,) = fields
    view, now = scope.view, scope.ctx.time_ms
    if time_ms and not now + C.SCHEDULE_MIN_DELAY_MS <= time_ms <= now + C.SCHEDULE_MAX_DELAY_MS:
        raise TxError(Code.INVALID_FIELD,
                      f"scheduled cancel time {time_ms} must lie {C.SCHEDULE_MIN_DELAY_MS} ms to "
                      f"{C.SCHEDULE_MAX_DELAY_MS} ms after the block time {now} (0 removes it)")
    if time_ms and fired_today(view, signer, now) >= C.SCHEDULE_TRIGGERS_PER_DAY:
        raise TxError(Code.SCHEDULE_LIMIT,
                      f"{C.SCHEDULE_TRIGGERS_PER_DAY} scheduled cancels of this account already "
                      f"fired today (UTC day {now // C.DAY_MS}), the daily limit: a new one may be "
                      "set after 00:00 UTC")
    old = scheduled(view, signer)
    if old is not None:
        _unset(view, signer, old)
    if time_ms:
        view.put(P_AT + signer, encode(time_ms))
        view.put(P_QUEUE + time_ms.to_bytes(8, "big") + signer, b"")
    scope.events.append(Event("schedule_cancel", (
        ("owner", signer.hex()), ("time_ms", str(time_ms) if time_ms else "none"))))


def due(view: KVView, now_ms: int, limit: int) -> list[tuple[int, bytes]]:
    """(time_ms, address) of the scheduled cancels due at `now_ms`, in queue order."""
    out: list[tuple[int, bytes]] = []
    n = len(P_QUEUE)
    for k, _ in view.iterate(P_QUEUE):
        at = int.from_bytes(k[n:n + 8], "big")
        if at > now_ms or len(out) >= limit:
            break
        out.append((at, k[n + 8:]))
    return out


def begin_block(view: Overlay, ctx) -> list[Event]:
    """Cancel every open order of each account whose scheduled cancel is due."""
    events: list[Event] = []
    for at, addr in due(view, ctx.time_ms, C.MAX_SCHEDULED_CANCELS_PER_BLOCK):
        with SubTransaction(view, ctx) as scope:
            _unset(scope.view, addr, at)
            _count_firing(scope.view, addr, ctx.time_ms)
            ids = account_order_ids(scope.view, addr)
            for mid, oid in ids:
                cancel_open(scope, get_market(scope.view, mid), addr, oid, "scheduled_cancel")
            scope.events.append(Event("scheduled_cancel", (
                ("owner", addr.hex()), ("time_ms", str(at)), ("cancelled", str(len(ids))))))
        events.extend(scope.events)
    return events
