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
"""

from state import accounts, constants as C, params
from state.amounts import format_amount
from state.book import Side
from state.books import Books, books_of
from state.errors import Code, TxError
from state.events import Event
from state.hashing import sha256
from state.kv import Overlay, root_cache
from state.margin import spot_reserved, summary
from state.markets import PERP, SPOT, Market, fee_params, get as get_market, list_markets
from state.matching import MatchReject, TimeInForce, match
from state.oracle import fresh_price
from state import orders as O
from state.positions import Account, apply_trade, load_account, save_account

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
    (account, asset) and written by `flush` too, so a maker hit ten times costs one write."""

    __slots__ = ("view", "ctx", "books", "quote", "quote_decimals", "accts", "deltas", "events",
                 "today", "tiers", "cache", "fees", "_fmt")

    def __init__(self, view: Overlay, ctx):
        self.view = view
        self.ctx = ctx
        c = self.cache = root_cache(view)
        self.books: Books = books_of(view)
        q = c.get("quote")
        if q is None:
            quote = params.quote_asset(view)
            q = c["quote"] = (quote, params.asset_decimals(view, quote))
        self.quote, self.quote_decimals = q
        self.fees = fee_params(view)
        # Formatted decimal strings by (scale, integer): prices and sizes repeat a lot, and
        # events need them as text. A pure function of its key, so caching is safe.
        fmt = c.get("fmt")
        if fmt is None or len(fmt) > 50_000:
            fmt = c["fmt"] = {}
        self._fmt = fmt
        self.accts: dict[bytes, Account] = {}
        self.deltas: dict[tuple[bytes, str], int] = {}
        self.events: list = []
        self.today = ctx.time_ms // C.DAY_MS
        self.tiers: dict[bytes, object] = {}

    def market(self, market_id: int) -> Market:
        m = self.cache.get("markets", {}).get(market_id)
        return m if m is not None else get_market(self.view, market_id)

    def account(self, addr: bytes) -> Account:
        a = self.accts.get(addr)
        if a is None:
            a = self.accts[addr] = load_account(self.view, addr)
        return a

    def credit(self, addr: bytes, asset: str, amount: int) -> None:
        if amount:
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
        return t

    def flush(self) -> None:
        view = self.view
        for acct in self.accts.values():
            save_account(view, acct)
        for (addr, asset), delta in self.deltas.items():
            accounts.set_balance(view, addr, asset, accounts.balance(view, addr, asset) + delta)
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
    m = ex.market(market_id)
    _check_shape(m, kind, tif, reduce_only, trigger)
    ticks = check_price(m, price)
    trigger_ticks = check_price(m, trigger, "trigger price") if trigger else 0
    lots = check_size(m, size)
    _check_notional(m, ticks, lots)
    if expiry and expiry <= ex.ctx.time_ms:
        raise TxError(Code.ORDER_EXPIRED, f"expiry {expiry} ms is not after the block time "
                      f"{ex.ctx.time_ms} ms")
    _check_cloid_free(ex, owner, cloid)
    acct = ex.account(owner)
    if acct.open_orders() >= C.MAX_OPEN_ORDERS_PER_ACCOUNT:
        raise TxError(Code.TOO_MANY_OPEN_ORDERS, f"the account has "
                      f"{C.MAX_OPEN_ORDERS_PER_ACCOUNT} open orders (the limit)")
    if reduce_only:
        lots = _reduce_only_size(acct, m, is_buy, lots)
    elif m.kind == PERP:
        fresh_price(ex.view, m.base, ex.ctx.time_ms)
    o = O.OrderRecord(O.next_order_id(ex.view), m.id, owner, is_buy, kind, ticks, lots, lots,
                      tif, reduce_only, trigger_ticks, cloid, expiry, ex.ctx.time_ms)
    if kind in O.TRIGGER_KINDS:
        O.put_trigger(ex.view, o)
        acct.entry(m.id).orders += 1
        ex.events.append(_ev("order", *_order_attrs(ex, m, o), ("status", "waiting_trigger"),
                             ("trigger_price", ex.px(m, trigger_ticks))))
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
    book = ex.books.book(view, m.id)
    taker = ex.account(o.owner)
    te = taker.entry(m.id)
    before = (te.size, te.buy_lots, te.sell_lots)
    side = Side.BUY if o.is_buy else Side.SELL
    res = match(book, o.id, o.owner, side, o.price_ticks, o.size_lots, o.id, _TIFS[o.tif])
    if res.reject is MatchReject.POST_ONLY_WOULD_CROSS:
        best = book.best_ask() if o.is_buy else book.best_bid()
        raise TxError(Code.POST_ONLY_WOULD_CROSS, f"post-only {side.name.lower()} at "
                      f"{ex.px(m, o.price_ticks)} would cross the best "
                      f"{'ask' if o.is_buy else 'bid'} {ex.px(m, best)}")
    if res.reject is MatchReject.FOK_NOT_FILLABLE:
        raise TxError(Code.FOK_NOT_FILLABLE, f"fill-or-kill {side.name.lower()} of "
                      f"{ex.sz(m, o.size_lots)} at {ex.px(m, o.price_ticks)} cannot fill "
                      "completely now")
    for oid in res.self_trade_cancelled:
        _remove_resting(ex, m, O.get_resting(view, m.id, oid), "self_trade")
    if res.fills:
        t_tier = ex.fee_tier(o.owner)
        taker_ppm = m.taker_fee_ppm - t_tier.taker_reduction_ppm
        for f in res.fills:
            _settle(ex, m, o, taker, te, f, taker_ppm, ex.fees.fee_account)
    filled = res.filled_lots
    if res.rested:
        o.size_lots = res.remaining_lots
        O.put_resting(view, o)
        if o.is_buy:
            te.buy_lots += o.size_lots
            te.buy_tl += o.size_lots * o.price_ticks
        else:
            te.sell_lots += o.size_lots
            te.sell_tl += o.size_lots * o.price_ticks
        te.orders += 1
        status = "open" if not filled else "partially_filled_open"
    else:
        status = "filled" if not res.remaining_lots else \
            ("partially_filled_cancelled" if filled else "cancelled_unfilled")
    ex.events.append(_ev("order", *_order_attrs(ex, m, o), ("status", status),
                         ("filled", ex.sz(m, filled)),
                         ("remaining", ex.sz(m, res.remaining_lots if res.rested else 0))))
    ex.flush()
    _check_after(ex, m, o, taker, te, before, res.rested)


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
    s = summary(view, taker, ex.quote)
    if s.equity >= s.initial_margin:
        return
    size0, buys0, sells0 = before
    reduced = (not rested and te.buy_lots == buys0 and te.sell_lots == sells0 and
               abs(te.size) <= abs(size0) and (te.size == 0 or (te.size > 0) == (size0 > 0)))
    if reduced and m.kind == PERP:
        return
    raise TxError(Code.INSUFFICIENT_MARGIN,
                  f"equity {ex.amt(s.equity)} would be below the initial margin "
                  f"{ex.amt(s.initial_margin)} (positions and open orders at worst case)")


def _settle(ex: Exec, m: Market, o: O.OrderRecord, taker: Account, te, f, taker_ppm: int,
            fee_account: bytes) -> None:
    view = ex.view
    s, p = f.size_lots, f.price_ticks
    maker = ex.account(f.maker_owner)
    me = maker.entry(m.id)
    mo = O.get_resting(view, m.id, f.maker_order_id)
    if o.is_buy:          # the maker sold
        me.sell_lots -= s
        me.sell_tl -= s * p
    else:
        me.buy_lots -= s
        me.buy_tl -= s * p
    if f.maker_remaining_lots == 0:
        O.remove_resting(view, mo)
        me.orders -= 1
    else:
        mo.size_lots = f.maker_remaining_lots
        O.put_resting(view, mo, new=False)
    notional = p * s * m.q
    quote = ex.quote
    if m.kind == PERP:
        rt = apply_trade(te, s if o.is_buy else -s, p) * m.q
        rm = apply_trade(me, -s if o.is_buy else s, p) * m.q
        ex.credit(o.owner, quote, rt)
        ex.credit(f.maker_owner, quote, rm)
        ex.credit(POOL, quote, -(rt + rm))
    else:
        buyer, seller = (o.owner, f.maker_owner) if o.is_buy else (f.maker_owner, o.owner)
        ex.credit(buyer, quote, -notional)
        ex.credit(seller, quote, notional)
        ex.credit(buyer, m.base, s * m.lot_size)
        ex.credit(seller, m.base, -s * m.lot_size)
        rt = rm = 0
    maker_ppm = m.maker_fee_ppm - ex.fee_tier(f.maker_owner).maker_reduction_ppm
    tf = fee_amount(notional, taker_ppm)
    mf = fee_amount(notional, maker_ppm)
    ex.credit(o.owner, quote, -tf)
    ex.credit(f.maker_owner, quote, -mf)
    ex.credit(fee_account, quote, tf + mf)
    taker.add_volume(ex.today, notional)
    maker.add_volume(ex.today, notional)
    ex.events.append(_ev(
        "fill", ("market", m.symbol), ("price", ex.px(m, p)), ("size", ex.sz(m, s)),
        ("taker", o.owner.hex()), ("maker", f.maker_owner.hex()),
        ("taker_side", "buy" if o.is_buy else "sell"), ("taker_order_id", str(o.id)),
        ("maker_order_id", str(f.maker_order_id)), ("taker_cloid", str(o.cloid)),
        ("maker_cloid", str(mo.cloid)), ("taker_fee", ex.amt(tf)), ("maker_fee", ex.amt(mf)),
        ("taker_pnl", ex.amt(rt)), ("maker_pnl", ex.amt(rm)),
        ("maker_remaining", ex.sz(m, f.maker_remaining_lots))))


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


def cancel_open(ex: Exec, m: Market, owner: bytes | None, order_id: int, reason: str) -> None:
    """Cancel an open order (resting or trigger); `owner` None skips the ownership check."""
    o = O.get_resting(ex.view, m.id, order_id)
    if o is not None and (owner is None or o.owner == owner):
        _remove_resting(ex, m, o, reason, from_book=True)
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
