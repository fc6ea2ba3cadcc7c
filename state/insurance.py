"""The insurance fund: the protocol account that takes what rounding leaves and covers losses.

What this module owns
---------------------
`INSURANCE_FUND`, the address of the fund's quote balance (`acct/bal/<INSURANCE_FUND>USDC`,
written, like every balance, only through the ledger). No key signs for it: it is sha256 of
a fixed label. Today it receives the remainder of every funding interval (state.funding:
payers round up, receivers round down, so the fund only ever gains from rounding);
liquidation will pay its fees into it and draw on it to cover a bankrupt account's deficit.
"""

from state.hashing import sha256

INSURANCE_FUND = sha256(b"perpchain/insurance-fund")
