"""The insurance fund: the account that backstops liquidations.

What this module owns
---------------------
`INSURANCE_FUND`, the fund's address: sha256 of a fixed label, so no key signs for it. It
receives liquidation fees (state.liquidation) and takes over, at the bankruptcy price, what
the book cannot absorb or an account below the backstop threshold still holds. Its balance is an ordinary
quote balance (state.ledger); its positions an ordinary clearing record, never liquidated. On
a chain with lending it may also hold other assets: collateral it bought that the spot book
could not absorb (state.collateral_backstop), raw balances outside the pools.
"""

from state import ledger
from state.hashing import sha256
from state.kv import KVView

INSURANCE_FUND = sha256(b"perpchain/insurance-fund")


def fund_balance(view: KVView, quote: str) -> int:
    """The fund's quote balance in quantums (what it can lose covering deficits)."""
    return ledger.balance(view, INSURANCE_FUND, quote)
