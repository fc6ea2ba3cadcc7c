"""Lending rules: the kinked interest-rate curve, utilisation and index accrual (pure integers).

What this module owns
---------------------
The arithmetic of one asset's lending pool, with no state access (state.lending_pools keeps
the records and calls these):

* utilisation U = borrowed / supplied, in UTIL_SCALE (10^12 = 100%), floored; 0 when
  nothing is supplied, UTIL_SCALE when something is borrowed and nothing supplied.
* borrow rate (annual, RATE_SCALE = 10^12 = 100% a year), rounded up (for the protocol):
      U <= U_opt: base + slope1 * U / U_opt
      U >  U_opt: base + slope1 + slope2 * (U - U_opt) / (1 - U_opt)
* supply rate = borrow rate * U * (1 - reserve factor), floored (what suppliers are quoted;
  what they receive is derived from the interest actually paid, below).
* accrual over dt ms of block time (once per block per asset, never per account):
      borrow index   Ib' = Ib + ceil(Ib * rate * dt / (RATE_SCALE * YEAR_MS))
      interest       = ceil(Sb * Ib' / INDEX_SCALE) - ceil(Sb * Ib / INDEX_SCALE)
                       (Sb: the pool's scaled borrowed total; what borrowers now owe more)
      suppliers' share = floor(interest * (PPM - reserve_ppm) / PPM)
      supply index   Is' = Is + floor(share * INDEX_SCALE / Ss)   (Ss: scaled supplied)
      reserve        = interest - share            (to the insurance fund)
  so interest paid >= interest earned + reserve, the difference being the floors the
  protocol keeps. Simple interest within one step: one block spanning a year at a fixed
  utilisation pays exactly the curve's APR.
* real amounts from scaled ones (against the account): a supplied balance is
  floor(s * Is / INDEX_SCALE), a borrowed one ceil(s * Ib / INDEX_SCALE); scaled amounts
  from real ones likewise: floor(r * INDEX_SCALE / Is) supplied, ceil(r * INDEX_SCALE / Ib)
  borrowed.

Parameters are ppm fractions of 100% a year (base 50_000 = 5% APR).

Initial and maintenance weights (Mango v4's init / maint asset and liability weights, Aave's
LTV and liquidation threshold): a pool may set a maintenance collateral weight (the asset's
weight for liquidation, between its collateral weight, which serves the borrow limit and
initial margin, and 1) and a maintenance borrow weight (1 .. its borrow weight): a borrow
counts heavier for opening than for liquidation. 0 (the default, not stored) means "the same
as the initial weight", so a chain that sets neither behaves and stores exactly as before.
"""

from typing import NamedTuple

PPM = 1_000_000
INDEX_SCALE = 10**12          # an index of INDEX_SCALE is 1.0
RATE_SCALE = 10**12           # annual rates: RATE_SCALE is 100% a year
UTIL_SCALE = 10**12           # utilisation: UTIL_SCALE is 100%
YEAR_MS = 365 * 24 * 3_600_000
_PPM_TO_RATE = RATE_SCALE // PPM
_PPM_TO_UTIL = UTIL_SCALE // PPM


class PoolParams(NamedTuple):
    """One asset's lending parameters (state: params/lending/<symbol>, in this field order)."""
    base_ppm: int               # borrow APR at U = 0
    slope1_ppm: int             # added at U = U_opt
    slope2_ppm: int             # added from U_opt to U = 100%
    optimal_ppm: int            # U_opt (the kink), 1..999_999
    reserve_ppm: int            # share of interest to the insurance fund
    borrow_weight_ppm: int      # a borrowed balance counts this much in margin (>= PPM)
    supply_cap: int             # quantums supplied at most (deposits beyond it are refused)
    borrow_cap: int             # quantums borrowed at most (withdrawals beyond it refused)
    withdraw_ceiling_ppm: int   # a withdrawal may not leave utilisation above this
    # liquidation weights (0: the initial weight; stored only when one is set: `stored`)
    maint_collateral_weight_ppm: int = 0   # collateral weight .. PPM
    maint_borrow_weight_ppm: int = 0       # PPM .. borrow weight


FIELDS = PoolParams._fields
_BASE_FIELDS = 9   # the record's length when no maintenance weight is set


def stored(p: PoolParams) -> list:
    """The record of `p`: without the maintenance weights when neither is set (the bytes of
    a chain that does not use them stay those of before they existed)."""
    full = list(p)
    return full if any(full[_BASE_FIELDS:]) else full[:_BASE_FIELDS]


def maint_borrow_weight(p: PoolParams) -> int:
    """The borrow weight liquidation uses (ppm)."""
    return p.maint_borrow_weight_ppm or p.borrow_weight_ppm


def maint_collateral_weight(p: PoolParams | None, weight_ppm: int) -> int:
    """The collateral weight liquidation uses (ppm) for an asset of collateral weight
    `weight_ppm` whose pool has parameters `p` (None: no pool)."""
    return (p.maint_collateral_weight_ppm if p is not None else 0) or weight_ppm


def check_maint_collateral_weight(p: PoolParams, weight_ppm: int | None) -> None:
    """ValueError unless the maintenance collateral weight is unset or lies between the
    asset's collateral weight `weight_ppm` and 1 (None: the quote asset, whose weight is
    always 1: it may set none)."""
    m = p.maint_collateral_weight_ppm
    if not m:
        return
    if weight_ppm is None:
        raise ValueError("the quote asset's collateral weight is always 1: it takes no "
                         "maintenance collateral weight")
    if not weight_ppm <= m <= PPM:
        raise ValueError(f"maintenance collateral weight {m} ppm must lie between the "
                         f"collateral weight {weight_ppm} ppm and {PPM} ppm (0: the same)")


def check_params(p: PoolParams) -> None:
    """ValueError naming the first parameter out of range."""
    if not all(type(v) is int for v in p):
        raise ValueError("lending parameters must be integers")
    if p.base_ppm < 0 or p.slope1_ppm < 0 or p.slope2_ppm < 0:
        raise ValueError("base, slope1 and slope2 must be >= 0 ppm")
    if p.base_ppm + p.slope1_ppm + p.slope2_ppm > 100 * PPM:
        raise ValueError("the borrow rate at 100% utilisation may not exceed 10,000% a year")
    if not 0 < p.optimal_ppm < PPM:
        raise ValueError(f"optimal utilisation must be 1..{PPM - 1} ppm")
    if not 0 <= p.reserve_ppm <= PPM:
        raise ValueError(f"reserve factor must be 0..{PPM} ppm")
    if not PPM <= p.borrow_weight_ppm <= 10 * PPM:
        raise ValueError(f"borrow weight must be {PPM}..{10 * PPM} ppm")
    if p.supply_cap < 0 or p.borrow_cap < 0:
        raise ValueError("caps must be >= 0 quantums")
    if not 0 < p.withdraw_ceiling_ppm <= PPM:
        raise ValueError(f"withdrawal utilisation ceiling must be 1..{PPM} ppm")
    mb = p.maint_borrow_weight_ppm
    if mb and not PPM <= mb <= p.borrow_weight_ppm:
        raise ValueError(f"maintenance borrow weight {mb} ppm must lie between {PPM} ppm and "
                         f"the borrow weight {p.borrow_weight_ppm} ppm (0: the same)")
    if not 0 <= p.maint_collateral_weight_ppm <= PPM:
        raise ValueError(f"maintenance collateral weight must be 0..{PPM} ppm")


def utilisation(supplied: int, borrowed: int) -> int:
    """U in UTIL_SCALE, floored (capped at 100%)."""
    if borrowed <= 0:
        return 0
    if supplied <= borrowed:
        return UTIL_SCALE
    return borrowed * UTIL_SCALE // supplied


def borrow_rate(p: PoolParams, util: int) -> int:
    """Annual borrow rate in RATE_SCALE at utilisation `util` (UTIL_SCALE), rounded up."""
    opt = p.optimal_ppm * _PPM_TO_UTIL
    base = p.base_ppm * _PPM_TO_RATE
    if util <= opt:  # (RATE_SCALE == UTIL_SCALE: slope1_ppm * U / U_opt_ppm is in RATE_SCALE)
        return base + -(-p.slope1_ppm * util // p.optimal_ppm)
    above = -(-p.slope2_ppm * (util - opt) // (PPM - p.optimal_ppm))
    return base + p.slope1_ppm * _PPM_TO_RATE + above


def supply_rate(p: PoolParams, util: int) -> int:
    """Annual supply rate in RATE_SCALE (borrow rate x U x (1 - reserve)), floored."""
    return borrow_rate(p, util) * util * (PPM - p.reserve_ppm) // (UTIL_SCALE * PPM)


def supplied_real(scaled: int, index: int) -> int:
    """Real quantums of a supplied scaled amount, floored."""
    return scaled * index // INDEX_SCALE


def borrowed_real(scaled: int, index: int) -> int:
    """Real quantums of a borrowed scaled amount (both >= 0), rounded up."""
    return -(-scaled * index // INDEX_SCALE)


def to_scaled_supplied(real: int, index: int) -> int:
    return real * INDEX_SCALE // index


def to_scaled_borrowed(real: int, index: int) -> int:
    return -(-real * INDEX_SCALE // index)


class Accrual(NamedTuple):
    supply_index: int
    borrow_index: int
    interest: int       # real quantums borrowers owe more
    earned: int         # the suppliers' share (an upper bound of what they receive)
    reserve: int        # to the insurance fund


def accrue(p: PoolParams, scaled_supplied: int, scaled_borrowed: int, supply_index: int,
           borrow_index: int, dt_ms: int) -> Accrual:
    """The indices after `dt_ms` of block time at the current utilisation (module docstring)."""
    if dt_ms <= 0 or scaled_borrowed == 0:
        return Accrual(supply_index, borrow_index, 0, 0, 0)
    util = utilisation(supplied_real(scaled_supplied, supply_index),
                       borrowed_real(scaled_borrowed, borrow_index))
    rate = borrow_rate(p, util)
    new_bi = borrow_index + -(-borrow_index * rate * dt_ms // (RATE_SCALE * YEAR_MS))
    interest = borrowed_real(scaled_borrowed, new_bi) - borrowed_real(scaled_borrowed,
                                                                      borrow_index)
    share = interest * (PPM - p.reserve_ppm) // PPM
    new_si = supply_index
    if scaled_supplied:
        new_si += share * INDEX_SCALE // scaled_supplied
    else:
        share = 0
    return Accrual(new_si, new_bi, interest, share, interest - share)
