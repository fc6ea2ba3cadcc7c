"""Markets and the exchange-wide parameters: what can be traded and under which rules.

What this module owns
---------------------
* `Market`: one perpetual, dated future or spot market (symbol, base, tick and lot, minimum
  size, margin tiers, maker/taker fees, impact notional; a future also its expiry and
  settlement window), stored at `mkt/<id:4>`. A future trades like a perp (positions, cross
  margin, tiers, liquidation) but pays no funding and settles at expiry (state.futures).
* Exchange parameters: oracle (`params/oracle`), fees (`params/fees`: fee account and volume
  tiers), the governance authority (`params/gov`), collateral weights
  (`params/collateral/<symbol>`) and the oracle assets (`params/oracle_asset/<symbol>`).
* Funding parameters of a perp market (`params/funding/<id:4>`, genesis only: a market without
  them pays no funding; the rule itself is state.funding).

Units
----------------------
* A **price** on the wire and in the oracle is quote quantums per whole base unit
  (BTC at $60,000.5 with USDC at 6 decimals is 60_000_500_000). `tick_size` is in those units;
  the state keeps prices as `price_ticks = price // tick_size`.
* A **size** on the wire is base quantums (10^-base_decimals of a base unit); `lot_size` is in
  base quantums; the state keeps `size_lots = size // lot_size`.
* `q` = quote quantums of one lot at one tick = tick_size * lot_size / 10^base_decimals. Genesis
  and governance refuse a market where it is not a positive integer, so the notional of any
  trade, `price_ticks * size_lots * q`, is exact: no rounding ever touches a fill.
* Fractions (fees, margin, collateral weights) are in ppm (`constants.PPM`).

Margin tiers (Hyperliquid's rule): tier k applies from `lower_bound` of position
notional, with max leverage L_k; mmr_k = ceil(PPM / (2 L_k)) (maintenance is half the initial
margin at max leverage, rounded against the account); deduction_k = deduction_{k-1} +
lower_bound_k * (mmr_k - mmr_{k-1}) kept scaled by PPM so MM = ceil((notional * mmr_k -
deduction_k) / PPM) is exact and continuous at every bound.

Invariants: ids are 1..MAX_MARKETS; tier bounds strictly increase from 0, max leverage never
increases with notional; taker_fee_ppm - max tier taker reduction >= 0 and the best taker fee
plus the best maker fee >= 0 (the fee account can always pay maker rebates).
"""

from dataclasses import dataclass

from state import constants as C
from state.codec import encode, load
from state.errors import Code, TxError
from state.derived import derived_of, param_of
from state.kv import KVView, Overlay

PERP = 0
SPOT = 1
FUTURE = 2                          # a dated future (state.futures)
KIND_NAMES = {PERP: "perp", SPOT: "spot", FUTURE: "future"}
DEFAULT_SETTLEMENT_WINDOW_MS = 3_600_000   # the TWAP window before expiry (genesis JSON default)
MAX_SETTLEMENT_WINDOW_MS = 7 * C.DAY_MS
MAX_EXPIRY_MS = 2**53               # far beyond any block time; keeps expiry arithmetic small

P_MARKET = b"mkt/"
K_ORACLE = b"params/oracle"          # [max_age_ms, min_power_ppm, mark_ema_ms]
K_FEES = b"params/fees"              # [fee_account, [[min_volume, taker_red, maker_red], ...]]
K_GOV = b"params/gov"                # authority address
P_COLLATERAL = b"params/collateral/"  # + symbol -> weight_ppm
P_ORACLE_ASSET = b"params/oracle_asset/"  # + symbol -> 1
P_FUNDING = b"params/funding/"       # + market id:4 -> [interval_ms, interest_8h, clamp_8h,
#                                                        max_rate_per_hour] (rates: RATE_SCALE)
RATE_SCALE = 10**9                   # funding rates and premiums: parts per billion (ppb)


@dataclass(frozen=True, slots=True)
class MarginTier:
    lower_bound: int        # position notional (quote quantums) from which the tier applies
    max_leverage: int
    mmr_ppm: int            # derived: ceil(PPM / (2 * max_leverage))
    deduction_scaled: int   # derived: quantums * PPM


@dataclass(frozen=True, slots=True)
class Market:
    id: int
    symbol: str
    kind: int               # PERP, SPOT or FUTURE
    base: str               # oracle asset (perp, future) / listed base asset (spot)
    base_decimals: int
    tick_size: int          # price units (quote quantums per whole base unit)
    lot_size: int           # base quantums
    min_size_lots: int
    tiers: tuple[MarginTier, ...]
    maker_fee_ppm: int      # may be negative (a rebate) only if the taker fee covers it
    taker_fee_ppm: int
    impact_notional: int    # quote quantums (impact bid/ask for the mark price)
    q: int                  # derived: quote quantums per tick*lot
    quote_decimals: int     # derived: the quote asset's decimals (for texts)
    base_scale: int         # derived: 10**base_decimals (base quantums per whole unit)
    max_leverage: int       # derived: the first tier's
    expiry_ms: int = 0      # FUTURE only: block time at which trading stops and it settles
    settlement_window_ms: int = 0  # FUTURE only: the TWAP window [expiry - window, expiry)
    # derived: kind != SPOT. Positions, cross margin, tiers and liquidation apply (a perp or a
    # future). A field, not a property: it is read several times per order.
    perp_like: bool = False

    def spec(self) -> list:
        """The canonical array form (state and the gov_add_market action); the two future
        fields only on a FUTURE, so other markets' records never change."""
        out = [self.symbol, self.kind, self.base, self.base_decimals, self.tick_size,
               self.lot_size, self.min_size_lots * self.lot_size,
               [[t.lower_bound, t.max_leverage] for t in self.tiers],
               self.maker_fee_ppm, self.taker_fee_ppm, self.impact_notional]
        if self.kind == FUTURE:
            out += [self.expiry_ms, self.settlement_window_ms]
        return out


SPEC_FIELDS = ("symbol", "kind", "base", "base_decimals", "tick_size", "lot_size", "min_size",
               "tiers", "maker_fee_ppm", "taker_fee_ppm", "impact_notional")
FUTURE_SPEC_FIELDS = SPEC_FIELDS + ("expiry_ms", "settlement_window_ms")


def make_tiers(bounds: list) -> tuple[MarginTier, ...]:
    """Tiers from [[lower_bound, max_leverage], ...]; ValueError if they are not well formed."""
    if type(bounds) is not list or not 0 < len(bounds) <= C.MAX_MARGIN_TIERS:
        raise ValueError(f"tiers must be a list of 1..{C.MAX_MARGIN_TIERS} "
                         "[lower_bound, max_leverage] pairs")
    out: list[MarginTier] = []
    for i, pair in enumerate(bounds):
        if type(pair) is not list or len(pair) != 2 or any(type(x) is not int for x in pair):
            raise ValueError(f"tier {i} must be [lower_bound, max_leverage] integers")
        lb, lev = pair
        if not 1 <= lev <= C.MAX_LEVERAGE:
            raise ValueError(f"tier {i}: max leverage {lev} outside 1..{C.MAX_LEVERAGE}")
        if i == 0 and lb != 0:
            raise ValueError("the first tier must start at notional 0")
        if i > 0 and (lb <= out[-1].lower_bound or lb > C.MAX_ORDER_NOTIONAL_QUANTUMS):
            raise ValueError(f"tier {i}: lower bound {lb} must increase and stay within "
                             f"{C.MAX_ORDER_NOTIONAL_QUANTUMS}")
        if i > 0 and lev > out[-1].max_leverage:
            raise ValueError(f"tier {i}: max leverage {lev} above the previous tier's")
        mmr = -(-C.PPM // (2 * lev))  # ceil: maintenance rounds against the account
        ded = 0 if i == 0 else out[-1].deduction_scaled + lb * (mmr - out[-1].mmr_ppm)
        out.append(MarginTier(lb, lev, mmr, ded))
    return tuple(out)


def market_from_spec(market_id: int, spec: list, quote_decimals: int,
                     asset_decimals: dict[str, int]) -> Market:
    """Validate a market spec (the array of SPEC_FIELDS, FUTURE_SPEC_FIELDS for a future);
    ValueError says what is wrong. (Whether a future's expiry is still ahead depends on the
    time: state.futures.check_listing.)"""
    spec, expiry, window = _split_future(spec)
    (symbol, kind, base, base_decimals, tick_size, lot_size, min_size, tiers, maker_fee,
     taker_fee, impact) = spec
    if not 1 <= market_id <= C.MAX_MARKETS:
        raise ValueError(f"market id {market_id} outside 1..{C.MAX_MARKETS}")
    if type(symbol) is not str or not 0 < len(symbol) <= C.MAX_MARKET_SYMBOL_LEN \
            or not symbol.isascii():
        raise ValueError(f"market symbol must be 1..{C.MAX_MARKET_SYMBOL_LEN} ASCII characters")
    if type(base) is not str or not base.isascii() or not 0 < len(base) <= C.MAX_ASSET_SYMBOL_LEN:
        raise ValueError("market base must be an asset symbol")
    ints = (base_decimals, tick_size, lot_size, min_size, maker_fee, taker_fee, impact)
    if any(type(x) is not int for x in ints):
        raise ValueError("market numbers must be integers")
    if not 0 <= base_decimals <= C.MAX_ASSET_DECIMALS:
        raise ValueError(f"base_decimals {base_decimals} outside 0..{C.MAX_ASSET_DECIMALS}")
    if kind == SPOT:
        if base not in asset_decimals:
            raise ValueError(f"spot market base {base!r} is not a listed asset")
        if asset_decimals[base] != base_decimals:
            raise ValueError(f"spot market base_decimals must equal {base}'s decimals "
                             f"({asset_decimals[base]})")
    if not 0 < tick_size <= C.MAX_PRICE or lot_size <= 0:
        raise ValueError("tick_size and lot_size must be positive")
    q, rem = divmod(tick_size * lot_size, 10**base_decimals)
    if rem or q <= 0:
        raise ValueError(f"one lot at one tick must be a whole number of quote quantums "
                         f"(tick_size {tick_size} * lot_size {lot_size} / 10^{base_decimals})")
    if min_size <= 0 or min_size % lot_size:
        raise ValueError(f"min_size {min_size} must be a positive multiple of lot_size {lot_size}")
    t = make_tiers(tiers if kind != SPOT else [[0, 1]])
    if not 0 <= taker_fee <= C.PPM or not -C.PPM <= maker_fee <= C.PPM:
        raise ValueError("fees must be within -100%..100% (taker non-negative)")
    if maker_fee + taker_fee < 0:
        raise ValueError("maker rebate larger than the taker fee")
    if impact <= 0:
        raise ValueError("impact_notional must be positive")
    return Market(market_id, symbol, kind, base, base_decimals, tick_size, lot_size,
                  min_size // lot_size, t, maker_fee, taker_fee, impact, q, quote_decimals,
                  10**base_decimals, t[0].max_leverage, expiry, window, kind != SPOT)


def _split_future(spec) -> tuple[list, int, int]:
    """(the SPEC_FIELDS part, expiry_ms, settlement_window_ms; 0, 0 unless a FUTURE)."""
    if type(spec) is not list or len(spec) < 2:
        raise ValueError(f"a market spec is an array of {len(SPEC_FIELDS)} "
                         f"({len(FUTURE_SPEC_FIELDS)} for a future): {', '.join(SPEC_FIELDS)}")
    kind = spec[1]
    if type(kind) is not int or kind not in KIND_NAMES:
        raise ValueError(f"market kind must be {PERP} (perp), {SPOT} (spot) or {FUTURE} "
                         "(future)")
    fields = FUTURE_SPEC_FIELDS if kind == FUTURE else SPEC_FIELDS
    if len(spec) != len(fields):
        raise ValueError(f"a {KIND_NAMES[kind]} market spec is an array of {len(fields)}: "
                         f"{', '.join(fields)}")
    if kind != FUTURE:
        return spec, 0, 0
    expiry, window = spec[-2:]
    if type(expiry) is not int or type(window) is not int:
        raise ValueError("a future's expiry_ms and settlement_window_ms must be integers")
    if not 0 < window <= MAX_SETTLEMENT_WINDOW_MS:
        raise ValueError(f"settlement window {window} ms outside 1..{MAX_SETTLEMENT_WINDOW_MS} "
                         "ms")
    if not window <= expiry <= MAX_EXPIRY_MS:
        raise ValueError(f"expiry {expiry} ms outside {window}..{MAX_EXPIRY_MS} ms (block "
                         "time, at least the settlement window)")
    return spec[:-2], expiry, window


def _mkey(market_id: int) -> bytes:
    return P_MARKET + market_id.to_bytes(4, "big")


def put_market(view: Overlay, m: Market) -> None:
    view.put(_mkey(m.id), encode([m.id, m.spec()]))
    derived_of(view).params_changed()


def _decode(view: KVView, raw: bytes) -> Market:
    from state import params  # late: params imports nothing of ours, but keep the edge thin

    mid, spec = load(raw)
    quote = params.quote_asset(view)
    decimals = {s: params.asset_decimals(view, s) for s in params.list_assets(view)} \
        if spec[1] == SPOT else {}
    return market_from_spec(mid, spec, params.asset_decimals(view, quote), decimals)


def get(view: KVView, market_id: int) -> Market:
    """The market with this id; TxError UNKNOWN_MARKET otherwise. Decoded once per root view."""
    cache = derived_of(view).markets
    m = cache.get(market_id)
    if m is not None:
        return m
    raw = view.get(_mkey(market_id)) if 0 < market_id <= C.MAX_MARKETS else None
    if raw is None:
        ids = ", ".join(f"{x.id} ({x.symbol})" for x in list_markets(view))
        raise TxError(Code.UNKNOWN_MARKET, f"unknown market {market_id}; markets: {ids or 'none'}")
    m = _decode(view, raw)
    cache[market_id] = m
    return m


def list_markets(view: KVView) -> list[Market]:
    """Every market, ascending by id."""
    return [get(view, load(v)[0]) for _, v in view.iterate(P_MARKET)]


def next_market_id(view: KVView) -> int:
    ids = [load(v)[0] for _, v in view.iterate(P_MARKET)]
    return (max(ids) if ids else 0) + 1


# -- exchange parameters -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class OracleParams:
    max_age_ms: int         # an aggregated price older than this is stale
    min_power_ppm: int      # fresh updates must hold at least this share of voting power
    mark_ema_ms: int        # time constant of the mark price's EMA of the basis


@dataclass(frozen=True, slots=True)
class FeeTier:
    min_volume: int         # 30-day volume (quote quantums) from which the tier applies
    taker_reduction_ppm: int
    maker_reduction_ppm: int


@dataclass(frozen=True, slots=True)
class FeeParams:
    fee_account: bytes
    tiers: tuple[FeeTier, ...]   # ascending min_volume, the first at 0


def put_oracle_params(view: Overlay, p: OracleParams) -> None:
    view.put(K_ORACLE, encode([p.max_age_ms, p.min_power_ppm, p.mark_ema_ms]))
    derived_of(view).params_changed()


def oracle_params(view: KVView) -> OracleParams:
    return param_of(view, "oracle_params", _decode_oracle_params)


def _decode_oracle_params(view: KVView) -> OracleParams:
    raw = view.get(K_ORACLE)
    return OracleParams(*load(raw)) if raw is not None else OracleParams(60_000, 666_667, 150_000)


def check_fee_tiers(tiers: tuple[FeeTier, ...]) -> None:
    if not 0 < len(tiers) <= C.MAX_FEE_TIERS or tiers[0].min_volume != 0:
        raise ValueError(f"fee tiers: 1..{C.MAX_FEE_TIERS} tiers, the first from volume 0")
    for a, b in zip(tiers, tiers[1:]):
        if b.min_volume <= a.min_volume:
            raise ValueError("fee tier volumes must increase")
    for t in tiers:
        if t.taker_reduction_ppm < 0 or t.maker_reduction_ppm < 0:
            raise ValueError("fee tier reductions must be non-negative")


def check_fees_fit(m: Market, fees: FeeParams) -> None:
    """Every tier leaves the taker fee >= 0 and taker + maker >= 0 (rebates are covered)."""
    for t in fees.tiers:
        taker = m.taker_fee_ppm - t.taker_reduction_ppm
        maker = m.maker_fee_ppm - t.maker_reduction_ppm
        if taker < 0 or taker + maker < 0:
            raise ValueError(f"market {m.symbol}: fee tier from volume {t.min_volume} gives "
                             f"taker {taker} ppm, maker {maker} ppm (taker must be >= 0 and "
                             "cover the maker rebate)")


def put_fee_params(view: Overlay, p: FeeParams) -> None:
    view.put(K_FEES, encode([p.fee_account, [[t.min_volume, t.taker_reduction_ppm,
                                             t.maker_reduction_ppm] for t in p.tiers]]))
    derived_of(view).params_changed()


def fee_params(view: KVView) -> FeeParams:
    return param_of(view, "fee_params", _decode_fee_params)


def _decode_fee_params(view: KVView) -> FeeParams:
    raw = view.get(K_FEES)
    if raw is None:
        return FeeParams(bytes(32), (FeeTier(0, 0, 0),))
    acct, tiers = load(raw)
    return FeeParams(acct, tuple(FeeTier(*t) for t in tiers))


def put_gov_authority(view: Overlay, addr: bytes) -> None:
    view.put(K_GOV, encode(addr))


def gov_authority(view: KVView) -> bytes | None:
    raw = view.get(K_GOV)
    return None if raw is None else load(raw)


def put_collateral(view: Overlay, symbol: str, weight_ppm: int) -> None:
    view.put(P_COLLATERAL + symbol.encode(), encode(weight_ppm))
    derived_of(view).params_changed()


def collateral(view: KVView) -> list[tuple[str, int]]:
    """(symbol, weight_ppm) of every collateral asset other than the quote, by symbol."""
    return param_of(view, "collateral", _decode_collateral)


def _decode_collateral(view: KVView) -> list[tuple[str, int]]:
    n = len(P_COLLATERAL)
    return [(k[n:].decode(), load(v)) for k, v in view.iterate(P_COLLATERAL)]


def put_oracle_asset(view: Overlay, symbol: str) -> None:
    view.put(P_ORACLE_ASSET + symbol.encode(), encode(1))


def is_oracle_asset(view: KVView, symbol: str) -> bool:
    return view.get(P_ORACLE_ASSET + symbol.encode()) is not None


def oracle_assets(view: KVView) -> list[str]:
    n = len(P_ORACLE_ASSET)
    return [k[n:].decode() for k, _ in view.iterate(P_ORACLE_ASSET)]


# -- funding parameters (state.funding) ------------------------------------------------------

@dataclass(frozen=True, slots=True)
class FundingParams:
    interval_ms: int          # block time between payments (grid from genesis time)
    interest_8h: int          # interest rate I per 8 hours, RATE_SCALE
    clamp_8h: int             # |I - P| is clamped to this per 8 hours, RATE_SCALE
    max_rate_per_hour: int    # cap on the rate paid, per hour of interval, RATE_SCALE


# Hyperliquid's: hourly, 0.01% per 8 h, clamp 0.05%, cap 4% per hour.
DEFAULT_FUNDING = FundingParams(3_600_000, 100_000, 500_000, 40_000_000)
MAX_FUNDING_INTERVAL_MS = 7 * C.DAY_MS


def check_funding_params(p: FundingParams) -> None:
    """ValueError saying what is wrong with `p`."""
    if any(type(x) is not int for x in (p.interval_ms, p.interest_8h, p.clamp_8h,
                                        p.max_rate_per_hour)):
        raise ValueError("funding parameters must be integers")
    if not 1_000 <= p.interval_ms <= MAX_FUNDING_INTERVAL_MS:
        raise ValueError(f"funding interval {p.interval_ms} ms outside "
                         f"1000..{MAX_FUNDING_INTERVAL_MS} ms")
    for name, v in (("interest rate", p.interest_8h), ("premium clamp", p.clamp_8h),
                    ("maximum rate per hour", p.max_rate_per_hour)):
        if not (-RATE_SCALE if name == "interest rate" else 0) <= v <= RATE_SCALE:
            raise ValueError(f"funding {name} {v} ppb outside its range (at most "
                             f"{RATE_SCALE} ppb = 100%; only the interest rate may be negative)")


def put_funding_params(view: Overlay, market_id: int, p: FundingParams) -> None:
    view.put(P_FUNDING + market_id.to_bytes(4, "big"),
             encode([p.interval_ms, p.interest_8h, p.clamp_8h, p.max_rate_per_hour]))
    derived_of(view).params_changed()


def funding_params(view: KVView) -> dict[int, FundingParams]:
    """market id -> FundingParams of every market that pays funding (decoded once: rule 2)."""
    return param_of(view, "funding_params", _decode_funding_params)


def _decode_funding_params(view: KVView) -> dict[int, FundingParams]:
    n = len(P_FUNDING)
    return {int.from_bytes(k[n:], "big"): FundingParams(*load(v))
            for k, v in view.iterate(P_FUNDING)}
