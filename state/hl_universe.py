"""Hyperliquid names for perpchain things: asset ids, 0x accounts and decimal wire numbers.

One rule, used by the state machine (which runs Hyperliquid-signed actions) and by the
Hyperliquid façade (which answers `/info`), so both always agree:

- Perp asset ids: the perp-like markets (perpetuals and dated futures), ascending by market id,
  numbered 0, 1, 2, ... (`meta.universe` order). Settled futures stay in the list, so an id
  never moves. Spot asset ids: the spot markets, ascending by market id, numbered
  10000, 10001, ... (`spotMeta.universe` index + 10000, as Hyperliquid does).
- An Ethereum (secp256k1) account of 20-byte address A is the perpchain account
  `ETH_ACCOUNT_PREFIX + A` (32 bytes: twelve zero bytes then A). An Ed25519 public key with
  twelve leading zero bytes does not occur (2^-96), so the two kinds never share an address.
- Numbers on the wire are decimal strings in whole units: a price is
  ticks × tick_size / 10^quote_decimals, a size is lots × lot_size / 10^base_decimals.
  Parsing is exact (no floats): a price off the tick or a size off the lot is an error.
"""

from state.amounts import AmountError, format_amount, parse_amount
from state.errors import Code, TxError
from state.kv import KVView
from state.markets import SPOT, Market, list_markets

SPOT_ASSET_OFFSET = 10_000
ETH_ACCOUNT_PREFIX = bytes(12)


def perp_universe(view: KVView) -> list[Market]:
    """The perp-like markets in asset-id order (index = Hyperliquid perp asset id)."""
    return [m for m in list_markets(view) if m.perp_like]


def spot_universe(view: KVView) -> list[Market]:
    """The spot markets in spot-index order (asset id = SPOT_ASSET_OFFSET + index)."""
    return [m for m in list_markets(view) if m.kind == SPOT]


def market_for_asset(view: KVView, asset: int) -> Market:
    """The market of a Hyperliquid asset id; TxError UNKNOWN_MARKET otherwise."""
    if type(asset) is int and asset >= SPOT_ASSET_OFFSET:
        universe, index = spot_universe(view), asset - SPOT_ASSET_OFFSET
    else:
        universe, index = perp_universe(view), asset
    if type(index) is not int or not 0 <= index < len(universe):
        raise TxError(Code.UNKNOWN_MARKET,
                      f"unknown asset {asset!r}: perp assets are 0..{len(perp_universe(view)) - 1}, "
                      f"spot assets {SPOT_ASSET_OFFSET}.. (meta / spotMeta universe order)")
    return universe[index]


def asset_of_market(view: KVView, market_id: int) -> int | None:
    """The Hyperliquid asset id of a market, or None if there is no such market."""
    for i, m in enumerate(perp_universe(view)):
        if m.id == market_id:
            return i
    for i, m in enumerate(spot_universe(view)):
        if m.id == market_id:
            return SPOT_ASSET_OFFSET + i
    return None


# -- accounts ------------------------------------------------------------------------------

def eth_account(address20: bytes) -> bytes:
    """The perpchain account (32 bytes) of an Ethereum address (20 bytes)."""
    if type(address20) is not bytes or len(address20) != 20:
        raise TxError(Code.INVALID_FIELD, "an Ethereum address is 20 bytes")
    return ETH_ACCOUNT_PREFIX + address20


def eth_address_of(account: bytes) -> bytes | None:
    """The 20-byte Ethereum address of a perpchain account, or None for an Ed25519 account."""
    if len(account) == 32 and account[:12] == ETH_ACCOUNT_PREFIX:
        return account[12:]
    return None


# -- decimal wire numbers ------------------------------------------------------------------

def sz_decimals(m: Market) -> int:
    """Hyperliquid's szDecimals: the decimal places a size needs (those of one lot)."""
    lot, places = m.lot_size, m.base_decimals
    while places > 0 and lot % 10 == 0:
        lot //= 10
        places -= 1
    return places


def price_text(m: Market, ticks: int) -> str:
    return format_amount(ticks * m.tick_size, m.quote_decimals)


def size_text(m: Market, lots: int) -> str:
    return format_amount(lots * m.lot_size, m.base_decimals)


def _exact(text, decimals: int, unit: int, what: str, code: Code) -> int:
    try:
        quantums = parse_amount(text, decimals)
    except AmountError as e:
        raise TxError(Code.INVALID_AMOUNT, f"{what}: {e}") from None
    if quantums % unit:
        raise TxError(code, f"{what} {text!r} is not a multiple of {format_amount(unit, decimals)}")
    return quantums // unit


def ticks_of(m: Market, text: str) -> int:
    """A decimal price string in whole quote units -> ticks; TxError if not exact."""
    return _exact(text, m.quote_decimals, m.tick_size, f"{m.symbol} price", Code.INVALID_TICK)


def lots_of(m: Market, text: str) -> int:
    """A decimal size string in whole base units -> lots; TxError if not exact."""
    return _exact(text, m.base_decimals, m.lot_size, f"{m.symbol} size", Code.INVALID_LOT)
