"""The liquidation-price estimate of one perp position (shown by the `positions` query).

What this module owns
---------------------
The mark price P of the position's market at which its account reaches maintenance margin,
everything else (other positions' marks, balances) held fixed. With A = |size| * lot_size /
base_scale (quote quantums per price unit), E0 the account's equity without this position's
unrealised PnL, M0 the maintenance margin of its other positions, B the position's cost basis
(entry_tl * q, signed like the position), and the maintenance margin of this position
(n * mmr - deduction) / PPM at notional n = A * P in the tier that contains n:

    long:  E0 - B + A * P = M0 + (A * P * mmr - deduction) / PPM
           P = (PPM * (M0 + B - E0) - deduction) / (A * (PPM - mmr))
    short: E0 - B - A * P = M0 + (A * P * mmr - deduction) / PPM        (B < 0)
           P = (PPM * (E0 - B - M0) + deduction) / (A * (PPM + mmr))

This is Hyperliquid's `price - side * margin_available / size / (1 - side / maintenance
leverage)` with tiers. Equity minus maintenance margin is monotone in P (increasing for a long,
decreasing for a short) and continuous across tiers, so exactly one tier's root lies in that
tier's notional range; it is the answer. The root is rounded toward the mark's side (up for a
long, down for a short): the estimate is reached no later than the true boundary. None when
there is no such price: a long whose account stays above maintenance even at price 0.

It is an estimate: integer rounding inside the margin rules can move the real boundary by a few
quantums of equity, and other positions' marks move too. An isolated position uses its own
isolated equity as E0 and no other positions (M0 = 0).
"""

from state import constants as C
from state.markets import Market


def liquidation_price(m: Market, size_lots: int, entry_tl: int, other_equity: int,
                      other_mm: int) -> int | None:
    """The estimated liquidation mark price (price units) of a position of `size_lots`
    (signed) with cost basis `entry_tl` (tick-lots, signed), in an account whose equity
    without this position's unrealised PnL is `other_equity` and whose other positions need
    `other_mm` maintenance margin (quote quantums)."""
    if not size_lots:
        return None
    per_price = abs(size_lots) * m.lot_size      # A * base_scale
    basis = entry_tl * m.q
    tiers = m.tiers
    for i, t in enumerate(tiers):
        if size_lots > 0:
            num = (C.PPM * (other_mm + basis - other_equity) - t.deduction_scaled) * m.base_scale
            den = per_price * (C.PPM - t.mmr_ppm)
        else:
            num = (C.PPM * (other_equity - basis - other_mm) + t.deduction_scaled) * m.base_scale
            den = per_price * (C.PPM + t.mmr_ppm)
        if i == 0 and num <= 0:
            return None  # no positive root: a long never reaches it, a short is already there
        # the exact root's notional per_price * num / (den * base_scale), compared exactly
        upper = tiers[i + 1].lower_bound if i + 1 < len(tiers) else None
        if upper is None or per_price * num < upper * den * m.base_scale:
            return -(-num // den) if size_lots > 0 else num // den
    return None  # unreachable: the last tier has no upper bound
