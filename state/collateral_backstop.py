"""The insurance fund's backstop of the collateral phase: collateral the spot book cannot absorb.

What this module owns
---------------------
`take_over`, called by state.liquidation (`_Job.spot_step`) when a *sell* step of the
collateral phase (state.collateral_liquidation) filled fewer lots than it asked for within its
limit price: the insurance fund (state.insurance) buys the lots the book left, at that limit
price L ticks (the sale's bankruptcy price, never below oracle x the asset's maintenance
collateral weight: a sale at L never lowers the account's equity at the maintenance weights),
as dYdX v4's and Hyperliquid's liquidator vaults take what the book cannot:
  * lots = the lots left, at most what the fund's quote balance pays for (lots x L x q quote
    quantums each, whole lots), and only if the fund's loss at the oracle, max(0, paid - the
    lots' value at the oracle rounded down) (L is at most the oracle but for a tick's
    rounding), fits in what `max_fund_loss_per_block` leaves for the account this block;
  * the account's base balance falls by lots x lot size and its quote balance grows by the
    price paid (repaying its quote borrow); the fund's quote balance falls by it and its base
    balance grows: the fund then holds a non-quote asset, as a raw balance (state.lending_pools:
    it neither earns nor is lent; state.bad_debt pays it out against a later deficit of that
    asset);
  * no trading fee, no liquidation fee; the lots count in the per-block notional cap like a
    fill; one `collateral_backstop` event.
A buy step (a borrow bought back) has no backstop: the account waits for the book.
"""

from state import ledger
from state.amounts import format_amount
from state.event_text import price_text, quote_text, size_text
from state.events import Event
from state.insurance import INSURANCE_FUND, fund_balance
from state.markets import Market


def take_over(scope, addr: bytes, m: Market, lots_left: int, limit_ticks: int, oracle_px: int,
              loss_room_quantums: int) -> tuple[int, int]:
    """The fund buys up to `lots_left` lots of `m`'s base from `addr` at `limit_ticks` (see the
    module docstring): (lots taken, the fund's loss at the oracle in quote quantums)."""
    view, quote = scope.view, scope.quote
    scope.ledger.flush()
    per_lot = limit_ticks * m.q
    lots = min(lots_left, max(fund_balance(view, quote), 0) // per_lot,
               max(ledger.balance(view, addr, m.base), 0) // m.lot_size)
    if lots <= 0:
        return 0, 0
    paid = lots * per_lot
    loss = max(paid - lots * m.lot_size * oracle_px // m.base_scale, 0)
    if loss > loss_room_quantums:
        return 0, 0
    size = lots * m.lot_size
    scope.ledger.credit(addr, m.base, -size)
    scope.ledger.credit(INSURANCE_FUND, m.base, size)
    scope.ledger.credit(INSURANCE_FUND, quote, -paid)
    scope.ledger.credit(addr, quote, paid)
    scope.ledger.flush()
    scope.events.append(Event("collateral_backstop", (
        ("account", addr.hex()), ("market", m.symbol), ("asset", m.base),
        ("size", size_text(m, lots)), ("price", price_text(m, limit_ticks)),
        ("oracle", quote_text(m, oracle_px)), ("paid", quote_text(m, paid)),
        ("fund_loss", quote_text(m, loss)),
        ("balance_left", format_amount(ledger.balance(view, addr, m.base), m.base_decimals)),
        ("quote_balance", quote_text(m, ledger.balance(view, addr, quote))),
        ("fund_balance", quote_text(m, fund_balance(view, quote))),
        ("fund_asset_balance", format_amount(ledger.balance(view, INSURANCE_FUND, m.base),
                                             m.base_decimals)))))
    return lots, loss
