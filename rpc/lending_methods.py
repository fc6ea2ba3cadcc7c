"""JSON-RPC methods of lending (state/lending*.py): `lending_pools`, `lending_account`,
`interest_history`, and the `lending` part of `account`.

They read the latest committed state (`app.store.state`). Rates and utilisation are decimal
fractions a year ("0.05" = 5% APR), indices decimal fractions ("1.0225"), amounts decimal
strings in the asset's units. Interest of a balance is its real amount less the sum of what was
credited to it (`lend/flow/`): positive = earned, negative = paid.
"""

from rpc import params as rpc_params
from state import lending as L, lending_accrual as LA, lending_margin as LM
from state import lending_pools as LP, ledger, params
from state.amounts import format_amount
from state.machine import last_block
from state.margin import maintenance_summary, summary
from state.positions import load_account

RATE_DECIMALS = 12    # L.RATE_SCALE = UTIL_SCALE = 10**12 (tests/unit/test_lending.py checks)
INDEX_DECIMALS = 12   # L.INDEX_SCALE = 10**12


def _frac(v: int) -> str:
    return format_amount(v, RATE_DECIMALS)


def pool_json(view, sym: str) -> dict:
    prm, p = LP.pool_params(view)[sym], LP.get_pool(view, sym)
    dec = params.asset_decimals(view, sym)
    u, br, sr = LA.rates(prm, p)
    amt = lambda q: format_amount(q, dec)  # noqa: E731
    return {"asset": sym, "supplied": amt(p.supplied), "borrowed": amt(p.borrowed),
            "available": amt(LP.available(p)), "utilisation": _frac(u),
            "borrow_apr": _frac(br), "supply_apr": _frac(sr),
            "supply_index": format_amount(p.supply_index, INDEX_DECIMALS),
            "borrow_index": format_amount(p.borrow_index, INDEX_DECIMALS),
            "last_accrual_ms": str(p.last_ms), "interest_total": amt(p.interest_total),
            "reserve_total": amt(p.reserve_total), "dust": amt(p.dust),
            "params": {"base": _frac(prm.base_ppm * 10**6), "slope1": _frac(prm.slope1_ppm * 10**6),
                       "slope2": _frac(prm.slope2_ppm * 10**6),
                       "optimal_utilisation": _frac(prm.optimal_ppm * 10**6),
                       "reserve_factor": _frac(prm.reserve_ppm * 10**6),
                       "collateral_weight": _frac(_weight(view, sym, False) * 10**6),
                       "maint_collateral_weight": _frac(_weight(view, sym, True) * 10**6),
                       "borrow_weight": _frac(prm.borrow_weight_ppm * 10**6),
                       "maint_borrow_weight": _frac(L.maint_borrow_weight(prm) * 10**6),
                       "supply_cap": amt(prm.supply_cap), "borrow_cap": amt(prm.borrow_cap),
                       "withdraw_ceiling": _frac(prm.withdraw_ceiling_ppm * 10**6)}}


def _weight(view, sym: str, maint: bool) -> int:
    """The asset's collateral weight (ppm; the quote: 1), initial or maintenance."""
    return LM.collateral_weights(view, maint).get(sym, 10**6)


async def lending_pools(app, p: dict) -> dict:
    view = app.store.state
    return {"height": str(last_block(view)[0]),
            "pools": [pool_json(view, s) for s in sorted(LP.pool_params(view))]}


def account_lending(view, addr: bytes) -> dict | None:
    """Per pooled asset: balance, interest, and the account's borrow limit (initial weights)
    and liquidation threshold and health (maintenance weights); None on a chain without
    pools."""
    pools = LP.pool_params(view)
    if not pools:
        return None
    quote = params.quote_asset(view)
    qdec = params.asset_decimals(view, quote)
    rows = []
    for sym in sorted(pools):
        dec = params.asset_decimals(view, sym)
        bal = ledger.balance(view, addr, sym)
        rows.append({"asset": sym, "balance": format_amount(bal, dec),
                     "interest": format_amount(bal - LP.flow(view, addr, sym), dec),
                     "lent": bal > 0 and LP.mode(view, addr) == LP.LENDING})
    acct = load_account(view, addr)
    s, ms = summary(view, acct, quote), maintenance_summary(view, acct, quote)
    amt = lambda q: format_amount(q, qdec)  # noqa: E731
    return {"lending_enabled": LP.mode(view, addr) == LP.LENDING, "assets": rows,
            "borrow_limit": amt(LM.holdings_value(view, addr, quote)),
            "borrowed_value": amt(LM.borrowed_value(view, addr, quote)),
            "equity": amt(s.equity),
            "initial_margin": amt(s.initial_margin),
            "free_collateral": amt(s.free_collateral),
            "liquidation_threshold": amt(LM.holdings_value(view, addr, quote, maint=True)),
            "maint_borrowed_value": amt(LM.borrowed_value(view, addr, quote, maint=True)),
            "maint_equity": amt(ms.equity),
            "maintenance_margin": amt(ms.maintenance_margin),
            "healthy": ms.equity >= ms.maintenance_margin}


async def lending_account(app, p: dict) -> dict:
    view = app.store.state
    addr = rpc_params.address_bytes(rpc_params.param(p, "address", 0))
    return {"address": addr.hex(), "height": str(last_block(view)[0]),
            "lending": account_lending(view, addr)}


async def interest_history(app, p: dict) -> dict:
    """Params: `asset` (position 0), `limit` (1..HISTORY_LEN, default 100): hourly points."""
    view = app.store.state
    sym = rpc_params.unquote(rpc_params.param(p, "asset", 0))
    if type(sym) is not str or sym not in LP.pool_params(view):
        raise rpc_params.invalid(f"{sym!r} has no lending pool; pooled: "
                                 f"{', '.join(sorted(LP.pool_params(view))) or 'none'}")
    limit = rpc_params.limit_value(rpc_params.param(p, "limit", 1, required=False),
                                   LA.HISTORY_LEN, 100, " (hourly points kept)")
    hist = LA.history(view, sym)[-limit:]
    return {"asset": sym, "history": [
        {"time_ms": str(h.time_ms), "utilisation": _frac(h.utilisation),
         "borrow_apr": _frac(h.borrow_rate), "supply_apr": _frac(h.supply_rate),
         "supply_index": format_amount(h.supply_index, INDEX_DECIMALS),
         "borrow_index": format_amount(h.borrow_index, INDEX_DECIMALS)}
        for h in reversed(hist)]}


LENDING_METHODS = {"lending_pools": lending_pools, "lending_account": lending_account,
                   "interest_history": interest_history}
