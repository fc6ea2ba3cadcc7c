"""Hyperliquid's wire shapes for perpchain things: coin names, users, numbers, orders, fills.

Shared by the `/info` answers (rpc/hl_info.py) and the `/ws` messages (rpc/hl_ws.py), so
both say the same thing the same way. Asset ids, 0x accounts and price/size texts follow
state/hl_universe.py; this module adds only what is Hyperliquid *display*:

* Coin names: a perpetual is named by its base asset ("BTC"), unless two perp-like markets
  share that base, then by its symbol; a dated future by its symbol ("BTC-FUT"); a spot
  market by its symbol ("BTC/USDC"). `meta.universe` / `spotMeta.universe` carry them.
* Users: "0x" + 40 hex is an Ethereum address (the account `eth_account(address)`); "0x" +
  64 hex names an Ed25519 account directly (a perpchain extension). Answers echo users in
  lower case, as the SDK routes websocket messages by the lower-cased `data.user`.
* Numbers are exact decimal strings; a whole number keeps one decimal ("60000.0"), as
  Hyperliquid prints it. Client order ids print as 16-byte hex ("0x" + 32 hex digits).
* Errors: `HLError(status, code, msg)` becomes an HTTP 4xx with the JSON body
  {"code": ..., "msg": ..., "data": null} that the SDK's API._handle_exception reads.
"""

import hashlib
from decimal import Decimal

from node.read_model import Fill
from state import hl_tpsl, markets as MS, params
from state.amounts import AmountError, format_amount, parse_amount
from state.hl_universe import SPOT_ASSET_OFFSET, eth_account, eth_address_of
from state import orders as O

ZERO_HASH = "0x" + "00" * 32
_ORDER_TYPES = ("Limit", "Market", "Stop Market", "Stop Limit", "Take Profit Market",
                "Take Profit Limit")
_TIFS = ("Gtc", "Ioc", "FrontendMarket", "Alo")   # native gtc, ioc, fok, alo


class HLError(Exception):
    """A request the façade refuses: HTTP `status` with {"code", "msg"}."""

    def __init__(self, status: int, code: str, msg: str):
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg

    def body(self) -> dict:
        return {"code": self.code, "msg": self.msg, "data": None}


def bad(code: str, msg: str) -> HLError:
    return HLError(400, code, msg)


# -- numbers -----------------------------------------------------------------------------

def num(text: str) -> str:
    """A decimal string as Hyperliquid prints it: "60000" -> "60000.0"."""
    return text if "." in text else text + ".0"


def amt(quantums: int, decimals: int) -> str:
    return num(format_amount(quantums, decimals))


def dec_text(d: Decimal, places: int = 8) -> str:
    """A Decimal rounded to `places` (display only, e.g. returnOnEquity)."""
    q = d.quantize(Decimal(1).scaleb(-places))
    text = format(q.normalize(), "f")
    return num("0" if text in ("-0", "0") else text)


def field(body: dict, name: str, required: bool = True):
    """A request body's field (missing_field if required and absent)."""
    v = body.get(name)
    if v is None and required:
        raise bad("missing_field", f"info type {body.get('type')!r} needs field {name!r}")
    return v


def ms_field(body: dict, name: str, required: bool) -> int | None:
    """A request body's time field in milliseconds (invalid_field unless an int >= 0)."""
    v = field(body, name, required)
    if v is None:
        return None
    if type(v) is not int or v < 0:
        raise bad("invalid_field", f"{name} must be a non-negative integer of milliseconds")
    return v


# -- users ---------------------------------------------------------------------------------

def parse_user(v) -> bytes:
    """The perpchain account of a request's `user`."""
    if isinstance(v, str) and v[:2] in ("0x", "0X"):
        h = v[2:]
        try:
            raw = bytes.fromhex(h) if all(c in "0123456789abcdefABCDEF" for c in h) else b""
        except ValueError:
            raw = b""
        if len(raw) == 20 and len(h) == 40:
            return eth_account(raw)
        if len(raw) == 32 and len(h) == 64:
            return raw
    raise bad("invalid_user", f"user must be an address: 0x + 40 hex digits (Ethereum) or "
              f"0x + 64 hex digits (an Ed25519 account), got {str(v)[:80]!r}")


def user_text(account: bytes) -> str:
    a20 = eth_address_of(account)
    return "0x" + (a20 if a20 is not None else account).hex()


def cloid_text(cloid: int) -> str | None:
    return None if not cloid else f"0x{cloid:032x}"


# -- coins ---------------------------------------------------------------------------------

class Universe:
    """The markets of one committed state under their Hyperliquid names and asset ids."""

    def __init__(self, view):
        self.view = view
        markets = MS.list_markets(view)
        self.perps = [m for m in markets if m.perp_like]
        self.spots = [m for m in markets if m.kind == MS.SPOT]
        bases = [m.base for m in self.perps if m.kind == MS.PERP]
        self.name: dict[int, str] = {}
        for m in self.perps:
            unique = m.kind == MS.PERP and bases.count(m.base) == 1
            self.name[m.id] = m.base if unique else m.symbol
        for m in self.spots:
            self.name[m.id] = m.symbol
        self.by_name = {n: mid for mid, n in self.name.items()}
        self.by_symbol = {m.symbol: m for m in markets}
        self.markets = {m.id: m for m in markets}
        self.quote = params.quote_asset(view)
        self.qdec = params.asset_decimals(view, self.quote)

    def market(self, coin) -> MS.Market:
        """The market of a coin name (or "@<spot index>")."""
        if isinstance(coin, str):
            mid = self.by_name.get(coin)
            if mid is not None:
                return self.markets[mid]
            if coin.startswith("@") and coin[1:].isdigit() and int(coin[1:]) < len(self.spots):
                return self.spots[int(coin[1:])]
        raise bad("unknown_coin", f"unknown coin {str(coin)[:40]!r}; coins: "
                  + ", ".join(self.name[m.id] for m in self.perps + self.spots))

    def coin_of_symbol(self, symbol: str) -> str | None:
        m = self.by_symbol.get(symbol)
        return None if m is None else self.name[m.id]

    def asset(self, m: MS.Market) -> int:
        if m.perp_like:
            return self.perps.index(m)
        return SPOT_ASSET_OFFSET + self.spots.index(m)


def token_names(uni: Universe) -> list[str]:
    """Token index order: the quote asset first (USDC is token 0 on Hyperliquid), then the
    other assets by symbol."""
    return [uni.quote] + [a for a in params.list_assets(uni.view) if a != uni.quote]


def px_of(m: MS.Market, ticks: int) -> str:
    return amt(ticks * m.tick_size, m.quote_decimals)


def sz_of(m: MS.Market, lots: int) -> str:
    return amt(lots * m.lot_size, m.base_decimals)


def levels_json(m: MS.Market, book, depth: int) -> list[list[dict]]:
    """[bids, asks] of `book`, best first, as l2Book levels."""
    bids, asks = book.l2_snapshot(depth)
    row = (lambda lv: {"px": px_of(m, lv.price_ticks), "sz": sz_of(m, lv.size_lots),
                       "n": lv.order_count})
    return [[row(lv) for lv in bids], [row(lv) for lv in asks]]


def mid_text(m: MS.Market, book) -> str | None:
    """The mid of the book's best bid and ask (one more decimal when it falls between
    ticks); None unless both sides have orders."""
    bid, ask = book.best_bid(), book.best_ask()
    if bid is None or ask is None:
        return None
    return num(format_amount((bid + ask) * m.tick_size * 5, m.quote_decimals + 1))


# -- orders --------------------------------------------------------------------------------

def order_json(uni: Universe, m: MS.Market, o: O.OrderRecord) -> dict:
    """An `openOrders` row (also the `order` of orderUpdates)."""
    out = {"coin": uni.name[m.id], "side": "B" if o.is_buy else "A",
           "limitPx": px_of(m, o.price_ticks), "sz": sz_of(m, o.size_lots), "oid": o.id,
           "timestamp": o.placed_ms, "origSz": sz_of(m, o.orig_lots)}
    if o.cloid:
        out["cloid"] = cloid_text(o.cloid)
    return out


def _children(uni: Universe, m: MS.Market, o: O.OrderRecord) -> list[dict]:
    """The tp/sl of a normalTpsl group waiting for parent `o` (state.hl_tpsl), as rows with
    oid 0 (they have none yet) and the parent's size."""
    group = hl_tpsl.group(uni.view, m.id, o.id)
    if group is None:
        return []
    return [frontend_order_json(uni, m, O.OrderRecord(
        0, m.id, o.owner, is_buy, kind, price // m.tick_size, o.orig_lots, o.orig_lots, tif,
        reduce_only, trigger // m.tick_size, cloid, 0, o.placed_ms))
        for _, is_buy, kind, price, _, tif, reduce_only, trigger, cloid, _ in group[1]]


def frontend_order_json(uni: Universe, m: MS.Market, o: O.OrderRecord) -> dict:
    """A `frontendOpenOrders` row."""
    trigger = o.kind in O.TRIGGER_KINDS
    cond = "N/A"
    if trigger:
        up = O.fire_direction(o.kind, o.is_buy) == O.FIRE_UP
        cond = f"Price {'above' if up else 'below'} {px_of(m, o.trigger_ticks)}"
    out = order_json(uni, m, o)
    whole = trigger and o.id != 0 and hl_tpsl.whole_position(uni.view, m.id, o.id)
    out.update(children=[] if trigger else _children(uni, m, o), isPositionTpsl=whole,
               isTrigger=trigger,
               orderType=_ORDER_TYPES[o.kind], reduceOnly=o.reduce_only,
               tif=None if trigger else _TIFS[o.tif], triggerCondition=cond,
               triggerPx=px_of(m, o.trigger_ticks) if trigger else "0.0")
    out.setdefault("cloid", None)
    return out


# -- fills ---------------------------------------------------------------------------------

def tid(f: Fill) -> int:
    """A trade id: the same on every node, unique per fill (< 2^53 for JSON readers)."""
    key = f"{f.height}:{f.index}:{f.attr('taker_order_id')}:{f.attr('maker_order_id')}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:6], "big")


class TxHashes:
    """Tx hashes by (height, index), read from the stored blocks once per height."""

    def __init__(self, store):
        self.store, self.memo = store, {}

    def __call__(self, height: int, index: int) -> str:
        hashes = self.memo.get(height)
        if hashes is None:
            from consensus.types import Block
            raw = self.store.block_bytes(height)
            hashes = () if raw is None else Block.decode(raw).tx_hashes
            self.memo[height] = hashes
        return "0x" + hashes[index].hex() if index < len(hashes) else ZERO_HASH


def fill_size(m: MS.Market, f: Fill) -> int:
    """The fill's size in base quantums."""
    return parse_amount(f.attr("size"), m.base_decimals)


def account_bought(f: Fill, account_hex: str) -> bool:
    taker_buy = f.attr("taker_side") == "buy"
    return taker_buy if f.attr("taker") == account_hex else not taker_buy


def direction(m: MS.Market, start: int, delta: int) -> str:
    """Hyperliquid's `dir` of a fill moving a position from `start` by `delta`."""
    if m.kind == MS.SPOT:
        return "Buy" if delta > 0 else "Sell"
    end = start + delta
    if start == 0 or (start > 0) == (delta > 0):
        return "Open Long" if delta > 0 else "Open Short"
    if start * end < 0:
        return "Long > Short" if start > 0 else "Short > Long"
    return "Close Long" if start > 0 else "Close Short"


def fill_json(uni: Universe, f: Fill, account_hex: str, start: int, tx_hash: str) -> dict:
    """A userFills row for the account (`start`: its position before, base quantums)."""
    m = uni.by_symbol[f.attr("market")]
    taker = f.attr("taker") == account_hex
    bought = account_bought(f, account_hex)
    size = fill_size(m, f)
    role = "taker" if taker else "maker"
    out = {"coin": uni.name[m.id], "px": num(f.attr("price")), "sz": num(f.attr("size")),
           "side": "B" if bought else "A", "time": f.time_ms,
           "startPosition": amt(start, m.base_decimals),
           "dir": direction(m, start, size if bought else -size),
           "closedPnl": num(f.attr(f"{role}_pnl")), "hash": tx_hash,
           "oid": int(f.attr(f"{role}_order_id")), "crossed": taker,
           "fee": num(f.attr(f"{role}_fee")), "tid": tid(f), "feeToken": uni.quote}
    cloid = int(f.attr(f"{role}_cloid") or 0)
    if cloid:
        out["cloid"] = cloid_text(cloid)
    return out


def trade_json(uni: Universe, f: Fill, tx_hash: str) -> dict:
    """A `trades` websocket row: side is the taker's; users are [buyer, seller]."""
    m = uni.by_symbol[f.attr("market")]
    taker_buy = f.attr("taker_side") == "buy"
    taker, maker = f.attr("taker"), f.attr("maker")
    buyer, seller = (taker, maker) if taker_buy else (maker, taker)
    return {"coin": uni.name[m.id], "side": "B" if taker_buy else "A",
            "px": num(f.attr("price")), "sz": num(f.attr("size")), "time": f.time_ms,
            "hash": tx_hash, "tid": tid(f),
            "users": [user_text(bytes.fromhex(buyer)), user_text(bytes.fromhex(seller))]}


def quantums(text: str, decimals: int) -> int:
    try:
        return parse_amount(text, decimals)
    except AmountError:
        return 0
