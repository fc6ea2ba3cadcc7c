"""The events of trading, and the text of their numbers.

Every attribute value is a string; amounts are decimal strings in asset units
(`state.amounts.format_amount`): prices in the quote asset, sizes in the market's base asset,
fees and PnL in quote quantums. Attribute names and order are part of the block results (and
so of `last_results_hash`): change one only with a consensus change, and document it in
docs/PROTOCOL.md.

`amount_text` is `format_amount` memoised, and `amount_pair` the (name, text) attribute pair
of an amount: pure functions, so the memos change only speed (prices, sizes and fees repeat a
lot in a busy market, and a fill has nine amounts).
"""

from functools import lru_cache

from state.amounts import format_amount
from state.events import Event
from state.markets import Market
from state.orders import KIND_NAMES, TIF_NAMES, OrderRecord


@lru_cache(maxsize=1 << 16)
def amount_text(quantums: int, decimals: int) -> str:
    return format_amount(quantums, decimals)


@lru_cache(maxsize=1 << 17)
def amount_pair(name: str, quantums: int, decimals: int) -> tuple[str, str]:
    """The attribute (name, amount_text(quantums, decimals))."""
    return (name, format_amount(quantums, decimals))


def price_text(m: Market, ticks: int) -> str:
    return amount_text(ticks * m.tick_size, m.quote_decimals)


def size_text(m: Market, lots: int) -> str:
    return amount_text(lots * m.lot_size, m.base_decimals)


def quote_text(m: Market, quantums: int) -> str:
    return amount_text(quantums, m.quote_decimals)


_SIDES = {True: ("side", "buy"), False: ("side", "sell")}
_TAKER_SIDES = {True: ("taker_side", "buy"), False: ("taker_side", "sell")}
_KINDS = tuple(("kind", name) for name in KIND_NAMES)
_TIFS = tuple(("tif", name) for name in TIF_NAMES)


def order_attrs(m: Market, o: OrderRecord) -> tuple:
    """What every `order` event says of the order."""
    return (("order_id", str(o.id)), ("market", m.symbol), ("owner", o.owner.hex()),
            _SIDES[o.is_buy], _KINDS[o.kind], _TIFS[o.tif],
            amount_pair("price", o.price_ticks * m.tick_size, m.quote_decimals),
            amount_pair("size", o.orig_lots * m.lot_size, m.base_decimals),
            ("cloid", str(o.cloid)))


def order_event(m: Market, o: OrderRecord, status: str, filled_lots: int,
                remaining_lots: int) -> Event:
    """A live order was matched: `status` is open, partially_filled_open, filled,
    partially_filled_cancelled or cancelled_unfilled."""
    return Event("order", order_attrs(m, o) + (
        ("status", status), amount_pair("filled", filled_lots * m.lot_size, m.base_decimals),
        amount_pair("remaining", remaining_lots * m.lot_size, m.base_decimals)))


def waiting_trigger_event(m: Market, o: OrderRecord) -> Event:
    return Event("order", order_attrs(m, o) + (
        ("status", "waiting_trigger"), ("trigger_price", price_text(m, o.trigger_ticks))))


def modified_in_place_event(m: Market, o: OrderRecord) -> Event:
    return Event("order", order_attrs(m, o) + (
        ("status", "modified_in_place"), ("remaining", size_text(m, o.size_lots))))


def fill_event(m: Market, taker: OrderRecord, maker_order_id: int, maker: bytes,
               maker_cloid: int, price_ticks: int, size_lots: int, maker_left_lots: int,
               s) -> Event:
    """One fill; `s`: its `settlement.Settled` amounts (quote quantums)."""
    qd, bd, lot = m.quote_decimals, m.base_decimals, m.lot_size
    return Event("fill", (
        ("market", m.symbol), amount_pair("price", price_ticks * m.tick_size, qd),
        amount_pair("size", size_lots * lot, bd), ("taker", taker.owner.hex()),
        ("maker", maker.hex()), _TAKER_SIDES[taker.is_buy],
        ("taker_order_id", str(taker.id)), ("maker_order_id", str(maker_order_id)),
        ("taker_cloid", str(taker.cloid)), ("maker_cloid", str(maker_cloid)),
        amount_pair("taker_fee", s.taker_fee, qd), amount_pair("maker_fee", s.maker_fee, qd),
        amount_pair("taker_pnl", s.taker_pnl, qd), amount_pair("maker_pnl", s.maker_pnl, qd),
        amount_pair("maker_remaining", maker_left_lots * lot, bd)))


def cancel_event(m: Market, o: OrderRecord, reason: str) -> Event:
    return Event("cancel", (("order_id", str(o.id)), ("market", m.symbol),
                            ("owner", o.owner.hex()), ("cloid", str(o.cloid)),
                            amount_pair("remaining", o.size_lots * m.lot_size, m.base_decimals),
                            ("reason", reason)))


def trigger_event(m: Market, o: OrderRecord, mark: int) -> Event:
    return Event("trigger", (("order_id", str(o.id)), ("market", m.symbol),
                             ("owner", o.owner.hex()),
                             ("trigger_price", price_text(m, o.trigger_ticks)),
                             ("mark", amount_text(mark, m.quote_decimals))))
