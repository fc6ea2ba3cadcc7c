"""Trading fees: the rates of a fill and the amount of a fee.

A market sets a maker and a taker rate (ppm of notional; the maker's may be negative, a
rebate). An account's fee tier, chosen by its 30-day volume (maker + taker notional of the
FEE_VOLUME_DAYS whole days before today), lowers both rates (state.markets.FeeParams). A fee is
rounded up (against the payer), a rebate down (for the protocol); the fee account receives
the net of both sides.
"""

from state import constants as C
from state.markets import FeeParams, FeeTier, Market


def fee_amount(notional: int, ppm: int) -> int:
    """The fee on `notional` quantums at `ppm` (negative: a rebate, returned negative)."""
    if ppm >= 0:
        return -(-notional * ppm // C.PPM)
    return -(notional * -ppm // C.PPM)


def tier_for(fees: FeeParams, volume_30d: int) -> FeeTier:
    """The highest tier whose minimum volume the account reached."""
    t = fees.tiers[0]
    for tier in fees.tiers:
        if tier.min_volume <= volume_30d:
            t = tier
    return t


def taker_ppm(m: Market, tier: FeeTier) -> int:
    return m.taker_fee_ppm - tier.taker_reduction_ppm


def maker_ppm(m: Market, tier: FeeTier) -> int:
    return m.maker_fee_ppm - tier.maker_reduction_ppm
