"""The exchange's rules: each order type, each rejection (with its own code), fees, PnL,
triggers, expiry, batches, governance and the oracle, on an in-process chain."""

import itertools

import pytest

from state import ledger, orders as O
from state.books import Books
from state.errors import Code
from state.markets import FeeTier
from state.positions import load_account
from state.settlement import POOL
from state.codec import encode
from state.tx import signing_bytes
from tests.chain_helpers import (BTC_LOT, BTC_PERP, BTC_PERP_SPEC, BTC_SPOT, CHAIN_ID, ETH_LOT,
                                 ETH_PERP, FEE_ACCOUNT, GOV, PRICE, USDC, VALIDATORS, Chain,
                                 action, key, oracle_tx, order, trading_genesis)

LOTS = {BTC_PERP: BTC_LOT, ETH_PERP: ETH_LOT, BTC_SPOT: BTC_LOT, 4: BTC_LOT}

A, B, C3 = key(0), key(1), key(2)
GTC, IOC, FOK, ALO = 0, 1, 2, 3
LIMIT, MARKET, STOP_MARKET, STOP_LIMIT, TP_MARKET, TP_LIMIT = range(6)


class T:
    """A chain plus a nonce source."""

    def __init__(self, **kw):
        self.c = Chain(trading_genesis(**kw))
        self.n = itertools.count(self.c.time_ms)

    def nonce(self):
        return next(self.n)

    def order(self, k, market, is_buy, usd, lots, **kw):
        return order(k, self.nonce(), market, is_buy, int(usd * PRICE), lots * LOTS[market], **kw)

    def act(self, k, *a):
        return action(k, self.nonce(), *a)

    def block(self, *txs, dt_ms=1000):
        return self.c.block(list(txs), dt_ms)

    def one(self, tx):
        return self.block(tx).tx_results[0]

    def oracle(self, prices):
        return self.block(*oracle_tx(self.nonce(), prices))

    def pos(self, k, market=BTC_PERP):
        a = load_account(self.c.kv, k.pub_key)
        e = a.entries.get(market)
        return (0, 0) if e is None else (e.size, e.entry_tl)

    def bal(self, k, asset="USDC"):
        addr = k if isinstance(k, bytes) else k.pub_key
        return ledger.balance(self.c.kv, addr, asset)

    def l2(self, market=BTC_PERP):
        b = Books().build(self.c.kv, market)
        b.check_invariants()
        return ([(lv.price_ticks, lv.size_lots) for lv in b.l2(0, 10)],
                [(lv.price_ticks, lv.size_lots) for lv in b.l2(1, 10)])


def evs(result, typ):
    return [dict(e.attrs) for e in result.events if e.type == typ]


TICK = 100_000  # BTC tick in price units ($0.1)


def ticks(usd):
    return usd * PRICE // TICK


# -- order types -------------------------------------------------------------------------------

def test_gtc_rests_then_ioc_takes_at_the_makers_price():
    t = T()
    r = t.one(t.order(A, BTC_PERP, True, 60_000, 100))
    assert r.code == 0 and evs(r, "order")[0]["status"] == "open"
    assert t.l2() == ([(ticks(60_000), 100)], [])
    r = t.one(t.order(B, BTC_PERP, False, 59_000, 40, tif=IOC))
    (f,) = evs(r, "fill")
    assert (f["price"], f["size"], f["maker_remaining"]) == ("60000", "0.004", "0.006")
    assert t.pos(A) == (40, 40 * ticks(60_000)) and t.pos(B) == (-40, -40 * ticks(60_000))
    assert t.l2() == ([(ticks(60_000), 60)], [])


def test_ioc_remainder_is_dropped_and_unfilled_ioc_succeeds_without_fills():
    t = T()
    t.block(t.order(A, BTC_PERP, False, 60_000, 10))
    r = t.one(t.order(B, BTC_PERP, True, 60_000, 30, tif=IOC))
    assert evs(r, "order")[0]["status"] == "partially_filled_cancelled"
    assert t.l2() == ([], [])
    r = t.one(t.order(B, BTC_PERP, True, 60_000, 30, tif=IOC))
    assert r.code == 0 and evs(r, "order")[0]["status"] == "cancelled_unfilled"


def test_fok_fills_whole_or_is_rejected():
    t = T()
    t.block(t.order(A, BTC_PERP, False, 60_000, 10), t.order(A, BTC_PERP, False, 60_001, 10))
    r = t.one(t.order(B, BTC_PERP, True, 60_001, 30, tif=FOK))
    assert r.code == Code.FOK_NOT_FILLABLE and "cannot fill" in r.log
    assert t.l2()[1] == [(ticks(60_000), 10), (ticks(60_001), 10)]
    r = t.one(t.order(B, BTC_PERP, True, 60_001, 20, tif=FOK))
    assert r.code == 0 and len(evs(r, "fill")) == 2 and t.l2()[1] == []


def test_post_only_rests_or_is_rejected_if_it_would_cross():
    t = T()
    t.block(t.order(A, BTC_PERP, False, 60_000, 10))
    r = t.one(t.order(B, BTC_PERP, True, 60_000, 10, tif=ALO))
    assert r.code == Code.POST_ONLY_WOULD_CROSS and "60000" in r.log
    r = t.one(t.order(B, BTC_PERP, True, 59_999, 10, tif=ALO))
    assert r.code == 0 and t.l2() == ([(ticks(59_999), 10)], [(ticks(60_000), 10)])


def test_market_order_stops_at_its_worst_price():
    t = T()
    t.block(t.order(A, BTC_PERP, False, 60_000, 10), t.order(A, BTC_PERP, False, 61_000, 10))
    r = t.one(t.order(B, BTC_PERP, True, 60_500, 30, kind=MARKET, tif=IOC))
    assert [f["price"] for f in evs(r, "fill")] == ["60000"]
    assert t.pos(B)[0] == 10
    r = t.one(t.order(B, BTC_PERP, True, 60_500, 30, kind=MARKET, tif=GTC))
    assert r.code == Code.INVALID_ORDER


def test_reduce_only():
    t = T()
    r = t.one(t.order(A, BTC_PERP, False, 60_000, 10, tif=IOC, reduce_only=True))
    assert r.code == Code.REDUCE_ONLY_WOULD_INCREASE and "position 0" in r.log
    # a resting reduce-only order needs a position too (tests/unit/test_order_types.py)
    r = t.one(t.order(A, BTC_PERP, False, 60_000, 10, tif=GTC, reduce_only=True))
    assert r.code == Code.REDUCE_ONLY_WOULD_INCREASE and "position 0" in r.log
    t.block(t.order(B, BTC_PERP, False, 60_000, 10), t.order(A, BTC_PERP, True, 60_000, 10))
    assert t.pos(A)[0] == 10
    r = t.one(t.order(A, BTC_PERP, True, 60_000, 10, tif=IOC, reduce_only=True))
    assert r.code == Code.REDUCE_ONLY_WOULD_INCREASE
    # a reduce-only sell larger than the position is clipped to it
    t.block(t.order(B, BTC_PERP, True, 60_000, 50))
    r = t.one(t.order(A, BTC_PERP, False, 60_000, 30, tif=IOC, reduce_only=True))
    assert r.code == 0 and [f["size"] for f in evs(r, "fill")] == ["0.001"]
    assert t.pos(A) == (0, 0)


def test_stop_market_and_take_profit_trigger_on_the_mark():
    t = T()
    # A long 10 lots; liquidity on both sides for the triggered orders
    t.block(t.order(B, BTC_PERP, False, 60_000, 10), t.order(A, BTC_PERP, True, 60_000, 10))
    t.block(t.order(C3, BTC_PERP, True, 55_000, 100), t.order(C3, BTC_PERP, False, 65_000, 100))
    stop = t.order(A, BTC_PERP, False, 50_000, 10, kind=STOP_MARKET, tif=IOC, reduce_only=True,
                   trigger=58_000 * PRICE)
    tp = t.order(B, BTC_PERP, True, 66_000, 10, kind=TP_LIMIT, tif=IOC, trigger=57_000 * PRICE)
    r = t.block(stop, tp)
    assert [evs(x, "order")[0]["status"] for x in r.tx_results] == ["waiting_trigger"] * 2
    assert len(O.account_order_ids(t.c.kv, A.pub_key)) == 1
    r = t.oracle([("BTC", 59_000 * PRICE)])  # mark 59000: nothing fires
    assert not [e for e in r.block_events if e.type == "trigger"]
    r = t.oracle([("BTC", 56_500 * PRICE)])  # both fire: stop sell (<=58000), TP buy (<=57000)
    fired = [dict(e.attrs) for e in r.block_events if e.type == "trigger"]
    assert len(fired) == 2 and fired[0]["mark"] == "56500"
    fills = [dict(e.attrs) for e in r.block_events if e.type == "fill"]
    assert [(f["price"], f["taker_side"]) for f in fills] == [("55000", "sell"), ("65000", "buy")]
    assert t.pos(A)[0] == 0 and O.account_order_ids(t.c.kv, A.pub_key) == []


def test_trigger_that_cannot_execute_is_dropped_with_an_event():
    t = T()
    t.block(t.order(B, BTC_PERP, False, 60_000, 10), t.order(A, BTC_PERP, True, 60_000, 10))
    t.block(t.order(A, BTC_PERP, False, 50_000, 10, kind=STOP_MARKET, tif=IOC, reduce_only=True,
                    trigger=58_000 * PRICE))
    # the position is closed before the stop fires: at the trigger it would open a short
    t.block(t.order(C3, BTC_PERP, True, 60_000, 10), t.order(A, BTC_PERP, False, 60_000, 10,
                                                              tif=IOC))
    assert t.pos(A)[0] == 0
    r = t.oracle([("BTC", 57_000 * PRICE)])
    (rej,) = [dict(e.attrs) for e in r.block_events if e.type == "trigger_rejected"]
    assert rej["code"] == str(int(Code.REDUCE_ONLY_WOULD_INCREASE))
    assert O.account_order_ids(t.c.kv, A.pub_key) == []
    assert BTC_PERP not in load_account(t.c.kv, A.pub_key).entries


def test_stop_limit_rests_after_it_fires():
    t = T()
    t.block(t.order(A, BTC_PERP, False, 50_000, 10, kind=STOP_LIMIT, tif=GTC,
                    trigger=58_000 * PRICE))
    t.oracle([("BTC", 57_000 * PRICE)])
    assert t.l2()[1] == [(ticks(50_000), 10)]


def test_self_trade_cancels_the_resting_order():
    t = T()
    t.block(t.order(A, BTC_PERP, False, 60_000, 10))
    r = t.one(t.order(A, BTC_PERP, True, 60_000, 10, tif=IOC))
    assert evs(r, "fill") == [] and evs(r, "cancel")[0]["reason"] == "self_trade"
    assert t.l2() == ([], []) and O.account_order_ids(t.c.kv, A.pub_key) == []


# -- cancel, modify, batch, expiry ------------------------------------------------------------

def test_cancel_by_id_by_cloid_and_all():
    t = T()
    t.block(t.order(A, BTC_PERP, True, 59_000, 10, cloid=1),
            t.order(A, BTC_PERP, True, 58_000, 10, cloid=2),
            t.order(A, ETH_PERP, True, 2_000, 10, cloid=3),
            t.order(A, BTC_PERP, False, 70_000, 10, cloid=4))
    ids = O.account_order_ids(t.c.kv, A.pub_key)
    assert len(ids) == 4
    r = t.one(t.act(B, "cancel", BTC_PERP, ids[0][1]))
    assert r.code == Code.ORDER_NOT_FOUND  # not B's order
    assert t.one(t.act(A, "cancel", BTC_PERP, ids[0][1])).code == 0
    assert t.one(t.act(A, "cancel", BTC_PERP, ids[0][1])).code == Code.ORDER_NOT_FOUND
    assert t.one(t.act(A, "cancel_cloid", BTC_PERP, 2)).code == 0
    assert t.one(t.act(A, "cancel_cloid", BTC_PERP, 3)).code == Code.ORDER_NOT_FOUND  # ETH
    r = t.one(t.act(A, "cancel_all", BTC_PERP))
    assert evs(r, "cancel_all")[0]["cancelled"] == "1"
    assert O.account_order_ids(t.c.kv, A.pub_key) == [(ETH_PERP, 3)]
    assert t.one(t.act(A, "cancel_all", 0)).code == 0
    assert O.account_order_ids(t.c.kv, A.pub_key) == []
    assert load_account(t.c.kv, A.pub_key).entries == {}


def test_modify_keeps_priority_only_when_the_size_shrinks():
    t = T()
    t.block(t.order(A, BTC_PERP, False, 60_000, 20, cloid=9), t.order(B, BTC_PERP, False, 60_000, 10))
    a_id = O.cloid_lookup(t.c.kv, A.pub_key, 9)[1]
    r = t.one(t.act(A, "modify", BTC_PERP, a_id, 60_000 * PRICE, 10 * BTC_LOT))
    assert evs(r, "order")[0]["status"] == "modified_in_place"
    r = t.one(t.order(C3, BTC_PERP, True, 60_000, 10, tif=IOC))
    assert evs(r, "fill")[0]["maker"] == A.pub_key.hex()  # A kept its place
    t.block(t.order(A, BTC_PERP, False, 60_000, 10, cloid=8))
    a2 = O.cloid_lookup(t.c.kv, A.pub_key, 8)[1]
    r = t.one(t.act(A, "modify", BTC_PERP, a2, 60_000 * PRICE, 20 * BTC_LOT))  # grows: requeued
    new_id = O.cloid_lookup(t.c.kv, A.pub_key, 8)[1]
    assert r.code == 0 and new_id != a2 and evs(r, "cancel")[0]["reason"] == "modify"
    r = t.one(t.order(C3, BTC_PERP, True, 60_000, 10, tif=IOC))
    assert evs(r, "fill")[0]["maker"] == B.pub_key.hex()
    assert t.one(t.act(B, "modify", BTC_PERP, new_id, 60_000 * PRICE, BTC_LOT)).code == \
        Code.ORDER_NOT_FOUND


def test_batch_items_have_their_own_results():
    t = T()
    mk = ["order", BTC_PERP, True, 0, 59_000 * PRICE, 10 * BTC_LOT, GTC, False, 0, 5, 0]
    bad = ["order", BTC_PERP, True, 0, 59_000 * PRICE + 1, 10 * BTC_LOT, GTC, False, 0, 0, 0]
    dup = ["order", BTC_PERP, True, 0, 58_000 * PRICE, 10 * BTC_LOT, GTC, False, 0, 5, 0]
    r = t.one(t.act(A, "batch", [mk, bad, dup, ["cancel_cloid", BTC_PERP, 5]]))
    assert r.code == 0
    items = [(x["index"], x["code"]) for x in evs(r, "batch_item")]
    assert items == [("0", "0"), ("1", str(int(Code.INVALID_TICK))),
                     ("2", str(int(Code.DUPLICATE_CLIENT_ID))), ("3", "0")]
    assert t.l2() == ([], [])
    # a client library would refuse to sign it; sign it by hand
    act = ["batch", [mk] * 51]
    n = t.nonce()
    raw = encode([CHAIN_ID, A.pub_key, n, act,
                  A.private.sign(signing_bytes(CHAIN_ID, A.pub_key, n, act))])
    r = t.one(raw)
    assert r.code == Code.BATCH_TOO_LARGE and "51" in r.log


def test_good_til_time_orders_expire_at_the_start_of_a_block():
    t = T()
    exp = t.c.time_ms + 2500
    r = t.one(t.order(A, BTC_PERP, True, 59_000, 10, expiry=exp))
    assert r.code == 0
    t.block()
    r = t.block()  # block time now >= exp
    (c,) = [dict(e.attrs) for e in r.block_events if e.type == "cancel"]
    assert c["reason"] == "expired" and t.l2() == ([], [])
    r = t.one(t.order(A, BTC_PERP, True, 59_000, 10, expiry=t.c.time_ms))
    assert r.code == Code.ORDER_EXPIRED


# -- rejections ----------------------------------------------------------------------------------

@pytest.mark.parametrize("market,price,size,code", [
    (BTC_PERP, 60_000 * PRICE + 1, 10 * BTC_LOT, Code.INVALID_TICK),
    (BTC_PERP, 0, 10 * BTC_LOT, Code.INVALID_TICK),
    (BTC_PERP, 60_000 * PRICE, 10 * BTC_LOT + 1, Code.INVALID_LOT),
    (BTC_PERP, 60_000 * PRICE, 0, Code.INVALID_LOT),
    (BTC_PERP, 60_000 * PRICE, 5 * BTC_LOT, Code.ORDER_TOO_SMALL),
    (BTC_PERP, 10**16, 10 * BTC_LOT, Code.ORDER_TOO_LARGE),
    (BTC_PERP, 60_000 * PRICE, 10**12 * BTC_LOT, Code.ORDER_TOO_LARGE),
    (99, 60_000 * PRICE, 10 * BTC_LOT, Code.UNKNOWN_MARKET),
])
def test_order_field_rejections(market, price, size, code):
    t = T()
    r = t.one(order(A, t.nonce(), market, True, price, size))
    assert r.code == code and r.log
    assert t.l2() == ([], [])


def test_insufficient_margin_rolls_back_fills_and_the_book():
    t = T()
    t.block(t.act(A, "set_leverage", BTC_PERP, 1), t.order(B, BTC_PERP, False, 60_000, 10_000))
    # A (100k USDC, 1x) buys 2 BTC GTC: 1 BTC fills, 1 BTC would rest -> worst case 120k > 100k
    r = t.block(t.order(A, BTC_PERP, True, 60_000, 20_000),
                t.order(C3, BTC_PERP, True, 60_000, 10_000, tif=IOC))
    assert r.tx_results[0].code == Code.INSUFFICIENT_MARGIN and "initial margin" in \
        r.tx_results[0].log
    # the rejected tx's fills were undone in the book: C3 then took B's whole order
    assert evs(r.tx_results[1], "fill")[0]["size"] == "1"
    assert t.pos(A) == (0, 0) and t.pos(C3)[0] == 10_000 and t.l2() == ([], [])
    assert t.one(t.act(A, "set_leverage", BTC_PERP, 51)).code == Code.INVALID_LEVERAGE
    assert t.one(t.act(A, "set_leverage", BTC_SPOT, 1)).code == Code.INVALID_LEVERAGE


def test_reducing_orders_pass_even_below_initial_margin():
    t = T()
    t.block(t.act(A, "set_leverage", BTC_PERP, 2), t.order(B, BTC_PERP, False, 60_000, 20_000),
            t.order(A, BTC_PERP, True, 60_000, 20_000, tif=IOC))
    assert t.pos(A)[0] == 20_000
    t.oracle([("BTC", 50_000 * PRICE)])  # A loses 20k: equity 80k < IM 50k? no: IM 50k, ok
    t.oracle([("BTC", 45_000 * PRICE)])  # equity 70k < IM 45k*2/2... still fine at 2x
    assert t.one(t.act(A, "set_leverage", BTC_PERP, 1)).code == Code.INSUFFICIENT_MARGIN
    t.block(t.order(C3, BTC_PERP, True, 45_000, 5_000))
    r = t.one(t.order(A, BTC_PERP, False, 45_000, 5_000, tif=IOC))
    assert r.code == 0 and t.pos(A)[0] == 15_000


def test_stale_oracle_halts_risk_increasing_orders_only():
    t = T(max_age_ms=5_000)
    t.block(t.order(B, BTC_PERP, False, 60_000, 10), t.order(A, BTC_PERP, True, 60_000, 10))
    t.block(dt_ms=6_000)
    r = t.one(t.order(A, BTC_PERP, True, 60_000, 10))
    assert r.code == Code.ORACLE_STALE and "ms old" in r.log
    assert t.one(t.order(A, BTC_PERP, False, 60_000, 10, tif=IOC, reduce_only=True)).code == 0
    assert t.one(t.act(A, "cancel_all", 0)).code == 0
    t.oracle([("BTC", 60_000 * PRICE)])
    assert t.one(t.order(A, BTC_PERP, True, 60_000, 10)).code == 0


def test_duplicate_client_id_and_too_many_orders(monkeypatch):
    t = T()
    assert t.one(t.order(A, BTC_PERP, True, 59_000, 10, cloid=77)).code == 0
    r = t.one(t.order(A, ETH_PERP, True, 2_000, 10, cloid=77))
    assert r.code == Code.DUPLICATE_CLIENT_ID and "77" in r.log
    from state import constants as C
    monkeypatch.setattr(C, "MAX_OPEN_ORDERS_PER_ACCOUNT", 1)
    assert t.one(t.order(A, BTC_PERP, True, 58_000, 10)).code == Code.TOO_MANY_OPEN_ORDERS


# -- money: fees, PnL, pool, spot ------------------------------------------------------------------

def test_fees_pnl_and_the_settlement_pool():
    t = T()
    t.block(t.order(B, BTC_PERP, False, 60_000, 10_000), t.order(A, BTC_PERP, True, 60_000, 10_000,
                                                                   tif=IOC))
    n = 60_000 * USDC  # 1 BTC
    assert t.bal(FEE_ACCOUNT) == n * 450 // 10**6 + n * 150 // 10**6
    t.block(t.order(C3, BTC_PERP, True, 61_000, 10_000), t.order(A, BTC_PERP, False, 61_000, 10_000,
                                                                   tif=IOC))
    n2 = 61_000 * USDC
    # A realised +1000 minus two taker fees; the pool paid it
    assert t.bal(A) == 100_000 * USDC + 1_000 * USDC - n * 450 // 10**6 - n2 * 450 // 10**6
    assert t.pos(A) == (0, 0)
    assert t.bal(POOL) == -1_000 * USDC
    # pool = -(sum of cost bases) * q; everything sums to the supply
    bases = sum(t.pos(k)[1] for k in (A, B, C3)) * 10
    assert t.bal(POOL) == -bases
    total = sum(t.bal(k) for k in (A, B, C3, key(3))) + t.bal(POOL) + t.bal(FEE_ACCOUNT)
    assert total == ledger.supply(t.c.kv, "USDC")


def test_fee_tier_from_the_previous_days_volume():
    t = T(amount=1_000_000 * USDC)
    t.block(t.act(A, "set_leverage", BTC_PERP, 50), t.act(B, "set_leverage", BTC_PERP, 50))
    # 5M USDC of volume today: ~84 BTC at 60000
    t.block(t.order(B, BTC_PERP, False, 60_000, 840_000), t.order(A, BTC_PERP, True, 60_000,
                                                                    840_000, tif=IOC))
    t.block(dt_ms=86_400_000)  # next day; the oracle is stale but reduce-only still trades
    t.oracle([("BTC", 60_000 * PRICE)])
    t.block(t.order(B, BTC_PERP, True, 60_000, 10_000))
    r = t.one(t.order(A, BTC_PERP, False, 60_000, 10_000, tif=IOC, reduce_only=True))
    f = evs(r, "fill")[0]
    assert (f["taker_fee"], f["maker_fee"]) == ("24", "7.2")  # 400 and 120 ppm of 60000


def test_spot_trade_moves_both_assets_and_needs_balances():
    t = T(btc=10**8)  # every account holds 1 BTC
    r = t.one(t.order(A, BTC_SPOT, False, 60_000, 20_000))  # sells 2 BTC: has 1
    assert r.code == Code.INSUFFICIENT_BALANCE
    t.block(t.order(A, BTC_SPOT, False, 60_000, 5_000))
    r = t.one(t.order(B, BTC_SPOT, True, 60_000, 5_000, tif=IOC))
    assert r.code == 0
    assert t.bal(A, "BTC") == 10**8 // 2 and t.bal(B, "BTC") == 10**8 * 3 // 2
    n = 30_000 * USDC
    assert t.bal(A) == 100_000 * USDC + n - n * 200 // 10**6
    assert t.bal(B) == 100_000 * USDC - n - n * 500 // 10**6
    r = t.one(t.order(A, BTC_SPOT, True, 60_000, 10_000, reduce_only=True, tif=IOC))
    assert r.code == Code.INVALID_ORDER


# -- oracle and governance --------------------------------------------------------------------

def test_oracle_power_weighted_median_and_validator_only():
    t = T(powers=(10, 20, 40))
    prices = [("BTC", 100 * PRICE), ("BTC", 200 * PRICE), ("BTC", 300 * PRICE)]
    r = t.block(*[action(v, t.nonce(), "oracle", [list(p)]) for v, p in zip(VALIDATORS, prices)])
    from state.oracle import price
    assert price(t.c.kv, "BTC")[0] == 300 * PRICE  # 40 of 70 power at 300
    assert t.one(action(A, t.nonce(), "oracle", [["BTC", PRICE]])).code == Code.NOT_A_VALIDATOR
    bad = t.one(action(VALIDATORS[0], t.nonce(), "oracle", [["BTC", 0]]))
    assert bad.code == Code.INVALID_PRICE
    assert t.one(action(VALIDATORS[0], t.nonce(), "oracle", [["DOGE", 1]])).code == \
        Code.UNKNOWN_ASSET
    # one validator alone (10 of 70 power) is not enough to move the price
    t.block(action(VALIDATORS[0], t.nonce(), "oracle", [["BTC", 5 * PRICE]]), dt_ms=61_000)
    assert price(t.c.kv, "BTC")[0] == 300 * PRICE
    assert r.tx_results[0].code == 0


def test_governance_adds_a_market_and_changes_a_fee_from_a_height():
    t = T()
    spec = list(BTC_PERP_SPEC)
    spec[0] = "SOL-USD"
    spec[2] = "SOL"
    h = t.c.height
    r = t.one(t.act(A, "gov_add_market", spec, h + 3))
    assert r.code == Code.NOT_GOVERNANCE
    assert t.one(t.act(GOV, "gov_add_market", spec, h + 2)).code == Code.INVALID_GOVERNANCE
    at = t.c.height + 3
    r = t.block(t.act(GOV, "gov_add_market", spec, at),
                t.act(GOV, "gov_set_param", BTC_PERP, "taker_fee_ppm", 600, at),
                t.act(GOV, "gov_set_param", BTC_PERP, "tick_size", 1, at))
    assert [x.code for x in r.tx_results] == [0, 0, Code.INVALID_GOVERNANCE]
    assert t.one(t.order(A, 4, True, 100, 10)).code == Code.UNKNOWN_MARKET
    r = t.block()
    applied = [dict(e.attrs) for e in r.block_events if e.type == "governance_applied"]
    assert [a["action"] for a in applied] == ["add_market", "set_param"]
    t.block(*oracle_tx(t.nonce(), [("SOL", 150 * PRICE)]))
    assert t.one(t.order(A, 4, True, 150, 10)).code == 0
    t.block(t.order(B, BTC_PERP, False, 60_000, 10_000))
    f = evs(t.one(t.order(A, BTC_PERP, True, 60_000, 10_000, tif=IOC)), "fill")[0]
    assert f["taker_fee"] == "36"  # 600 ppm of 60000


def test_fee_tier_reductions_never_make_fees_negative():
    from state.errors import InvalidBlock
    from state.genesis import genesis_writes
    with pytest.raises(InvalidBlock, match="taker"):
        genesis_writes(trading_genesis(fee_tiers=(FeeTier(0, 0, 0), FeeTier(10, 500, 0))))


# -- transfers out of a trading account ------------------------------------------------------

def test_a_transfer_must_leave_positions_and_open_orders_covered():
    t = T(amount=10_000 * USDC)
    assert t.one(t.order(B, BTC_PERP, False, 60_000, 1_000)).code == 0
    assert t.one(t.order(A, BTC_PERP, True, 60_000, 1_000, tif=IOC)).code == 0
    # A: long 0.1 BTC ($6,000) at 50x: initial margin $120; equity 10,000 - fee 2.7 = 9,997.3
    out = action(A, t.nonce(), "transfer", C3.pub_key, "USDC", 9_900 * USDC)
    r = t.one(out)
    assert r.code == Code.INSUFFICIENT_MARGIN and "below the initial margin 120" in r.log
    assert t.bal(A) == 9_997_300_000                        # nothing moved
    assert t.one(action(A, t.nonce(), "transfer", C3.pub_key, "USDC", 9_800 * USDC)).code == 0
    # C3 (now 19,800) rests a spot buy of 0.1 BTC at $60,000: it may spend $6,003 with the fee
    assert t.one(t.order(C3, BTC_SPOT, True, 60_000, 1_000)).code == 0
    r = t.one(action(C3, t.nonce(), "transfer", A.pub_key, "USDC", 14_000 * USDC))
    assert r.code == Code.INSUFFICIENT_BALANCE and "open spot orders" in r.log
    # an account without positions or orders only needs the balance
    assert t.one(action(B, t.nonce(), "transfer", A.pub_key, "USDC", 1 * USDC)).code == 0
