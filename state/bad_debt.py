"""Bad debt: what a liquidated account still owes once its collateral is gone.

What this module owns
---------------------
`cover` runs at the end of a cross account's liquidation on a chain with lending pools
(state.liquidation), when the account holds no perp position and nothing left to sell
(state.collateral_liquidation.collateral_gone) yet some balances are negative. For each
negative balance, by asset symbol, the deficit d (quantums of that asset) is covered:
  1. by the insurance fund first: it pays min(d, its balance of the asset) into the account
     (for the quote asset also at most what `max_fund_loss_per_block` leaves for the account
     this block): a `bad_debt_covered` event;
  2. only if the fund has none of the asset left, and the asset has a pool, by that pool's
     suppliers: the account's balance is set to zero and the pool's supply index is cut by
     ceil((r + 1) x 10^12 / Ss) (r: what is left of d, Ss: the pool's scaled supplied total), so
     the pool's supplied total falls by at least r (state.lending: it rounds down) and every
     supplier loses the same fraction of its balance: a `bad_debt_socialised` event. (No cut
     when nothing is supplied or the cut would take the index to zero: the deficit then stays.)
What is left (the fund's block cap reached) stays a negative balance and is covered by a
later block's liquidation of the account. Suppliers are never touched while the fund holds
any of the asset.
"""

from state import lending as L, lending_pools as LP, ledger, params
from state.amounts import format_amount
from state.events import Event
from state.insurance import INSURANCE_FUND


def cover(scope, addr: bytes, fund_room_quantums: int) -> int:
    """Cover the account's negative balances (see the module docstring); return the quote
    quantums the fund paid. Appends the events to `scope.events`."""
    view, quote = scope.view, scope.quote
    scope.ledger.flush()
    paid_quote = 0
    for asset, bal in sorted(ledger.balances(view, addr).items()):
        if bal >= 0:
            continue
        fund = max(ledger.balance(view, INSURANCE_FUND, asset), 0)
        room = max(fund_room_quantums - paid_quote, 0) if asset == quote else fund
        pay = min(-bal, fund, room)
        if pay > 0:
            scope.ledger.credit(INSURANCE_FUND, asset, -pay)
            scope.ledger.credit(addr, asset, pay)
            scope.ledger.flush()
            paid_quote += pay if asset == quote else 0
            scope.events.append(_event("bad_debt_covered", view, addr, asset, pay, (
                ("fund_balance", _text(view, asset, fund - pay)),)))
        rest = -ledger.balance(view, addr, asset)
        if rest > 0 and fund - pay <= 0 and asset in LP.pool_params(view):
            socialise(scope, addr, asset, rest)
    return paid_quote


def socialise(scope, addr: bytes, asset: str, amount: int) -> None:
    """The pool's suppliers take `amount` of the account's borrow: the borrow is cleared and
    the supply index cut (see the module docstring)."""
    view = scope.view
    p = LP.get_pool(view, asset)
    if p.scaled_supplied == 0:
        return
    cut = -(-(amount + 1) * L.INDEX_SCALE // p.scaled_supplied)
    if cut >= p.supply_index:
        return
    scope.ledger.credit(addr, asset, amount)
    scope.ledger.flush()
    p = LP.get_pool(view, asset)
    LP.put_pool(view, asset, p._replace(supply_index=p.supply_index - cut))
    scope.events.append(_event("bad_debt_socialised", view, addr, asset, amount, (
        ("supply_index", str(p.supply_index - cut)),)))


def _text(view, asset: str, quantums: int) -> str:
    return format_amount(quantums, params.asset_decimals(view, asset))


def _event(typ: str, view, addr: bytes, asset: str, amount: int, tail: tuple) -> Event:
    return Event(typ, (("account", addr.hex()), ("asset", asset),
                       ("amount", _text(view, asset, amount))) + tail)
