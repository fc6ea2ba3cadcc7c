"""JSON-RPC method `funding_history`: a perp market's funding parameters, its current window
and its last settlements (state/funding.py keeps the last HISTORY_LEN per market in state).

Like the other exchange methods it reads the latest committed state (`app.store.state`);
rates and premiums are decimal fractions ("0.0000125" = 0.00125%), prices and amounts decimal
strings in the quote asset, times decimal-string milliseconds of block time.
"""

from rpc.errors import RPCCode, RPCError
from state import funding as F, markets as MS, params
from state.amounts import format_amount
from state.errors import TxError
from state.machine import last_block

DEFAULT_LIMIT = 100


def _arg(p: dict, name: str, pos: int):
    """A parameter by name or position (a URI query may quote strings)."""
    v = p.get(name, p.get(pos))
    if isinstance(v, str) and len(v) >= 2 and v[0] == v[-1] == '"':
        v = v[1:-1]
    return v


def _market(view, v) -> MS.Market:
    """A market by id (number or numeric string) or symbol; RPCError otherwise."""
    if v is None:
        raise RPCError(RPCCode.INVALID_PARAMS, "missing parameter 'market'")
    try:
        if isinstance(v, int) and not isinstance(v, bool) or (isinstance(v, str) and v.isdigit()):
            return MS.get(view, int(v))
    except TxError as e:
        raise RPCError(RPCCode.INVALID_PARAMS, e.log) from None
    for m in MS.list_markets(view):
        if m.symbol == v:
            return m
    raise RPCError(RPCCode.INVALID_PARAMS, f"unknown market {v!r}; markets: "
                   + ", ".join(f"{m.id} {m.symbol}" for m in MS.list_markets(view)))


def _limit(v) -> int:
    if v is None:
        return DEFAULT_LIMIT
    try:
        if isinstance(v, bool):
            raise ValueError
        n = int(v)
    except (TypeError, ValueError):
        raise RPCError(RPCCode.INVALID_PARAMS, "parameter 'limit' must be an integer") from None
    if not 1 <= n <= F.HISTORY_LEN:
        raise RPCError(RPCCode.INVALID_PARAMS, f"parameter 'limit' must be 1..{F.HISTORY_LEN} "
                       f"(the chain keeps the last {F.HISTORY_LEN} settlements per market)")
    return n


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
    m = _market(view, _arg(p, "market", 0))
    limit = _limit(_arg(p, "limit", 1))
    fp = MS.funding_params(view).get(m.id)
    qdec = params.asset_decimals(view, params.quote_asset(view))
    hist = F.history(view, m.id)[-limit:]
    return {
        "height": str(last_block(view)[0]), "market": m.symbol, "id": m.id,
        "funding": fp is not None,
        "params": None if fp is None else {
            "interval_ms": str(fp.interval_ms), "interest_rate_8h": _rate(fp.interest_8h),
            "premium_clamp_8h": _rate(fp.clamp_8h),
            "max_rate_per_hour": _rate(fp.max_rate_per_hour)},
        "current": None if fp is None else _current(F.read_accumulator(view, m.id), fp),
        "history": [{"time_ms": str(s.time_ms), "rate": _rate(s.rate),
                     "rate_8h": _rate(s.rate_8h), "premium": _rate(s.premium),
                     "oracle_price": format_amount(s.oracle_px, qdec),
                     "payments": s.payments, "insurance": format_amount(s.insurance, qdec)}
                    for s in reversed(hist)],
    }


FUNDING_METHODS = {"funding_history": funding_history}
