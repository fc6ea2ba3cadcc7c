"""genesis.json: chain id, genesis time, validators and the initial app state.

The JSON follows CometBFT's top level (genesis_time, chain_id, initial_height, validators,
app_state); amounts are decimal strings in asset units. `load_genesis` validates it fully
and converts it to `state.genesis.GenesisState` and a consensus `ValidatorSet`.

Trading sections of app_state (all optional; see `make_genesis_doc` for a full example):
    markets      [{id, symbol, kind "perp"|"spot"|"future", base, base_decimals, tick_size
                   (quote units), lot_size, min_size (base units), margin_tiers [{notional,
                   max_leverage}], maker_fee_ppm, taker_fee_ppm, impact_notional (quote units),
                   future only: expiry_ms (block time, after genesis_time) and
                   settlement_window_ms (default 3600000; state.futures),
                   funding (perp only, optional: absent = no funding) {interval_ms,
                   interest_rate_8h, premium_clamp_8h, max_rate_per_hour} (rates as decimal
                   fractions, e.g. "0.0001"; each field defaults to Hyperliquid's)}]
    collateral   [{asset, weight_ppm}]            non-quote assets that count as margin
    oracle       {max_age_ms, min_power_ppm, mark_ema_ms, prices [{asset, price}]}
    fees         {fee_account, tiers [{min_volume, taker_reduction_ppm, maker_reduction_ppm}]}
    governance   {authority}                      the address that may sign gov_* actions
    liquidation  {step_threshold, step_ppm, cooldown_ms, fee_ppm, backstop_ppm,
                  max_notional_per_block, max_fund_loss_per_block}   each optional
                 (state.liquidation_params: defaults; amounts in quote units)
    lending      [{asset, base_ppm, slope1_ppm, slope2_ppm, optimal_ppm, reserve_ppm,
                   borrow_weight_ppm, supply_cap, borrow_cap (asset units, "0" = none),
                   withdraw_ceiling_ppm, collateral_weight_ppm (non-quote: makes it
                   collateral), maint_collateral_weight_ppm, maint_borrow_weight_ppm
                   (liquidation weights; 0 or absent: the initial ones)}]   one pool per
                 entry (state.lending); each field but `asset` optional, defaulting to
                 Hyperliquid's portfolio margin (`DEFAULT_LENDING`)
    state_digest_interval  N: the app hash commits to the whole state every N blocks
                 (state.state_digest; snapshots for state sync); absent = off
Prices, sizes and notionals are decimal strings; ppm values and decimals are integers.
"""

import base64
import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from consensus.types import Validator, ValidatorSet
from node.keys import PUB_TYPE, parse_address
from state import constants as C
from state.amounts import AmountError, format_amount, parse_amount
from state.genesis import DEFAULT_FEE_ACCOUNT, DEFAULT_ORACLE, GenesisState
from state.liquidation_params import LiquidationParams, default_params
from state.markets import (DEFAULT_FUNDING, DEFAULT_SETTLEMENT_WINDOW_MS, FUTURE, PERP,
                           RATE_SCALE, SPOT, FeeParams, FeeTier, FundingParams, OracleParams)
from state.params import FaucetParams


class GenesisError(Exception):
    pass


@dataclass(frozen=True)
class Genesis:
    doc: dict
    state: GenesisState
    validators: ValidatorSet

    @property
    def chain_id(self) -> str:
        return self.state.chain_id


def ms_to_rfc3339(ms: int) -> str:
    dt = datetime.fromtimestamp(ms // 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def rfc3339_to_ms(text: str) -> int:
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise GenesisError(f"genesis_time {text!r} is not RFC 3339") from None
    if dt.tzinfo is None:
        raise GenesisError("genesis_time needs a time zone (e.g. a trailing Z)")
    delta = dt - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


RATE_DECIMALS = len(str(RATE_SCALE)) - 1  # funding rates in JSON: decimal fractions


def _rate_text(ppb: int) -> str:
    return format_amount(ppb, RATE_DECIMALS)


def default_funding_json() -> dict:
    """Hyperliquid's funding: hourly, 0.01% per 8 h, clamp 0.05%, cap 4% per hour."""
    d = DEFAULT_FUNDING
    return {"interval_ms": str(d.interval_ms), "interest_rate_8h": _rate_text(d.interest_8h),
            "premium_clamp_8h": _rate_text(d.clamp_8h),
            "max_rate_per_hour": _rate_text(d.max_rate_per_hour)}


def default_trading_app_state(authority: bytes) -> dict:
    """A realistic localnet exchange: BTC-USD and ETH-USD perps (paying funding), a BTC/USDC
    spot market, lending pools for USDC, BTC and ETH (BTC and ETH collateral at 65% / 60% for
    borrowing, liquidated below 75% / 70%; borrows of them count 1.1 to open, 1.05 to
    liquidate), Hyperliquid-like fees and volume tiers."""
    return {
        "markets": [
            {"id": 1, "symbol": "BTC-USD", "kind": "perp", "base": "BTC", "base_decimals": 8,
             "tick_size": "0.1", "lot_size": "0.0001", "min_size": "0.0001",
             "margin_tiers": [{"notional": "0", "max_leverage": 40},
                              {"notional": "5000000", "max_leverage": 20},
                              {"notional": "20000000", "max_leverage": 10}],
             "maker_fee_ppm": 150, "taker_fee_ppm": 450, "impact_notional": "20000",
             "funding": default_funding_json()},
            {"id": 2, "symbol": "ETH-USD", "kind": "perp", "base": "ETH", "base_decimals": 8,
             "tick_size": "0.01", "lot_size": "0.001", "min_size": "0.001",
             "margin_tiers": [{"notional": "0", "max_leverage": 25},
                              {"notional": "2000000", "max_leverage": 10}],
             "maker_fee_ppm": 150, "taker_fee_ppm": 450, "impact_notional": "20000",
             "funding": default_funding_json()},
            {"id": 3, "symbol": "BTC/USDC", "kind": "spot", "base": "BTC", "base_decimals": 8,
             "tick_size": "0.1", "lot_size": "0.0001", "min_size": "0.0001",
             "margin_tiers": [], "maker_fee_ppm": 400, "taker_fee_ppm": 700,
             "impact_notional": "20000"},
        ],
        "collateral": [],
        # pools for USDC, BTC and ETH; BTC and ETH collateral at LTV 0.65 / 0.6 and
        # liquidation thresholds 0.75 / 0.7 (Aave-like; state.lending)
        "lending": [{"asset": "USDC"},
                    {"asset": "BTC", "collateral_weight_ppm": 650_000,
                     "maint_collateral_weight_ppm": 750_000,
                     "borrow_weight_ppm": 1_100_000, "maint_borrow_weight_ppm": 1_050_000},
                    {"asset": "ETH", "collateral_weight_ppm": 600_000,
                     "maint_collateral_weight_ppm": 700_000,
                     "borrow_weight_ppm": 1_100_000, "maint_borrow_weight_ppm": 1_050_000}],
        "oracle": {"max_age_ms": str(DEFAULT_ORACLE.max_age_ms),
                   "min_power_ppm": DEFAULT_ORACLE.min_power_ppm,
                   "mark_ema_ms": str(DEFAULT_ORACLE.mark_ema_ms),
                   "prices": [{"asset": "BTC", "price": "60000"},
                              {"asset": "ETH", "price": "3000"}]},
        "fees": {"fee_account": DEFAULT_FEE_ACCOUNT.hex(),
                 "tiers": [{"min_volume": "0", "taker_reduction_ppm": 0,
                            "maker_reduction_ppm": 0},
                           {"min_volume": "5000000", "taker_reduction_ppm": 50,
                            "maker_reduction_ppm": 30},
                           {"min_volume": "25000000", "taker_reduction_ppm": 100,
                            "maker_reduction_ppm": 70},
                           {"min_volume": "100000000", "taker_reduction_ppm": 150,
                            "maker_reduction_ppm": 110}]},
        "governance": {"authority": authority.hex()},
    }


def make_genesis_doc(chain_id: str, genesis_time_ms: int, validators: list[tuple[bytes, int, str]],
                     balances: list[tuple[bytes, str]] = (), faucet_amount: str | None = "10000",
                     faucet_interval_ms: int = 3_600_000, trading: bool = True) -> dict:
    """A genesis document with USDC (6 decimals) as the quote asset and, with `trading`, the
    default exchange (`default_trading_app_state`; the first validator is the governance
    authority)."""
    doc = {
        "genesis_time": ms_to_rfc3339(genesis_time_ms),
        "chain_id": chain_id,
        "initial_height": "1",
        "validators": [
            {"address": pk.hex(), "pub_key": {"type": PUB_TYPE, "value": base64.b64encode(pk).decode()},
             "power": str(power), "name": name} for pk, power, name in validators],
        "app_state": {
            "quote_asset": "USDC",
            "assets": [{"symbol": "USDC", "decimals": 6}],
            "balances": [{"address": a.hex(), "asset": "USDC", "amount": amt} for a, amt in balances],
            "faucet": None if faucet_amount is None else
            {"asset": "USDC", "amount": faucet_amount, "interval_ms": str(faucet_interval_ms)},
        },
    }
    if trading:
        app = doc["app_state"]
        app["assets"] = [{"symbol": "BTC", "decimals": 8}, {"symbol": "ETH", "decimals": 8},
                         {"symbol": "USDC", "decimals": 6}]
        app.update(default_trading_app_state(validators[0][0]))
    return doc


def _req(obj: dict, key: str, where: str):
    if not isinstance(obj, dict) or key not in obj:
        raise GenesisError(f"genesis: {where} is missing {key!r}")
    return obj[key]


def parse_genesis(doc: dict) -> Genesis:
    chain_id = _req(doc, "chain_id", "the document")
    if not isinstance(chain_id, str) or not 0 < len(chain_id) <= C.MAX_CHAIN_ID_LEN \
            or not chain_id.isascii():
        raise GenesisError(f"chain_id must be 1..{C.MAX_CHAIN_ID_LEN} ASCII characters")
    if str(doc.get("initial_height", "1")) != "1":
        raise GenesisError("initial_height other than 1 is not supported")
    time_ms = rfc3339_to_ms(_req(doc, "genesis_time", "the document"))
    vals = []
    for i, v in enumerate(_req(doc, "validators", "the document")):
        where = f"validators[{i}]"
        try:
            pk = base64.b64decode(_req(_req(v, "pub_key", where), "value", where), validate=True)
            power = int(_req(v, "power", where))
        except (ValueError, TypeError) as e:
            raise GenesisError(f"genesis: {where}: {e}") from None
        if len(pk) != C.PUBKEY_BYTES or power <= 0:
            raise GenesisError(f"genesis: {where} needs a 32-byte key and positive power")
        vals.append(Validator(pk, power, str(v.get("name", ""))))
    if not vals:
        raise GenesisError("genesis has no validators")
    if len({v.pub_key for v in vals}) != len(vals):
        raise GenesisError("genesis lists a validator twice")
    app = _req(doc, "app_state", "the document")
    assets = []
    for i, a in enumerate(_req(app, "assets", "app_state")):
        sym, dec = _req(a, "symbol", f"assets[{i}]"), _req(a, "decimals", f"assets[{i}]")
        if not isinstance(sym, str) or not 0 < len(sym) <= C.MAX_ASSET_SYMBOL_LEN \
                or not sym.isascii() \
                or not isinstance(dec, int) or not 0 <= dec <= C.MAX_ASSET_DECIMALS:
            raise GenesisError(f"genesis: assets[{i}] needs a short symbol and 0..18 decimals")
        assets.append((sym, dec))
    decimals = dict(assets)
    if len(decimals) != len(assets):
        raise GenesisError("genesis lists an asset twice")
    quote = _req(app, "quote_asset", "app_state")
    if quote not in decimals:
        raise GenesisError(f"quote asset {quote!r} is not among the assets")

    def amount(text, sym, where):
        if sym not in decimals:
            raise GenesisError(f"genesis: {where}: unknown asset {sym!r}")
        try:
            return parse_amount(text, decimals[sym])
        except AmountError as e:
            raise GenesisError(f"genesis: {where}: {e}") from None

    balances = []
    for i, b in enumerate(app.get("balances") or []):
        where = f"balances[{i}]"
        try:
            addr = parse_address(_req(b, "address", where))
        except ValueError as e:
            raise GenesisError(f"genesis: {where}: {e}") from None
        sym = _req(b, "asset", where)
        balances.append((addr, sym, amount(_req(b, "amount", where), sym, where)))
    faucet = None
    f = app.get("faucet")
    if f:
        sym = _req(f, "asset", "faucet")
        faucet = FaucetParams(sym, amount(_req(f, "amount", "faucet"), sym, "faucet"),
                              int(_req(f, "interval_ms", "faucet")))
    trading = _parse_trading(app, quote, decimals, amount)
    state = GenesisState(chain_id, time_ms, quote, tuple(sorted(assets)), tuple(balances), faucet,
                         tuple(sorted((v.pub_key, v.power) for v in vals)), **trading)
    _check_state(state)
    return Genesis(doc, state, ValidatorSet.of(vals))


def _check_state(state: GenesisState) -> None:
    """Run the state machine's own genesis checks so a bad file fails at load, not at start."""
    from state.errors import InvalidBlock
    from state.genesis import genesis_writes

    try:
        genesis_writes(state)
    except InvalidBlock as e:
        raise GenesisError(f"genesis: {e}") from None


def _int(v, where: str) -> int:
    try:
        if isinstance(v, bool):
            raise ValueError
        return int(v)
    except (TypeError, ValueError):
        raise GenesisError(f"genesis: {where} must be an integer") from None


def _addr(v, where: str) -> bytes:
    try:
        return parse_address(v)
    except (ValueError, TypeError, AttributeError) as e:
        raise GenesisError(f"genesis: {where}: {e}") from None


def _parse_trading(app: dict, quote: str, decimals: dict[str, int], amount) -> dict:
    qdec = decimals[quote]

    def dec(text, places, where):
        try:
            return parse_amount(text, places)
        except AmountError as e:
            raise GenesisError(f"genesis: {where}: {e}") from None

    out: dict = {}
    markets = []
    funding = []
    for i, m in enumerate(app.get("markets") or []):
        w = f"markets[{i}]"
        kind = {"perp": PERP, "spot": SPOT, "future": FUTURE}.get(_req(m, "kind", w))
        if kind is None:
            raise GenesisError(f"genesis: {w}.kind must be 'perp', 'spot' or 'future'")
        bd = _int(_req(m, "base_decimals", w), f"{w}.base_decimals")
        if not 0 <= bd <= C.MAX_ASSET_DECIMALS:
            raise GenesisError(f"genesis: {w}.base_decimals outside 0..{C.MAX_ASSET_DECIMALS}")
        tiers = [[dec(t["notional"], qdec, f"{w}.margin_tiers[{j}]"),
                  _int(t.get("max_leverage"), f"{w}.margin_tiers[{j}].max_leverage")]
                 for j, t in enumerate(m.get("margin_tiers") or [])]
        spec = [_req(m, "symbol", w), kind, _req(m, "base", w), bd,
                dec(_req(m, "tick_size", w), qdec, f"{w}.tick_size"),
                dec(_req(m, "lot_size", w), bd, f"{w}.lot_size"),
                dec(_req(m, "min_size", w), bd, f"{w}.min_size"), tiers,
                _int(_req(m, "maker_fee_ppm", w), f"{w}.maker_fee_ppm"),
                _int(_req(m, "taker_fee_ppm", w), f"{w}.taker_fee_ppm"),
                dec(_req(m, "impact_notional", w), qdec, f"{w}.impact_notional")]
        spec += _future_fields(m, kind, w)
        markets.append((_int(_req(m, "id", w), f"{w}.id"), spec))
        if m.get("funding") is not None:
            funding.append((markets[-1][0], _parse_funding(m["funding"], f"{w}.funding")))
    out["markets"] = tuple(markets)
    out["funding"] = tuple(funding)
    out["collateral"] = tuple(
        (_req(c, "asset", f"collateral[{i}]"),
         _int(_req(c, "weight_ppm", f"collateral[{i}]"), f"collateral[{i}].weight_ppm"))
        for i, c in enumerate(app.get("collateral") or []))
    o = app.get("oracle")
    if o:
        out["oracle"] = OracleParams(_int(o.get("max_age_ms", DEFAULT_ORACLE.max_age_ms),
                                          "oracle.max_age_ms"),
                                     _int(o.get("min_power_ppm", DEFAULT_ORACLE.min_power_ppm),
                                          "oracle.min_power_ppm"),
                                     _int(o.get("mark_ema_ms", DEFAULT_ORACLE.mark_ema_ms),
                                          "oracle.mark_ema_ms"))
        prices = []
        for i, p in enumerate(o.get("prices") or []):
            w = f"oracle.prices[{i}]"
            prices.append((_req(p, "asset", w), dec(_req(p, "price", w), qdec, w)))
        out["oracle_prices"] = tuple(prices)
    f = app.get("fees")
    if f:
        tiers = tuple(FeeTier(dec(_req(t, "min_volume", f"fees.tiers[{i}]"), qdec,
                                  f"fees.tiers[{i}]"),
                              _int(t.get("taker_reduction_ppm", 0), f"fees.tiers[{i}]"),
                              _int(t.get("maker_reduction_ppm", 0), f"fees.tiers[{i}]"))
                      for i, t in enumerate(_req(f, "tiers", "fees")))
        out["fees"] = FeeParams(_addr(_req(f, "fee_account", "fees"), "fees.fee_account"), tiers)
    g = app.get("governance")
    if g:
        out["gov_authority"] = _addr(_req(g, "authority", "governance"), "governance.authority")
    lq = app.get("liquidation")
    if lq:
        out["liquidation"] = _parse_liquidation(lq, qdec, dec)
    if app.get("lending"):
        out["lending"], weights = _parse_lending(app["lending"], amount)
        have = dict(out["collateral"])
        for sym, w in weights:
            if have.get(sym, w) != w:
                raise GenesisError(f"genesis: {sym} has collateral weight {have[sym]} in "
                                   f"collateral and {w} in lending")
            have[sym] = w
        out["collateral"] = tuple(sorted(have.items()))
    if app.get("state_digest_interval") is not None:
        n = _int(app["state_digest_interval"], "state_digest_interval")
        if n <= 0:
            raise GenesisError("genesis: state_digest_interval must be a positive number of "
                               "blocks (omit it to turn the full-state digest off)")
        out["state_digest_interval"] = n
    return out


DEFAULT_LENDING = {"base_ppm": 50_000, "slope1_ppm": 0, "slope2_ppm": 950_000,
                   "optimal_ppm": 800_000, "reserve_ppm": 100_000,
                   "borrow_weight_ppm": 1_000_000, "supply_cap": "0", "borrow_cap": "0",
                   "withdraw_ceiling_ppm": 900_000, "maint_collateral_weight_ppm": 0,
                   "maint_borrow_weight_ppm": 0}


def _parse_lending(entries, amount) -> tuple[tuple, list[tuple[str, int]]]:
    """((symbol, PoolParams), ...) and the (symbol, collateral weight) pairs it names."""
    from state.lending import FIELDS, PoolParams

    if not isinstance(entries, list):
        raise GenesisError("genesis: lending must be a list of pools")
    pools, weights = [], []
    for i, e in enumerate(entries):
        w = f"lending[{i}]"
        sym = _req(e, "asset", w)
        unknown = sorted(set(e) - set(DEFAULT_LENDING) - {"asset", "collateral_weight_ppm"})
        if unknown:
            raise GenesisError(f"genesis: {w} has unknown fields {unknown}")
        f = {**DEFAULT_LENDING, **e}
        vals = [amount(f[k], sym, f"{w}.{k}") if k.endswith("_cap") else _int(f[k], f"{w}.{k}")
                for k in FIELDS]
        pools.append((sym, PoolParams(*vals)))
        if "collateral_weight_ppm" in e:
            weights.append((sym, _int(e["collateral_weight_ppm"], f"{w}.collateral_weight_ppm")))
    return tuple(pools), weights


def _future_fields(m: dict, kind: int, where: str) -> list:
    """[expiry_ms, settlement_window_ms] of a future's market object; [] for other kinds."""
    if kind != FUTURE:
        if "expiry_ms" in m or "settlement_window_ms" in m:
            raise GenesisError(f"genesis: {where}: expiry_ms and settlement_window_ms are for "
                               "kind 'future' only")
        return []
    return [_int(_req(m, "expiry_ms", where), f"{where}.expiry_ms"),
            _int(m.get("settlement_window_ms", DEFAULT_SETTLEMENT_WINDOW_MS),
                 f"{where}.settlement_window_ms")]


def future_market_json(market_id: int, symbol: str, expiry_ms: int,
                       window_ms: int = DEFAULT_SETTLEMENT_WINDOW_MS) -> dict:
    """A BTC dated future (BTC-USD's numbers, no funding) expiring at `expiry_ms`: what a
    localnet adds with `perpchain localnet up --future-minutes`."""
    return {"id": market_id, "symbol": symbol, "kind": "future", "base": "BTC",
            "base_decimals": 8, "tick_size": "0.1", "lot_size": "0.0001", "min_size": "0.0001",
            "margin_tiers": [{"notional": "0", "max_leverage": 20},
                             {"notional": "5000000", "max_leverage": 10}],
            "maker_fee_ppm": 150, "taker_fee_ppm": 450, "impact_notional": "20000",
            "expiry_ms": str(expiry_ms), "settlement_window_ms": str(window_ms)}


def _parse_funding(f, where: str) -> FundingParams:
    """A market's `funding` object; absent fields take DEFAULT_FUNDING's values."""
    if not isinstance(f, dict):
        raise GenesisError(f"genesis: {where} must be an object")
    d = DEFAULT_FUNDING

    def rate(name: str, default: int) -> int:
        v = f.get(name)
        if v is None:
            return default
        neg = isinstance(v, str) and v.startswith("-")
        try:
            ppb = parse_amount(v[1:] if neg else v, RATE_DECIMALS)
        except AmountError as e:
            raise GenesisError(f"genesis: {where}.{name}: {e} (a decimal fraction, "
                               f"at most {RATE_DECIMALS} places)") from None
        return -ppb if neg else ppb

    unknown = sorted(set(f) - {"interval_ms", "interest_rate_8h", "premium_clamp_8h",
                               "max_rate_per_hour"})
    if unknown:
        raise GenesisError(f"genesis: {where} has unknown fields {unknown}")
    return FundingParams(_int(f.get("interval_ms", d.interval_ms), f"{where}.interval_ms"),
                         rate("interest_rate_8h", d.interest_8h),
                         rate("premium_clamp_8h", d.clamp_8h),
                         rate("max_rate_per_hour", d.max_rate_per_hour))


_LIQ_AMOUNTS = {"step_threshold": "step_threshold_quantums",
                "max_notional_per_block": "max_notional_per_block_quantums",
                "max_fund_loss_per_block": "max_fund_loss_per_block_quantums"}
_LIQ_INTS = ("step_ppm", "cooldown_ms", "fee_ppm", "backstop_ppm")


def _parse_liquidation(lq: dict, qdec: int, dec) -> LiquidationParams:
    """The `liquidation` section: each field optional (the default otherwise)."""
    if not isinstance(lq, dict):
        raise GenesisError("genesis: liquidation must be an object")
    unknown = sorted(set(lq) - set(_LIQ_AMOUNTS) - set(_LIQ_INTS))
    if unknown:
        raise GenesisError(f"genesis: liquidation has unknown fields {unknown}; known: "
                           f"{sorted(_LIQ_AMOUNTS) + sorted(_LIQ_INTS)}")
    fields = {}
    for name, field in _LIQ_AMOUNTS.items():
        if name in lq:
            fields[field] = dec(lq[name], qdec, f"liquidation.{name}")
    for name in _LIQ_INTS:
        if name in lq:
            fields[name] = _int(lq[name], f"liquidation.{name}")
    return dataclasses.replace(default_params(qdec), **fields)


def load_genesis(path: Path) -> Genesis:
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise GenesisError(f"{path} not found: run `perpchain init` first") from None
    except json.JSONDecodeError as e:
        raise GenesisError(f"{path} is not JSON: {e}") from None
    except (OSError, UnicodeDecodeError, RecursionError) as e:
        raise GenesisError(f"cannot read {path}: {e}") from None
    try:
        return parse_genesis(doc)
    except GenesisError as e:
        raise GenesisError(f"{path}: {e}") from None
    except (TypeError, AttributeError, KeyError, ValueError, IndexError, OverflowError) as e:
        # A value of the wrong JSON type where parse_genesis expected another.
        raise GenesisError(f"{path}: malformed genesis ({type(e).__name__}: {e})") from None


def save_genesis(path: Path, doc: dict) -> None:
    Path(path).write_text(json.dumps(doc, indent=2) + "\n")

