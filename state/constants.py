"""Every limit and fixed parameter of the state machine, in one place.

Limits that must hold between each other (e.g. a block can carry at least one maximal tx)
are checked in tests/unit/test_constants.py. Values here are protocol rules: changing one
changes consensus, so they move only with a new chain (or, later, a governance tx).
"""

PUBKEY_BYTES = 32
SIGNATURE_BYTES = 64
HASH_BYTES = 32

MAX_UINT64 = 2**64 - 1
# Balances are signed (lending lets them go negative later); keep them within int64 on the
# wire so any client language can hold them.
MAX_INT64 = 2**63 - 1

# Wire limits.
MAX_TX_BYTES = 16 * 1024
MAX_CHAIN_ID_LEN = 50  # as CometBFT
MAX_STATE_DIGEST_INTERVAL = 1_000_000  # blocks between full-state digests (state.state_digest)
MAX_ASSET_SYMBOL_LEN = 16
MAX_ASSET_DECIMALS = 18

# Hyperliquid-style nonces (state/nonces.py): an account keeps its highest NONCE_SET_SIZE nonces;
# a nonce must lie in (block time - NONCE_PAST_WINDOW_MS, block time + NONCE_FUTURE_WINDOW_MS).
NONCE_SET_SIZE = 100
NONCE_PAST_WINDOW_MS = 2 * 24 * 3600 * 1000
NONCE_FUTURE_WINDOW_MS = 1 * 24 * 3600 * 1000

# Blocks.
MAX_BLOCK_TXS = 20_000
MAX_BLOCK_BYTES = 8 * 1024 * 1024

# ---------------------------------------------------------------- trading (issue 4)
# Fixed-point scale of every fraction in the exchange rules (fees, margin fractions, collateral
# weights, oracle power share): parts per million, as dYdX's ppm.
PPM = 1_000_000
# A tx may carry a batch of at most this many order / cancel / modify actions (Hyperliquid's
# and the bound); each gets its own result.
MAX_BATCH_ACTIONS = 50
# Markets: ids are 1..MAX_MARKETS; at most MAX_MARGIN_TIERS tiers and MAX_FEE_TIERS fee tiers.
MAX_MARKETS = 1_000
MAX_MARGIN_TIERS = 8
MAX_FEE_TIERS = 10
MAX_MARKET_SYMBOL_LEN = 16
MAX_LEVERAGE = 200
# Open orders (resting + waiting triggers) per account over all markets (Hyperliquid's 1000):
# bounds what cancel-all and margin checks walk.
MAX_OPEN_ORDERS_PER_ACCOUNT = 1_000
# Size and price bounds: keep every product in the margin maths far inside int64 quantums.
MAX_ORDER_NOTIONAL_QUANTUMS = 10**16          # $10bn at 6 decimals
MAX_PRICE = 10**15                            # quote quantums per whole base unit
# Fee tiers look at the volume of the FEE_VOLUME_DAYS whole days before today.
DAY_MS = 86_400_000
FEE_VOLUME_DAYS = 30
# Oracle: at most this many prices in one update tx.
MAX_ORACLE_PRICES = 64
# Triggers fired per market per block (the rest fire next block, in price-time order): bounds
# end-of-block work.
MAX_TRIGGERS_PER_MARKET_PER_BLOCK = 200
# Orders expired per block (the rest next block).
MAX_EXPIRIES_PER_BLOCK = 2_000
# scheduled cancels (state/schedule_cancel.py; Hyperliquid: at least 5 s ahead)
SCHEDULE_MIN_DELAY_MS = 5_000
SCHEDULE_MAX_DELAY_MS = 7 * 24 * 3_600_000
MAX_SCHEDULED_CANCELS_PER_BLOCK = 1_000
SCHEDULE_TRIGGERS_PER_DAY = 10        # scheduled cancels that may fire per account per UTC day
DAY_MS = 86_400_000
# Market (and triggered market) orders: the default worst price a client uses when it gives
# none, as a fraction of the mark (Hyperliquid's 10%); clients only, never state.
DEFAULT_MARKET_SLIPPAGE_PPM = 100_000
# L2 snapshots over JSON-RPC.
MAX_L2_DEPTH = 500
# Governance: a change takes effect at a stated height at most this far ahead.
MAX_GOVERNANCE_DELAY_BLOCKS = 10_000_000

# Validator set (changed by governance; CometBFT's limits).
MAX_VALIDATORS = 100
MAX_VALIDATOR_POWER = 2**60 // 8 // MAX_VALIDATORS

# ---------------------------------------------------------------- risk engine (issue 9)
# Accounts checked for liquidation per block (those whose risk could have changed; the rest
# next block, from a stored cursor): bounds end-of-block work.
MAX_RISK_CHECKS_PER_BLOCK = 20_000
# Counterparties one auto-deleveraging of one position may close per block.
MAX_ADL_COUNTERPARTIES = 200
# Liquidation, insurance-takeover and ADL events kept in state for the `liquidations` query.
MAX_LIQUIDATION_LOG = 1_000
