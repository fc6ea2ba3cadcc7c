"""Mark prices: median(oracle, impact mid of the book, oracle + EMA of the basis).

What this module owns
---------------------
`mark/<m>` -> [mark_price, ema_basis, time_ms] for every perp market with an oracle price,
recomputed once at the end of each block (`update_marks`), after the oracle step:

* impact bid / ask: the average price (price units, floored) of selling / buying
  `impact_notional` quote quantums into the book; if either side is too thin, the book term is
  the oracle price itself, so a thin book can never move the mark.
* basis sample = impact mid - oracle (0 without a book term); the EMA moves toward it with the
  block's elapsed time: ema' = floor((ema * tau + sample * dt) / (tau + dt)), tau = mark_ema_ms.
* mark = the median of the three terms. Margin, unrealised PnL and triggers all use it.
"""

from state.book import OrderBook, Side
from state.codec import encode, load
from state.kv import KVView, Overlay
from state.margin import P_MARK
from state.markets import Market


def impact_price(book: OrderBook, m: Market, side: Side) -> int | None:
    """Average price of trading `m.impact_notional` against `side` of the book, or None."""
    need = m.impact_notional
    lots = tl = 0
    for level in book.levels(side):
        per_lot = level.price_ticks * m.q
        take = level.size_lots
        if take * per_lot >= need:
            take = -(-need // per_lot)
        lots += take
        tl += take * level.price_ticks
        need -= take * per_lot
        if need <= 0:
            return tl * m.tick_size // lots
    return None


def impact_mid(book: OrderBook, m: Market) -> int | None:
    bid = impact_price(book, m, Side.BUY)
    ask = impact_price(book, m, Side.SELL)
    if bid is None or ask is None:
        return None
    return (bid + ask) // 2


def read(view: KVView, m: Market) -> tuple[int, int, int] | None:
    raw = view.get(P_MARK + m.id.to_bytes(4, "big"))
    return None if raw is None else tuple(load(raw))


def compute(prev: tuple[int, int, int] | None, oracle_px: int, mid: int | None, now_ms: int,
            tau_ms: int) -> tuple[int, int, int]:
    """The new (mark, ema_basis, time) from the previous record and this block's inputs."""
    sample = 0 if mid is None else mid - oracle_px
    if prev is None:
        ema = sample
    else:
        dt = max(now_ms - prev[2], 0)
        ema = (prev[1] * tau_ms + sample * dt) // (tau_ms + dt)
    book_term = oracle_px if mid is None else mid
    mark = sorted((oracle_px, book_term, oracle_px + ema))[1]
    return max(mark, 1), ema, now_ms


def update_mark(view: Overlay, m: Market, book: OrderBook, oracle_px: int, now_ms: int,
                tau_ms: int) -> int:
    rec = compute(read(view, m), oracle_px, impact_mid(book, m), now_ms, tau_ms)
    view.put(P_MARK + m.id.to_bytes(4, "big"), encode(list(rec)))
    return rec[0]
