"""An account's clearinghouse record: perp positions, open-order aggregates, leverage, volume.

What this module owns
---------------------
One record per account at `clr/<addr32>`:

    [[[market, size_lots, entry_tl, leverage, buy_lots, buy_tl, sell_lots, sell_tl, orders
       (, funding_index (, isolated, iso_margin))], ...],
     [[day, volume_quantums], ...]]

* `size_lots` is signed (long > 0). `entry_tl` is the signed cost basis in tick-lots
  (sum of price_ticks * size_lots of the open position; its sign is the position's), so the
  average entry price is |entry_tl| / |size_lots| ticks and notionals stay exact integers.
* `leverage` is the account's chosen leverage on the market (0 = the market's max).
* `buy_lots`/`buy_tl`, `sell_lots`/`sell_tl`: totals of the account's resting orders on the
  market (remaining lots and lots*price), so the margin check counts open orders at their worst
  case without walking them; `orders` counts resting and waiting trigger orders.
* `funding_index`: the market's funding index at which the position last settled
  (state.funding_index); stored only for an open position on a market whose index is not 0
  (or as 0 before the isolated fields).
* `isolated` (1: the market is in isolated margin mode, state.isolated) and `iso_margin` (the
  isolated position's own margin, quote quantums, signed) are stored only when `isolated` is 1:
  an account that never chose isolated margin keeps its entries byte for byte.
* The volume list holds one bucket per day (block time // DAY_MS) of maker + taker notional,
  at most FEE_VOLUME_DAYS + 1 of them, ascending.

Entries are kept sorted by market id and dropped when every field is zero.

Realised PnL (`apply_trade`): reducing a position by c lots removes the basis
entry_tl * c / |size| (truncated toward zero; the remainder stays in the basis, so a position's
lifetime PnL is exact) and realises (sign(size) * c * price - removed) tick-lots. Whatever the
rounding, balance - entry_tl * q changes by exactly -(signed lots * price * q) per trade, which is
what makes money conservation exact (tests/property).
"""

from dataclasses import dataclass

from state import constants as C
from state.codec import load
from state.kv import KVView, Overlay

P_CLEARING = b"clr/"


@dataclass(slots=True)
class Entry:
    """One market of one account (mutable inside a sub-transaction; the ledger writes it back)."""
    market: int
    size: int = 0
    entry_tl: int = 0
    leverage: int = 0
    buy_lots: int = 0
    buy_tl: int = 0
    sell_lots: int = 0
    sell_tl: int = 0
    orders: int = 0
    funding_index: int = 0   # the market's funding index the position last settled at
    isolated: int = 0        # 1: isolated margin mode (state.isolated)
    iso_margin: int = 0      # the isolated position's margin, quote quantums

    def to_stored(self) -> list:
        out = [self.market, self.size, self.entry_tl, self.leverage, self.buy_lots,
               self.buy_tl, self.sell_lots, self.sell_tl, self.orders]
        if self.isolated:
            out += [self.funding_index if self.size else 0, self.isolated, self.iso_margin]
        elif self.size and self.funding_index:
            out.append(self.funding_index)
        return out

    def empty(self) -> bool:
        return not (self.size or self.entry_tl or self.leverage or self.buy_lots or
                    self.sell_lots or self.orders or self.isolated or self.iso_margin)

    def add_open(self, is_buy: bool, lots: int, price_ticks: int) -> None:
        """`lots` more of a resting order at `price_ticks` count against this market."""
        if is_buy:
            self.buy_lots += lots
            self.buy_tl += lots * price_ticks
        else:
            self.sell_lots += lots
            self.sell_tl += lots * price_ticks

    def remove_open(self, is_buy: bool, lots: int, price_ticks: int) -> None:
        """`lots` of a resting order at `price_ticks` traded, were cancelled or reduced."""
        if is_buy:
            self.buy_lots -= lots
            self.buy_tl -= lots * price_ticks
        else:
            self.sell_lots -= lots
            self.sell_tl -= lots * price_ticks


class Account:
    """The decoded `clr/` record of one account."""

    __slots__ = ("addr", "entries", "volume")

    def __init__(self, addr: bytes, entries: dict[int, Entry], volume: list[list[int]]):
        self.addr = addr
        self.entries = entries
        self.volume = volume

    def entry(self, market: int) -> Entry:
        """The entry for `market`, created empty if absent."""
        e = self.entries.get(market)
        if e is None:
            e = self.entries[market] = Entry(market)
        return e

    def size(self, market: int) -> int:
        e = self.entries.get(market)
        return 0 if e is None else e.size

    def open_orders(self) -> int:
        n = 0
        for e in self.entries.values():
            n += e.orders
        return n

    def volume_30d(self, today: int) -> int:
        """Volume of the FEE_VOLUME_DAYS whole days before `today` (today excluded, so a
        tier cannot change inside a day's blocks)."""
        lo = today - C.FEE_VOLUME_DAYS
        return sum(v for d, v in self.volume if lo <= d < today)

    def add_volume(self, today: int, amount: int) -> None:
        # A bucket is replaced, never changed in place: stored volume lists share buckets.
        vol = self.volume
        if vol and vol[-1][0] == today:
            vol[-1] = [today, vol[-1][1] + amount]
        else:
            vol.append([today, amount])
            lo = today - C.FEE_VOLUME_DAYS
            while vol and vol[0][0] < lo:
                del vol[0]

    def to_stored(self) -> list | None:
        """The stored record ([entries, volume]; None: no record), sharing nothing mutable
        with this Account (kept decoded in an overlay: state.kv)."""
        es = self.entries
        entries = []
        for e in (es.values() if len(es) == 1 else [es[m] for m in sorted(es)]):
            if not e.empty():
                entries.append(e.to_stored())
        if not entries and not self.volume:
            return None
        return [entries, self.volume[:]]


def account_from_stored(addr: bytes, stored: bytes | list | None) -> Account:
    """A new Account (the caller owns it) from its stored record (bytes, or the list an
    overlay may hold; None: no record)."""
    if stored is None:
        return Account(addr, {}, [])
    if type(stored) is list:
        entries, volume = stored
        volume = volume[:]  # (its buckets are never changed in place: add_volume)
    else:
        entries, volume = load(stored)
    decoded = {}
    for e in entries:
        decoded[e[0]] = Entry(*e)
    return Account(addr, decoded, volume)


def get_stored(view: KVView, addr: bytes):
    """The account's stored record as the view holds it (see account_from_stored)."""
    key = P_CLEARING + addr
    return view.get_stored(key) if type(view) is Overlay else view.get(key)


def load_account(view: KVView, addr: bytes) -> Account:
    """The account's record, decoded (reads only: the ledger is its writer)."""
    return account_from_stored(addr, get_stored(view, addr))


def iter_accounts(view: KVView):
    """(addr, Account) for every account with a record, ascending by address (audits, RPC)."""
    n = len(P_CLEARING)
    for k, raw in view.iterate(P_CLEARING):
        yield k[n:], account_from_stored(k[n:], raw)


def apply_trade(e: Entry, delta_lots: int, price_ticks: int) -> int:
    """Change the position by `delta_lots` (signed) at `price_ticks`; return the realised PnL
    in tick-lots (multiply by the market's q for quote quantums)."""
    n = e.size
    if n == 0 or (n > 0) == (delta_lots > 0):
        e.size = n + delta_lots
        e.entry_tl += delta_lots * price_ticks
        return 0
    abs_n = n if n > 0 else -n
    abs_d = delta_lots if delta_lots > 0 else -delta_lots
    close = abs_d if abs_d < abs_n else abs_n
    basis = e.entry_tl
    # Truncate toward zero so the removed basis never exceeds the basis (either sign).
    removed = basis * close // abs_n if basis >= 0 else -((-basis) * close // abs_n)
    pnl = (close * price_ticks if n > 0 else -close * price_ticks) - removed
    rest = abs_d - close
    if rest == 0:
        e.size = n + delta_lots
        e.entry_tl = basis - removed
    else:  # flip: the old position is closed whole, the rest opens the other way
        e.size = delta_lots + n
        e.entry_tl = (basis - removed) + (e.size * price_ticks)
    return pnl
