"""JSON-RPC methods of the risk engine: recent liquidations, the insurance fund, ADL queues.

All read the latest committed state (`app.store.state`), answering as rpc/trading_methods.py
does (decimal strings for amounts, lower-case hex addresses, decimal-string heights):
* `liquidations(address?, limit?)`: the last liquidation, insurance_takeover and adl events
  (with lending also collateral_liquidation, collateral_backstop, bad_debt_covered,
  bad_debt_socialised: the
  types state.liquidation.LOGGED), newest first, from the log state.liquidation keeps (the
  last MAX_LIQUIDATION_LOG);
* `insurance_fund()`: the fund's address, quote balance, other assets it holds (collateral
  taken over by state.collateral_backstop) and positions;
* `adl_queue(address)`: per perp position of the account, its place in its side's
  auto-deleveraging queue (state.adl): rank 1 is deleveraged first; `percentile` =
  100 * (queue size - rank + 1) // queue size, so 100 means the front of the queue.
"""

from node.keys import parse_address
from rpc import params as rpc_params
from rpc.errors import RPCCode, RPCError
from state import constants as C, ledger, params
from state.adl import rank_side
from state.amounts import format_amount
from state.codec import load
from state.insurance import INSURANCE_FUND, fund_balance
from state.liquidation import P_LOG
from state.machine import last_block
from state.markets import get as get_market
from state.positions import load_account
from state.risk_index import index_for_reads

DEFAULT_LIMIT = 100


def _view(app):
    return app.store.state


def _get(p: dict, name: str, pos: int):
    v = p.get(name, p.get(pos))
    if isinstance(v, str) and len(v) >= 2 and v[0] == v[-1] == '"':
        v = v[1:-1]
    return v


def _address(p: dict, required: bool) -> bytes | None:
    v = _get(p, "address", 0)
    if v is None:
        if required:
            raise RPCError(RPCCode.INVALID_PARAMS, "missing parameter 'address'")
        return None
    try:
        return parse_address(v)
    except (ValueError, TypeError, AttributeError) as e:
        raise RPCError(RPCCode.INVALID_PARAMS, f"parameter 'address': {e}") from None


async def liquidations(app, p: dict) -> dict:
    addr = _address(p, required=False)
    limit = rpc_params.limit_value(_get(p, "limit", 1), C.MAX_LIQUIDATION_LOG, DEFAULT_LIMIT)
    view = _view(app)
    who = None if addr is None else addr.hex()
    out = []
    for _, raw in reversed(list(view.iterate(P_LOG))):
        height, time_ms, (typ, attrs) = load(raw)
        a = dict(attrs)
        if who is not None and who not in (a.get("account"), a.get("counterparty")):
            continue
        out.append({"height": str(height), "time_ms": str(time_ms), "type": typ, **a})
        if len(out) == limit:
            break
    return {"height": str(last_block(view)[0]), "events": out}


async def insurance_fund(app, p: dict) -> dict:
    view = _view(app)
    quote = params.quote_asset(view)
    dec = params.asset_decimals(view, quote)
    acct = load_account(view, INSURANCE_FUND)
    positions = []
    for mid in sorted(acct.entries):
        e = acct.entries[mid]
        if e.size:
            m = get_market(view, mid)
            positions.append({"market": m.symbol, "market_id": m.id,
                              "size": format_amount(e.size * m.lot_size, m.base_decimals)})
    held = [{"asset": a, "balance": format_amount(b, params.asset_decimals(view, a))}
            for a, b in sorted(ledger.balances(view, INSURANCE_FUND).items()) if a != quote and b]
    return {"height": str(last_block(view)[0]), "address": INSURANCE_FUND.hex(),
            "asset": quote, "balance": format_amount(fund_balance(view, quote), dec),
            "assets": held, "positions": positions}


def adl_place(view, m, addr: bytes, long_side: bool, idx) -> dict:
    """The account's place in its side's ADL queue on market `m`: rank (1 = first
    deleveraged), queue size and percentile (100 = the front of the queue)."""
    queue = rank_side(view, m, idx.holders(m.id), long_side)
    rank = next(i for i, r in enumerate(queue, start=1) if r.addr == addr)
    return {"rank": rank, "queue_size": len(queue),
            "percentile": 100 * (len(queue) - rank + 1) // len(queue)}


async def adl_queue(app, p: dict) -> dict:
    addr = _address(p, required=True)
    view = _view(app)
    acct = load_account(view, addr)
    idx = None
    out = []
    for mid in sorted(acct.entries):
        e = acct.entries[mid]
        m = get_market(view, mid)
        if not e.size or not m.perp_like:
            continue
        idx = idx or index_for_reads(view)
        out.append({"market": m.symbol, "market_id": m.id,
                    "side": "long" if e.size > 0 else "short",
                    **adl_place(view, m, addr, e.size > 0, idx)})
    return {"height": str(last_block(view)[0]), "address": addr.hex(), "positions": out}


RISK_METHODS = {fn.__name__: fn for fn in (liquidations, insurance_fund, adl_queue)}
