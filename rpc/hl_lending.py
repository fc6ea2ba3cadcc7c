"""Lending and liquidations in Hyperliquid's shapes: the `/info` types
`userNonFundingLedgerUpdates`, `borrowLendUserState`, `borrowLendReserveState` and
`allBorrowLendReserveStates`, and the ledger rows and `userEvents` liquidation messages that
rpc/hl_ws.py publishes. Shapes and what differs: docs/HYPERLIQUID.md.

Sources, so the façade keeps nothing of its own:
* the ledger rows come from the chain's liquidation log (state.liquidation's `liq/log/`, the
  last MAX_LIQUIDATION_LOG events, read as the native `liquidations` method reads it): a perp
  `liquidation` and a `collateral_liquidation` step are Hyperliquid's `liquidation` delta;
  `bad_debt_covered` and `bad_debt_socialised` have no Hyperliquid equivalent and are
  perpchain delta types `badDebtCovered` / `badDebtSocialised`;
* interest: per account through `borrowLendUserState` (value - basis: the native
  `lending_account`'s balance and credited flow), per pool through the reserve states (the
  native `lending_pools` answer). Interest accrues through indices, with no per-account
  event, so there are no interest rows in the ledger.
"""

from decimal import Decimal

from rpc import hl_format as H
from rpc.hl_format import Universe, bad
from rpc.lending_methods import INDEX_DECIMALS, account_lending, pool_json
from state import lending_pools as LP, ledger, oracle, params
from state.amounts import format_amount
from state.codec import load
from state.liquidation import P_LOG

MAX_LEDGER_ROWS = 2000
LIQUIDATOR = "0x" + "00" * 20   # no single liquidator: liquidations trade in the books


def _product(a: str, b: str) -> str:
    """The exact product of two decimal strings, as Hyperliquid prints a number."""
    text = format(Decimal(a) * Decimal(b), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return H.num(text)


def _szi(a: dict) -> str:
    """What the step liquidated, signed as the position or balance was: a sale of a long
    (or of collateral) is positive, a buy of a short (or of a borrow) negative."""
    return H.num(("" if a["side"] == "sell" else "-") + a["filled"])


def liquidation_delta(uni: Universe, typ: str, a: dict) -> dict | None:
    """The `liquidation` delta of a native liquidation event (None: it filled nothing)."""
    if a.get("filled", "0") == "0":
        return None
    if typ == "liquidation":
        coin, px = uni.coin_of_symbol(a["market"]) or a["market"], a["mark"]
        leverage = "Isolated" if a.get("margin_mode") == "isolated" else "Cross"
    else:   # a collateral step: the spot token sold (or bought back) at the oracle
        coin, px, leverage = a["asset"], a["oracle"], "Cross"
    return {"type": "liquidation", "liquidatedNtlPos": _product(a["filled"], px),
            "accountValue": H.num(a["equity"]), "leverageType": leverage,
            "liquidatedPositions": [{"coin": coin, "szi": _szi(a)}]}


def ledger_delta(uni: Universe, typ: str, a: dict) -> dict | None:
    """The userNonFundingLedgerUpdates delta of a logged native event (None: not shown)."""
    if typ in ("liquidation", "collateral_liquidation"):
        return liquidation_delta(uni, typ, a)
    if typ == "bad_debt_covered":
        return {"type": "badDebtCovered", "token": a["asset"], "amount": H.num(a["amount"]),
                "fundBalance": H.num(a["fund_balance"])}
    if typ == "bad_debt_socialised":
        return {"type": "badDebtSocialised", "token": a["asset"], "amount": H.num(a["amount"]),
                "supplyIndex": H.num(format_amount(int(a["supply_index"]), INDEX_DECIMALS))}
    return None


def ledger_row(uni: Universe, time_ms: int, typ: str, a: dict) -> dict | None:
    delta = ledger_delta(uni, typ, a)
    return None if delta is None else {"time": time_ms, "hash": H.ZERO_HASH, "delta": delta}


def ledger_rows(app, account: bytes) -> list[dict]:
    """The account's rows in the liquidation log (as the native `liquidations` reads it),
    oldest first."""
    view = app.store.state
    uni = Universe(view)
    me, rows = account.hex(), []
    for _, raw in view.iterate(P_LOG):
        _, time_ms, (typ, attrs) = load(raw)
        a = dict(attrs)
        if a.get("account") == me:
            row = ledger_row(uni, time_ms, typ, a)
            if row is not None:
                rows.append(row)
    return rows


async def user_non_funding_ledger_updates(app, body: dict) -> list:
    account = H.parse_user(H.field(body, "user"))
    start, end = H.ms_field(body, "startTime", True), H.ms_field(body, "endTime", False)
    rows = [r for r in ledger_rows(app, account)
            if r["time"] >= start and (end is None or r["time"] <= end)]
    return rows[:MAX_LEDGER_ROWS]


def user_event_liquidation(account: bytes, a: dict) -> dict:
    """The `userEvents` message data of a liquidation step of `account`."""
    px = a["mark"] if "mark" in a else a["oracle"]
    return {"liquidation": {"lid": int(a["order_id"]), "liquidator": LIQUIDATOR,
                            "liquidated_user": H.user_text(account),
                            "liquidated_ntl_pos": _product(a["filled"], px),
                            "liquidated_account_value": H.num(a["equity"])}}


# -- borrow / lend -------------------------------------------------------------------------

def _pools(view) -> dict:
    pools = LP.pool_params(view)
    if not pools:
        raise bad("unsupported", "this chain has no lending pools")
    return pools


async def borrow_lend_user_state(app, body: dict) -> dict:
    """Per pooled token with a balance: supply or borrow {basis: what was credited, value:
    the balance now}, so value - basis is the interest earned or paid."""
    account = H.parse_user(H.field(body, "user"))
    view = app.store.state
    uni = Universe(view)
    _pools(view)
    index = {t: i for i, t in enumerate(H.token_names(uni))}
    native = account_lending(view, account)
    out = []
    for row in native["assets"]:
        sym = row["asset"]
        bal, flow = ledger.balance(view, account, sym), LP.flow(view, account, sym)
        if not bal and not flow:
            continue
        dec = params.asset_decimals(view, sym)
        zero = {"basis": "0.0", "value": "0.0"}
        side = {"basis": H.amt(abs(flow), dec), "value": H.amt(abs(bal), dec)}
        out.append([index[sym], {"borrow": side if bal < 0 else zero,
                                 "supply": side if bal >= 0 else zero}])
    out.sort(key=lambda row: row[0])
    borrowed = Decimal(native["borrowed_value"])
    factor = None if not borrowed else \
        H.dec_text(Decimal(native["borrow_limit"]) / borrowed)
    return {"tokenToState": out, "health": "healthy" if native["healthy"] else "liquidatable",
            "healthFactor": factor}


def reserve_state(view, uni: Universe, sym: str) -> dict:
    p = pool_json(view, sym)
    px = oracle.price(view, sym) if sym != uni.quote else None
    px_text = H.amt(px[0], uni.qdec) if px else "1.0"
    return {"borrowYearlyRate": H.num(p["borrow_apr"]),
            "supplyYearlyRate": H.num(p["supply_apr"]), "balance": H.num(p["available"]),
            "utilization": H.num(p["utilisation"]), "oraclePx": px_text,
            "ltv": H.num(p["params"]["collateral_weight"]),
            "totalSupplied": H.num(p["supplied"]), "totalBorrowed": H.num(p["borrowed"])}


async def all_borrow_lend_reserve_states(app, body: dict) -> list:
    view = app.store.state
    uni = Universe(view)
    pools = _pools(view)
    return [[i, reserve_state(view, uni, t)] for i, t in enumerate(H.token_names(uni))
            if t in pools]


async def borrow_lend_reserve_state(app, body: dict) -> dict:
    view = app.store.state
    uni = Universe(view)
    pools, tokens = _pools(view), H.token_names(uni)
    token = H.field(body, "token")
    if type(token) is not int or not 0 <= token < len(tokens) or tokens[token] not in pools:
        pooled = ", ".join(f"{i} ({t})" for i, t in enumerate(tokens) if t in pools)
        raise bad("invalid_field", f"token must be the spotMeta index of a token with a "
                  f"lending pool: {pooled}")
    return reserve_state(view, uni, tokens[token])


INFO_TYPES = {"userNonFundingLedgerUpdates": user_non_funding_ledger_updates,
              "borrowLendUserState": borrow_lend_user_state,
              "borrowLendReserveState": borrow_lend_reserve_state,
              "allBorrowLendReserveStates": all_borrow_lend_reserve_states}
