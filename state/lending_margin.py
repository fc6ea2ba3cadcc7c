"""Multi-asset collateral value of an account on a chain with lending pools (read-only).

What this module owns
---------------------
The collateral part of cross-margin equity when any asset has a pool (state.margin calls
`collateral_value` then; without pools its own rule is unchanged):

    collateral = sum over assets of  balance x oracle price x weight
                 weight = collateral weight (positive balance; the quote asset: 1)
                          borrow weight (negative balance; the asset's pool, else 1)

A positive balance of an asset that is neither the quote nor collateral counts 0; a negative
balance always counts. Rounding is against the account: values of what it holds floor, what
it owes rounds up. Balances are real amounts (state.ledger.balance), interest included.
"""

from state import constants as C, ledger, lending_pools as LP, params
from state.kv import KVView
from state.markets import collateral
from state.oracle import price


def asset_value(view: KVView, asset: str, bal: int, quote: str, weights: dict) -> int:
    """The weighted value of `bal` quantums of `asset` in quote quantums."""
    if bal == 0:
        return 0
    pools = LP.pool_params(view)
    if bal < 0:
        w = pools[asset].borrow_weight_ppm if asset in pools else C.PPM
    else:
        w = C.PPM if asset == quote else weights.get(asset, 0)
    if asset == quote:
        v = bal * w
    else:
        p = price(view, asset)
        if p is None:
            return 0 if bal > 0 else bal  # (unreachable: pooled assets are oracle assets)
        v = bal * p[0] * w // 10**params.asset_decimals(view, asset)
    return v // C.PPM if v >= 0 else -(-v // C.PPM)


def collateral_value(view: KVView, addr: bytes, quote: str) -> int:
    weights = dict(collateral(view))
    assets = sorted(dict.fromkeys([quote, *weights, *LP.pool_params(view)]))
    return sum(asset_value(view, a, ledger.balance(view, addr, a), quote, weights)
               for a in assets)


def borrowed_value(view: KVView, addr: bytes, quote: str) -> int:
    """The weighted value of the account's borrows (a positive number of quote quantums)."""
    pools = LP.pool_params(view)
    if not pools:
        return 0
    weights = dict(collateral(view))
    total = 0
    for a in sorted(pools):
        bal = ledger.balance(view, addr, a)
        if bal < 0:
            total -= asset_value(view, a, bal, quote, weights)
    return total


def moving_value(view: KVView, addr: bytes, quote: str) -> tuple[int, int]:
    """(the weighted value of every balance that prices and interest move — each non-quote
    balance and a quote borrow — in absolute value, the weighted value of one quantum of each
    borrowed asset), in quote quantums: what state.risk_index bands a borrower by."""
    weights = dict(collateral(view))
    gross = unit = 0
    for a in sorted(dict.fromkeys([quote, *weights, *LP.pool_params(view)])):
        bal = ledger.balance(view, addr, a)
        if bal == 0 or (a == quote and bal > 0):
            continue
        gross += abs(asset_value(view, a, bal, quote, weights))
        if bal < 0:
            unit -= asset_value(view, a, -1, quote, weights)
    return gross, unit
