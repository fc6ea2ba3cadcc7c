"""The fast form of settling a taker order's fills on a cross-margin perp market.

What this module owns
---------------------
`settle_taker_fills(scope, m, o, fills)` has exactly the effects of the readable
`state.settlement.settle_taker_fills`, where the rules are written: the same writes, the same
events in the same order, the same ledger credits (a key is credited iff the readable form
credits it) and the same result. The order path (state.placement) calls this one;
liquidation and auto-deleveraging call `settlement.settle_fill` directly.

It takes over only when the market is perp-like and the taker's position is cross margin, and
hands a fill whose maker position is isolated to the readable `settle_fill`; everything else
goes to the readable form. What it does differently, for speed only:
* one loop over the fills with the fee and position arithmetic in it (`fees.fee_amount`,
  `positions.apply_trade` when a position grows, `Account.add_volume` into today's bucket);
  `apply_trade` itself runs when a position shrinks or flips;
* credits are summed (`Ledger.credit_sum`): a maker's two per fill, and the taker's, the perp
  pool's and the fee account's over all the fills, each handed to the ledger once; a sum is
  handed over iff the readable form makes one of its credits (a non-zero one);
* the taker's volume grows once, by the sum of the notionals (every fill adds to today's
  bucket; the taker never trades with itself, so nothing reads its volume in between).
tests/unit/test_fast_fills.py compares both forms on random books, positions and fee tiers.
"""

from state import hl_tpsl, orders, settlement
from state.event_text import fill_event
from state.fees import maker_ppm, taker_ppm
from state.markets import Market
from state.orders import OrderRecord, resting_record
from state.positions import apply_trade
from state.settlement import POOL, Settled

_PPM = 1_000_000


def settle_taker_fills(scope, m: Market, o: OrderRecord, fills) -> bool:
    """As `state.settlement.settle_taker_fills` (see the module docstring)."""
    if not m.perp_like:
        return settlement.settle_taker_fills(scope, m, o, fills)
    ledger = scope.ledger
    taker = o.owner
    t_ppm = taker_ppm(m, scope.fee_tier(taker))
    t_acct = ledger.account(taker)
    te = t_acct.entry(m.id)
    if te.isolated:
        return settlement.settle_taker_fills(scope, m, o, fills)
    mid, q, is_buy, today, quote = m.id, m.q, o.is_buy, scope.today, scope.quote
    accounts, events = ledger.accounts, scope.events
    t_sum = pool_sum = fee_sum = volume = 0
    t_touch = pool_touch = fee_touch = isolated = False
    for f in fills:
        maker, p, s = f.maker_owner, f.price_ticks, f.size_lots
        m_ppm = maker_ppm(m, scope.fee_tier(maker))
        m_acct = accounts[maker]  # (loaded by fee_tier)
        me = m_acct.entries.get(mid) or m_acct.entry(mid)
        if me.isolated:
            _readable_fill(scope, m, o, f, t_ppm, m_ppm)
            isolated = True
            continue
        _fill_resting(scope.view, mid, not is_buy, f, me)
        notional = p * s * q
        tf = -(-notional * t_ppm // _PPM) if t_ppm >= 0 else -(notional * -t_ppm // _PPM)
        mf = -(-notional * m_ppm // _PPM) if m_ppm >= 0 else -(notional * -m_ppm // _PPM)
        lots = s if is_buy else -s
        rt = _trade(te, lots, p) * q
        rm = _trade(me, -lots, p) * q
        if rm or mf:
            ledger.credit_sum(maker, quote, rm - mf)
        if rt or tf:
            t_sum += rt - tf
            t_touch = True
        if rt + rm:
            pool_sum -= rt + rm
            pool_touch = True
        if tf + mf:
            fee_sum += tf + mf
            fee_touch = True
        _add_volume(m_acct, today, notional)
        volume += notional
        events.append(fill_event(m, o, f.maker_order_id, maker, f.maker_info.cloid, p, s,
                                 f.maker_remaining_lots, Settled(tf, mf, rt, rm)))
    if t_touch:
        ledger.credit_sum(taker, quote, t_sum)
    if pool_touch:
        ledger.credit_sum(POOL, quote, pool_sum)
    if fee_touch:
        ledger.credit_sum(scope.fee_account, quote, fee_sum)
    if volume:
        _add_volume(t_acct, today, volume)
    return isolated


def _readable_fill(scope, m: Market, o: OrderRecord, f, t_ppm: int, m_ppm: int) -> None:
    """One fill through the readable form (a maker whose position is isolated)."""
    settlement.fill_resting(scope, m, f.maker_order_id, f.maker_owner, not o.is_buy,
                            f.price_ticks, f.size_lots, f.maker_remaining_lots, f.maker_info)
    st = settlement.settle_fill(scope, m, o.owner, o.is_buy, f.maker_owner, f.price_ticks,
                                f.size_lots, t_ppm, m_ppm)
    scope.events.append(fill_event(m, o, f.maker_order_id, f.maker_owner, f.maker_info.cloid,
                                   f.price_ticks, f.size_lots, f.maker_remaining_lots, st))


def _fill_resting(view, mid: int, maker_buys: bool, f, me) -> None:
    """`settlement.fill_resting`, given the maker's entry `me`."""
    p, left, info = f.price_ticks, f.maker_remaining_lots, f.maker_info
    me.remove_open(maker_buys, f.size_lots, p)
    rec = resting_record(mid, f.maker_order_id, f.maker_owner, maker_buys, p, left, info)
    if left:
        orders.resize_resting(view, rec)
    else:
        orders.remove_resting(view, rec)
        me.orders -= 1
        hl_tpsl.parent_left(view, mid, f.maker_order_id, f.maker_owner, info.orig_lots)


def _trade(e, lots: int, p: int) -> int:
    """`positions.apply_trade`, with its common case (the position opens or grows) inline."""
    n = e.size
    if n == 0 or (n > 0) == (lots > 0):
        e.size = n + lots
        e.entry_tl += lots * p
        return 0
    return apply_trade(e, lots, p)


def _add_volume(acct, today: int, amount: int) -> None:
    """`Account.add_volume`, with its common case (today's bucket exists) inline."""
    vol = acct.volume
    if vol and vol[-1][0] == today:
        vol[-1] = [today, vol[-1][1] + amount]  # (a new bucket: never changed in place)
    else:
        acct.add_volume(today, amount)
