"""The lending actions: `withdraw`, `deposit` (localnet), `set_lending`, `settle_pnl`.

What this module owns
---------------------
* `withdraw [asset, amount]` burns `amount` from the signer's balance and emits a `withdrawal`
  event (what a bridge reads to pay out). Beyond the balance it is a borrow, allowed only for
  an asset with a pool. From a pool it needs the pool's cash (supplied less borrowed) and may
  not leave utilisation above the pool's withdrawal ceiling nor borrows above the borrow cap;
  the account must meet initial margin after it (equity >= initial margin, equity counting
  borrows at their borrow weight: state.lending_margin).
* `deposit [asset, amount]` mints `amount` into the signer's balance: it stands for a bridge
  deposit and exists only on a chain with a faucet (a localnet); a supplied deposit may not
  take the pool past its supply cap.
* `set_lending [enabled]` (1 lends, 0 opts out): an opted-out account's positive balances are
  raw (they earn nothing and are not lent); its negative balances still pay interest. Opting
  out takes the balances out of the pools, so it needs their cash.
* `settle_pnl [market]` realises a cross perp position's unrealised PnL at the mark into the
  quote balance (its cost basis becomes size x mark, the mark rounded against the account to
  a tick); a balance that goes negative is a borrow, allowed only above initial margin and
  within the pool's borrow cap and utilisation ceiling (state.lending_limits).
"""

from state import ledger, lending_limits, lending_pools as LP, params
from state.amounts import format_amount
from state.errors import Code, TxError
from state.events import Event
from state.margin import mark_price
from state.placement import check_covered
from state.settlement import POOL


def _amount(view, asset: str, amount: int) -> int:
    dec = params.asset_decimals(view, asset)
    if amount <= 0:
        raise TxError(Code.INVALID_AMOUNT, f"{asset} amount must be positive")
    return dec


def withdraw(scope, signer: bytes, fields: tuple, destination: str | None = None) -> None:
    """Burn `amount` of `asset` (borrowing it if the balance is short and the pool allows)
    and emit the `withdrawal` event a bridge reads; `destination`: where the bridge should
    pay (a Hyperliquid `withdraw3`), else the account itself."""
    asset, amount = fields
    view = scope.view
    dec = _amount(view, asset, amount)
    pools = LP.pool_params(view)
    have = ledger.balance(view, signer, asset)
    if asset not in pools and have < amount:
        raise TxError(Code.INSUFFICIENT_BALANCE,
                      f"balance {format_amount(have, dec)} {asset} is less than "
                      f"{format_amount(amount, dec)} {asset} ({asset} has no lending pool: "
                      "no borrowing)")
    borrowed = amount - max(have, 0) if amount > have else 0
    if asset in pools:
        _check_pool(view, signer, asset, amount, have, dec)
    ledger.burn(view, signer, asset, amount)
    check_covered(scope, signer, "the withdrawal")
    scope.events.append(Event("withdrawal", (
        ("account", signer.hex()), ("asset", asset), ("amount", format_amount(amount, dec)),
        ("borrowed", format_amount(borrowed, dec)))
        + ((("destination", destination),) if destination is not None else ())))


def _check_pool(view, signer: bytes, asset: str, amount: int, have: int, dec: int) -> None:
    """The pool can pay what the withdrawal takes from it, within its ceiling and caps."""
    prm, p = LP.pool_params(view)[asset], LP.get_pool(view, asset)
    lent = LP.mode(view, signer) == LP.LENDING
    from_pool = amount if lent else amount - max(min(have, amount), 0)
    if from_pool > LP.available(p):
        raise TxError(Code.POOL_ILLIQUID,
                      f"the {asset} pool holds {format_amount(LP.available(p), dec)} {asset} "
                      f"not lent out; this withdrawal needs {format_amount(from_pool, dec)}")
    new_borrow = amount - max(have, 0) if amount > have else 0
    supplied = p.supplied - (min(amount, max(have, 0)) if lent else 0)
    borrowed = p.borrowed + new_borrow
    if prm.borrow_cap and new_borrow and borrowed > prm.borrow_cap:
        raise TxError(Code.LENDING_CAP,
                      f"{asset} borrows would reach {format_amount(borrowed, dec)}, over the "
                      f"pool's borrow cap {format_amount(prm.borrow_cap, dec)}")
    if borrowed and borrowed * 10**6 > prm.withdraw_ceiling_ppm * supplied:
        raise TxError(Code.POOL_ILLIQUID,
                      f"after the withdrawal the {asset} pool would have "
                      f"{format_amount(borrowed, dec)} borrowed of "
                      f"{format_amount(max(supplied, 0), dec)} supplied, above its withdrawal "
                      f"utilisation ceiling of {format_amount(prm.withdraw_ceiling_ppm, 4)}%")


def deposit(scope, signer: bytes, fields: tuple) -> None:
    asset, amount = fields
    view = scope.view
    if params.faucet(view) is None:
        raise TxError(Code.DEPOSIT_DISABLED, "deposit is a localnet stand-in for a bridge: "
                      "this chain has no faucet, so it has none")
    dec = _amount(view, asset, amount)
    pools = LP.pool_params(view)
    if asset in pools and pools[asset].supply_cap and LP.mode(view, signer) == LP.LENDING:
        after = LP.get_pool(view, asset).supplied + amount
        if after > pools[asset].supply_cap:
            raise TxError(Code.LENDING_CAP,
                          f"{asset} supplied would reach {format_amount(after, dec)}, over the "
                          f"pool's supply cap {format_amount(pools[asset].supply_cap, dec)}")
    ledger.mint(view, signer, asset, amount)
    scope.events.append(Event("deposit", (("account", signer.hex()), ("asset", asset),
                                          ("amount", format_amount(amount, dec)))))


def set_lending(scope, signer: bytes, fields: tuple) -> None:
    (enabled,) = fields
    view = scope.view
    if enabled not in (0, 1):
        raise TxError(Code.INVALID_FIELD, "set_lending takes 1 (lend) or 0 (opt out)")
    if signer in LP.RAW_ACCOUNTS:
        raise TxError(Code.INVALID_FIELD, "a protocol account's balances are never lent")
    was = LP.mode(view, signer) == LP.LENDING
    if was != bool(enabled):
        for sym in sorted(LP.pool_params(view)):
            stored = ledger.stored_balance(view, signer, sym)
            if stored > 0:
                ledger.set_stored(view, signer, sym, LP.convert(view, sym, stored, bool(enabled)))
        LP.set_opted_out(view, signer, not enabled)
    scope.events.append(Event("set_lending", (("account", signer.hex()),
                                              ("enabled", str(enabled)))))


def settle_pnl(scope, signer: bytes, fields: tuple) -> None:
    (market_id,) = fields
    view = scope.view
    m = scope.market(market_id)
    acct = scope.ledger.account(signer)      # (settles funding first)
    lend = lending_limits.before(scope, signer)
    e = acct.entries.get(market_id)
    if not m.perp_like or e is None or not e.size or e.isolated:
        raise TxError(Code.NOTHING_TO_SETTLE,
                      f"no cross perp position of this account on market {market_id}")
    px = mark_price(view, m)
    ticks = px // m.tick_size if e.size > 0 else -(-px // m.tick_size)
    new_tl = e.size * ticks
    pnl = (new_tl - e.entry_tl) * m.q
    e.entry_tl = new_tl
    scope.ledger.credit(signer, scope.quote, pnl)
    scope.ledger.credit(POOL, scope.quote, -pnl)
    scope.ledger.flush()
    if ledger.balance(view, signer, scope.quote) < 0:
        check_covered(scope, signer, "settling the PnL")
        lending_limits.check(scope, signer, lend, "settling the PnL")
    scope.events.append(Event("settle_pnl", (
        ("account", signer.hex()), ("market", m.symbol),
        ("pnl", format_amount(pnl, scope.quote_decimals)))))
