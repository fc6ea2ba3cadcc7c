"""Dated futures: the settlement window, the end of trading at expiry, and settlement.

What this module owns
---------------------
A FUTURE market (state.markets: kind 2, with `expiry_ms` and `settlement_window_ms`) trades
exactly like a perp — positions, cross margin, tiers, marks, triggers, liquidation — but pays
no funding. Its records here:

    futwin/<id:4>  -> [sum_hi, sum_lo, weight_ms]    the settlement window's time-weighted sums
                      (price_ms_sum = sum_hi * 10^18 + sum_lo: it outgrows msgpack's 64 bits)
    futset/<id:4>  -> [price, time_ms, weight_ms, positions]   written once: the market settled

`begin_block(view, ctx, prev_ms)` runs at the start of every block (after good-til-time expiry,
before the block's txs), for each future not yet settled, ascending market id:

1. **Window sample.** Transactions and this step see the oracle price aggregated at the end of
   the previous block, so that price (p, aggregated at time t_p) was in force over
   [prev_ms, now_ms), prev_ms being the previous block's time. Its overlap with the window
   W = [expiry - window, expiry), cut to the price's freshness [t_p, t_p + max_age_ms) (a
   stale price has no weight), is its weight:
       price_ms_sum += p * overlap_ms,  weight_ms += overlap_ms
   Irregular block times are weighted exactly by their durations (integers, no rounding).
2. **Settlement**, at the first block whose time is >= expiry (so no tx of that block trades
   the market: `check_trading` refuses orders with MARKET_EXPIRED), in one sub-transaction:
   * the settlement price P (price units) is the window's average rounded half up,
     floor((2 * price_ms_sum + weight_ms) / (2 * weight_ms)); with no weight at all (no fresh
     oracle price during the window) it is the last known oracle price, else the mark
     (state.margin.mark_price), as stored at that block's start;
   * every resting and waiting order on the market is cancelled (ascending order id; `cancel`
     events with reason `settlement`);
   * every position (ascending address) is closed at P without a fee, by the rule of closing
     it: PnL = floor(size * lot_size * P / 10^base_decimals) - cost basis * q quote quantums,
     into the quote balance against the settlement pool (state.settlement.POOL); its cost
     basis, size and leverage are cleared, so open interest becomes 0. The floors round every
     PnL against the account; since long = short, the exact values sum to 0, so the pool is
     left r = -(sum of the floored values), 0 <= r < positions: it goes to the insurance fund,
     keeping pool = -(sum of cost bases * q) (state.invariants);
   * an account left with no position and equity < 0 (it lost more than its collateral) has
     its deficit covered by the insurance fund as far as the fund's quote balance goes; what
     the fund cannot cover stays a negative balance (a debt). An account that still holds
     other positions is left to liquidation (state.liquidation: below the backstop the fund
     takes its positions over), as for any other price move;
   * `futset/` is written and `futwin/` deleted: the market is `settled` for good.
   If the sub-transaction is refused (a balance would leave int64), nothing of it happens, a
   `future_settlement_failed` event says why and it is tried again next block (trading stays
   stopped: the check is by time).

Events (block): `cancel` (reason `settlement`) per order; `future_position_settled` (`account`,
`market`, `side`, `size`, `price`, `pnl`) per position; `settlement_deficit` (`account`,
`market`, `deficit`, `covered`); then one `future_settled` (`market`, `expiry_ms`, `price`,
`source`: `twap` / `last_oracle` / `none`, `window_ms`: the weighted ms, `positions`,
`insurance`: the rounding remainder).

The window sums move only a future price, so `futwin/` is a price record for the mempool
(state.machine.PRICE_RECORDS); settlement writes balances, orders and `futset/`.
"""

from typing import NamedTuple

from state import oracle, orders as O
from state.cancellation import cancel_open
from state.codec import encode, load
from state.errors import Code, TxError
from state.event_text import quote_text, size_text
from state.events import Event
from state.insurance import INSURANCE_FUND, fund_balance
from state.kv import KVView, Overlay
from state.margin import mark_price, summary, value
from state.markets import FUTURE, Market, list_markets, oracle_params
from state.positions import iter_accounts
from state.scope import Scope, SubTransaction
from state.settlement import POOL

P_WINDOW = b"futwin/"
P_SETTLED = b"futset/"
_SPLIT = 10**18   # price_ms_sum is stored as [sum // _SPLIT, sum % _SPLIT]


class Settled(NamedTuple):
    """A settled future (`futset/<id>`)."""
    price: int          # settlement price, price units (0: there was none and nothing to settle)
    time_ms: int        # the block time it settled at
    weight_ms: int      # ms of the window with a fresh oracle price (0: a fallback price)
    positions: int      # positions settled


def _mid(market_id: int) -> bytes:
    return market_id.to_bytes(4, "big")


def expired(m: Market, now_ms: int) -> bool:
    """A future at or past its expiry: no trading, no mark, no triggers."""
    return m.kind == FUTURE and now_ms >= m.expiry_ms


def settled(view: KVView, market_id: int) -> Settled | None:
    raw = view.get(P_SETTLED + _mid(market_id))
    return None if raw is None else Settled(*load(raw))


def window_sums(view: KVView, market_id: int) -> tuple[int, int]:
    """(price_ms_sum, weight_ms) of the settlement window so far."""
    raw = view.get(P_WINDOW + _mid(market_id))
    if raw is None:
        return 0, 0
    hi, lo, weight = load(raw)
    return hi * _SPLIT + lo, weight


def check_listing(m: Market, now_ms: int) -> None:
    """ValueError unless a future listed at `now_ms` expires after it (genesis, governance)."""
    if m.kind == FUTURE and m.expiry_ms <= now_ms:
        raise ValueError(f"future {m.symbol}: expiry {m.expiry_ms} ms is not after the "
                         f"listing time {now_ms} ms")


def check_trading(view: KVView, m: Market, now_ms: int) -> None:
    """TxError MARKET_EXPIRED for an order or leverage change on an expired future."""
    if not expired(m, now_ms):
        return
    s = settled(view, m.id)
    how = (f"it settled at {quote_text(m, s.price)} at block time {s.time_ms} ms" if s else
           "it settles at the start of the next block")
    raise TxError(Code.MARKET_EXPIRED, f"market {m.symbol} (id {m.id}) expired at block time "
                  f"{m.expiry_ms} ms (now {now_ms} ms): trading has stopped; {how}")


# -- the formula (pure) -----------------------------------------------------------------------

def window_overlap_ms(m: Market, prev_ms: int, now_ms: int, px_time_ms: int,
                      max_age_ms: int) -> int:
    """ms of [prev_ms, now_ms) inside the window and within the price's freshness."""
    lo = max(prev_ms, m.expiry_ms - m.settlement_window_ms, px_time_ms)
    hi = min(now_ms, m.expiry_ms, px_time_ms + max_age_ms)
    return hi - lo if hi > lo else 0


def average_price(price_ms_sum: int, weight_ms: int) -> int:
    """The time-weighted average, rounded half up (weight_ms > 0)."""
    return (2 * price_ms_sum + weight_ms) // (2 * weight_ms)


def settlement_pnl(m: Market, size_lots: int, entry_tl: int, px: int) -> int:
    """PnL of closing the position at `px` (price units), floored: against the account."""
    return value(m, size_lots, px) - entry_tl * m.q


# -- the block step ---------------------------------------------------------------------------

def begin_block(view: Overlay, ctx, prev_ms: int) -> list[Event]:
    """Sample the window and settle what expired (see the module docstring)."""
    events: list[Event] = []
    for m in list_markets(view):
        if m.kind != FUTURE or settled(view, m.id) is not None:
            continue
        _sample(view, m, prev_ms, ctx.time_ms)
        if ctx.time_ms < m.expiry_ms:
            continue
        try:
            with SubTransaction(view, ctx) as scope:
                _settle(scope, m)
        except TxError as e:
            events.append(Event("future_settlement_failed", (
                ("market", m.symbol), ("code", str(int(e.code))), ("log", e.log))))
            continue
        events += scope.events
    return events


def _sample(view: Overlay, m: Market, prev_ms: int, now_ms: int) -> None:
    p = oracle.price(view, m.base)
    if p is None:
        return
    ms = window_overlap_ms(m, prev_ms, now_ms, p[1], oracle_params(view).max_age_ms)
    if ms:
        total, weight = window_sums(view, m.id)
        total += p[0] * ms
        view.put(P_WINDOW + _mid(m.id), encode([total // _SPLIT, total % _SPLIT, weight + ms]))


def settlement_price(view: KVView, m: Market) -> tuple[int | None, str, int]:
    """(price or None, source, weighted ms): the window's average, else the fallbacks."""
    total, weight = window_sums(view, m.id)
    if weight:
        return average_price(total, weight), "twap", weight
    p = oracle.price(view, m.base)
    if p is not None:
        return p[0], "last_oracle", 0
    px = mark_price(view, m)
    return px, ("none" if px is None else "mark"), 0


def _settle(scope: Scope, m: Market) -> None:
    view = scope.view
    px, source, weight = settlement_price(view, m)
    for prefix in (O.P_ORDER, O.P_TRIGGER):
        ids = [int.from_bytes(k[-8:], "big") for k, _ in view.iterate(prefix + _mid(m.id))]
        for oid in ids:
            cancel_open(scope, m, None, oid, "settlement")
    holders = [a for a, acct in iter_accounts(view) if acct.size(m.id)]
    if holders and px is None:
        raise AssertionError(f"{m.symbol}: positions without any price")  # trading needs one
    remainder = 0  # -(sum of the floored values): the floors' gain, as long = short
    for addr in holders:
        remainder -= _close_position(scope, m, addr, px)
    scope.ledger.credit(POOL, scope.quote, -remainder)
    scope.ledger.credit(INSURANCE_FUND, scope.quote, remainder)
    scope.ledger.flush()
    for addr in holders:
        _cover_deficit(scope, m, addr)
    view.put(P_SETTLED + _mid(m.id), encode([px or 0, scope.ctx.time_ms, weight, len(holders)]))
    view.delete(P_WINDOW + _mid(m.id))
    scope.events.append(Event("future_settled", (
        ("market", m.symbol), ("expiry_ms", str(m.expiry_ms)),
        ("price", quote_text(m, px or 0)), ("source", source), ("window_ms", str(weight)),
        ("positions", str(len(holders))), ("insurance", quote_text(m, remainder)))))


def _close_position(scope: Scope, m: Market, addr: bytes, px: int) -> int:
    """Close `addr`'s position at `px`; return its value there, floored (quote quantums)."""
    e = scope.ledger.account(addr).entry(m.id)
    size = e.size
    pnl = settlement_pnl(m, size, e.entry_tl, px)
    e.size = e.entry_tl = e.leverage = 0
    scope.ledger.credit(addr, scope.quote, pnl)
    scope.ledger.credit(POOL, scope.quote, -pnl)
    scope.events.append(Event("future_position_settled", (
        ("account", addr.hex()), ("market", m.symbol), ("side", "long" if size > 0 else "short"),
        ("size", size_text(m, abs(size))), ("price", quote_text(m, px)),
        ("pnl", quote_text(m, pnl)))))
    return value(m, size, px)


def _cover_deficit(scope: Scope, m: Market, addr: bytes) -> None:
    """The insurance fund covers what an account without positions owes, as far as it can."""
    if addr == INSURANCE_FUND:
        return
    acct = scope.ledger.account(addr)
    if any(e.size for e in acct.entries.values()):
        return  # liquidation's business (state.liquidation)
    equity = summary(scope.view, acct, scope.quote).equity
    if equity >= 0:
        return
    covered = min(-equity, max(fund_balance(scope.view, scope.quote), 0))
    scope.ledger.credit(INSURANCE_FUND, scope.quote, -covered)
    scope.ledger.credit(addr, scope.quote, covered)
    scope.ledger.flush()
    scope.events.append(Event("settlement_deficit", (
        ("account", addr.hex()), ("market", m.symbol), ("deficit", quote_text(m, -equity)),
        ("covered", quote_text(m, covered)))))
