"""Funding of perpetual markets (Hyperliquid's rule as the reference).

What this module owns
---------------------
For every perp market with funding parameters (state.markets.FundingParams, from genesis
only), at the end of every block (after the marks: `end_block`, one sub-transaction per
market, ascending market id):

1. **Premium sample.** From the book's impact bid / ask (state.mark.impact_price at the
   market's impact notional) and the oracle price o:
       premium = [max(impact_bid - o, 0) - max(o - impact_ask, 0)] / o
   in ppb (RATE_SCALE = 10^9), rounded toward zero and clamped to +-100%. A side too thin to
   give an impact price contributes 0. Without an oracle price there is no sample.
2. **Time weighting.** A sample holds from its block's time until the next block's; the
   accumulator `premium/<id:4>` sums premium x ms and ms over the current window. Time before
   the first sample (or after a block without one) carries no weight.
3. **Settlement** when a block's time reaches a boundary of the funding grid
   (genesis time + k x interval_ms): the window up to the latest boundary passed is settled
   once (a block gap of several intervals is one window, paid for its whole length; without
   an oracle price the window is dropped unpaid). The oracle price is the latest aggregated
   one, as for the mark:
       P  = sum(premium x ms) / sum(ms)                  (0 without weight; toward zero)
       F8 = P + clamp(I - P, -clamp_8h, +clamp_8h)       (the 8-hour rate)
       rate = F8 x window_ms / 8 h                        (toward zero; F8 / 8 hourly)
       rate = clamp(rate, -cap, +cap), cap = max_rate_per_hour x window_ms / 1 h
   What one long lot pays in the window,
       dI = lot_size x o x rate x INDEX_SCALE / (10^base_decimals x RATE_SCALE)
   (toward zero), is added to the market's funding index (state.funding_index): no account is
   visited. A position of s lots (long > 0) then owes ceil(s x (index - its entry's index) /
   INDEX_SCALE) quote quantums (longs pay shorts when the rate is positive; payers pay the
   ceiling, receivers receive the floor): it counts in equity at once and is settled into the
   quote balance, against the funding pool, the next time the account is touched. Positions
   and entry prices do not change.

Events: one `funding` per market and settled window (`market`, `time_ms`, `rate`, `rate_8h`,
`premium`, `oracle`, `index`); a `funding_payment` (`account`, `market`, `size`, `amount`:
what the account received, negative when it paid) whenever a position's dues are settled
(state.ledger). The last HISTORY_LEN settlements are kept per market at
`funding/<id:4><seq:8>` (the `funding_history` query).

The accumulator changes every block and moves nothing but a future rate, so it is a price
record for the mempool (state.machine.PRICE_RECORDS); a settlement block moves every
position's equity (the index) and so forces the mempool's recheck.
"""

from typing import NamedTuple

from state.amounts import format_amount
from state.book import Side
from state.codec import encode, load
from state import constants as C, funding_index as FI
from state.errors import Code, TxError
from state.events import Event
from state.kv import KVView, Overlay
from state.mark import impact_price
from state.markets import (PERP, RATE_SCALE, FundingParams, Market, funding_params,
                           list_markets)
from state import oracle
from state.scope import Scope, SubTransaction

P_PREMIUM = b"premium/"   # + market id:4 -> Accumulator fields
P_HISTORY = b"funding/"   # + market id:4 + seq:8 -> [time_ms, rate, rate_8h, premium, oracle,
#                                                    index]
HISTORY_LEN = 720         # settlements kept per market (30 days of hourly funding)
HOUR_MS = 3_600_000
EIGHT_HOURS_MS = 8 * HOUR_MS
RATE_DECIMALS = 9         # RATE_SCALE = 10**RATE_DECIMALS (rates print as decimal fractions)


class Accumulator(NamedTuple):
    """The current funding window of one market (`premium/<id>`)."""
    window_start_ms: int    # a grid boundary (genesis time + k x interval)
    weighted_sum: int       # sum of premium (ppb) x ms in the window
    weight_ms: int          # sum of ms with a sample
    last_premium: int | None  # the latest sample (None: none since the last block)
    last_time_ms: int       # its block time
    seq: int                # settlements so far (the next history index)


class Window(NamedTuple):
    """A window to settle: [start_ms, end_ms) with its premium sums."""
    start_ms: int
    end_ms: int
    weighted_sum: int
    weight_ms: int


# -- the formula (pure) -----------------------------------------------------------------------

def _div0(a: int, b: int) -> int:
    """a / b rounded toward zero (b > 0)."""
    return a // b if a >= 0 else -((-a) // b)


def _clamp(x: int, lo: int, hi: int) -> int:
    return lo if x < lo else hi if x > hi else x


def premium_sample(impact_bid: int | None, impact_ask: int | None, oracle_px: int) -> int:
    """The premium in ppb (see the module docstring, step 1)."""
    up = max(impact_bid - oracle_px, 0) if impact_bid is not None else 0
    down = max(oracle_px - impact_ask, 0) if impact_ask is not None else 0
    return _clamp(_div0((up - down) * RATE_SCALE, oracle_px), -RATE_SCALE, RATE_SCALE)


def average_premium(w: Window) -> int:
    return _div0(w.weighted_sum, w.weight_ms) if w.weight_ms else 0


def rate_8h(avg_premium: int, p: FundingParams) -> int:
    """F8 = P + clamp(I - P, -clamp, +clamp), ppb per 8 hours."""
    return avg_premium + _clamp(p.interest_8h - avg_premium, -p.clamp_8h, p.clamp_8h)


def window_rate(f8: int, window_ms: int, p: FundingParams) -> int:
    """The rate paid for a window of `window_ms`: F8 pro rata, capped (ppb)."""
    cap = p.max_rate_per_hour * window_ms // HOUR_MS
    return _clamp(_div0(f8 * window_ms, EIGHT_HOURS_MS), -cap, cap)


def advance(acc: Accumulator, now_ms: int, interval_ms: int) -> tuple[Window | None,
                                                                       Accumulator]:
    """Carry the last sample up to `now_ms`; split off the window that ended, if one did.
    The returned accumulator has no sample of its own yet (`sample` adds it)."""
    ws, wsum, wms = acc.window_start_ms, acc.weighted_sum, acc.weight_ms
    boundary = ws + (now_ms - ws) // interval_ms * interval_ms
    lp, start = acc.last_premium, acc.last_time_ms
    ended = None
    if boundary > ws:
        if lp is not None:
            wsum += lp * (boundary - start)
            wms += boundary - start
        ended = Window(ws, boundary, wsum, wms)
        ws, wsum, wms, start = boundary, 0, 0, boundary
    if lp is not None:
        wsum += lp * (now_ms - start)
        wms += now_ms - start
    return ended, Accumulator(ws, wsum, wms, None, now_ms, acc.seq)


# -- records ----------------------------------------------------------------------------------

def _mid(market_id: int) -> bytes:
    return market_id.to_bytes(4, "big")


def read_accumulator(view: KVView, market_id: int) -> Accumulator | None:
    raw = view.get(P_PREMIUM + _mid(market_id))
    return None if raw is None else Accumulator(*load(raw))


def put_accumulator(view: Overlay, market_id: int, acc: Accumulator) -> None:
    view.put(P_PREMIUM + _mid(market_id), encode(list(acc)))


def start(view: Overlay, market_id: int, genesis_time_ms: int) -> None:
    """Genesis: open the first window of a funded market at genesis time."""
    put_accumulator(view, market_id, Accumulator(genesis_time_ms, 0, 0, None, genesis_time_ms, 0))


class Settlement(NamedTuple):
    """One settled window of one market (a `funding/` history record)."""
    time_ms: int
    rate: int
    rate_8h: int
    premium: int
    oracle_px: int
    index: int              # the market's funding index after this window (state.funding_index)


def history(view: KVView, market_id: int) -> list[Settlement]:
    """The kept settlements of a market, oldest first."""
    return [Settlement(*load(v)) for _, v in view.iterate(P_HISTORY + _mid(market_id))]


def _record(view: Overlay, market_id: int, seq: int, s: Settlement) -> None:
    view.put(P_HISTORY + _mid(market_id) + seq.to_bytes(8, "big"), encode(list(s)))
    if seq >= HISTORY_LEN:
        view.delete(P_HISTORY + _mid(market_id) + (seq - HISTORY_LEN).to_bytes(8, "big"))


# -- the block step ---------------------------------------------------------------------------

def end_block(view: Overlay, ctx) -> list[Event]:
    """Sample, accumulate and settle funding of every funded perp market (module docstring)."""
    params = funding_params(view)
    if not params:
        return []
    events: list[Event] = []
    for m in list_markets(view):
        p = params.get(m.id)
        if p is None or m.kind != PERP:
            continue
        try:
            with SubTransaction(view, ctx) as scope:
                _market_step(scope, m, p)
        except TxError as e:  # the index would leave int64: the market's step is dropped
            events.append(Event("funding_failed", (("market", m.symbol), ("log", e.log))))
            continue
        events += scope.events
    return events


def _market_step(scope: Scope, m: Market, p: FundingParams) -> None:
    view, now = scope.view, scope.ctx.time_ms
    acc = read_accumulator(view, m.id) or Accumulator(now, 0, 0, None, now, 0)
    ended, acc = advance(acc, now, p.interval_ms)
    px = oracle.price(view, m.base)
    if ended is not None and px is not None:
        _settle(scope, m, p, ended, px[0], acc.seq)
        acc = acc._replace(seq=acc.seq + 1)
    if px is not None:
        book = scope.book(m.id)
        sample = premium_sample(impact_price(book, m, Side.BUY),
                                impact_price(book, m, Side.SELL), px[0])
        acc = acc._replace(last_premium=sample)
    put_accumulator(view, m.id, acc)


def _settle(scope: Scope, m: Market, p: FundingParams, w: Window, oracle_px: int,
            seq: int) -> None:
    """Settle one window's funding into the market's index (module docstring, step 3)."""
    prem = average_premium(w)
    f8 = rate_8h(prem, p)
    rate = window_rate(f8, w.end_ms - w.start_ms, p)
    index = FI.current(scope.view, m.id) + FI.step(m, oracle_px, rate)
    if not -C.MAX_INT64 <= index <= C.MAX_INT64:
        raise TxError(Code.BALANCE_OVERFLOW, f"{m.symbol}'s funding index would leave the "
                      "int64 range")
    FI.put(scope.view, m.id, index)
    _record(scope.view, m.id, seq, Settlement(w.end_ms, rate, f8, prem, oracle_px, index))
    scope.events.append(Event("funding", (
        ("market", m.symbol), ("time_ms", str(w.end_ms)),
        ("rate", format_amount(rate, RATE_DECIMALS)),
        ("rate_8h", format_amount(f8, RATE_DECIMALS)),
        ("premium", format_amount(prem, RATE_DECIMALS)),
        ("oracle", format_amount(oracle_px, scope.quote_decimals)), ("index", str(index)))))
