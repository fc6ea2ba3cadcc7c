"""Governance of the lending pools: `gov_set_param [0, "L.<SYMBOL>.<field>", value, h]`.

What this module owns
---------------------
The check and the application of a change of one pool parameter or of a pooled non-quote
asset's collateral weight (params/collateral/<symbol>, 0..1e6 ppm). A parameter name is at
most 16 characters (state.tx), so the fields have short names (`FIELDS`): base, slope1,
slope2, kink (optimal utilisation), reserve, bweight (borrow weight), scap, bcap (supply and
borrow caps), wceil (withdrawal utilisation ceiling), cweight (collateral weight), mweight and
mbweight (the maintenance collateral and borrow weights, state.lending; 0: the same as the
initial one). Either weight of a pair is checked against the other: collateral weight <=
mweight <= 1, 1 <= mbweight <= borrow weight. state.governance schedules it like any parameter; it
applies at the start of its block, after that block's accrual (state.machine), so the interval
before it accrues at the old rates.
"""

from state import constants as C, lending as L, lending_pools as LP
from state.errors import Code, TxError
from state.kv import KVView, Overlay
from state.markets import collateral, put_collateral

PREFIX = "L."
COLLATERAL_WEIGHT = "cweight"
FIELDS = {"base": "base_ppm", "slope1": "slope1_ppm", "slope2": "slope2_ppm",
          "kink": "optimal_ppm", "reserve": "reserve_ppm", "bweight": "borrow_weight_ppm",
          "scap": "supply_cap", "bcap": "borrow_cap", "wceil": "withdraw_ceiling_ppm",
          "mweight": "maint_collateral_weight_ppm", "mbweight": "maint_borrow_weight_ppm"}


def is_lending_param(param: str) -> bool:
    return param.startswith(PREFIX)


def _bad(log: str) -> TxError:
    return TxError(Code.INVALID_GOVERNANCE, log)


def check(view: KVView, param: str, value: int) -> tuple[str, str, L.PoolParams | None]:
    """(symbol, field, the pool's new parameters or None for a collateral weight)."""
    parts = param.split(".")
    pools = LP.pool_params(view)
    if len(parts) != 3 or parts[1] not in pools:
        raise _bad(f"lending parameter {param!r}: expected L.<symbol>.<field> with a "
                   f"pooled symbol ({', '.join(sorted(pools)) or 'none'})")
    sym, field = parts[1], parts[2]
    if field == COLLATERAL_WEIGHT:
        if sym not in dict(collateral(view)):
            raise _bad(f"{sym} is the quote asset: its collateral weight is always 1")
        if not 0 <= value <= C.PPM:
            raise _bad(f"{param} = {value}: must be 0..{C.PPM} ppm")
        m = pools[sym].maint_collateral_weight_ppm
        if m and value > m:
            raise _bad(f"{param} = {value}: above the maintenance collateral weight {m} ppm "
                       f"(L.{sym}.mweight); raise that first")
        return sym, field, None
    if field not in FIELDS:
        raise _bad(f"lending field {field!r} unknown; changeable: "
                   f"{', '.join([*FIELDS, COLLATERAL_WEIGHT])}")
    new = pools[sym]._replace(**{FIELDS[field]: value})
    weight = dict(collateral(view)).get(sym)
    try:
        L.check_params(new)
        L.check_maint_collateral_weight(new, weight)
    except ValueError as e:
        raise _bad(f"{param} = {value}: {e}") from None
    return sym, field, new


def apply(view: Overlay, param: str, value: int) -> None:
    sym, _, new = check(view, param, value)
    if new is None:
        put_collateral(view, sym, value)
    else:
        LP.put_params(view, sym, new)
