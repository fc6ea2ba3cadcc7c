"""Genesis: the initial state (assets, chain params, balances, markets, oracle, fees,
governance) as a write set.

The node parses genesis.json (node/genesis.py) into `GenesisState`; `genesis_writes`
turns it into the height-0 write set, and app_hash(0) chains over it like any block.
"""

from dataclasses import dataclass

from state import lending as L, lending_pools as LP
from state import funding, ledger, constants as C, markets as mk, oracle, params, state_digest
from state.codec import encode
from state.futures import check_listing
from state.liquidation_params import LiquidationParams, check_params, put_params
from state.errors import InvalidBlock, TxError
from state.hashing import ZERO_HASH, chain_app_hash, sha256
from state.kv import MemoryKV, Overlay
from state.machine import put_last_block

# Where fees go when genesis names no fee account: an address no key controls.
DEFAULT_FEE_ACCOUNT = sha256(b"perpchain/fee-account")
DEFAULT_ORACLE = mk.OracleParams(max_age_ms=60_000, min_power_ppm=666_667,
                                      mark_ema_ms=150_000)


@dataclass(frozen=True)
class GenesisState:
    chain_id: str
    genesis_time_ms: int
    quote_asset: str
    assets: tuple[tuple[str, int], ...]                 # (symbol, decimals), sorted by symbol
    balances: tuple[tuple[bytes, str, int], ...] = ()   # (address, symbol, quantums)
    faucet: params.FaucetParams | None = None
    validators: tuple[tuple[bytes, int], ...] = ()     # (Ed25519 public key, voting power)
    markets: tuple[tuple[int, list], ...] = ()          # (market id, spec: mk.SPEC_FIELDS)
    collateral: tuple[tuple[str, int], ...] = ()        # non-quote collateral (symbol, weight_ppm)
    oracle: mk.OracleParams | None = None          # None: DEFAULT_ORACLE
    oracle_prices: tuple[tuple[str, int], ...] = ()     # initial prices, dated genesis time
    fees: mk.FeeParams | None = None               # None: no tiers, DEFAULT_FEE_ACCOUNT
    gov_authority: bytes | None = None                  # None: no governance
    # (perp market id, its funding parameters): only these markets pay funding (state.funding)
    funding: tuple[tuple[int, mk.FundingParams], ...] = ()
    liquidation: LiquidationParams | None = None        # None: the defaults, no record
    # (symbol, its lending pool's parameters): only these assets have a pool (state.lending);
    # a non-quote one must be collateral
    lending: tuple[tuple[str, L.PoolParams], ...] = ()
    state_digest_interval: int | None = None            # None: no full-state digest


def genesis_writes(g: GenesisState) -> tuple[list[tuple[bytes, bytes | None]], bytes]:
    """(sorted write set, app_hash(0)) for this genesis."""
    symbols = dict(g.assets)
    if g.quote_asset not in symbols:
        raise InvalidBlock(f"quote asset {g.quote_asset!r} is not among the assets")
    view = Overlay(MemoryKV())
    params.put_chain(view, g.chain_id, g.quote_asset)
    for symbol, decimals in sorted(g.assets):
        params.put_asset(view, symbol, decimals)
    if g.faucet is not None:
        if g.faucet.asset not in symbols:
            raise InvalidBlock(f"faucet asset {g.faucet.asset!r} is not among the assets")
        params.put_faucet(view, g.faucet)
    _lending_writes(view, g, symbols)  # before the balances: they are stored scaled
    for addr, symbol, amount in sorted(g.balances):
        if symbol not in symbols:
            raise InvalidBlock(f"genesis balance in unknown asset {symbol!r}")
        try:
            ledger.mint(view, addr, symbol, amount)
        except TxError as e:
            raise InvalidBlock(f"genesis balance of {addr.hex()}: {e.log}") from None
    for pub_key, power in sorted(g.validators):
        params.put_validator(view, pub_key, power)
    _trading_writes(view, g, symbols)
    put_last_block(view, 0, g.genesis_time_ms)
    if g.state_digest_interval is not None:
        if not 0 < g.state_digest_interval <= C.MAX_STATE_DIGEST_INTERVAL:
            raise InvalidBlock(f"genesis state_digest_interval must be 1.."
                               f"{C.MAX_STATE_DIGEST_INTERVAL} blocks")
        view.put(state_digest.K_INTERVAL, encode(g.state_digest_interval))
        lanes = state_digest.of_pairs(view.sorted_writes())
        view.put(state_digest.K_DIGEST, encode(lanes))
        return view.sorted_writes(), state_digest.folded_app_hash(lanes)  # 0 % N == 0
    writes = view.sorted_writes()
    return writes, chain_app_hash(ZERO_HASH, writes)


def _trading_writes(view: Overlay, g: GenesisState, symbols: dict[str, int]) -> None:
    """Markets, collateral, oracle, fees and governance (issue 4)."""
    fees = g.fees or mk.FeeParams(DEFAULT_FEE_ACCOUNT, (mk.FeeTier(0, 0, 0),))
    try:
        mk.check_fee_tiers(fees.tiers)
    except ValueError as e:
        raise InvalidBlock(f"genesis fees: {e}") from None
    mk.put_fee_params(view, fees)
    op = g.oracle or DEFAULT_ORACLE
    if op.max_age_ms <= 0 or not 0 < op.min_power_ppm <= C.PPM or op.mark_ema_ms <= 0:
        raise InvalidBlock("genesis oracle params must be positive (min power at most 1e6 ppm)")
    mk.put_oracle_params(view, op)
    oracle_assets: list[str] = []
    for sym, weight in sorted(g.collateral):
        if sym not in symbols or sym == g.quote_asset:
            raise InvalidBlock(f"genesis collateral {sym!r} must be a listed non-quote asset")
        if not 0 <= weight <= C.PPM:
            raise InvalidBlock(f"genesis collateral weight of {sym} outside 0..{C.PPM} ppm")
        mk.put_collateral(view, sym, weight)
        oracle_assets.append(sym)
    ids = [mid for mid, _ in g.markets]
    if len(dict.fromkeys(ids)) != len(ids):
        raise InvalidBlock("genesis lists a market id twice")
    qdec = symbols[g.quote_asset]
    seen_symbols: list[str] = []
    for mid, spec in sorted(g.markets, key=lambda x: x[0]):
        try:
            m = mk.market_from_spec(mid, list(spec), qdec, symbols)
            mk.check_fees_fit(m, fees)
            check_listing(m, g.genesis_time_ms)
        except ValueError as e:
            raise InvalidBlock(f"genesis market {mid}: {e}") from None
        if m.symbol in seen_symbols:
            raise InvalidBlock(f"genesis lists market symbol {m.symbol} twice")
        seen_symbols.append(m.symbol)
        mk.put_market(view, m)
        if m.perp_like:
            oracle_assets.append(m.base)
    for sym in sorted(dict.fromkeys(oracle_assets)):
        mk.put_oracle_asset(view, sym)
    for sym, px in sorted(g.oracle_prices):
        if sym not in oracle_assets or not 0 < px <= C.MAX_PRICE:
            raise InvalidBlock(f"genesis oracle price for {sym!r}: not an oracle asset or "
                               f"outside 1..{C.MAX_PRICE}")
        oracle.put_price(view, sym, px, g.genesis_time_ms)
    if g.gov_authority is not None:
        mk.put_gov_authority(view, g.gov_authority)
    if g.liquidation is not None:
        try:
            check_params(g.liquidation)
        except ValueError as e:
            raise InvalidBlock(f"genesis liquidation params: {e}") from None
        put_params(view, g.liquidation)
    _funding_writes(view, g)


def _funding_writes(view: Overlay, g: GenesisState) -> None:
    """Funding parameters of the perp markets that pay funding, and their first windows."""
    perps = [mid for mid, spec in g.markets if spec[1] == mk.PERP]
    ids = [mid for mid, _ in g.funding]
    if len(dict.fromkeys(ids)) != len(ids):
        raise InvalidBlock("genesis gives a market funding parameters twice")
    for mid, p in sorted(g.funding, key=lambda x: x[0]):
        if mid not in perps:
            raise InvalidBlock(f"genesis funding for market {mid}: not a perp market")
        try:
            mk.check_funding_params(p)
        except ValueError as e:
            raise InvalidBlock(f"genesis funding for market {mid}: {e}") from None
        mk.put_funding_params(view, mid, p)
        funding.start(view, mid, g.genesis_time_ms)


def _lending_writes(view: Overlay, g: GenesisState, symbols: dict[str, int]) -> None:
    """The lending pools (state.lending_pools), empty, their indices at 1 at genesis time."""
    weights = dict(g.collateral)
    if len(dict(g.lending)) != len(g.lending):
        raise InvalidBlock("genesis gives an asset lending parameters twice")
    for sym, p in sorted(g.lending):
        if sym not in symbols:
            raise InvalidBlock(f"genesis lending pool for unknown asset {sym!r}")
        if sym != g.quote_asset and sym not in weights:
            raise InvalidBlock(f"genesis lending pool for {sym}: not a collateral asset")
        try:
            L.check_params(p)
            L.check_maint_collateral_weight(p, None if sym == g.quote_asset else weights[sym])
        except ValueError as e:
            raise InvalidBlock(f"genesis lending pool for {sym}: {e}") from None
        LP.put_params(view, sym, p)
        LP.put_pool(view, sym, LP.new_pool(g.genesis_time_ms))
