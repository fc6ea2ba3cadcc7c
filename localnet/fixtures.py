"""Deterministic keys and a three-market trading genesis, for in-process chains.

Owned here (not in tests/) because benchmarks build the same chain as the tests:
`bench/` runs it, `tests/chain_helpers.py` re-exports it. Keys come from fixed seeds, so
every run, process and machine sees the same accounts, validators and app hashes.
"""

from node.keys import KeyPair
from state.genesis import GenesisState
from state.markets import FeeParams, FeeTier, OracleParams
from state.params import FaucetParams

CHAIN_ID = "test-chain"
GENESIS_MS = 1_700_000_000_000
USDC = 10**6           # quantums per USDC (6 decimals)


def key(i: int) -> KeyPair:
    """Account key number `i` (0..214), from the seed bytes([i + 1]) * 32."""
    return KeyPair.from_seed(bytes([i + 1]) * 32)


BTC_PERP, ETH_PERP, BTC_SPOT = 1, 2, 3
VALIDATORS = [key(40), key(41), key(42)]
GOV = key(50)
FEE_ACCOUNT = bytes([0xFE]) * 32
PRICE = 10**6          # price units per USD (USDC has 6 decimals)
BTC_LOT = 10_000       # 0.0001 BTC in sats
ETH_LOT = 100_000      # 0.001 ETH (8 decimals)
BTC_TICK = 100_000     # $0.1
ETH_TICK = 10_000      # $0.01

BTC_PERP_SPEC = ["BTC-USD", 0, "BTC", 8, BTC_TICK, BTC_LOT, BTC_LOT * 10,
                 [[0, 50], [2_000_000 * USDC, 20], [10_000_000 * USDC, 10]], 150, 450,
                 1_000 * USDC]
ETH_PERP_SPEC = ["ETH-USD", 0, "ETH", 8, ETH_TICK, ETH_LOT, ETH_LOT * 10,
                 [[0, 25], [1_000_000 * USDC, 10]], 150, 450, 1_000 * USDC]
BTC_SPOT_SPEC = ["BTC/USDC", 1, "BTC", 8, BTC_TICK, BTC_LOT, BTC_LOT, [], 200, 500,
                 1_000 * USDC]


def trading_genesis(n_accounts: int = 4, amount: int = 100_000 * USDC, btc: int = 0,
                    powers=(10, 10, 10), fee_tiers=None, max_age_ms: int = 60_000,
                    prices=(("BTC", 60_000 * PRICE), ("ETH", 3_000 * PRICE))) -> GenesisState:
    """Three markets (BTC and ETH perps, BTC spot), 3 validators, fees, governance; accounts
    key(0..n_accounts-1) hold `amount` USDC quantums (and `btc` sats if given)."""
    bals = [(key(i).pub_key, "USDC", amount) for i in range(n_accounts)]
    if btc:
        bals += [(key(i).pub_key, "BTC", btc) for i in range(n_accounts)]
    return GenesisState(
        CHAIN_ID, GENESIS_MS, "USDC", (("BTC", 8), ("ETH", 8), ("USDC", 6)), tuple(bals),
        FaucetParams("USDC", 100 * USDC, 60_000),
        tuple((v.pub_key, p) for v, p in zip(VALIDATORS, powers)),
        markets=((BTC_PERP, BTC_PERP_SPEC), (ETH_PERP, ETH_PERP_SPEC), (BTC_SPOT, BTC_SPOT_SPEC)),
        collateral=(("BTC", 900_000),),
        oracle=OracleParams(max_age_ms, 666_667, 150_000),
        oracle_prices=tuple(prices),
        fees=FeeParams(FEE_ACCOUNT, tuple(fee_tiers or (FeeTier(0, 0, 0),
                                                        FeeTier(5_000_000 * USDC, 50, 30)))),
        gov_authority=GOV.pub_key)


# -- lending (issue 10): Hyperliquid portfolio margin's anchor --------------------------------
# borrow APR 5% + 4.75 x max(0, U - 80%) (slope2 = 4.75 x 20% = 95%), 10% reserve, borrow
# weight 1 for USDC and 1.1 for BTC and ETH, withdrawals up to 90% utilisation, no caps.
def pool_params(borrow_weight_ppm: int = 1_000_000):
    from state.lending import PoolParams
    return PoolParams(base_ppm=50_000, slope1_ppm=0, slope2_ppm=950_000, optimal_ppm=800_000,
                      reserve_ppm=100_000, borrow_weight_ppm=borrow_weight_ppm, supply_cap=0,
                      borrow_cap=0, withdraw_ceiling_ppm=900_000)


LENDING_COLLATERAL = (("BTC", 650_000), ("ETH", 600_000))   # LTV 0.65 and 0.6
# the localnet's liquidation weights (node.genesis): collateral 0.75 / 0.7, borrows 1.05
LENDING_MAINT = {"BTC": (750_000, 1_050_000), "ETH": (700_000, 1_050_000)}


def lending_genesis(balances: tuple = (), maint: bool = False, **kw) -> GenesisState:
    """`trading_genesis` with pools for USDC, BTC and ETH, BTC and ETH as collateral at LTV
    0.65 / 0.6; `balances`: (address, symbol, quantums) instead of the default USDC ones;
    `maint`: with the localnet's maintenance weights (`LENDING_MAINT`; else one weight per
    asset serves both)."""
    import dataclasses
    g = trading_genesis(**kw)
    pools = [("USDC", pool_params()), ("BTC", pool_params(1_100_000)),
             ("ETH", pool_params(1_100_000))]
    if maint:
        pools = [(s, p._replace(maint_collateral_weight_ppm=LENDING_MAINT[s][0],
                                maint_borrow_weight_ppm=LENDING_MAINT[s][1]))
                 if s in LENDING_MAINT else (s, p) for s, p in pools]
    return dataclasses.replace(
        g, balances=tuple(balances) or g.balances, collateral=LENDING_COLLATERAL,
        lending=tuple(pools))
