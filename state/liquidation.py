"""Liquidation: the end-block step that closes accounts below maintenance margin.

What this module owns
---------------------
`liquidate` runs after the marks (and funding) of every block, over the accounts whose risk
could have changed (state.risk_index), by address, at most MAX_RISK_CHECKS_PER_BLOCK of them
(the rest next block, from a stored cursor); one without a position, without a borrow and
without a liquidation in progress is passed over (nothing of it can be below maintenance
margin, and it has no in-progress record to drop). On a chain with lending pools every account
with a negative balance is a candidate every block (state.risk_index `borrowers`): interest
lowers its equity with no write. A cross account whose equity is below its maintenance margin
(state.margin `maintenance_summary`: with pools, the balances at the pools' maintenance
weights; `liquidatable`: with borrows also when MM is 0 and equity negative), in its own
sub-transaction (state.scope):
1. has its open orders cancelled (state.cancellation, reason "liquidation");
2. if equity >= backstop (backstop_ppm of maintenance margin): each position, ascending market
   id, is closed in the book by a reduce-only IOC order at the position's bankruptcy price
   (placement.execute: ordinary fills and fees). Above `step_threshold` of notional only
   step_ppm of it per step, then the account waits `cooldown_ms`; at most
   `max_notional_per_block` per account per block. The account pays the liquidation fee
   (fee_ppm of the closed notional at mark, at most its equity left) to the insurance fund.
   A `liquidation` event per order. What the book cannot absorb goes to step 3;
3. below the backstop, or for what the book left: the insurance fund (state.insurance) takes the
   position over at the bankruptcy price, fee-less (settlement.settle_fill), if its loss (the
   position's value at mark below the price paid) fits in its balance and in
   `max_fund_loss_per_block` for the account: an `insurance_takeover` event;
4. otherwise auto-deleveraging (state.adl) closes it against the opposite positions;
5. with lending pools, once no cross perp position is left and the account is still
   liquidatable: the collateral phase (`_Job.collateral_phase`, one `spot_step` per order):
   collateral sold and borrows bought back through the spot markets
   (state.collateral_liquidation; what the book leaves of a sale, the insurance fund may take
   over: state.collateral_backstop), then what is still negative covered by the insurance fund
   and only then by the pool's suppliers (state.bad_debt).
Bankruptcy price of a position of s lots at mark P, with the account's equity E shared over its
positions by notional (E_i = E * n_i // N): P - E_i / (s * lot) for a long, P + E_i / (|s| *
lot) for a short, in ticks rounded in the account's favour (a long's up, a short's down).

An isolated position (state.isolated) is checked on its own after the account's cross check:
below its own maintenance margin (isolated equity = its margin + uPnL at mark) it goes through
the same steps in its own sub-transaction, with only its market's orders cancelled, its
isolated equity as the whole equity share, and the fee paid from its margin (once closed, from
what the margin returned to the quote balance, never more): it loses at most its margin, and
the cross account and other positions are not touched. Its in-progress record is
`liq/active/<addr><market:4>`; its events carry `margin_mode` `isolated`.

Records: `liq/active/<addr>` -> [cooldown_until_ms, height, notional_closed, fund_loss] while
an account's liquidation is in progress (it stays a candidate every block); `liq/cursor` the
first unchecked address when a block hit the check bound (the next block then takes every
holder as a candidate, from the cursor on); `liq/log/<seq:8>` -> [height,
time_ms, event] for the last MAX_LIQUIDATION_LOG liquidation, takeover and ADL events, `liq/seq`
the next sequence number. A block without liquidation writes none of them.
"""

from state import constants as C, ledger, orders as O
from state.adl import deleverage
from state.cancellation import cancel_open
from state.codec import encode, load
from state.errors import TxError
from state.event_text import price_text, quote_text, size_text
from state.events import Event
from state.futures import expired
from state.insurance import INSURANCE_FUND, fund_balance
from state.kv import Overlay
from state.liquidation_params import LiquidationParams, liquidation_params
from state.isolated import iso_summary, isolated_summaries
from state.lending_margin import borrowed_value, moving_value
from state.lending_pools import pool_params
from state.ledger import P_BAL, read_account
from state import bad_debt, collateral_liquidation as CL
from state.collateral_backstop import take_over
from state.margin import Standing, Summary, maintenance_summary, margin_params, mark_price, \
    notional_up, value
from state.markets import Market, get as get_market
from state.placement import execute
from state.positions import P_CLEARING
from state.derived import derived_of
from state.risk_index import HolderIndex, candidates, holder_index, index_moves, price_moves, \
    risk_inputs, written_accounts
from state.scope import SubTransaction
from state.settlement import POOL, settle_fill

P_ACTIVE = b"liq/active/"
K_CURSOR = b"liq/cursor"
P_LOG = b"liq/log/"
K_SEQ = b"liq/seq"
LOGGED = ("liquidation", "insurance_takeover", "adl", "collateral_liquidation",
          "collateral_backstop", "bad_debt_covered", "bad_debt_socialised")
_MAX_SPOT_STEPS = 8  # collateral steps per account per block (each trades one asset)
_IOC = 1
_SKIP = (INSURANCE_FUND, POOL)
_ADDR = 32
_ISOLATED_ATTR = (("margin_mode", "isolated"),)
# A cross account's standing (state.margin.maintenance_summary) or an isolated position's own
# summary (state.isolated.iso_summary): the fields liquidation reads are the same.
Margins = Standing | Summary


def liquidate(view: Overlay, ctx) -> list[Event]:
    """The end-block liquidation step (see the module docstring)."""
    clearing = written_accounts(view, (P_CLEARING,))  # (the block's writes, scanned once)
    paid = written_accounts(view, (P_BAL,))
    idx = holder_index(view, ctx.height, clearing, paid)
    moved, max_move_ppm = price_moves(view)
    idx.advance(max_move_ppm, derived_of(view).params_version, index_moves(view))
    active: dict[bytes, list[bytes]] = {}  # address -> its liq/active/ keys
    for k, _ in view.iterate(P_ACTIVE):
        active.setdefault(k[len(P_ACTIVE):len(P_ACTIVE) + _ADDR], []).append(k)
    extra = list(active) + list(idx.borrowers or ())
    if view.get(K_CURSOR) is not None:  # the last block stopped early: every holder again
        extra += list(idx.by_account)
    order = _from_cursor(view, candidates(idx, moved, extra, clearing, paid))
    events: list[Event] = []
    p = liquidation_params(view)
    for addr in order[:C.MAX_RISK_CHECKS_PER_BLOCK]:
        if addr in _SKIP or idx.is_safe(addr):
            continue
        if addr not in idx.by_account and addr not in active and \
                addr not in (idx.borrowers or ()):
            continue  # no position, no borrow, no liquidation in progress: nothing to find
        events += check_account(view, ctx, p, idx, addr, active.get(addr, ()))
    return events


def _from_cursor(view: Overlay, cands: list[bytes]) -> list[bytes]:
    """The candidates from the stored cursor on (wrapping); stores where the next block
    resumes if they exceed the bound."""
    raw = view.get(K_CURSOR)
    if raw is not None:
        cur = load(raw)
        cands = [a for a in cands if a >= cur] + [a for a in cands if a < cur]
    if len(cands) > C.MAX_RISK_CHECKS_PER_BLOCK:
        view.put(K_CURSOR, encode(cands[C.MAX_RISK_CHECKS_PER_BLOCK]))
    elif raw is not None:
        view.delete(K_CURSOR)
    return cands


def below_maintenance(s: Margins) -> bool:
    return s.maintenance_margin > 0 and s.equity < s.maintenance_margin


def liquidatable(s: Margins, borrowed: int) -> bool:
    """Below maintenance margin. An account that borrows (`borrowed`: the weighted value of
    its borrows, state.lending_margin) and holds no position has none: it is below it when its
    equity is negative (its borrows are worth more than its collateral, both weighted)."""
    return s.equity < s.maintenance_margin and (s.maintenance_margin > 0 or borrowed > 0)


def check_account(view: Overlay, ctx, p: LiquidationParams, idx: HolderIndex,
                  addr: bytes, active_keys=()) -> list[Event]:
    """Liquidate `addr`'s cross account if it is below maintenance margin, then each of its
    isolated positions below its own (reads only otherwise). `active_keys`: its liq/active/
    keys, all of them (those of liquidations no longer due are dropped)."""
    acct = read_account(view, addr)  # (only read: the job loads its own through a ledger)
    s = maintenance_summary(view, acct)
    iso = isolated_summaries(view, acct, lambda mid: get_market(view, mid))
    mp = margin_params(view)
    borrowed = borrowed_value(view, addr, mp.quote, maint=True) if mp.pools else 0
    due: list[int | None] = [None] if liquidatable(s, borrowed) else []
    due += [mid for mid in iso if below_maintenance(iso[mid])]
    if active_keys:
        _drop_done(view, addr, due, active_keys)
    if not due:
        inputs = risk_inputs(acct)
        # (one quantum of rounding per position for its value, one for its funding owed)
        n_terms = 2 * len(inputs) + len(mp.others)
        other = s.collateral - ledger.balance(view, addr, mp.quote)
        if borrowed:  # interest moves its equity too (state.risk_index)
            other, unit = moving_value(view, addr, mp.quote, maint=True)
            n_terms += unit + len(mp.pools)
            other += unit
        idx.note_checked(addr, s, n_terms, other, list(iso.values()), inputs,
                         borrower=borrowed > 0)
        return []
    events: list[Event] = []
    for mid in due:
        events += _run_job(view, ctx, p, idx, addr, mid)
    return events


def _drop_done(view: Overlay, addr: bytes, due: list, active_keys) -> None:
    """Delete the in-progress records (`active_keys`) of the account's liquidations that are
    not due."""
    key = P_ACTIVE + addr
    for k in active_keys:
        if (None if k == key else int.from_bytes(k[len(key):], "big")) not in due:
            view.delete(k)


def _run_job(view: Overlay, ctx, p: LiquidationParams, idx: HolderIndex, addr: bytes,
             market: int | None) -> list[Event]:
    """One liquidation (`market` None: the cross account; else that isolated position) in
    its own sub-transaction."""
    try:
        with SubTransaction(view, ctx) as scope:
            _Job(scope, p, idx, addr, market).run()
    except TxError as e:  # (a balance overflow): nothing happened; checked again later
        return [Event("liquidation_failed", (("account", addr.hex()), ("code", str(int(e.code))),
                                             ("log", e.log)))]
    # Every position it changed (the account, makers, the fund, ADL counterparties).
    idx.sync(view, written_accounts(view, (P_CLEARING,), up_to=view.parent))
    if idx.borrowers is not None:  # (a chain with lending pools)
        paid = written_accounts(view, (P_BAL,), up_to=view.parent)
        idx.sync_borrowers(view, paid)
        for a in paid:  # (a spot maker's balances moved: no band until its next full check)
            idx.safe_until.pop(a, None)
        if any(e.type == "bad_debt_socialised" for e in scope.events):
            idx.drop_bands()  # every supplier's balance fell
    _log(view, ctx, scope.events)
    return scope.events


def bankruptcy_ticks(m: Market, size_lots: int, mark_px: int, equity_share: int) -> int:
    """The price (ticks) at which closing the position leaves `equity_share` at zero, rounded
    in the account's favour, within 1..MAX_PRICE."""
    base = abs(size_lots) * m.lot_size * m.tick_size
    if size_lots > 0:
        ticks = -(-(mark_px * abs(size_lots) * m.lot_size - equity_share * m.base_scale) // base)
    else:
        ticks = (mark_px * abs(size_lots) * m.lot_size + equity_share * m.base_scale) // base
    return min(max(ticks, 1), C.MAX_PRICE // m.tick_size)


class _Job:
    """The liquidation of one account in one block, inside its sub-transaction."""

    __slots__ = ("scope", "p", "idx", "addr", "market", "until_ms", "notional", "fund_loss",
                 "lending")

    def __init__(self, scope, p: LiquidationParams, idx: HolderIndex, addr: bytes,
                 market: int | None = None):
        self.scope, self.p, self.idx, self.addr = scope, p, idx, addr
        self.market = market  # None: the cross account; else its isolated position there
        raw = scope.view.get(self.key())
        h = scope.ctx.height
        until, h0, notional, loss = load(raw) if raw is not None else (0, h, 0, 0)
        self.until_ms = until
        self.notional, self.fund_loss = (notional, loss) if h0 == h else (0, 0)
        # the collateral phase and bad debt: a cross account on a chain with lending pools
        self.lending = market is None and bool(pool_params(scope.view))

    def run(self) -> None:
        scope, addr = self.scope, self.addr
        for mid, oid in O.account_order_ids(scope.view, addr, self.market):
            cancel_open(scope, scope.market(mid), None, oid, "liquidation")
        takeover = False
        for mid in self.position_markets():
            m = scope.market(mid)
            s = self.summary()
            if not takeover:
                if not self.due(s):
                    break
                takeover = s.equity < -(-s.maintenance_margin * self.p.backstop_ppm // C.PPM)
            if takeover:  # below the backstop: every position goes, whatever comes next
                self.backstop(m, s)
            elif scope.ctx.time_ms < self.until_ms or not self.book_step(m, s):
                break  # a partial step (cooldown) or the block's cap: the rest waits
        if self.lending and not self.position_markets():
            self.collateral_phase()
        self.store()

    def due(self, s: Margins) -> bool:
        """The cross account (with its borrows) or the isolated position is below maintenance
        margin."""
        if not self.lending:
            return below_maintenance(s)
        scope = self.scope
        return liquidatable(s, borrowed_value(scope.view, self.addr, scope.quote, maint=True))

    def collateral_phase(self) -> None:
        """Sell collateral and buy back borrows in the spot markets, step by step
        (state.collateral_liquidation), while the account is below maintenance margin; once
        nothing is left to sell, the insurance fund and then the pools' suppliers cover what is
        still negative (state.bad_debt)."""
        scope, addr = self.scope, self.addr
        for _ in range(_MAX_SPOT_STEPS):
            if not self.due(self.summary()):
                return
            a = CL.next_action(scope.view, addr, scope.quote)
            if a is None:
                break
            if scope.ctx.time_ms < self.until_ms or not self.spot_step(a):
                return  # a partial step (cooldown), the block's cap or a thin book: waits
        else:
            return
        if CL.collateral_gone(scope.view, addr, scope.quote):
            self.fund_loss += bad_debt.cover(scope, addr, self.p.max_fund_loss_per_block_quantums
                                             - self.fund_loss)

    def key(self) -> bytes:
        """Its in-progress record: liq/active/<addr> (cross) or <addr><market:4> (isolated)."""
        tail = b"" if self.market is None else self.market.to_bytes(4, "big")
        return P_ACTIVE + self.addr + tail

    def store(self) -> None:
        """Keep the account a candidate while its liquidation is in progress."""
        view, key = self.scope.view, self.key()
        if self.due(self.summary()) and (self.position_markets() or self.lending):
            view.put(key, encode([self.until_ms, self.scope.ctx.height, self.notional,
                                  self.fund_loss]))
        elif view.get(key) is not None:
            view.delete(key)

    def position_markets(self) -> list[int]:
        es, scope = self.scope.ledger.account(self.addr).entries, self.scope
        if self.market is not None:
            mids = [self.market] if self.market in es and es[self.market].size else []
        else:
            mids = [mid for mid in sorted(es) if es[mid].size and not es[mid].isolated]
        return [mid for mid in mids
                if not expired(scope.market(mid), scope.ctx.time_ms)]  # (settles instead)

    def summary(self) -> Margins:
        """The cross account's summary, or the isolated position's own."""
        scope = self.scope
        scope.ledger.flush()
        acct = scope.ledger.account(self.addr)
        if self.market is not None:
            return iso_summary(scope.view, scope.market(self.market), acct.entry(self.market))
        return maintenance_summary(scope.view, acct, scope.quote)

    def position_bp(self, m: Market, s: Margins) -> tuple[int, int, int]:
        """(size lots, mark, bankruptcy ticks) of the account's position on `m`, its share of
        the equity by notional."""
        size = self.scope.ledger.account(self.addr).entries[m.id].size
        px = mark_price(self.scope.view, m)
        n = notional_up(m, size, px)
        share = s.equity * n // s.notional if s.notional else s.equity
        return size, px, bankruptcy_ticks(m, size, px, share)

    def book_step(self, m: Market, s: Margins) -> bool:
        """Close (part of) the position in the book; False if the account must now wait."""
        scope, p, addr = self.scope, self.p, self.addr
        size, px, bp = self.position_bp(m, s)
        lots = abs(size)
        stepped = notional_up(m, size, px) > p.step_threshold_quantums
        if stepped:
            lots = -(-lots * p.step_ppm // C.PPM)
        per_lot = -(-(m.lot_size * px) // m.base_scale) or 1
        lots = min(lots, (p.max_notional_per_block_quantums - self.notional) // per_lot)
        if lots <= 0:
            return False
        o = O.OrderRecord(O.next_order_id(scope.view), m.id, addr, size < 0, 0, bp, lots, lots,
                          _IOC, True, 0, 0, 0, scope.ctx.time_ms)
        cross0 = self.cross_balance()
        execute(scope, m, o)
        left = scope.ledger.account(addr).entries[m.id].size
        filled = abs(size) - abs(left)
        closed = notional_up(m, filled, px)
        self.notional += closed
        fee = self.charge_fee(closed, self.cross_balance() - cross0)
        scope.events.append(liquidation_event(m, addr, o.id, size, lots, filled, left, px, s,
                                              fee, self.market is not None))
        if filled < lots and left:  # the book could not absorb it
            self.backstop(m, self.summary())
            return True
        if lots < abs(size):  # a step (then the cooldown) or the block's cap
            if stepped:
                self.until_ms = scope.ctx.time_ms + p.cooldown_ms
            return False
        return True

    def spot_step(self, a: CL.Action) -> bool:
        """One collateral step: an IOC order in `a`'s spot market (size and limit:
        state.collateral_liquidation), then the liquidation fee, then for a sell the insurance
        fund's takeover of what the book left (state.collateral_backstop); False if the
        account must now wait (neither filled it all, a partial step's cooldown, the block's
        cap)."""
        scope, p, addr, m = self.scope, self.p, self.addr, a.market
        s = self.summary()
        debt = max(-ledger.balance(scope.view, addr, scope.quote), 0)
        lots, stepped = CL.step_lots(scope.view, a, debt, p, self.notional)
        if lots <= 0:
            return False
        unweighted = CL.unweighted_equity(scope.view, addr, scope.quote)
        bp = bankruptcy_ticks(m, -lots if a.is_buy else lots, a.px, unweighted)
        limit = CL.limit_ticks(scope.view, a, bp, unweighted)
        o = O.OrderRecord(O.next_order_id(scope.view), m.id, addr, a.is_buy, 0, limit, lots,
                          lots, _IOC, False, 0, 0, 0, scope.ctx.time_ms)
        filled = execute(scope, m, o, margin_checked=False)
        closed = notional_up(m, filled, a.px)
        self.notional += closed
        scope.ledger.flush()
        left = CL.unweighted_equity(scope.view, addr, scope.quote)
        fee = min(-(-closed * p.fee_ppm // C.PPM), max(left, 0))
        scope.ledger.credit(addr, scope.quote, -fee)
        scope.ledger.credit(INSURANCE_FUND, scope.quote, fee)
        scope.ledger.flush()
        scope.events.append(CL.step_event(
            m, addr, o.id, a.is_buy, lots, filled, ledger.balance(scope.view, addr, m.base),
            a.px, limit, s.equity, ledger.balance(scope.view, addr, scope.quote), fee))
        if filled < lots and not a.is_buy:  # what the book left: the fund may take it
            taken, loss = take_over(scope, addr, m, lots - filled, limit, a.px,
                                    self.p.max_fund_loss_per_block_quantums - self.fund_loss)
            self.fund_loss += loss
            self.notional += notional_up(m, taken, a.px)
            filled += taken
        if filled < lots:
            return False
        if stepped:
            self.until_ms = scope.ctx.time_ms + p.cooldown_ms
            return False
        return True

    def cross_balance(self) -> int:
        """An isolated job's cross quote balance (flushed; 0 for a cross job): where a closed
        isolated position's margin went (state.settlement)."""
        if self.market is None:
            return 0
        self.scope.ledger.flush()
        return ledger.balance(self.scope.view, self.addr, self.scope.quote)

    def charge_fee(self, closed_quantums: int, released: int = 0) -> int:
        """The liquidation fee on `closed_quantums`, at most the equity left, to the fund. An
        isolated position pays from its margin, or once closed from what its margin returned to
        the cross balance (`released`), never more."""
        scope = self.scope
        fee = -(-closed_quantums * self.p.fee_ppm // C.PPM)
        e = None if self.market is None else scope.ledger.account(self.addr).entry(self.market)
        left = released if e is not None and not e.size else self.summary().equity
        fee = min(fee, max(left, 0))
        if e is not None and e.size:
            e.iso_margin -= fee
        else:
            scope.ledger.credit(self.addr, scope.quote, -fee)
        scope.ledger.credit(INSURANCE_FUND, scope.quote, fee)
        return fee

    def backstop(self, m: Market, s: Margins) -> None:
        """The fund takes the position over at the bankruptcy price, or ADL closes it."""
        scope, addr = self.scope, self.addr
        size, px, bp = self.position_bp(m, s)
        # The fund would hold `size` bought at bp: its loss is what that is worth less at mark.
        loss = max(size * bp * m.q - value(m, size, px), 0)
        room = min(fund_balance(scope.view, scope.quote),
                   self.p.max_fund_loss_per_block_quantums - self.fund_loss)
        if loss > room:
            deleverage(scope, m, addr, size, bp, self.idx.holders(m.id))
            return
        settle_fill(scope, m, addr, size < 0, INSURANCE_FUND, bp, abs(size), 0, 0)
        self.fund_loss += loss
        scope.ledger.flush()
        scope.events.append(Event("insurance_takeover", (
            ("account", addr.hex()), ("market", m.symbol), ("size", size_text(m, abs(size))),
            ("side", "long" if size > 0 else "short"), ("price", price_text(m, bp)),
            ("mark", quote_text(m, px)), ("fund_loss", quote_text(m, loss)),
            ("fund_balance", quote_text(m, fund_balance(scope.view, scope.quote))))
            + _ISOLATED_ATTR * (self.market is not None)))


def liquidation_event(m: Market, addr: bytes, order_id: int, size: int, lots: int, filled: int,
                      left: int, px: int, s: Margins, fee: int, isolated: bool = False) -> Event:
    """`equity`, `maintenance_margin`: the cross account's, or for an isolated position
    (`margin_mode` isolated) its own."""
    return Event("liquidation", (
        ("account", addr.hex()), ("market", m.symbol), ("order_id", str(order_id)),
        ("side", "buy" if size < 0 else "sell"), ("size", size_text(m, lots)),
        ("filled", size_text(m, filled)), ("position_left", size_text(m, left)),
        ("mark", quote_text(m, px)), ("equity", quote_text(m, s.equity)),
        ("maintenance_margin", quote_text(m, s.maintenance_margin)),
        ("fee", quote_text(m, fee))) + _ISOLATED_ATTR * isolated)


def _log(view: Overlay, ctx, events: list[Event]) -> None:
    """Append the liquidation events to the stored log, keeping the last MAX_LIQUIDATION_LOG."""
    raw = view.get(K_SEQ)
    seq = 0 if raw is None else load(raw)
    start = seq
    for e in events:
        if e.type in LOGGED:
            view.put(P_LOG + seq.to_bytes(8, "big"), encode([ctx.height, ctx.time_ms,
                                                             e.to_wire()]))
            seq += 1
    for old in range(max(start - C.MAX_LIQUIDATION_LOG, 0), seq - C.MAX_LIQUIDATION_LOG):
        view.delete(P_LOG + old.to_bytes(8, "big"))
    if seq != start:
        view.put(K_SEQ, encode(seq))
