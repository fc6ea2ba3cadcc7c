"""The liquidation parameters (genesis only): what state.liquidation reads.

Stored at `params/liquidation` when genesis sets them; without the record every perp market is
liquidated with `default_params` (quote amounts scaled by the quote asset's decimals). Written
only by genesis (`put_params` calls `params_changed`: state.derived rule 2).
"""

from dataclasses import astuple, dataclass

from state import constants as C, params
from state.codec import encode, load
from state.derived import derived_of, param_of
from state.kv import KVView, Overlay

K_LIQUIDATION = b"params/liquidation"


@dataclass(frozen=True, slots=True)
class LiquidationParams:
    # In-book closes (Hyperliquid): a position above this notional (quote quantums, at mark) is
    # closed step_ppm at a time, then the account waits cooldown_ms of block time.
    step_threshold_quantums: int
    step_ppm: int
    cooldown_ms: int
    # Paid by the liquidated account to the insurance fund, on the closed notional at mark,
    # never more than the equity left.
    fee_ppm: int
    # Below backstop_ppm of maintenance margin the fund takes the positions over.
    backstop_ppm: int
    # dYdX's per-block caps, per account: notional closed in the book, insurance-fund loss.
    max_notional_per_block_quantums: int
    max_fund_loss_per_block_quantums: int

    def to_stored(self) -> list:
        return list(astuple(self))


def default_params(quote_decimals: int) -> LiquidationParams:
    unit = 10**quote_decimals
    return LiquidationParams(step_threshold_quantums=100_000 * unit, step_ppm=200_000,
                             cooldown_ms=30_000, fee_ppm=5_000, backstop_ppm=666_667,
                             max_notional_per_block_quantums=1_000_000 * unit,
                             max_fund_loss_per_block_quantums=1_000_000 * unit)


def check_params(p: LiquidationParams) -> None:
    """ValueError naming what is wrong."""
    if not 0 < p.step_ppm <= C.PPM:
        raise ValueError(f"step_ppm {p.step_ppm} outside 1..{C.PPM}")
    if not 0 < p.backstop_ppm <= C.PPM:
        raise ValueError(f"backstop_ppm {p.backstop_ppm} outside 1..{C.PPM}")
    if not 0 <= p.fee_ppm <= C.PPM:
        raise ValueError(f"fee_ppm {p.fee_ppm} outside 0..{C.PPM}")
    if p.cooldown_ms < 0 or p.step_threshold_quantums < 0:
        raise ValueError("cooldown_ms and step_threshold must be non-negative")
    if p.max_notional_per_block_quantums <= 0 or p.max_fund_loss_per_block_quantums < 0:
        raise ValueError("max_notional_per_block must be positive, max_fund_loss_per_block "
                         "non-negative")


def put_params(view: Overlay, p: LiquidationParams) -> None:
    view.put(K_LIQUIDATION, encode(p.to_stored()))
    derived_of(view).params_changed()


def liquidation_params(view: KVView) -> LiquidationParams:
    return param_of(view, "liquidation", _decode)


def _decode(view: KVView) -> LiquidationParams:
    raw = view.get(K_LIQUIDATION)
    if raw is not None:
        return LiquidationParams(*load(raw))
    return default_params(params.asset_decimals(view, params.quote_asset(view)))
