"""JSON-RPC method `funding_history`: a perp market's funding parameters, its current window
and its last settlements (state/funding.py keeps the last HISTORY_LEN per market in state).

Like the other exchange methods it reads the latest committed state (`app.store.state`);
rates and premiums are decimal fractions ("0.0000125" = 0.00125%), prices and amounts decimal
strings in the quote asset, times decimal-string milliseconds of block time.
"""

from rpc import params as rpc_params
from state import funding as F, funding_index as FI, markets as MS, params
from state.amounts import format_amount
from state.machine import last_block

DEFAULT_LIMIT = 100


def _arg(p: dict, name: str, pos: int):
    """A parameter by name or position (a URI query may quote strings)."""
    v = p.get(name, p.get(pos))
    if isinstance(v, str) and len(v) >= 2 and v[0] == v[-1] == '"':
        v = v[1:-1]
    return v


def _rate(ppb: int) -> str:
    return format_amount(ppb, F.RATE_DECIMALS)


def _current(acc: F.Accumulator | None, p: MS.FundingParams) -> dict | None:
    if acc is None:
        return None
    w = F.Window(acc.window_start_ms, acc.window_start_ms + p.interval_ms, acc.weighted_sum,
                 acc.weight_ms)
    return {"window_start_ms": str(w.start_ms), "next_funding_ms": str(w.end_ms),
            "average_premium": _rate(F.average_premium(w)),
            "last_premium": None if acc.last_premium is None else _rate(acc.last_premium),
            "sampled_ms": str(acc.weight_ms)}


async def funding_history(app, p: dict) -> dict:
    """Params: `market` (id or symbol, position 0), `limit` (1..HISTORY_LEN, default 100)."""
    view = app.store.state
    m = rpc_params.market_value(view, _arg(p, "market", 0))
    limit = rpc_params.limit_value(_arg(p, "limit", 1), F.HISTORY_LEN, DEFAULT_LIMIT,
                               " (the chain keeps the last settlements of that many intervals)")
    fp = MS.funding_params(view).get(m.id)
    qdec = params.asset_decimals(view, params.quote_asset(view))
    hist = F.history(view, m.id)[-limit:]
    return {
        "height": str(last_block(view)[0]), "market": m.symbol, "id": m.id,
        "funding": fp is not None, "index": str(FI.current(view, m.id)),
        "params": None if fp is None else {
            "interval_ms": str(fp.interval_ms), "interest_rate_8h": _rate(fp.interest_8h),
            "premium_clamp_8h": _rate(fp.clamp_8h),
            "max_rate_per_hour": _rate(fp.max_rate_per_hour)},
        "current": None if fp is None else _current(F.read_accumulator(view, m.id), fp),
        "history": [{"time_ms": str(s.time_ms), "rate": _rate(s.rate),
                     "rate_8h": _rate(s.rate_8h), "premium": _rate(s.premium),
                     "oracle_price": format_amount(s.oracle_px, qdec), "index": str(s.index)}
                    for s in reversed(hist)],
    }


FUNDING_METHODS = {"funding_history": funding_history}
