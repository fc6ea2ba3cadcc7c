"""Pool limits on automatic borrows: the borrow cap and the utilisation ceiling.

What this module owns
---------------------
A `withdraw` checks its pool before it burns (state.lending_actions). Every other user action
that can borrow automatically is measured around: an order that fills (its fee, its realised
PnL, an isolated position's margin taken from the cross balance: state.placement.execute),
`settle_pnl` and `isolated_margin` adding margin. `before` takes, for each pooled asset, the
signer's real balance (its funding the action has settled but not yet written counted as
written: funding is owed whatever the action does) and the pool's supplied - borrowed;
`check`, after the action, refuses it (the sub-transaction then rolls back every write) when
the signer's borrow of an asset grew and

  * the pool's borrowed total is above its borrow cap (`LENDING_CAP`; a cap of 0: none), or
  * the pool's supplied - borrowed went down and its utilisation is above its withdrawal
    ceiling (`POOL_ILLIQUID`). The ceiling keeps cash for suppliers who withdraw: a borrow
    whose proceeds stay lent in the pool (fees to the fee account, a counterparty's profit)
    takes none of it and is not bound by the ceiling; one paid to a protocol account (the
    perp settlement pool's side of a realised loss) is.

An order that only reduced the signer's perp position (the orders the initial-margin check
exempts: state.placement.check_margin_after) is not refused: its loss already counted as
unrealised PnL, and refusing it would lock the trader in the position.

Not refused, because nobody can refuse them: interest, funding payments, a maker's fee and
realised PnL on a fill (the maker's order was accepted when it rested; refusing the taker's
fill for the maker's borrow would let any near-empty maker block a book), liquidation. They
may take a pool past its cap or ceiling; it then stays open for repayments and supplies, and
every user borrow of that asset is refused until the pool is back within both.

Transfers never borrow (state.ledger.move). A transfer that takes a lent balance out of the
pool (to an opted-out account or a protocol account) needs the pool's cash and may not leave
utilisation above the ceiling, like a withdrawal (`check_transfer`, called by state.ledger).
A chain without pools never gets here (the callers test `pools` first).
"""

from state import constants as C, lending as L, ledger, lending_pools as LP, params
from state.amounts import format_amount
from state.errors import Code, TxError
from state.kv import KVView

Snapshot = dict  # symbol -> (signer's real balance, pool's supplied - borrowed)


def before(scope, owner: bytes) -> Snapshot:
    view, led = scope.view, scope.ledger
    out = {}
    for sym in sorted(led.pools):
        stored = ledger.stored_balance(view, owner, sym)
        pending = led.deltas.get((owner, sym), 0)
        out[sym] = (LP.credited_real(view, owner, sym, stored, pending),
                    LP.get_pool(view, sym).net)
    return out


def check(scope, owner: bytes, snap: Snapshot, what: str) -> None:
    """Raise if `what` grew the signer's borrow of a pool that is then beyond its limits."""
    view, pools = scope.view, scope.ledger.pools
    for sym in sorted(snap):
        was, net0 = snap[sym]
        now = ledger.balance(view, owner, sym)
        if now >= 0 or now >= was:
            continue
        _check_pool(view, sym, pools[sym], net0, f"{what} borrows "
                    f"{_amt(view, sym, min(was, 0) - now)} {sym} (automatically): it")


def _check_pool(view: KVView, sym: str, prm, net0: int, what: str) -> None:
    p = LP.get_pool(view, sym)
    if prm.borrow_cap and p.borrowed > prm.borrow_cap:
        raise TxError(Code.LENDING_CAP,
                      f"{what} would take {sym} borrows to {_amt(view, sym, p.borrowed)}, "
                      f"over the pool's borrow cap {_amt(view, sym, prm.borrow_cap)}")
    if p.net < net0 and _above_ceiling(prm, p):
        raise TxError(Code.POOL_ILLIQUID, f"{what} would leave the {sym} pool with "
                      f"{_amt(view, sym, p.borrowed)} borrowed of "
                      f"{_amt(view, sym, max(p.supplied, 0))} supplied, above its withdrawal "
                      f"utilisation ceiling of {format_amount(prm.withdraw_ceiling_ppm, 4)}%")


def _above_ceiling(prm, p: LP.Pool) -> bool:
    return p.borrowed > 0 and p.borrowed * C.PPM > prm.withdraw_ceiling_ppm * p.supplied


def check_transfer(view, src: bytes, dst: bytes, sym: str, amount: int) -> None:
    """Before a transfer of `amount` of pooled `sym`: one from a lent balance to a balance
    held outside the pool takes it out of the pool (see the module docstring)."""
    if LP.mode(view, src) != LP.LENDING or LP.mode(view, dst) == LP.LENDING:
        return
    p = LP.get_pool(view, sym)
    if amount > LP.available(p):
        raise TxError(Code.POOL_ILLIQUID,
                      f"the transfer takes {_amt(view, sym, amount)} {sym} out of lending "
                      f"(the recipient's balance is not lent); the {sym} pool holds "
                      f"{_amt(view, sym, LP.available(p))} {sym} not lent out")
    prm = LP.pool_params(view)[sym]
    after = p._replace(scaled_supplied=p.scaled_supplied -
                       L.to_scaled_borrowed(amount, p.supply_index))
    if _above_ceiling(prm, after):
        raise TxError(Code.POOL_ILLIQUID,
                      f"the transfer takes {_amt(view, sym, amount)} {sym} out of lending "
                      f"(the recipient's balance is not lent), which would leave the {sym} "
                      f"pool above its withdrawal utilisation ceiling of "
                      f"{format_amount(prm.withdraw_ceiling_ppm, 4)}%")


def _amt(view: KVView, sym: str, q: int) -> str:
    return format_amount(q, params.asset_decimals(view, sym))
