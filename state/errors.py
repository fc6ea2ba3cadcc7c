"""The stable table of transaction result codes, and the exception that carries one.

Three kinds of error, never mixed (DESIGN.md §5.2):
- a rejected tx raises `TxError(code, log)`; its code lands in the tx receipt. Codes are
  stable protocol numbers: never reuse or renumber one, only append.
- an invalid block raises `InvalidBlock`: the block is refused as a whole.
- anything else is a programmer error and halts the node.
"""

from enum import IntEnum

CODESPACE = "perpchain"


class Code(IntEnum):
    OK = 0
    MALFORMED_TX = 1          # bytes are not a canonical msgpack tx of the right shape
    TX_TOO_LARGE = 2
    WRONG_CHAIN_ID = 3
    BAD_SIGNATURE = 4
    NONCE_DUPLICATE = 5       # nonce already used by this account
    NONCE_TOO_LOW = 6         # not above the smallest of the account's kept nonces
    NONCE_OUT_OF_WINDOW = 7   # too far from the block time
    UNKNOWN_ACTION = 8
    INVALID_FIELD = 9         # a field has the right type but an invalid value
    UNKNOWN_ASSET = 10
    INVALID_AMOUNT = 11
    INSUFFICIENT_BALANCE = 12
    FAUCET_DISABLED = 13
    FAUCET_RATE_LIMITED = 14
    BALANCE_OVERFLOW = 15
    # Mempool-only codes (the tx never reached a block).
    MEMPOOL_FULL = 100
    TX_IN_MEMPOOL = 101       # the same bytes are already pending
    TX_ALREADY_COMMITTED = 102


class TxError(Exception):
    """A tx is rejected: `code` goes into the receipt, `log` says what was wrong."""

    def __init__(self, code: Code, log: str):
        super().__init__(f"{code.name}: {log}")
        self.code = code
        self.log = log

    @property
    def codespace(self) -> str:
        return CODESPACE


class InvalidBlock(Exception):
    """The block as a whole breaks a rule (height, time, size): it must not be applied."""
