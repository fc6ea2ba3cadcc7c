"""Trading actions: place, cancel, modify, batch, set leverage; settlement of fills.

What this module owns
---------------------
The rules that turn an order action into book changes, fills, position and balance changes,
fees and events. Matching itself is `state.matching` (pure); the books are `state.books`;
records are `state.orders`; an account's positions are `state.positions`; margin arithmetic is
`state.margin`. Every handler checks first (reads only, raising TxError with a specific code),
then applies; the one check that needs the result of matching (initial margin after the
order, DESIGN.md §4) runs after settlement inside the same sub-transaction, so a failure rolls
back the overlay and the book journal together.

Settlement of one fill of s lots at p ticks on market m (notional N = p * s * q):
* perp: both positions change (`positions.apply_trade`); realised PnL moves between each
  trader's quote balance and the settlement pool (POOL), so balances + pool always equal the
  supply and pool = -(sum of all cost bases) * q.
* spot: the buyer pays N quote and receives s * lot_size base; the seller the reverse.
* fees: taker pays ceil(N * taker_ppm / PPM); maker pays ceil(N * maker_ppm / PPM) or, when
  maker_ppm < 0, receives floor(N * -maker_ppm / PPM); the fee account receives the net.
  Rates are the market's minus the account's volume tier reductions (markets.FeeParams).
* both accounts' 30-day volume grows by N.

Self-trade prevention is "cancel resting" (state.matching M4). Reduce-only orders must be IOC,
FOK or market (as dYdX): they never rest, so they can never increase a position later.

The hot paths (a resting order, a crossing order's fills, a cancel) are written out flat for
speed, each with exactly the writes, results and events of the plain mutators it stands for
(`orders.put_resting` / `remove_resting`, `Exec.credit`, `positions.save_account`,
`accounts.set_balance`, ...); tests/unit/test_trading_golden.py holds the app hashes and
results of fixed workloads computed before they were. What they lean on:
* the book keeps, with each resting order, its record fields that never change while it rests
  (`orders.resting_info`), so a fill or a cancel rewrites or deletes the record and its indexes
  without reading it back (the book always equals the `ord/` records);
* texts of event attributes are cached as pure functions of their inputs (`_event_pairs`);
* `Exec` takes what every sub-transaction needs from the root cache in one lookup
  (`_environment`), including the day's fee tier table;
* balances are kept as ints in the overlays (state.kv: an int stands for its encoding).
"""

from state import accounts, constants as C, params
from state.accounts import P_BAL
from state.amounts import format_amount
from state.book import Side
from state.books import books_of
from state.codec import encode, load
from state.errors import Code, TxError
from state.events import Event, event
from state.hashing import sha256
from state.kv import Overlay, root_cache
from state.margin import margin_check, spot_reserved, summary
from state.markets import PERP, SPOT, Market, fee_params, get as get_market, list_markets
from state.matching import MatchReject, TimeInForce, match
from state.oracle import fresh_price
from state import orders as O
from state.positions import P_CLEARING, Account, apply_trade, load_account, stored_account

_BUY, _SELL = Side.BUY, Side.SELL

# The perp settlement pool: the counterpart of realised PnL (see the module docstring). No key
# signs for it: it is sha256 of a fixed label.
POOL = sha256(b"perpchain/perp-settlement-pool")

_GTC, _IOC, _FOK, _ALO = 0, 1, 2, 3
_TIFS = (TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.POST_ONLY)


def _ev(kind: str, *attrs: tuple[str, str]) -> Event:
    return Event(kind, attrs)


def fee_amount(notional: int, ppm: int) -> int:
    """A fee is rounded up (against the payer); a rebate (ppm < 0) is rounded down."""
    if ppm >= 0:
        return -(-notional * ppm // C.PPM)
    return -(notional * -ppm // C.PPM)


class Exec:
    """One sub-transaction's working set: decoded accounts, pending balance deltas, events.

    Accounts are loaded once and written back by `flush`; balance changes are summed per
    (account, asset) (`qdeltas` for the quote asset, `deltas` for the others) and written by
    `flush` too, so a maker hit ten times costs one write. `flush` then hands the accounts to
    the root cache's `published` dict and forgets them: a later `account` call, of this or
    the next Exec, takes one back without decoding while the record it was written as is
    still the one in the view (`positions.load_account`).
    Execs of one root run one after another, never interleaved, and an Account object
    obtained before a `flush` is only read after it (a change would reach whoever takes it
    back, not the record: tests/property/test_trading_props.py compares with decoding
    afresh, tests/unit/test_trading_golden.py with results computed before this reuse)."""

    __slots__ = ("view", "ctx", "books", "quote", "quote_decimals", "accts", "deltas", "qdeltas",
                 "events", "today", "tiers", "cache", "fees", "published", "_fmt", "_markets",
                 "_pairs")

    def __init__(self, view: Overlay, ctx):
        self.view = view
        self.ctx = ctx
        c = self.cache = root_cache(view)
        today = ctx.time_ms // C.DAY_MS
        env = c.get("trading_env")
        if env is None or env[0] is not c.get("fee_params") or env[1] != today or \
                len(env[5]) > 50_000 or len(env[10]) > 100_000:
            env = c["trading_env"] = _environment(view, c, today)
        (_, self.today, self.books, self.quote, self.quote_decimals, self._fmt, self._markets,
         self.tiers, self.fees, self._pairs, self.published) = env
        self.accts: dict[bytes, Account] = {}
        self.deltas: dict[tuple[bytes, str], int] = {}  # by (account, asset)
        self.qdeltas: dict[bytes, int] = {}  # the quote asset's, by account (no tuple keys)
        self.events: list = []

    def market(self, market_id: int) -> Market:
        m = self._markets.get(market_id)
        return m if m is not None else get_market(self.view, market_id)

    def account(self, addr: bytes) -> Account:
        a = self.accts.get(addr)
        if a is None:
            a = self.accts[addr] = load_account(self.view, addr, self.published)
        return a

    def credit(self, addr: bytes, asset: str, amount: int) -> None:
        if amount:
            if asset == self.quote:
                q = self.qdeltas
                q[addr] = q.get(addr, 0) + amount
            else:
                k = (addr, asset)
                self.deltas[k] = self.deltas.get(k, 0) + amount

    def fee_tier(self, addr: bytes):
        t = self.tiers.get(addr)
        if t is None:
            vol = self.account(addr).volume_30d(self.today)
            t = self.fees.tiers[0]
            for tier in self.fees.tiers:
                if tier.min_volume <= vol:
                    t = tier
            self.tiers[addr] = t
        elif addr not in self.accts:
            self.account(addr)  # as on a miss: the account is loaded (and saved by flush)
        return t

    def flush(self) -> None:
        """Write back every loaded account and the summed balance deltas (then forget the
        deltas)."""
        view = self.view
        w = view.writes  # (Overlay.put / delete, without the calls)
        published = self.published
        for acct in self.accts.values():
            rec = w[P_CLEARING + acct.addr] = stored_account(acct)  # (positions.save_account)
            if rec is not None:
                published[acct.addr] = (rec, acct)  # (see positions.load_account)
        self.accts = {}
        # accounts.set_balance(view, addr, asset, accounts.balance(...) + delta), per delta.
        # The order of the writes only decides which of several overflowing balances raises
        # first; they all raise the same error.
        if self.qdeltas:
            get = view.get_stored
            prefix = P_BAL
            qb = self.quote.encode()
            for addr, delta in self.qdeltas.items():
                key = prefix + addr + qb
                raw = get(key)
                amount = delta if raw is None else (raw if type(raw) is int else load(raw)) + delta
                if not -_MAX_INT64 <= amount <= _MAX_INT64:
                    accounts.set_balance(view, addr, self.quote, amount)  # raises
                w[key] = amount if amount else None
            self.qdeltas = {}
        if self.deltas:
            get = view.get_stored
            for (addr, asset), delta in self.deltas.items():
                key = P_BAL + addr + asset.encode()
                raw = get(key)
                amount = delta if raw is None else (raw if type(raw) is int else load(raw)) + delta
                if not -_MAX_INT64 <= amount <= _MAX_INT64:
                    accounts.set_balance(view, addr, asset, amount)  # raises BALANCE_OVERFLOW
                w[key] = amount if amount else None
            self.deltas = {}

    # -- formatting for events ----------------------------------------------------------------
    def px(self, m: Market, ticks: int) -> str:
        k = (m.tick_size, ticks)
        v = self._fmt.get(k)
        if v is None:
            v = self._fmt[k] = format_amount(ticks * m.tick_size, self.quote_decimals)
        return v

    def sz(self, m: Market, lots: int) -> str:
        k = (-m.lot_size, m.base_decimals, lots)
        v = self._fmt.get(k)
        if v is None:
            v = self._fmt[k] = format_amount(lots * m.lot_size, m.base_decimals)
        return v

    def amt(self, quantums: int) -> str:
        return "0" if quantums == 0 else format_amount(quantums, self.quote_decimals)


def _environment(view: Overlay, c: dict, today: int) -> tuple:
    """What every Exec of a root view needs, gathered once (kept in the root cache while the
    day and the fee parameters object stay the same):
    (fee params, today, books, quote asset, quote decimals, formatted-text cache, decoded
    markets, fee tier table, fee params, event attribute pairs by market (`_event_pairs`),
    published accounts (`Exec.flush`)).

    * the text cache holds decimal strings by (scale, integer): prices and sizes repeat a
      lot, and events need them as text; a pure function of its key, so caching is safe;
    * the fee tier table: an account's tier is constant for a whole day, since volume_30d
      sums only the days before today and trading only ever adds to today's bucket. So it
      is shared by every tx and block of a day while the fee parameters stay the same object
      (markets.fee_params decodes new parameters into a new object)."""
    q = c.get("quote")
    if q is None:
        quote = params.quote_asset(view)
        q = c["quote"] = (quote, params.asset_decimals(view, quote))
    fees = fee_params(view)
    ms = c.get("markets")
    if ms is None:
        ms = c["markets"] = {}
    old = c.get("trading_env")
    fmt = old[5] if old is not None and len(old[5]) <= 50_000 else {}
    tiers = old[7] if old is not None and old[0] is fees and old[1] == today and \
        len(old[7]) < 200_000 else {}
    pairs = old[9] if old is not None and len(old[9]) < 1_000 else {}
    published = old[10] if old is not None and len(old[10]) <= 100_000 else {}
    return (fees, today, books_of(view), q[0], q[1], fmt, ms, tiers, fees, pairs, published)


# -- checks ------------------------------------------------------------------------------------

def check_price(m: Market, price: int, what: str = "price") -> int:
    if price <= 0 or price % m.tick_size:
        raise TxError(Code.INVALID_TICK, f"{what} {price} is not a positive multiple of "
                      f"{m.symbol}'s tick size {m.tick_size}")
    if price > C.MAX_PRICE:
        raise TxError(Code.ORDER_TOO_LARGE, f"{what} {price} is above {C.MAX_PRICE}")
    return price // m.tick_size


def check_size(m: Market, size: int) -> int:
    if size <= 0 or size % m.lot_size:
        raise TxError(Code.INVALID_LOT, f"size {size} is not a positive multiple of "
                      f"{m.symbol}'s lot size {m.lot_size}")
    lots = size // m.lot_size
    if lots < m.min_size_lots:
        raise TxError(Code.ORDER_TOO_SMALL, f"size {size} is below {m.symbol}'s minimum "
                      f"order size {m.min_size_lots * m.lot_size}")
    return lots


def _check_notional(m: Market, ticks: int, lots: int) -> None:
    n = ticks * lots * m.q
    if n > C.MAX_ORDER_NOTIONAL_QUANTUMS:
        raise TxError(Code.ORDER_TOO_LARGE, f"order notional {n} quantums is above "
                      f"{C.MAX_ORDER_NOTIONAL_QUANTUMS}")


def _check_shape(m: Market, kind: int, tif: int, reduce_only: bool, trigger: int) -> None:
    if not 0 <= kind < len(O.KIND_NAMES):
        raise TxError(Code.INVALID_ORDER, f"order kind {kind} unknown; kinds: "
                      + ", ".join(f"{i} {n}" for i, n in enumerate(O.KIND_NAMES)))
    if not 0 <= tif < len(O.TIF_NAMES):
        raise TxError(Code.INVALID_ORDER, f"time in force {tif} unknown; 0 gtc, 1 ioc, 2 fok, "
                      "3 alo (post-only)")
    if kind in O.MARKET_KINDS and tif not in (_IOC, _FOK):
        raise TxError(Code.INVALID_ORDER, f"a {O.KIND_NAMES[kind]} order must be IOC or FOK; "
                      "its price is the worst acceptable price")
    if (kind in O.TRIGGER_KINDS) != (trigger != 0):
        raise TxError(Code.INVALID_ORDER, "trigger_price must be set exactly for stop and "
                      "take-profit kinds")
    if reduce_only and tif in (_GTC, _ALO):
        raise TxError(Code.INVALID_ORDER, "reduce-only orders cannot rest: use IOC, FOK or a "
                      "market kind")
    if m.kind == SPOT and (reduce_only or kind in O.TRIGGER_KINDS):
        raise TxError(Code.INVALID_ORDER, f"{m.symbol} is a spot market: only limit and market "
                      "orders, without reduce-only")


def _reduce_only_size(acct: Account, m: Market, is_buy: bool, lots: int) -> int:
    pos = acct.size(m.id)
    if pos == 0 or (pos > 0) == is_buy:
        raise TxError(Code.REDUCE_ONLY_WOULD_INCREASE,
                      f"reduce-only {'buy' if is_buy else 'sell'} would increase the position "
                      f"(position {pos} lots on {m.symbol})")
    return min(lots, abs(pos))


def _check_cloid_free(ex: Exec, owner: bytes, cloid: int) -> None:
    if cloid:
        hit = O.cloid_lookup(ex.view, owner, cloid)
        if hit is not None:
            raise TxError(Code.DUPLICATE_CLIENT_ID, f"client order id {cloid} is already used "
                          f"by open order {hit[1]} on market {hit[0]}")


# -- place -------------------------------------------------------------------------------------

def place(ex: Exec, owner: bytes, fields) -> None:
    """The `order` action (also a batch item). Raises TxError on any rejection."""
    (market_id, is_buy, kind, price, size, tif, reduce_only, trigger, cloid, expiry) = fields
    m = ex._markets.get(market_id)
    if m is None:
        m = get_market(ex.view, market_id)
    if kind or trigger or reduce_only or not 0 <= tif <= _ALO:
        _check_shape(m, kind, tif, reduce_only, trigger)  # (a plain limit order always passes)
    tick = m.tick_size
    if price <= 0 or price % tick or price > C.MAX_PRICE:
        check_price(m, price)  # raises the specific error
    ticks = price // tick
    trigger_ticks = check_price(m, trigger, "trigger price") if trigger else 0
    lot = m.lot_size
    lots = size // lot
    if size <= 0 or size % lot or lots < m.min_size_lots:
        check_size(m, size)  # raises the specific error
    if ticks * lots * m.q > C.MAX_ORDER_NOTIONAL_QUANTUMS:
        _check_notional(m, ticks, lots)
    now = ex.ctx.time_ms
    if expiry and expiry <= now:
        raise TxError(Code.ORDER_EXPIRED, f"expiry {expiry} ms is not after the block time "
                      f"{now} ms")
    if cloid:
        _check_cloid_free(ex, owner, cloid)
    acct = ex.accts.get(owner) or ex.account(owner)
    n_open = 0
    for e in acct.entries.values():
        n_open += e.orders
    if n_open >= C.MAX_OPEN_ORDERS_PER_ACCOUNT:
        raise TxError(Code.TOO_MANY_OPEN_ORDERS, f"the account has "
                      f"{C.MAX_OPEN_ORDERS_PER_ACCOUNT} open orders (the limit)")
    if reduce_only:
        lots = _reduce_only_size(acct, m, is_buy, lots)
    elif m.kind == PERP:
        fresh_price(ex.view, m.base, now, ex.cache)
    o = O.OrderRecord(O.next_order_id(ex.view), m.id, owner, is_buy, kind, ticks, lots, lots,
                      tif, reduce_only, trigger_ticks, cloid, expiry, now)
    if kind in O.TRIGGER_KINDS:
        O.put_trigger(ex.view, o)
        acct.entry(m.id).orders += 1
        ex.events.append(Event("order", _order_attrs(ex, m, o) + (
            ("status", "waiting_trigger"), ("trigger_price", ex.px(m, trigger_ticks)))))
        ex.flush()
        return
    execute(ex, m, o)


def _order_attrs(ex: Exec, m: Market, o: O.OrderRecord) -> tuple:
    return (("order_id", str(o.id)), ("market", m.symbol), ("owner", o.owner.hex()),
            ("side", "buy" if o.is_buy else "sell"), ("kind", O.KIND_NAMES[o.kind]),
            ("tif", O.TIF_NAMES[o.tif]), ("price", ex.px(m, o.price_ticks)),
            ("size", ex.sz(m, o.orig_lots)), ("cloid", str(o.cloid)))


def execute(ex: Exec, m: Market, o: O.OrderRecord) -> None:
    """Match a live order, settle its fills, rest a GTC/ALO remainder, then check margin."""
    view = ex.view
    mid = m.id
    book = ex.books.books.get(mid)
    if book is None:
        book = ex.books.book(view, mid)
    owner = o.owner
    taker = ex.accts.get(owner) or ex.account(owner)
    te = taker.entries.get(mid) or taker.entry(mid)
    before = (te.size, te.buy_lots, te.sell_lots)
    is_buy = o.is_buy
    side = _BUY if is_buy else _SELL
    pt = o.price_ticks
    tif = o.tif
    # orders.resting_info(o), for the book if the order rests (only GTC and ALO orders do)
    info = (o.kind, o.orig_lots, tif, o.reduce_only, o.trigger_ticks, o.cloid, o.expiry_ms,
            o.placed_ms) if tif == _GTC or tif == _ALO else None
    if is_buy:
        best = book.best_ask()
        crosses = best is not None and best <= pt
    else:
        best = book.best_bid()
        crosses = best is not None and best >= pt
    if not crosses and (tif == _GTC or tif == _ALO):
        # What `match` does for an order that cannot trade and may rest: add it.
        book.add(o.id, owner, side, pt, o.size_lots, info)
        filled = 0
        remaining = o.size_lots
        rested = True
    else:
        res = match(book, o.id, owner, side, pt, o.size_lots, _TIFS[tif], info, True)
        if res.reject is not None:
            if res.reject is MatchReject.POST_ONLY_WOULD_CROSS:
                best = book.best_ask() if is_buy else book.best_bid()
                raise TxError(Code.POST_ONLY_WOULD_CROSS, f"post-only {side.name.lower()} at "
                              f"{ex.px(m, pt)} would cross the best "
                              f"{'ask' if is_buy else 'bid'} {ex.px(m, best)}")
            if res.reject is MatchReject.FOK_NOT_FILLABLE:
                raise TxError(Code.FOK_NOT_FILLABLE, f"fill-or-kill {side.name.lower()} of "
                              f"{ex.sz(m, o.size_lots)} at {ex.px(m, pt)} cannot fill "
                              "completely now")
        for oid in res.self_trade_cancelled:
            _remove_resting(ex, m, O.get_resting(view, mid, oid), "self_trade")
        if res.fills:
            _settle_all(ex, m, o, taker, te, res.fills)
        filled = res.filled_lots
        remaining = res.remaining_lots
        rested = res.rested
    if rested:
        o.size_lots = remaining
        # orders.put_resting(view, o)
        omid = mid.to_bytes(4, "big") + o.id.to_bytes(8, "big")
        cloid = o.cloid
        w = view.writes
        w[O.P_ORDER + omid] = encode([owner, is_buy, o.kind, pt, remaining, o.orig_lots, tif,
                                      o.reduce_only, o.trigger_ticks, cloid, o.expiry_ms,
                                      o.placed_ms])
        w[O.P_ACCOUNT_ORDERS + owner + omid] = b""
        if cloid:
            w[O.P_CLOID + owner + cloid.to_bytes(8, "big")] = encode([mid, o.id])
        if o.expiry_ms:
            w[O.P_EXPIRY + o.expiry_ms.to_bytes(8, "big") + omid] = b""
        if is_buy:
            te.buy_lots += remaining
            te.buy_tl += remaining * pt
        else:
            te.sell_lots += remaining
            te.sell_tl += remaining * pt
        te.orders += 1
        status = "open" if not filled else "partially_filled_open"
        left = remaining
    else:
        status = "filled" if not remaining else \
            ("partially_filled_cancelled" if filled else "cancelled_unfilled")
        left = 0
    (price_pairs, size_pairs, _, _, _, _, filled_pairs, rem_pairs, owner_pairs,
     a_market, _) = _event_pairs(ex, m)
    a_price = price_pairs.get(pt)
    if a_price is None:
        a_price = _remember(price_pairs, pt, ("price", ex.px(m, pt)))
    a_size = size_pairs.get(o.orig_lots)
    if a_size is None:
        a_size = _remember(size_pairs, o.orig_lots, ("size", ex.sz(m, o.orig_lots)))
    a_filled = filled_pairs.get(filled)
    if a_filled is None:
        a_filled = _remember(filled_pairs, filled, ("filled", ex.sz(m, filled)))
    a_rem = rem_pairs.get(left)
    if a_rem is None:
        a_rem = _remember(rem_pairs, left, ("remaining", ex.sz(m, left)))
    a_owner = owner_pairs.get(owner)
    if a_owner is None:
        a_owner = _remember(owner_pairs, owner, ("owner", owner.hex()))
    ex.events.append(event("order", (
        ("order_id", str(o.id)), a_market, a_owner, _SIDE_PAIRS[is_buy], _KIND_PAIRS[o.kind],
        _TIF_PAIRS[tif], a_price, a_size,
        ("cloid", str(o.cloid)) if o.cloid else _CLOID_0, _STATUS_PAIRS[status], a_filled,
        a_rem)))
    ex.flush()
    _check_after(ex, m, o, taker, te, before, rested)


def _check_after(ex: Exec, m: Market, o: O.OrderRecord, taker: Account, te, before,
                 rested: bool) -> None:
    """The taker must meet initial margin after its order, unless the order only reduced
    its position on this market (then it lowered risk); spot orders need the balances."""
    view = ex.view
    if m.kind == SPOT:
        reserved = spot_reserved(view, taker)
        for asset in sorted(reserved):
            have = accounts.balance(view, o.owner, asset)
            need = reserved[asset]
            if have < need or have < 0:
                dec = params.asset_decimals(view, asset)
                raise TxError(Code.INSUFFICIENT_BALANCE,
                              f"balance {format_amount(have, dec)} {asset} does not cover the "
                              f"{format_amount(need, dec)} {asset} that this account's open "
                              f"spot orders may spend")
        if accounts.balance(view, o.owner, ex.quote) >= 0 and \
                not any(e.size for e in taker.entries.values()):
            return
    elif not rested:
        size0, buys0, sells0 = before
        if te.buy_lots == buys0 and te.sell_lots == sells0 and abs(te.size) <= abs(size0) \
                and (te.size == 0 or (te.size > 0) == (size0 > 0)):
            return  # it only reduced the position: it passes whatever the margin (so skip it)
    equity, initial = margin_check(view, taker, ex.quote, None, ex.cache)
    if equity >= initial:
        return
    raise TxError(Code.INSUFFICIENT_MARGIN,
                  f"equity {ex.amt(equity)} would be below the initial margin "
                  f"{ex.amt(initial)} (positions and open orders at worst case)")


def _settle_all(ex: Exec, m: Market, o: O.OrderRecord, taker: Account, te, fills) -> None:
    """Settle the taker's fills (raw tuples of `state.matching.match`), in order.

    The hot path of a crossing order, written out flat. It has exactly the effects of settling
    fill by fill with `Exec.credit`, `orders.remove_resting` / `put_resting(new=False)` and
    `Account.add_volume` (see the module docstring for the rules):
    * the maker's record fields come from the book (`orders.resting_info`, as the book equals
      the `ord/` records), so the record is deleted or rewritten without being read;
    * the taker's, the pool's and the fee account's balance deltas are summed over the fills
      and added to `ex.qdeltas` once at the end; an account is added iff one of its credits
      was non-zero, as `Exec.credit` does (the order of the deltas only decides which of
      several overflowing balances raises first, and they all raise the same error);
    * the taker's volume grows once by the sum (one `add_volume` per fill, or one with the
      sum, leave the same buckets: all of them add to today's)."""
    view = ex.view
    w = view.writes  # (Overlay.put / delete, without the calls)
    mid = m.id
    mkey = mid.to_bytes(4, "big")
    q = m.q
    perp = m.kind == PERP
    quote = ex.quote
    today = ex.today
    qdeltas = ex.qdeltas
    accts = ex.accts
    tiers = ex.tiers
    append = ex.events.append
    towner = o.owner
    is_buy = o.is_buy
    t_tier = tiers.get(towner) or ex.fee_tier(towner)
    taker_ppm = m.taker_fee_ppm - t_tier.taker_reduction_ppm
    maker_fee_ppm = m.maker_fee_ppm
    p_order, p_aord, p_cloid, p_exp = O.P_ORDER, O.P_ACCOUNT_ORDERS, O.P_CLOID, O.P_EXPIRY
    # Event attributes that are the same for every fill of this order, and caches of the
    # attribute pairs that repeat across fills (a pair is a pure function of its key).
    a_market = ("market", m.symbol)
    a_taker = ("taker", towner.hex())
    a_side = ("taker_side", "buy" if is_buy else "sell")
    a_toid = ("taker_order_id", str(o.id))
    a_tcloid = ("taker_cloid", str(o.cloid))
    amt = _amount_formatter(ex.quote_decimals)
    (price_pairs, size_pairs, left_pairs, maker_pairs, tfee_pairs,
     mfee_pairs) = _event_pairs(ex, m)[:6]
    t_sum = pool_sum = fee_sum = vol_sum = 0
    t_touch = pool_touch = fee_touch = False
    for oid, mowner, p, s, left, info in fills:
        maker = accts.get(mowner)
        if maker is None:
            maker = accts[mowner] = load_account(view, mowner, ex.published)  # (ex.account)
        me = maker.entries.get(mid)
        if me is None:
            me = maker.entry(mid)
        omid = mkey + oid.to_bytes(8, "big")
        if info is None:  # a book loaded without the record fields: read the record
            rec = load(view.get(p_order + omid))
            info = (rec[2], rec[5], rec[6], rec[7], rec[8], rec[9], rec[10], rec[11])
        sp = s * p
        if is_buy:          # the maker sold
            me.sell_lots -= s
            me.sell_tl -= sp
        else:
            me.buy_lots -= s
            me.buy_tl -= sp
        mcloid = info[5]
        if left:            # orders.put_resting(new=False): the record with its new size,
            # kept decoded (state.kv): an order hit again in the block is encoded once, at the end
            w[p_order + omid] = [mowner, not is_buy, info[0], p, left, info[1], info[2],
                                 info[3], info[4], mcloid, info[6], info[7]]
        else:               # orders.remove_resting
            w[p_order + omid] = None
            w[p_aord + mowner + omid] = None
            if mcloid:
                w[p_cloid + mowner + mcloid.to_bytes(8, "big")] = None
            if info[6]:
                w[p_exp + info[6].to_bytes(8, "big") + omid] = None
            me.orders -= 1
        notional = sp * q
        vol_sum += notional
        m_tier = tiers.get(mowner)
        if m_tier is None:
            m_tier = ex.fee_tier(mowner)
        maker_ppm = maker_fee_ppm - m_tier.maker_reduction_ppm
        # fee_amount(notional, ppm): a fee rounds up, a rebate (ppm < 0) rounds down.
        tf = -(-notional * taker_ppm // _PPM) if taker_ppm >= 0 else \
            -(notional * -taker_ppm // _PPM)
        mf = -(-notional * maker_ppm // _PPM) if maker_ppm >= 0 else \
            -(notional * -maker_ppm // _PPM)
        if perp:
            # apply_trade(te, +-s, p) and apply_trade(me, -+s, p), with the common case (the
            # position opens or grows: no PnL) inline.
            d = s if is_buy else -s
            n = te.size
            if n == 0 or (n > 0) == is_buy:
                te.size = n + d
                te.entry_tl += d * p
                rt = 0
            else:
                rt = apply_trade(te, d, p) * q
                t_sum += rt
                t_touch = True
            n = me.size
            if n == 0 or (n > 0) != is_buy:
                me.size = n - d
                me.entry_tl -= d * p
                rm = 0
            else:
                rm = apply_trade(me, -d, p) * q
            if rm or mf:
                qdeltas[mowner] = qdeltas.get(mowner, 0) + rm - mf
            if rt + rm:
                pool_sum -= rt + rm
                pool_touch = True
        else:
            buyer, seller = (towner, mowner) if is_buy else (mowner, towner)
            ex.credit(buyer, quote, -notional)
            ex.credit(seller, quote, notional)
            ex.credit(buyer, m.base, s * m.lot_size)
            ex.credit(seller, m.base, -s * m.lot_size)
            rt = rm = 0
            if mf:
                ex.credit(mowner, quote, -mf)
        if tf:
            t_sum -= tf
            t_touch = True
        if tf + mf:
            fee_sum += tf + mf
            fee_touch = True
        vol = maker.volume
        if vol and vol[-1][0] == today:
            vol[-1] = [today, vol[-1][1] + notional]  # (as add_volume: never in place)
        else:
            maker.add_volume(today, notional)
        a_price = price_pairs.get(p)
        if a_price is None:
            a_price = _remember(price_pairs, p, ("price", ex.px(m, p)))
        a_size = size_pairs.get(s)
        if a_size is None:
            a_size = _remember(size_pairs, s, ("size", ex.sz(m, s)))
        a_left = left_pairs.get(left)
        if a_left is None:
            a_left = _remember(left_pairs, left, ("maker_remaining", ex.sz(m, left)))
        a_maker = maker_pairs.get(mowner)
        if a_maker is None:
            a_maker = _remember(maker_pairs, mowner, ("maker", mowner.hex()))
        a_tfee = tfee_pairs.get(tf)
        if a_tfee is None:
            a_tfee = _remember(tfee_pairs, tf, ("taker_fee", amt(tf)))
        a_mfee = mfee_pairs.get(mf)
        if a_mfee is None:
            a_mfee = _remember(mfee_pairs, mf, ("maker_fee", amt(mf)))
        # Realised PnL rarely repeats (it depends on each position's history): not cached.
        a_tpnl = ("taker_pnl", amt(rt)) if rt else _TAKER_PNL_0
        a_mpnl = ("maker_pnl", amt(rm)) if rm else _MAKER_PNL_0
        append(event("fill", (
            a_market, a_price, a_size, a_taker, a_maker, a_side, a_toid,
            ("maker_order_id", str(oid)), a_tcloid,
            ("maker_cloid", str(mcloid)) if mcloid else _MAKER_CLOID_0,
            a_tfee, a_mfee, a_tpnl, a_mpnl, a_left)))
    if t_touch:
        qdeltas[towner] = qdeltas.get(towner, 0) + t_sum
    if pool_touch:
        qdeltas[POOL] = qdeltas.get(POOL, 0) + pool_sum
    if fee_touch:
        fa = ex.fees.fee_account
        qdeltas[fa] = qdeltas.get(fa, 0) + fee_sum
    taker.add_volume(today, vol_sum)


_PPM = C.PPM
_SIDE_PAIRS = {True: ("side", "buy"), False: ("side", "sell")}
_KIND_PAIRS = tuple(("kind", n) for n in O.KIND_NAMES)
_TIF_PAIRS = tuple(("tif", n) for n in O.TIF_NAMES)
_STATUS_PAIRS = {s: ("status", s) for s in ("open", "partially_filled_open", "filled",
                                              "partially_filled_cancelled",
                                              "cancelled_unfilled")}
_CLOID_0 = ("cloid", "0")
_MAX_INT64 = C.MAX_INT64
_MAKER_CLOID_0 = ("maker_cloid", "0")
_TAKER_PNL_0 = ("taker_pnl", "0")
_MAKER_PNL_0 = ("maker_pnl", "0")


def _event_pairs(ex: Exec, m: Market) -> tuple:
    """Event attribute pairs, each a pure function of its key, kept per market on the root
    cache. Fills: ("price", text) by price ticks; ("size", text) and ("maker_remaining", text)
    by lots; ("maker", hex address) by address; ("taker_fee", text), ("maker_fee", text) by
    quote quantums (fills of round sizes at nearby prices repeat the same amounts). Orders:
    ("filled", text) and ("remaining", text) by lots, ("owner", hex address) by address, and
    ("market", symbol). Kept for the Market object (a market changed by governance is a new
    object: its texts start afresh)."""
    v = ex._pairs.get(m.id)
    if v is None or v[10] is not m:
        v = ex._pairs[m.id] = ({}, {}, {}, {}, {}, {}, {}, {}, {}, ("market", m.symbol), m)
    return v


def _remember(cache: dict, key, value):
    """cache[key] = value, in a cache of a pure function kept below _TEXT_CACHE_MAX."""
    if len(cache) >= _TEXT_CACHE_MAX:
        cache.clear()
    cache[key] = value
    return value


_TEXT_CACHE_MAX = 20_000


def _amount_formatter(decimals: int):
    """A function equal to `format_amount(x, decimals)` (so "0" for 0, as `Exec.amt`), with
    the scale computed once; memoised per decimals."""
    fmt = _AMOUNT_FORMATTERS.get(decimals)
    if fmt is not None:
        return fmt
    scale = 10**decimals

    def fmt(x: int) -> str:
        if x >= 0:
            whole, frac = divmod(x, scale)
            if frac == 0:
                return str(whole)
            return f"{whole}.{str(frac).rjust(decimals, '0').rstrip('0')}"
        whole, frac = divmod(-x, scale)
        if frac == 0:
            return f"-{whole}"
        return f"-{whole}.{str(frac).rjust(decimals, '0').rstrip('0')}"

    _AMOUNT_FORMATTERS[decimals] = fmt
    return fmt


_AMOUNT_FORMATTERS: dict = {}


# -- cancel ------------------------------------------------------------------------------------

def _remove_resting(ex: Exec, m: Market, o: O.OrderRecord, reason: str,
                    from_book: bool = False) -> None:
    """Take a resting order out of the KV data and the owner's aggregates (and, if asked,
    out of the book: matching already removed self-trade-cancelled ones)."""
    if from_book:
        ex.books.book(ex.view, m.id).cancel(o.id)
    O.remove_resting(ex.view, o)
    e = ex.account(o.owner).entry(m.id)
    if o.is_buy:
        e.buy_lots -= o.size_lots
        e.buy_tl -= o.size_lots * o.price_ticks
    else:
        e.sell_lots -= o.size_lots
        e.sell_tl -= o.size_lots * o.price_ticks
    e.orders -= 1
    ex.events.append(_ev("cancel", ("order_id", str(o.id)), ("market", m.symbol),
                         ("owner", o.owner.hex()), ("cloid", str(o.cloid)),
                         ("remaining", ex.sz(m, o.size_lots)), ("reason", reason)))


def _remove_trigger(ex: Exec, m: Market, o: O.OrderRecord, reason: str | None) -> None:
    O.remove_trigger(ex.view, o)
    ex.account(o.owner).entry(m.id).orders -= 1
    if reason is not None:
        ex.events.append(_ev("cancel", ("order_id", str(o.id)), ("market", m.symbol),
                             ("owner", o.owner.hex()), ("cloid", str(o.cloid)),
                             ("remaining", ex.sz(m, o.size_lots)), ("reason", reason)))


def _cancel_resting(ex: Exec, m: Market, book, bo, reason: str) -> None:
    """`_remove_resting(..., from_book=True)` for the book's order `bo`, with the record
    fields from `bo.info` (the book equals the `ord/` records, so nothing is read back)."""
    view = ex.view
    mid = m.id
    oid = bo.order_id
    owner = bo.owner
    lots = bo.size_lots
    price = bo.price_ticks
    info = bo.info
    book.cancel(oid)
    omid = mid.to_bytes(4, "big") + oid.to_bytes(8, "big")
    view.delete(O.P_ORDER + omid)
    view.delete(O.P_ACCOUNT_ORDERS + owner + omid)
    cloid = info[5]
    if cloid:
        view.delete(O.P_CLOID + owner + cloid.to_bytes(8, "big"))
    if info[6]:
        view.delete(O.P_EXPIRY + info[6].to_bytes(8, "big") + omid)
    acct = ex.accts.get(owner) or ex.account(owner)
    e = acct.entries.get(mid) or acct.entry(mid)
    if bo.side is _BUY:
        e.buy_lots -= lots
        e.buy_tl -= lots * price
    else:
        e.sell_lots -= lots
        e.sell_tl -= lots * price
    e.orders -= 1
    ex.events.append(event("cancel", (("order_id", str(oid)), ("market", m.symbol),
                                      ("owner", owner.hex()), ("cloid", str(cloid)),
                                      ("remaining", ex.sz(m, lots)), ("reason", reason))))


def cancel_open(ex: Exec, m: Market, owner: bytes | None, order_id: int, reason: str) -> None:
    """Cancel an open order (resting or trigger); `owner` None skips the ownership check."""
    book = ex.books.books.get(m.id)
    if book is None:
        book = ex.books.book(ex.view, m.id)
    bo = book.get(order_id)  # resting orders: the book equals the ord/ records
    if bo is not None and (owner is None or bo.owner == owner):
        if bo.info is not None:
            _cancel_resting(ex, m, book, bo, reason)
        else:
            _remove_resting(ex, m, O.get_resting(ex.view, m.id, order_id), reason,
                            from_book=True)
        return
    t = O.get_trigger(ex.view, m.id, order_id)
    if t is not None and (owner is None or t.owner == owner):
        _remove_trigger(ex, m, t, reason)
        return
    raise TxError(Code.ORDER_NOT_FOUND, f"no open order {order_id} of this account on "
                  f"{m.symbol}")


def cancel(ex: Exec, owner: bytes, fields) -> None:
    market_id, order_id = fields
    cancel_open(ex, ex.market(market_id), owner, order_id, "user")
    ex.flush()


def cancel_cloid(ex: Exec, owner: bytes, fields) -> None:
    market_id, cloid = fields
    m = get_market(ex.view, market_id)
    hit = O.cloid_lookup(ex.view, owner, cloid) if cloid else None
    if hit is None or hit[0] != m.id:
        raise TxError(Code.ORDER_NOT_FOUND, f"no open order with client id {cloid} of this "
                      f"account on {m.symbol}")
    cancel_open(ex, m, owner, hit[1], "user")
    ex.flush()


def cancel_all(ex: Exec, owner: bytes, fields) -> None:
    """Cancel every open order of the signer on a market (market 0: on every market)."""
    (market_id,) = fields
    if market_id:
        get_market(ex.view, market_id)
    ids = O.account_order_ids(ex.view, owner, market_id or None)
    for mid, oid in ids:
        cancel_open(ex, get_market(ex.view, mid), owner, oid, "user_cancel_all")
    ex.events.append(_ev("cancel_all", ("owner", owner.hex()), ("market", str(market_id)),
                         ("cancelled", str(len(ids)))))
    ex.flush()


# -- modify ------------------------------------------------------------------------------------

def modify(ex: Exec, owner: bytes, fields) -> None:
    """Cancel-replace a resting order keeping its client id and flags. Only a size decrease
    at the same price keeps time priority (the order is reduced in place)."""
    market_id, order_id, price, size = fields
    m = get_market(ex.view, market_id)
    o = O.get_resting(ex.view, m.id, order_id)
    if o is None or o.owner != owner:
        if O.get_trigger(ex.view, m.id, order_id) is not None:
            raise TxError(Code.INVALID_ORDER, f"order {order_id} is a waiting trigger order: "
                          "cancel it and place a new one")
        raise TxError(Code.ORDER_NOT_FOUND, f"no resting order {order_id} of this account on "
                      f"{m.symbol}")
    ticks = check_price(m, price)
    lots = check_size(m, size)
    _check_notional(m, ticks, lots)
    if ticks == o.price_ticks and lots <= o.size_lots:
        by = o.size_lots - lots
        if by:
            ex.books.book(ex.view, m.id).reduce(o.id, by)
            o.size_lots = lots
            O.put_resting(ex.view, o, new=False)
            e = ex.account(owner).entry(m.id)
            if o.is_buy:
                e.buy_lots -= by
                e.buy_tl -= by * ticks
            else:
                e.sell_lots -= by
                e.sell_tl -= by * ticks
        ex.events.append(_ev("order", *_order_attrs(ex, m, o), ("status", "modified_in_place"),
                             ("remaining", ex.sz(m, lots))))
        ex.flush()
        return
    _remove_resting(ex, m, o, "modify", from_book=True)
    place(ex, owner, [m.id, o.is_buy, o.kind, ticks * m.tick_size, lots * m.lot_size, o.tif,
                      o.reduce_only, 0, o.cloid, o.expiry_ms])


# -- leverage ----------------------------------------------------------------------------------

def set_leverage(ex: Exec, owner: bytes, fields) -> None:
    market_id, leverage = fields
    m = get_market(ex.view, market_id)
    if m.kind != PERP or not 1 <= leverage <= m.max_leverage:
        raise TxError(Code.INVALID_LEVERAGE, f"leverage {leverage} outside 1.."
                      f"{m.max_leverage if m.kind == PERP else 1} on {m.symbol}"
                      + ("" if m.kind == PERP else " (a spot market has no leverage)"))
    acct = ex.account(owner)
    acct.entry(m.id).leverage = leverage
    ex.flush()
    s = summary(ex.view, acct)
    if s.equity < s.initial_margin:
        raise TxError(Code.INSUFFICIENT_MARGIN, f"at {leverage}x the initial margin "
                      f"{ex.amt(s.initial_margin)} would exceed equity {ex.amt(s.equity)}")
    ex.events.append(_ev("leverage", ("owner", owner.hex()), ("market", m.symbol),
                         ("leverage", str(leverage))))


# -- triggers and expiry (end / begin of block) -------------------------------------------------

def fire_trigger(ex: Exec, m: Market, o: O.OrderRecord, mark: int) -> None:
    """A waiting trigger order whose condition holds becomes a live order."""
    _remove_trigger(ex, m, o, None)
    ex.events.append(_ev("trigger", ("order_id", str(o.id)), ("market", m.symbol),
                         ("owner", o.owner.hex()), ("trigger_price", ex.px(m, o.trigger_ticks)),
                         ("mark", format_amount(mark, ex.quote_decimals))))
    acct = ex.account(o.owner)
    if o.reduce_only:
        o.size_lots = _reduce_only_size(acct, m, o.is_buy, o.size_lots)
    else:
        fresh_price(ex.view, m.base, ex.ctx.time_ms)
    execute(ex, m, o)


HANDLERS = {"order": place, "cancel": cancel, "cancel_cloid": cancel_cloid,
            "cancel_all": cancel_all, "modify": modify}


def all_markets(view) -> list[Market]:
    return list_markets(view)
