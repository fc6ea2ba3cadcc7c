"""Interest accrual: once per block per pooled asset, in begin-block (never per account).

What this module owns
---------------------
`begin_block` moves the indices of each pool with borrows forward by the block time elapsed
since its last accrual (state.lending.accrue, at the utilisation the previous block left) and
pays the reserve to the insurance fund (a raw balance: state.lending_pools.RAW_ACCOUNTS);
the suppliers' share less what the floored supply index gives them is the pool's dust, so
interest = earned + reserve + dust exactly.
Accounts are not visited: their scaled balances are worth more (suppliers) or owe more
(borrowers) through the indices alone. The cost is O(pooled assets) per block.
A pool without borrows accrues nothing and is not written (an idle chain's blocks stay as
light as without lending: the mempool keeps its check state across them); its clock restarts
with its next first borrow (state.lending_pools.store sets `last_ms` to 0: from the end of
that block, `last_block_ms` at the next accrual).

History: at the first accrual of each hour of block time a record
    lend/hist/<symbol>\\x00<seq:8> -> [time_ms, utilisation, borrow rate, supply rate,
                                      supply index, borrow index]
(rates in state.lending.RATE_SCALE a year, utilisation in UTIL_SCALE) is written; the oldest
beyond HISTORY_LEN is deleted (the `interest_history` query).
"""

from typing import NamedTuple

from state import lending as L, lending_pools as LP, ledger
from state.amounts import format_amount
from state.codec import encode, load
from state.events import Event
from state.insurance import INSURANCE_FUND
from state.kv import KVView, Overlay
from state import params

P_HISTORY = b"lend/hist/"
HISTORY_LEN = 24 * 30
HOUR_MS = 3_600_000


class HistoryPoint(NamedTuple):
    time_ms: int
    utilisation: int
    borrow_rate: int
    supply_rate: int
    supply_index: int
    borrow_index: int


def begin_block(view: Overlay, ctx, last_block_ms: int) -> list[Event]:
    """Accrue every pool with borrows to the block time (sorted by symbol)."""
    events: list[Event] = []
    for sym, prm in sorted(LP.pool_params(view).items()):
        p = LP.get_pool(view, sym)
        start = p.last_ms or last_block_ms
        if p.scaled_borrowed == 0 or ctx.time_ms <= start:
            continue
        a = L.accrue(prm, p.scaled_supplied, p.scaled_borrowed, p.supply_index,
                     p.borrow_index, ctx.time_ms - start)
        new = p._replace(supply_index=a.supply_index, borrow_index=a.borrow_index,
                         last_ms=ctx.time_ms, interest_total=p.interest_total + a.interest,
                         reserve_total=p.reserve_total + a.reserve)
        # what the suppliers' share holds beyond what the floored index gives them
        new = new._replace(dust=p.dust + a.earned - (new.supplied - p.supplied))
        if ctx.time_ms // HOUR_MS != start // HOUR_MS:
            new = _record(view, sym, prm, new)
        LP.put_pool(view, sym, new)
        if a.reserve:
            ledger.pay_reserve(view, INSURANCE_FUND, sym, a.reserve)
            events.append(Event("lending_reserve", (
                ("asset", sym), ("interest", format_amount(a.interest, _dec(view, sym))),
                ("reserve", format_amount(a.reserve, _dec(view, sym))))))
    return events


def _dec(view: KVView, sym: str) -> int:
    return params.asset_decimals(view, sym)


def rates(prm: L.PoolParams, p: LP.Pool) -> tuple[int, int, int]:
    """(utilisation, borrow rate, supply rate) of a pool now."""
    u = L.utilisation(p.supplied, p.borrowed)
    return u, L.borrow_rate(prm, u), L.supply_rate(prm, u)


def _record(view: Overlay, sym: str, prm: L.PoolParams, p: LP.Pool) -> LP.Pool:
    u, br, sr = rates(prm, p)
    prefix = P_HISTORY + sym.encode() + b"\x00"
    view.put(prefix + p.history_seq.to_bytes(8, "big"),
             encode([p.last_ms, u, br, sr, p.supply_index, p.borrow_index]))
    if p.history_seq >= HISTORY_LEN:
        view.delete(prefix + (p.history_seq - HISTORY_LEN).to_bytes(8, "big"))
    return p._replace(history_seq=p.history_seq + 1)


def history(view: KVView, sym: str) -> list[HistoryPoint]:
    return [HistoryPoint(*load(v)) for _, v in view.iterate(P_HISTORY + sym.encode() + b"\x00")]
