"""The collateral phase of a liquidation, on a chain with lending pools: which spot balance the
next step trades, how much, at what limit price, and its event.

What this module owns
---------------------
A cross account being liquidated (state.liquidation, `_Job.spot_step` places the orders) that
holds no cross perp position any more and is still below maintenance margin (with borrows and
no position: equity < 0, equity counting borrows at their borrow weight: state.lending_margin)
trades its balances in the spot market of each asset (the lowest market id with that base),
one IOC order per step, in the order `next_action` gives:
  1. the quote balance is negative (a quote borrow): sell the first asset, by symbol, other than
     the quote, of which the account holds at least one lot and that has an oracle price;
  2. else (or with nothing left to sell) an asset other than the quote with a negative balance
     (a borrow): buy it back with quote (which may borrow quote: rule 1 then sells for it);
  3. neither: nothing is left to trade; once `collateral_gone` holds as well, state.bad_debt
     covers what is still negative.
Size (`step_lots`): a sell takes the lots whose value at the oracle price (a lot's value
rounded down) covers the quote borrow grossed up for the fees, debt x 10^6 / (10^6 -
liquidation fee_ppm - the market's taker fee), at most the balance's whole lots; a buy, the
borrow rounded up to a lot. Above `step_threshold` of notional (at the oracle, rounded up) only
step_ppm of it per step, then the account waits `cooldown_ms`; at most `max_notional_per_block`
per account per block, perp closes included (state.liquidation_params, as for perp closes).
Limit (`limit_ticks`): the trade's bankruptcy price, at which it would leave the account's
unweighted equity (`unweighted_equity`: every balance at its oracle price, no weights) at zero
(state.liquidation.bankruptcy_ticks, rounded in the account's favour), but a sell never below
the asset's collateral value (oracle x its maintenance collateral weight, rounded up to a
tick; at least one tick) and a buy never above its borrow value (oracle x the pool's
maintenance borrow weight, rounded down): a step never lowers the equity liquidation measures
(state.lending_margin, maintenance weights); when the unweighted equity is already <= 0
(bankrupt) those bounds alone. What the book leaves of a sell the insurance fund may take
over at that limit (state.collateral_backstop).
"""

from typing import NamedTuple

from state import constants as C, ledger, params
from state.lending_margin import borrow_weight, collateral_weights
from state.amounts import format_amount
from state.event_text import price_text, quote_text, size_text
from state.events import Event
from state.kv import KVView
from state.markets import SPOT, Market, collateral, list_markets
from state.oracle import price


class Action(NamedTuple):
    """The next collateral step: trade `market`'s base (balance `balance` quantums, oracle
    price `px`), buying it back (`is_buy`) or selling it."""
    market: Market
    is_buy: bool
    balance: int
    px: int


def spot_market(view: KVView, asset: str) -> Market | None:
    """The asset's spot market against the quote (the lowest id), if any."""
    for m in list_markets(view):
        if m.kind == SPOT and m.base == asset:
            return m
    return None


def unweighted_equity(view: KVView, addr: bytes, quote: str) -> int:
    """Every balance at its oracle price without weights (quote quantums, floored: against
    the account); an asset without an oracle price counts nothing."""
    total = 0
    for asset, bal in sorted(ledger.balances(view, addr).items()):
        if asset == quote:
            total += bal
            continue
        p = price(view, asset)
        if p is not None:
            total += bal * p[0] // 10**params.asset_decimals(view, asset)
    return total


def next_action(view: KVView, addr: bytes, quote: str) -> Action | None:
    """What the next collateral step trades (rules 1 and 2 of the module docstring)."""
    bals = ledger.balances(view, addr)
    others = sorted(a for a in bals if a != quote and bals[a])
    tradable = {}
    for a in others:
        m, p = spot_market(view, a), price(view, a)
        if m is not None and p is not None:
            tradable[a] = Action(m, bals[a] < 0, bals[a], p[0])
    if bals.get(quote, 0) < 0:
        for a in sorted(tradable):
            if bals[a] >= tradable[a].market.lot_size:
                return tradable[a]
    for a in sorted(tradable):
        if bals[a] < 0:
            return tradable[a]
    return None


def collateral_gone(view: KVView, addr: bytes, quote: str) -> bool:
    """The account holds nothing of value left to sell: no positive quote balance, and of
    every other asset with a positive collateral weight less than one lot of its spot market
    (an asset without a spot market counts whatever it holds)."""
    if ledger.balance(view, addr, quote) > 0:
        return False
    for asset, weight in collateral(view):
        bal = ledger.balance(view, addr, asset) if weight > 0 else 0
        if bal > 0:
            m = spot_market(view, asset)
            if m is None or bal >= m.lot_size:
                return False
    return True


def step_lots(view: KVView, a: Action, debt: int, p, done_quantums: int) -> tuple[int, bool]:
    """(lots, stepped) of the next step: see Size in the module docstring. `debt`: the quote
    borrow (quantums, >= 0); `done_quantums`: notional already closed this block."""
    m = a.market
    if a.is_buy:
        lots = -(a.balance // m.lot_size)   # the borrow rounded up to a lot
    else:
        lot_value = m.lot_size * a.px // m.base_scale or 1
        net_ppm = max(C.PPM - p.fee_ppm - m.taker_fee_ppm, 1)
        gross = -(-debt * C.PPM // net_ppm)
        lots = min(-(-gross // lot_value), a.balance // m.lot_size)
    per_lot = -(-(m.lot_size * a.px) // m.base_scale) or 1
    stepped = lots * per_lot > p.step_threshold_quantums
    if stepped:
        lots = -(-lots * p.step_ppm // C.PPM)
    return min(lots, (p.max_notional_per_block_quantums - done_quantums) // per_lot), stepped


def limit_ticks(view: KVView, a: Action, bankruptcy: int, unweighted: int) -> int:
    """The step's limit price in ticks (see Limit in the module docstring); `bankruptcy`: the
    trade's bankruptcy price in ticks."""
    m = a.market
    if a.is_buy:
        w = borrow_weight(view, m.base, maint=True)
        bound = max(a.px * w // (C.PPM * m.tick_size), 1)
        return min(bankruptcy, bound) if unweighted > 0 else bound
    w = collateral_weights(view, maint=True).get(m.base, 0)
    bound = max(-(-a.px * w // (C.PPM * m.tick_size)), 1)
    limit = max(bankruptcy, bound) if unweighted > 0 else bound
    return min(limit, C.MAX_PRICE // m.tick_size)


def step_event(m: Market, addr: bytes, order_id: int, is_buy: bool, lots: int, filled: int,
               balance_left: int, px: int, limit: int, equity: int, quote_left: int,
               fee: int) -> Event:
    """`equity`: the account's (weighted) equity before the step; `quote_balance`: its quote
    balance after it (negative: the borrow left)."""
    return Event("collateral_liquidation", (
        ("account", addr.hex()), ("market", m.symbol), ("asset", m.base),
        ("side", "buy" if is_buy else "sell"), ("order_id", str(order_id)),
        ("size", size_text(m, lots)), ("filled", size_text(m, filled)),
        ("balance_left", format_amount(balance_left, m.base_decimals)),
        ("oracle", quote_text(m, px)), ("price", price_text(m, limit)),
        ("equity", quote_text(m, equity)), ("quote_balance", quote_text(m, quote_left)),
        ("fee", quote_text(m, fee))))
