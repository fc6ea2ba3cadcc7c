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
MAX_ASSET_SYMBOL_LEN = 16
MAX_ASSET_DECIMALS = 18

# Hyperliquid-style nonces (DESIGN.md §4): an account keeps its highest NONCE_SET_SIZE nonces;
# a nonce must lie in (block time - NONCE_PAST_WINDOW_MS, block time + NONCE_FUTURE_WINDOW_MS).
NONCE_SET_SIZE = 100
NONCE_PAST_WINDOW_MS = 2 * 24 * 3600 * 1000
NONCE_FUTURE_WINDOW_MS = 1 * 24 * 3600 * 1000

# Blocks.
MAX_BLOCK_TXS = 20_000
MAX_BLOCK_BYTES = 8 * 1024 * 1024
