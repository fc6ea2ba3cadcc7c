"""Auto-deleveraging: closing opposite positions when the insurance fund cannot cover a loss.

What this module owns
---------------------
* The ADL ranking of the positions on one side of a perp market: by unrealised PnL% times
  leverage, score = upnl * notional * PPM // (|cost basis| * equity) (integers; upnl and
  notional at mark, equity the account's cross equity), highest first; accounts with equity
  <= 0 come last; ties by address. The insurance fund and the settlement pool are never in it.
* `deleverage`: the bankrupt account's position is closed against the ranked counterparties,
  in rank order, at the bankruptcy price, each through `settlement.settle_fill` without fees,
  at most MAX_ADL_COUNTERPARTIES per position per block; each close is an `adl` event, and
  the counterparty's resting reduce-only orders are brought within its smaller position
  (state.reduce_only).
Only holders of an opposite position are ever touched: an account with no position never
pays for another's loss.
"""

from typing import NamedTuple

from state import constants as C
from state.event_text import price_text, size_text
from state.events import Event
from state.insurance import INSURANCE_FUND
from state.margin import mark_price, market_requirements, summary
from state.markets import Market
from state.positions import load_account
from state.reduce_only import enforce as enforce_reduce_only
from state.settlement import POOL, settle_fill


class Ranked(NamedTuple):
    addr: bytes
    size_lots: int     # signed
    score: int         # upnl% x leverage, in ppm (meaningful when has_equity)
    has_equity: bool


def rank_side(view, m: Market, holders: list[tuple[bytes, int]], long_side: bool) -> list[Ranked]:
    """The positions on one side of market `m` in ADL order (see the module docstring).
    `holders`: (address, size lots) of the market's holders (state.risk_index)."""
    px = mark_price(view, m)
    out = []
    for addr, _ in holders:
        if addr == INSURANCE_FUND or addr == POOL:
            continue
        acct = load_account(view, addr)
        e = acct.entries.get(m.id)
        if e is None or not e.size or (e.size > 0) != long_side:
            continue
        upnl, _, _, notional = market_requirements(m, e, px)
        equity = summary(view, acct).equity
        basis = abs(e.entry_tl) * m.q
        ok = equity > 0 and basis > 0
        score = upnl * notional * C.PPM // (basis * equity) if ok else 0
        out.append(Ranked(addr, e.size, score, ok))
    out.sort(key=lambda r: (not r.has_equity, -r.score, r.addr))
    return out


def deleverage(scope, m: Market, addr: bytes, size_lots: int, bp_ticks: int,
               holders: list[tuple[bytes, int]]) -> int:
    """Close up to |size_lots| of `addr`'s position against the ranked opposite positions at
    `bp_ticks`; return the lots left open (0 unless the other side is too small)."""
    scope.ledger.flush()
    ranked = rank_side(scope.view, m, [h for h in holders if h[0] != addr], size_lots < 0)
    left = abs(size_lots)
    for rank, r in enumerate(ranked[:C.MAX_ADL_COUNTERPARTIES], start=1):
        if not left:
            break
        take = min(left, abs(r.size_lots))
        settle_fill(scope, m, addr, size_lots < 0, r.addr, bp_ticks, take, 0, 0)
        enforce_reduce_only(scope, m, r.addr)
        left -= take
        scope.events.append(Event("adl", (
            ("account", addr.hex()), ("counterparty", r.addr.hex()), ("market", m.symbol),
            ("size", size_text(m, take)), ("price", price_text(m, bp_ticks)),
            ("rank", str(rank)))))
    scope.ledger.flush()
    return left
