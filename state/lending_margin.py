"""Multi-asset collateral value of an account on a chain with lending pools (read-only).

What this module owns
---------------------
The collateral part of cross-margin equity when any asset has a pool (state.margin calls
`collateral_value` then; without pools its own rule is unchanged):

    collateral = sum over assets of  balance x oracle price x weight
                 weight = collateral weight (positive balance; the quote asset: 1)
                          borrow weight (negative balance; the asset's pool, else 1)

A positive balance of an asset that is neither the quote nor collateral counts 0; a negative
balance always counts.

Two sets of weights (state.lending: a pool's maintenance weights): the initial ones (the
collateral weight, the borrow weight) for the borrow limit and every initial-margin check, the
maintenance ones (`maint=True`: the pool's maintenance collateral and borrow weights, each
defaulting to the initial one) for liquidation and health. `has_maint_weights` says whether
any pool sets one (else both sets are the same and callers may skip the second sum). Rounding is against the account: values of what it holds floor, what
it owes rounds up. Balances are real amounts (state.ledger.balance), interest included.
"""

from state import constants as C, lending as L, ledger, lending_pools as LP, params
from state.kv import KVView
from state.markets import collateral
from state.oracle import price


def has_maint_weights(view: KVView) -> bool:
    """Some pool sets a maintenance weight (collateral or borrow) of its own."""
    return any(p.maint_collateral_weight_ppm or p.maint_borrow_weight_ppm
               for p in LP.pool_params(view).values())


def collateral_weights(view: KVView, maint: bool = False) -> dict[str, int]:
    """symbol -> collateral weight (ppm) of each non-quote collateral asset: the initial one,
    or the maintenance one (`maint`)."""
    weights = dict(collateral(view))
    if maint:
        pools = LP.pool_params(view)
        weights = {a: L.maint_collateral_weight(pools.get(a), w) for a, w in weights.items()}
    return weights


def borrow_weight(view: KVView, asset: str, maint: bool = False) -> int:
    """The weight (ppm) a borrow of `asset` counts at: its pool's (maintenance) borrow weight,
    else 1."""
    p = LP.pool_params(view).get(asset)
    if p is None:
        return C.PPM
    return L.maint_borrow_weight(p) if maint else p.borrow_weight_ppm


def asset_value(view: KVView, asset: str, bal: int, quote: str, weights: dict,
                maint: bool = False) -> int:
    """The weighted value of `bal` quantums of `asset` in quote quantums (`weights`: from
    `collateral_weights` with the same `maint`)."""
    if bal == 0:
        return 0
    if bal < 0:
        w = borrow_weight(view, asset, maint)
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


def collateral_value(view: KVView, addr: bytes, quote: str, maint: bool = False) -> int:
    weights = collateral_weights(view, maint)
    assets = sorted(dict.fromkeys([quote, *weights, *LP.pool_params(view)]))
    return sum(asset_value(view, a, ledger.balance(view, addr, a), quote, weights, maint)
               for a in assets)


def holdings_value(view: KVView, addr: bytes, quote: str, maint: bool = False) -> int:
    """The weighted value of the account's positive pooled balances: its borrow limit at the
    initial weights, its liquidation threshold at the maintenance ones (`maint`)."""
    weights = collateral_weights(view, maint)
    total = 0
    for a in sorted(LP.pool_params(view)):
        bal = ledger.balance(view, addr, a)
        if bal > 0:
            total += asset_value(view, a, bal, quote, weights, maint)
    return total


def borrowed_value(view: KVView, addr: bytes, quote: str, maint: bool = False) -> int:
    """The weighted value of the account's borrows (a positive number of quote quantums)."""
    pools = LP.pool_params(view)
    if not pools:
        return 0
    weights = collateral_weights(view, maint)
    total = 0
    for a in sorted(pools):
        bal = ledger.balance(view, addr, a)
        if bal < 0:
            total -= asset_value(view, a, bal, quote, weights, maint)
    return total


def moving_value(view: KVView, addr: bytes, quote: str,
                 maint: bool = False) -> tuple[int, int]:
    """(the weighted value of every balance that prices and interest move — each non-quote
    balance and a quote borrow — in absolute value, the weighted value of one quantum of each
    borrowed asset), in quote quantums: what state.risk_index bands a borrower by (at the
    weights of the equity it bands: `maint` for liquidation)."""
    weights = collateral_weights(view, maint)
    gross = unit = 0
    for a in sorted(dict.fromkeys([quote, *weights, *LP.pool_params(view)])):
        bal = ledger.balance(view, addr, a)
        if bal == 0 or (a == quote and bal > 0):
            continue
        gross += abs(asset_value(view, a, bal, quote, weights, maint))
        if bal < 0:
            unit -= asset_value(view, a, -1, quote, weights, maint)
    return gross, unit
