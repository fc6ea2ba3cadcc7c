"""Settlement: what one fill does to the two accounts, the fee account and the perp pool.

What this module owns
---------------------
`settle_fill` settles one fill of s lots at p ticks on market m between a taker and a maker
(notional N = p * s * q quote quantums). It is the one place a trade moves money, used by the
order path and, later, by liquidation and auto-deleveraging:
* perp and future: both positions change (`positions.apply_trade`); realised PnL moves between each
  trader's quote balance and the settlement pool (POOL), so balances + pool always equal the
  supply and pool = -(sum of all cost bases) * q (state.invariants);
* spot: the buyer pays N quote and receives s * lot_size base; the seller the reverse;
* fees (state.fees): the taker pays its fee, the maker pays its fee or receives its rebate,
  the fee account receives the net;
* both accounts' volume for today grows by N (fee tiers);
* an isolated position (state.isolated): its realised PnL and fees go into its isolated margin
  instead of the quote balance, and what is left of that margin returns to the quote balance
  when the fill closes the position.
`fill_resting` is what a fill does to the maker's resting order: its record shrinks or goes,
and so do its open-order aggregates. `settle_taker_fills` runs both for each fill of a taker
order, in fill order, with one `fill` event each.
"""

from dataclasses import dataclass

from state import hl_tpsl, orders
from state.event_text import fill_event, quote_text
from state.events import Event
from state.fees import fee_amount, maker_ppm, taker_ppm
from state.hashing import sha256
from state.markets import Market
from state.orders import OrderRecord, RestingFields, resting_record
from state.positions import apply_trade

# The perp settlement pool: the counterpart of realised PnL (see the module docstring). No key
# signs for it: it is sha256 of a fixed label.
POOL = sha256(b"perpchain/perp-settlement-pool")


@dataclass(slots=True)
class Settled:
    """What one fill cost or paid each side, in quote quantums (a slotted dataclass: one per
    fill, and a named tuple's Python __new__ is slow to call)."""
    taker_fee: int   # negative: a rebate (never for a taker)
    maker_fee: int   # negative: a rebate
    taker_pnl: int   # realised PnL (perps; 0 on spot)
    maker_pnl: int
    isolated: bool = False  # a side's position is isolated (state.isolated)


def settle_fill(scope, m: Market, taker: bytes, taker_buys: bool, maker: bytes,
                price_ticks: int, size_lots: int, taker_fee_ppm: int,
                maker_fee_ppm: int) -> Settled:
    """Settle one fill (see the module docstring). Balances change through the ledger."""
    ledger = scope.ledger
    quote = scope.quote
    notional = price_ticks * size_lots * m.q
    t_fee = fee_amount(notional, taker_fee_ppm)
    m_fee = fee_amount(notional, maker_fee_ppm)
    t_acct = ledger.account(taker)
    m_acct = ledger.account(maker)
    if m.perp_like:
        lots = size_lots if taker_buys else -size_lots
        t_e, m_e = t_acct.entry(m.id), m_acct.entry(m.id)
        t_pnl = apply_trade(t_e, lots, price_ticks) * m.q
        m_pnl = apply_trade(m_e, -lots, price_ticks) * m.q
        if t_e.isolated or m_e.isolated:
            _settle_isolated(scope, m, lots, (taker, t_e, t_pnl - t_fee),
                             (maker, m_e, m_pnl - m_fee))
            ledger.credit(POOL, quote, -(t_pnl + m_pnl))
            ledger.credit(scope.fee_account, quote, t_fee + m_fee)
            t_acct.add_volume(scope.today, notional)
            m_acct.add_volume(scope.today, notional)
            return Settled(t_fee, m_fee, t_pnl, m_pnl, True)
        ledger.credit(taker, quote, t_pnl)
        ledger.credit(maker, quote, m_pnl)
        ledger.credit(POOL, quote, -(t_pnl + m_pnl))
    else:
        t_pnl = m_pnl = 0
        buyer, seller = (taker, maker) if taker_buys else (maker, taker)
        ledger.credit(buyer, quote, -notional)
        ledger.credit(seller, quote, notional)
        ledger.credit(buyer, m.base, size_lots * m.lot_size)
        ledger.credit(seller, m.base, -size_lots * m.lot_size)
    ledger.credit(taker, quote, -t_fee)
    ledger.credit(maker, quote, -m_fee)
    ledger.credit(scope.fee_account, quote, t_fee + m_fee)
    t_acct.add_volume(scope.today, notional)
    m_acct.add_volume(scope.today, notional)
    return Settled(t_fee, m_fee, t_pnl, m_pnl)


def _settle_isolated(scope, m: Market, taker_lots: int, *sides) -> None:
    """A fill's PnL less fee for its two `sides` (address, entry, amount), one of them or both
    isolated: an isolated side's goes into its isolated margin, whose rest returns to the cross
    quote balance when the fill closed or flipped the position (state.isolated then moves in
    what the new side needs). `taker_lots`: the taker's signed size change."""
    delta = taker_lots
    for addr, e, amount in sides:
        if not e.isolated:
            scope.ledger.credit(addr, scope.quote, amount)
        else:
            e.iso_margin += amount
            before = e.size - delta
            if e.size == 0 or (before != 0 and (before > 0) != (e.size > 0)):
                release_isolated(scope, m, addr, e, "closed" if e.size == 0 else "flipped")
        delta = -taker_lots


def release_isolated(scope, m: Market, addr: bytes, e, reason: str) -> None:
    """Move what is left of a flat isolated position's margin back to the cross quote
    balance (signed: a deficit the position's own trades left comes back too)."""
    left = e.iso_margin
    if left:
        e.iso_margin = 0
        scope.ledger.credit(addr, scope.quote, left)
        scope.events.append(Event("isolated_margin", (
            ("account", addr.hex()), ("market", m.symbol), ("amount", quote_text(m, -left)),
            ("reason", reason), ("margin", "0"))))


def fill_resting(scope, m: Market, order_id: int, owner: bytes, is_buy: bool, price_ticks: int,
                 filled_lots: int, left_lots: int, f: RestingFields) -> None:
    """A fill of `filled_lots` took a resting order down to `left_lots` (0: it left the book,
    which matching already did)."""
    o = resting_record(m.id, order_id, owner, is_buy, price_ticks, left_lots, f)
    e = scope.ledger.account(owner).entry(m.id)
    e.remove_open(is_buy, filled_lots, price_ticks)
    if left_lots:
        orders.resize_resting(scope.view, o)
    else:
        orders.remove_resting(scope.view, o)
        e.orders -= 1
        hl_tpsl.parent_left(scope.view, m.id, order_id, owner, f.orig_lots)


def settle_taker_fills(scope, m: Market, o: OrderRecord, fills) -> bool:
    """Settle the fills of taker order `o` (`state.matching.Fill`s), in order. True if an
    isolated position took part in one (`Settled.isolated`)."""
    isolated = False
    t_ppm = taker_ppm(m, scope.fee_tier(o.owner))
    for f in fills:
        maker = f.maker_owner
        m_ppm = maker_ppm(m, scope.fee_tier(maker))
        fill_resting(scope, m, f.maker_order_id, maker, not o.is_buy, f.price_ticks,
                     f.size_lots, f.maker_remaining_lots, f.maker_info)
        s = settle_fill(scope, m, o.owner, o.is_buy, maker, f.price_ticks, f.size_lots,
                        t_ppm, m_ppm)
        scope.events.append(fill_event(m, o, f.maker_order_id, maker, f.maker_info.cloid,
                                       f.price_ticks, f.size_lots, f.maker_remaining_lots, s))
        isolated = isolated or s.isolated
    return isolated
