"""The events of trading, and the text of their numbers.

Every attribute value is a string; amounts are decimal strings in asset units
(`state.amounts.format_amount`): prices in the quote asset, sizes in the market's base asset,
fees and PnL in quote quantums. Attribute names and order are part of the block results (and
so of `last_results_hash`): change one only with a consensus change, and document it in
docs/PROTOCOL.md.

Memos (speed only): prices, sizes, fees and addresses repeat a lot in a busy market, and a fill
has nine amounts and two addresses. A `PairMemo` holds ready (name, text) attribute pairs by
their integer (or address) key, so each pair is one dict lookup; `MarketText` holds those of
market (its texts are a pure function of the market's symbol, tick and lot sizes and decimals,
so every Market object with the same ones shares them: the block's and the mempool's; a market
changed by governance gets its own). Every memo is bounded (`_MAX_PAIRS`, `_MAX_MARKETS`).
"""

from state.amounts import format_amount
from state.events import Event
from state.markets import Market
from state.orders import KIND_NAMES, TIF_NAMES, OrderRecord

_MAX_PAIRS = 2048  # per memo: a full memo starts afresh


class PairMemo(dict):
    """`memo[key]` is the attribute pair (name, text(key)): a bounded memo of a pure function."""

    __slots__ = ("name", "text")

    def __init__(self, name: str, text) -> None:
        super().__init__()
        self.name = name
        self.text = text

    def __missing__(self, key) -> tuple[str, str]:
        if len(self) >= _MAX_PAIRS:
            self.clear()
        pair = self[key] = (self.name, self.text(key))
        return pair


class MarketText:
    """The texts of one Market's amounts: `price_text(ticks)`, `size_text(lots)` and
    `quote_text(quantums)`, and memos of the attribute pairs events make of them."""

    __slots__ = ("price_text", "size_text", "quote_text", "symbol", "price", "size",
                 "filled", "remaining", "maker_remaining", "taker_fee", "maker_fee",
                 "taker_pnl", "maker_pnl")

    def __init__(self, m: Market) -> None:
        tick, lot, qd, bd = m.tick_size, m.lot_size, m.quote_decimals, m.base_decimals

        def price_text(ticks: int) -> str:
            return format_amount(ticks * tick, qd)

        def size_text(lots: int) -> str:
            return format_amount(lots * lot, bd)

        def quote_text(quantums: int) -> str:
            return format_amount(quantums, qd)

        self.price_text, self.size_text, self.quote_text = price_text, size_text, quote_text
        self.symbol = ("market", m.symbol)
        self.price = PairMemo("price", price_text)
        self.size = PairMemo("size", size_text)
        self.filled = PairMemo("filled", size_text)
        self.remaining = PairMemo("remaining", size_text)
        self.maker_remaining = PairMemo("maker_remaining", size_text)
        self.taker_fee = PairMemo("taker_fee", quote_text)
        self.maker_fee = PairMemo("maker_fee", quote_text)
        self.taker_pnl = PairMemo("taker_pnl", quote_text)
        self.maker_pnl = PairMemo("maker_pnl", quote_text)


_MAX_MARKETS = 256
_TEXTS: dict[tuple, MarketText] = {}   # (symbol, tick, lot, decimals) -> its texts
_LAST: dict[int, tuple[Market, MarketText]] = {}  # market id -> the last Market asked, its texts


def market_text(m: Market) -> MarketText:
    """The texts of market `m`: one dict lookup when `m` is the Market last asked for its id."""
    hit = _LAST.get(m.id)
    if hit is not None and hit[0] is m:
        return hit[1]
    key = (m.symbol, m.tick_size, m.lot_size, m.quote_decimals, m.base_decimals)
    t = _TEXTS.get(key)
    if t is None:
        if len(_TEXTS) >= _MAX_MARKETS:
            _TEXTS.clear()
        t = _TEXTS[key] = MarketText(m)
    if len(_LAST) >= _MAX_MARKETS:
        _LAST.clear()
    _LAST[m.id] = (m, t)
    return t


def price_text(m: Market, ticks: int) -> str:
    return market_text(m).price_text(ticks)


def size_text(m: Market, lots: int) -> str:
    return market_text(m).size_text(lots)


def quote_text(m: Market, quantums: int) -> str:
    return market_text(m).quote_text(quantums)


_OWNERS = PairMemo("owner", bytes.hex)
_TAKERS = PairMemo("taker", bytes.hex)
_MAKERS = PairMemo("maker", bytes.hex)
_CLOIDS = PairMemo("cloid", str)  # client ids: most orders have none (0)
_TAKER_CLOIDS = PairMemo("taker_cloid", str)
_MAKER_CLOIDS = PairMemo("maker_cloid", str)
_SIDES = {True: ("side", "buy"), False: ("side", "sell")}
_TAKER_SIDES = {True: ("taker_side", "buy"), False: ("taker_side", "sell")}
_KINDS = tuple(("kind", name) for name in KIND_NAMES)
_TIFS = tuple(("tif", name) for name in TIF_NAMES)
_STATUSES = PairMemo("status", str)


def order_attrs(m: Market, o: OrderRecord) -> tuple:
    """What every `order` event says of the order."""
    return _order_attrs(market_text(m), o)


def _order_attrs(t: MarketText, o: OrderRecord) -> tuple:
    return (("order_id", str(o.id)), t.symbol, _OWNERS[o.owner], _SIDES[o.is_buy],
            _KINDS[o.kind], _TIFS[o.tif], t.price[o.price_ticks], t.size[o.orig_lots],
            _CLOIDS[o.cloid])


def order_event(m: Market, o: OrderRecord, status: str, filled_lots: int,
                remaining_lots: int) -> Event:
    """A live order was matched: `status` is open, partially_filled_open, filled,
    partially_filled_cancelled or cancelled_unfilled."""
    t = market_text(m)
    return Event("order", _order_attrs(t, o) + (
        _STATUSES[status], t.filled[filled_lots], t.remaining[remaining_lots]))


def waiting_trigger_event(m: Market, o: OrderRecord) -> Event:
    return Event("order", order_attrs(m, o) + (
        ("status", "waiting_trigger"), ("trigger_price", price_text(m, o.trigger_ticks))))


def modified_in_place_event(m: Market, o: OrderRecord) -> Event:
    return Event("order", order_attrs(m, o) + (
        ("status", "modified_in_place"), market_text(m).remaining[o.size_lots]))


def fill_event(m: Market, taker: OrderRecord, maker_order_id: int, maker: bytes,
               maker_cloid: int, price_ticks: int, size_lots: int, maker_left_lots: int,
               s) -> Event:
    """One fill; `s`: its `settlement.Settled` amounts (quote quantums)."""
    t = market_text(m)
    return Event("fill", (
        t.symbol, t.price[price_ticks], t.size[size_lots], _TAKERS[taker.owner],
        _MAKERS[maker], _TAKER_SIDES[taker.is_buy],
        ("taker_order_id", str(taker.id)), ("maker_order_id", str(maker_order_id)),
        _TAKER_CLOIDS[taker.cloid], _MAKER_CLOIDS[maker_cloid],
        t.taker_fee[s.taker_fee], t.maker_fee[s.maker_fee],
        t.taker_pnl[s.taker_pnl], t.maker_pnl[s.maker_pnl],
        t.maker_remaining[maker_left_lots]))


def cancel_event(m: Market, o: OrderRecord, reason: str) -> Event:
    t = market_text(m)
    return Event("cancel", (("order_id", str(o.id)), t.symbol, _OWNERS[o.owner],
                            _CLOIDS[o.cloid], t.remaining[o.size_lots],
                            ("reason", reason)))


def trigger_event(m: Market, o: OrderRecord, mark: int) -> Event:
    t = market_text(m)
    return Event("trigger", (("order_id", str(o.id)), t.symbol, _OWNERS[o.owner],
                             ("trigger_price", t.price_text(o.trigger_ticks)),
                             ("mark", t.quote_text(mark))))
