"""An account's clearinghouse record: perp positions, open-order aggregates, leverage, volume.

What this module owns
---------------------
One record per account at `clr/<addr32>`:

    [[[market, size_lots, entry_tl, leverage, buy_lots, buy_tl, sell_lots, sell_tl, orders], ...],
     [[day, volume_quantums], ...]]

* `size_lots` is signed (long > 0). `entry_tl` is the signed cost basis in tick-lots
  (sum of price_ticks * size_lots of the open position; its sign is the position's), so the
  average entry price is |entry_tl| / |size_lots| ticks and notionals stay exact integers.
* `leverage` is the account's chosen leverage on the market (0 = the market's max).
* `buy_lots`/`buy_tl`, `sell_lots`/`sell_tl`: totals of the account's resting orders on the
  market (remaining lots and lots*price), so the margin check counts open orders at their worst
  case without walking them; `orders` counts resting and waiting trigger orders.
* The volume list holds one bucket per day (block time // DAY_MS) of maker + taker notional,
  at most FEE_VOLUME_DAYS + 1 of them, ascending.

Entries are kept sorted by market id and dropped when every field is zero.

Realised PnL (`apply_trade`): reducing a position by c lots removes the basis
entry_tl * c / |size| (truncated toward zero; the remainder stays in the basis, so a position's
lifetime PnL is exact) and realises (sign(size) * c * price - removed) tick-lots. Whatever the
rounding, balance - entry_tl * q changes by exactly -(signed lots * price * q) per trade, which is
what makes money conservation exact (tests/property).
"""

from state import constants as C
from state.codec import encode, load
from state.kv import KVView, Overlay

P_CLEARING = b"clr/"


class Entry:
    """One market of one account (mutable inside a tx; written back by `save`)."""

    __slots__ = ("market", "size", "entry_tl", "leverage", "buy_lots", "buy_tl", "sell_lots",
                 "sell_tl", "orders")

    def __init__(self, market: int, size: int = 0, entry_tl: int = 0, leverage: int = 0,
                 buy_lots: int = 0, buy_tl: int = 0, sell_lots: int = 0, sell_tl: int = 0,
                 orders: int = 0):
        self.market, self.size, self.entry_tl, self.leverage = market, size, entry_tl, leverage
        self.buy_lots, self.buy_tl, self.sell_lots, self.sell_tl = buy_lots, buy_tl, sell_lots, sell_tl
        self.orders = orders

    def to_list(self) -> list:
        return [self.market, self.size, self.entry_tl, self.leverage, self.buy_lots, self.buy_tl,
                self.sell_lots, self.sell_tl, self.orders]

    def copy(self) -> "Entry":
        return Entry(*self.to_list())

    def empty(self) -> bool:
        return not (self.size or self.entry_tl or self.leverage or self.buy_lots or
                    self.sell_lots or self.orders)


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
        return sum(e.orders for e in self.entries.values())

    def snapshot(self) -> "Account":
        return Account(self.addr, {m: e.copy() for m, e in self.entries.items()},
                       [list(b) for b in self.volume])

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


def _key(addr: bytes) -> bytes:
    return P_CLEARING + addr


def _entry(fields: list) -> Entry:
    """An Entry from its stored array (the same as Entry(*fields), without the call)."""
    e = _new(Entry)
    (e.market, e.size, e.entry_tl, e.leverage, e.buy_lots, e.buy_tl, e.sell_lots, e.sell_tl,
     e.orders) = fields
    return e


_new = object.__new__


def load_account(view: KVView, addr: bytes, published: dict | None = None) -> Account:
    """The account's record, decoded into a new Account the caller owns.

    `published`: accounts whose owner is done with them (`state.trading.Exec.flush`), by
    address, each as (the list `stored_account` gave for it, the Account). One is taken out
    and handed over instead of decoding when that very list object is what `view` holds for
    the address: every write of the record is a new object and a stored list is never
    mutated, so the Account then equals the record in `view`. A deleted record is never
    published (every absent record would look like it)."""
    key = P_CLEARING + addr
    raw = view.get_stored(key) if type(view) is Overlay else view.get(key)
    if published is not None:
        hit = published.pop(addr, None)
        if hit is not None and hit[0] is raw:
            return hit[1]
    a = _new(Account)  # Account(addr, entries, volume), without the call
    a.addr = addr
    if raw is None:
        a.entries = {}
        a.volume = []
        return a
    if type(raw) is list:  # the record as `stored_account` left it in an overlay
        entries, volume = raw
        a.volume = volume[:]  # (its buckets are never changed in place: add_volume)
    else:
        entries, a.volume = load(raw)
    if len(entries) == 1:
        e = _new(Entry)  # _entry(entries[0]), inline
        (e.market, e.size, e.entry_tl, e.leverage, e.buy_lots, e.buy_tl, e.sell_lots,
         e.sell_tl, e.orders) = entries[0]
        a.entries = {e.market: e}
    else:
        a.entries = {e[0]: _entry(e) for e in entries}
    return a


def stored_account(acct: Account) -> list | None:
    """The record `save_account` writes, decoded ([entries, volume]; None: deleted), to be
    kept in an overlay as is (state.kv: a stored list stands for its encoding). It shares
    nothing mutable with `acct`: new entry lists, a copy of the volume list (whose buckets
    are never changed in place)."""
    es = acct.entries
    if len(es) == 1:
        for e in es.values():
            # (e.empty(), inline)
            entries = [[e.market, e.size, e.entry_tl, e.leverage, e.buy_lots, e.buy_tl,
                        e.sell_lots, e.sell_tl, e.orders]] if \
                e.size or e.entry_tl or e.leverage or e.buy_lots or e.sell_lots or e.orders \
                else []
    else:
        entries = [es[m].to_list() for m in sorted(es) if not es[m].empty()]
    if not entries and not acct.volume:
        return None
    return [entries, acct.volume[:]]


def save_account(view: Overlay, acct: Account) -> None:
    es = acct.entries
    if len(es) == 1:
        for e in es.values():
            entries = [] if e.empty() else [e.to_list()]
    else:
        entries = [es[m].to_list() for m in sorted(es) if not es[m].empty()]
    if not entries and not acct.volume:
        view.delete(P_CLEARING + acct.addr)
    else:
        view.put(P_CLEARING + acct.addr, encode([entries, acct.volume]))


def iter_accounts(view: KVView):
    """(addr, Account) for every account with a record, ascending by address (audits, RPC)."""
    n = len(P_CLEARING)
    for k, raw in view.iterate(P_CLEARING):
        entries, volume = load(raw)
        yield k[n:], Account(k[n:], {e[0]: Entry(*e) for e in entries}, volume)


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
