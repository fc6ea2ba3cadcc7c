"""The stable table of transaction result codes, and the exception that carries one.

Three kinds of error, never mixed:
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
    # Trading (issue 4). Each names one rejection; the log carries the offending values.
    UNKNOWN_MARKET = 16           # no such market id (or not active yet)
    INVALID_TICK = 17             # price not a positive multiple of the market's tick size
    INVALID_LOT = 18              # size not a positive multiple of the market's lot size
    ORDER_TOO_SMALL = 19          # size below the market's minimum order size
    ORDER_TOO_LARGE = 20          # notional over MAX_ORDER_NOTIONAL_QUANTUMS or price over MAX_PRICE
    POST_ONLY_WOULD_CROSS = 21    # an ALO (post-only) order would trade on arrival
    FOK_NOT_FILLABLE = 22         # a fill-or-kill order cannot fill completely now
    REDUCE_ONLY_WOULD_INCREASE = 23  # reduce-only, but no position, same side, or already covered
    INSUFFICIENT_MARGIN = 24      # after the order, equity < initial margin (open orders at worst)
    ORACLE_STALE = 25             # no fresh oracle price: risk-increasing orders are halted
    DUPLICATE_CLIENT_ID = 26      # an open order of this account already has this client id
    BATCH_TOO_LARGE = 27          # more than MAX_BATCH_ACTIONS actions in a batch
    ORDER_NOT_FOUND = 28          # no open order of the signer with this id / client id
    ORDER_EXPIRED = 29            # good-til-time already passed at the block time
    INVALID_LEVERAGE = 30         # leverage outside 1..the market's max leverage
    TOO_MANY_OPEN_ORDERS = 31     # the account has MAX_OPEN_ORDERS_PER_ACCOUNT open orders
    NOT_A_VALIDATOR = 32          # an oracle update signed by a key that is not a validator
    INVALID_ORDER = 33            # inconsistent order fields (e.g. trigger price on a limit)
    NOT_GOVERNANCE = 34           # a governance action not signed by the governance authority
    INVALID_GOVERNANCE = 35       # a governance action with a bad height, parameter or value
    INVALID_PRICE = 36            # an oracle price of 0 or over MAX_PRICE
    MARKET_EXPIRED = 37           # a dated future at or past its expiry: trading has stopped
    # Isolated margin (issue 9), numbered from 50 (37.. went to the
    # other parts of the same issue).
    MARGIN_MODE_LOCKED = 50       # margin mode change with a position or open orders there
    NO_ISOLATED_POSITION = 51     # isolated_margin without an isolated position on the market
    NOT_A_PERP_MARKET = 52        # a margin-mode action on a spot market
    # Lending (issue 10), numbered from 60.
    POOL_ILLIQUID = 60            # a withdrawal needs more than the pool holds / its U ceiling
    LENDING_CAP = 61              # a deposit over the supply cap / a borrow over the borrow cap
    DEPOSIT_DISABLED = 62         # `deposit` on a chain without a faucet (not a localnet)
    NOTHING_TO_SETTLE = 63        # settle_pnl without a cross position on the market
    # Hyperliquid-signed actions (issue 11), numbered from 70.
    HL_UNSUPPORTED = 70           # a Hyperliquid action or option this chain does not offer
    ACTION_EXPIRED = 71           # a Hyperliquid envelope's expiresAfter is before the block time
    SCHEDULE_LIMIT = 72           # schedule_cancel after the day's SCHEDULE_TRIGGERS_PER_DAY fired
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
