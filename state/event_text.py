"""The events of trading, and the text of their numbers.

Every attribute value is a string; amounts are decimal strings in asset units
(`state.amounts.format_amount`): prices in the quote asset, sizes in the market's base asset,
fees and PnL in quote quantums. Attribute names and order are part of the block results (and
so of `last_results_hash`): change one only with a consensus change, and document it in
docs/PROTOCOL.md.

`amount_text` is `format_amount` memoised: a pure function, so the memo changes only speed
(prices, sizes and fees repeat a lot in a busy market).
"""

from functools import lru_cache

from state.amounts import format_amount
from state.events import Event
from state.markets import Market
from state.orders import KIND_NAMES, TIF_NAMES, OrderRecord


@lru_cache(maxsize=1 << 16)
def amount_text(quantums: int, decimals: int) -> str:
    return format_amount(quantums, decimals)


def price_text(m: Market, ticks: int) -> str:
    return amount_text(ticks * m.tick_size, m.quote_decimals)


def size_text(m: Market, lots: int) -> str:
    return amount_text(lots * m.lot_size, m.base_decimals)


def quote_text(m: Market, quantums: int) -> str:
    return amount_text(quantums, m.quote_decimals)


def _side(is_buy: bool) -> str:
    return "buy" if is_buy else "sell"


def order_attrs(m: Market, o: OrderRecord) -> tuple:
    """What every `order` event says of the order."""
    return (("order_id", str(o.id)), ("market", m.symbol), ("owner", o.owner.hex()),
            ("side", _side(o.is_buy)), ("kind", KIND_NAMES[o.kind]), ("tif", TIF_NAMES[o.tif]),
            ("price", price_text(m, o.price_ticks)), ("size", size_text(m, o.orig_lots)),
            ("cloid", str(o.cloid)))


def order_event(m: Market, o: OrderRecord, status: str, filled_lots: int,
                remaining_lots: int) -> Event:
    """A live order was matched: `status` is open, partially_filled_open, filled,
    partially_filled_cancelled or cancelled_unfilled."""
    return Event("order", order_attrs(m, o) + (
        ("status", status), ("filled", size_text(m, filled_lots)),
        ("remaining", size_text(m, remaining_lots))))


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
    return Event("fill", (
        ("market", m.symbol), ("price", price_text(m, price_ticks)),
        ("size", size_text(m, size_lots)), ("taker", taker.owner.hex()),
        ("maker", maker.hex()), ("taker_side", _side(taker.is_buy)),
        ("taker_order_id", str(taker.id)), ("maker_order_id", str(maker_order_id)),
        ("taker_cloid", str(taker.cloid)), ("maker_cloid", str(maker_cloid)),
        ("taker_fee", quote_text(m, s.taker_fee)), ("maker_fee", quote_text(m, s.maker_fee)),
        ("taker_pnl", quote_text(m, s.taker_pnl)), ("maker_pnl", quote_text(m, s.maker_pnl)),
        ("maker_remaining", size_text(m, maker_left_lots))))


def cancel_event(m: Market, o: OrderRecord, reason: str) -> Event:
    return Event("cancel", (("order_id", str(o.id)), ("market", m.symbol),
                            ("owner", o.owner.hex()), ("cloid", str(o.cloid)),
                            ("remaining", size_text(m, o.size_lots)), ("reason", reason)))


def trigger_event(m: Market, o: OrderRecord, mark: int) -> Event:
    return Event("trigger", (("order_id", str(o.id)), ("market", m.symbol),
                             ("owner", o.owner.hex()),
                             ("trigger_price", price_text(m, o.trigger_ticks)),
                             ("mark", amount_text(mark, m.quote_decimals))))
