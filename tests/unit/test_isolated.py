"""Isolated margin (state/isolated.py), on an in-process chain with hand-computed numbers.

BTC-USD: max leverage 50 (maintenance margin 1% of notional), taker fee 450 ppm, maker fee
150 ppm; A opens isolated at 10x, so initial margin is 10% of notional at mark; mark = oracle
(no block ends with a two-sided book)."""

import dataclasses
import itertools

from state.errors import Code
from state.insurance import INSURANCE_FUND
from state.invariants import check_invariants
from state.isolated import iso_summary
from state.liquidation import P_ACTIVE
from state.margin import summary
from state.markets import get as get_market
from state.positions import P_CLEARING, load_account
from state.codec import load
from state.markets import DEFAULT_FUNDING
from tests.chain_helpers import (BTC_PERP, BTC_SPOT, ETH_LOT, ETH_PERP, PRICE, USDC, Chain,
                                 LevelKV, action, order, oracle_tx, trading_genesis)
from tests.unit.test_liquidation import A, B, C, D, E, BYSTANDER, GTC, IOC, L, _rpc, evs

ISOLATED, CROSS = 1, 0


class T(L):
    """L plus: funding from genesis, txs that may fail (`try_block` returns their results)
    and isolated reads."""

    def __init__(self, balances: dict, warm: bool = False, fund: int = 0, funding=(), kv=None):
        g = trading_genesis(0)
        bals = [(k.pub_key, "USDC", usd * USDC) for k, usd in balances.items()]
        if fund:
            bals.append((INSURANCE_FUND, "USDC", fund * USDC))
        self.c = Chain(dataclasses.replace(g, balances=tuple(bals), funding=funding), kv=kv,
                       warm=warm)
        self.n = itertools.count(self.c.time_ms)
        self.results = []

    def act(self, k, *fields):
        return action(k, next(self.n), *fields)

    def try_block(self, *txs):
        res = self.c.block(list(txs), 1000)
        check_invariants(self.c.kv)
        self.results.append(res)
        return res.tx_results

    def entry(self, k):
        return load_account(self.c.kv, k.pub_key).entry(BTC_PERP)

    def iso(self, k):
        m = get_market(self.c.kv, BTC_PERP)
        return iso_summary(self.c.kv, m, self.entry(k))

    def cross(self, k):
        return summary(self.c.kv, load_account(self.c.kv, k.pub_key))


def isolated_long(t: T, lev: int = 10, bids=((54_100, 5_000),)):
    """A (10,000 USDC) goes isolated at `lev`x and buys 0.5 BTC at 60,000 from B; C rests
    bids that a liquidation can hit."""
    t.block(t.act(A, "set_margin_mode", BTC_PERP, ISOLATED, lev))
    t.block(t.order(B, False, 60_000, 5_000), t.order(A, True, 60_000, 5_000, tif=IOC),
            *[t.order(C, True, px, size) for px, size in bids])


# -- opening, the margin moved, the cross account --------------------------------------------

def test_opening_moves_the_initial_margin_from_the_cross_balance():
    t = T({A: 10_000, B: 100_000, C: 100_000})
    isolated_long(t)
    # Fee 0.045% of 30,000 = 13.5 into the isolated margin (-13.5), then max(IM 3,000 - 0,
    # 3,000 - (-13.5)) = 3,013.5 moved in: the isolated margin is exactly the IM 3,000.
    e = t.entry(A)
    assert (e.isolated, e.leverage, e.size, e.iso_margin) == (1, 10, 5_000, 3_000 * USDC)
    assert t.bal(A) == 10_000 * USDC - 3_013_500_000
    [moved] = [x for x in evs_tx(t.results[-1], "isolated_margin")]
    assert (moved["amount"], moved["reason"], moved["margin"]) == ("3013.5", "order", "3000")
    # The cross account holds no position: equity is its balance, no margin requirement
    # (C's bids are not A's).
    s = t.cross(A)
    assert (s.equity, s.initial_margin, s.maintenance_margin, s.notional) == \
        (t.bal(A), 0, 0, 0)
    iso = t.iso(A)
    assert (iso.equity, iso.initial_margin, iso.maintenance_margin) == \
        (3_000 * USDC, 3_000 * USDC, 300 * USDC)


def evs_tx(res, typ):
    return [dict(e.attrs) for r in res.tx_results for e in r.events if e.type == typ]


def test_opening_is_refused_when_the_cross_account_cannot_move_the_margin():
    t = T({A: 2_000, B: 100_000})
    t.block(t.act(A, "set_margin_mode", BTC_PERP, ISOLATED, 10))
    r = t.try_block(t.order(B, False, 60_000, 5_000), t.order(A, True, 60_000, 5_000, tif=IOC))
    assert r[1].code == Code.INSUFFICIENT_MARGIN
    assert "needs 3013.5 moved in from the cross account, whose free collateral is 2000" in \
        r[1].log
    assert t.size(A) == 0 and t.bal(A) == 2_000 * USDC


def test_pnl_and_fees_settle_into_the_isolated_margin_and_the_rest_returns_on_close():
    t = T({A: 10_000, B: 100_000, C: 100_000})
    isolated_long(t, bids=())
    bal = t.bal(A)
    # A sells 0.2 at 61,000 to C: PnL 0.2 * 1,000 = 200, fee 0.045% of 12,200 = 5.49.
    t.block(t.order(C, True, 61_000, 2_000), t.order(A, False, 61_000, 2_000, tif=IOC))
    assert t.entry(A).iso_margin == 3_000 * USDC + 200 * USDC - 5_490_000
    assert t.bal(A) == bal  # a reduction moves nothing between cross and isolated
    # The rest (0.3) at 59,000: PnL -300, fee 7.965; the margin left returns to cross.
    t.block(t.order(C, True, 59_000, 3_000), t.order(A, False, 59_000, 3_000, tif=IOC))
    left = 3_000 * USDC + 200 * USDC - 5_490_000 - 300 * USDC - 7_965_000
    e = t.entry(A)
    assert (e.size, e.iso_margin, e.isolated) == (0, 0, 1)
    assert t.bal(A) == bal + left
    [back] = evs_tx(t.results[-1], "isolated_margin")
    assert (back["reason"], back["amount"]) == ("closed", "-2886.545")


def test_a_flip_keeps_the_margin_and_tops_it_up_to_initial():
    t = T({A: 10_000, B: 100_000, C: 100_000})
    isolated_long(t, bids=())
    bal = t.bal(A)
    # A sells 0.8 at 60,000 in one fill: PnL 0, fee 0.045% of 48,000 = 21.6 into the margin;
    # the long is closed, so its margin 2,978.4 returns; the 0.3 short then takes its IM
    # 1,800 (10x) from the cross balance.
    t.block(t.order(C, True, 60_000, 8_000), t.order(A, False, 60_000, 8_000, tif=IOC))
    e = t.entry(A)
    assert e.size == -3_000
    assert t.iso(A).equity == t.iso(A).initial_margin == e.iso_margin == 1_800 * USDC
    assert t.bal(A) == bal + 2_978_400_000 - 1_800 * USDC
    back, moved = evs_tx(t.results[-1], "isolated_margin")
    assert (back["reason"], back["amount"], moved["amount"]) == ("flipped", "-2978.4", "1800")
    check_invariants(t.c.kv)


def test_a_resting_order_on_an_isolated_market_reserves_cross_margin_and_tops_up_on_fill():
    t = T({A: 10_000, B: 100_000})
    t.block(t.act(A, "set_margin_mode", BTC_PERP, ISOLATED, 10))
    t.block(t.order(A, True, 60_000, 5_000))  # rests: nothing moves yet
    assert t.entry(A).iso_margin == 0 and t.bal(A) == 10_000 * USDC
    # The worst case (the buy fills) needs IM 3,000 more than the (empty) position.
    assert t.cross(A).initial_margin == 3_000 * USDC
    t.block(t.order(B, False, 60_000, 5_000, tif=IOC))
    # A is the maker: fee 0.015% of 30,000 = 4.5, then 3,004.5 moved in (its free collateral
    # 10,000 covers it).
    assert t.entry(A).iso_margin == 3_000 * USDC
    assert t.bal(A) == 10_000 * USDC - 3_004_500_000
    assert t.cross(A).initial_margin == 0


def test_a_maker_moves_no_more_than_its_free_collateral():
    t = T({A: 10_000, B: 100_000, D: 100_000})
    t.block(t.act(A, "set_margin_mode", BTC_PERP, ISOLATED, 10))
    t.block(t.order(A, True, 60_000, 5_000))
    # A spends its cross collateral on a cross ETH position meanwhile: 20 ETH at 3,000 (25x:
    # IM 2,400) leaves free 10,000 - 27 - 3,000 (the reserve) - 2,400 = 4,573.
    t.block(eth_order(t, D, False, 3_000, 20), eth_order(t, A, True, 3_000, 20, tif=IOC))
    assert t.cross(A).free_collateral == 4_573 * USDC
    # Now the ETH mark falls 10%: A's cross free collateral drops below the BTC top-up.
    t.block(*oracle(t, ETH=2_700))
    free = t.cross(A).free_collateral
    assert free == (4_573 - 6_000 + 240) * USDC  # uPnL -6,000, IM 2,400 -> 2,160
    t.block(t.order(B, False, 60_000, 5_000, tif=IOC))
    # The reserve 3,000 is released, the fill's fee 4.5 is in the margin: A moves the 3,004.5
    # it needs only as far as its free collateral allows.
    moved = free + 3_000 * USDC
    assert moved < 3_004_500_000
    assert t.entry(A).iso_margin == moved - 4_500_000
    assert t.cross(A).free_collateral == 0


def eth_order(t, k, is_buy, usd, eth, tif=GTC):
    return order(k, next(t.n), ETH_PERP, is_buy, usd * PRICE, eth * 1_000 * ETH_LOT, tif=tif)


def oracle(t, **usd):
    return oracle_tx(next(t.n), [(a, p * PRICE) for a, p in sorted(usd.items())])


# -- set_margin_mode ---------------------------------------------------------------------------

def test_set_margin_mode_rules_and_errors():
    t = T({A: 10_000, B: 100_000})
    r = t.try_block(t.act(A, "set_margin_mode", BTC_SPOT, ISOLATED, 5),
                    t.act(A, "set_margin_mode", BTC_PERP, 2, 5),
                    t.act(A, "set_margin_mode", BTC_PERP, ISOLATED, 0),
                    t.act(A, "set_margin_mode", BTC_PERP, ISOLATED, 51),
                    t.act(A, "set_margin_mode", 99, ISOLATED, 5),
                    t.act(A, "set_margin_mode", BTC_PERP, ISOLATED, 5))
    assert [x.code for x in r] == [Code.NOT_A_PERP_MARKET, Code.INVALID_FIELD,
                                   Code.INVALID_LEVERAGE, Code.INVALID_LEVERAGE,
                                   Code.UNKNOWN_MARKET, 0]
    assert "spot market" in r[0].log and "0 (cross) or 1 (isolated)" in r[1].log
    [ev] = [dict(e.attrs) for e in r[5].events]
    assert (ev["mode"], ev["leverage"]) == ("isolated", "5")
    t.block(t.order(A, True, 50_000, 1_000))  # an open order locks the mode
    r = t.try_block(t.act(A, "set_margin_mode", BTC_PERP, CROSS, 5))
    assert r[0].code == Code.MARGIN_MODE_LOCKED and "1 open orders" in r[0].log
    t.block(t.order(B, False, 50_000, 1_000, tif=IOC))  # and so does a position
    r = t.try_block(t.act(A, "set_margin_mode", BTC_PERP, CROSS, 5))
    assert r[0].code == Code.MARGIN_MODE_LOCKED and "position of 1000 lots" in r[0].log
    assert t.entry(A).isolated == 1


def test_leverage_of_an_open_isolated_position_needs_its_own_margin():
    t = T({A: 10_000, B: 100_000, C: 100_000})
    isolated_long(t, bids=())
    # 20x needs 1,500: fine (the same mode: a leverage change, allowed with a position).
    t.block(t.act(A, "set_margin_mode", BTC_PERP, ISOLATED, 20))
    assert t.entry(A).leverage == 20
    t.block(*oracle(t, BTC=57_000))  # isolated equity 3,000 - 1,500 = 1,500
    r = t.try_block(t.act(A, "set_leverage", BTC_PERP, 5),
                    t.act(A, "set_margin_mode", BTC_PERP, ISOLATED, 5))
    assert [x.code for x in r] == [Code.INSUFFICIENT_MARGIN] * 2
    assert "needs initial margin 5700; its isolated equity is 1500" in r[0].log
    assert t.entry(A).leverage == 20


def test_switching_back_to_cross_when_flat():
    t = T({A: 10_000, B: 100_000, C: 100_000})
    t.block(t.act(A, "set_margin_mode", BTC_PERP, ISOLATED, 10))
    raw = load(t.c.kv.get(P_CLEARING + A.pub_key))
    assert raw[0][0][9:] == [0, 1, 0]  # funding index, isolated, margin: only while isolated
    t.block(t.act(A, "set_margin_mode", BTC_PERP, CROSS, 10))
    raw = load(t.c.kv.get(P_CLEARING + A.pub_key))
    assert len(raw[0][0]) == 9 and t.entry(A).isolated == 0


# -- isolated_margin ----------------------------------------------------------------------------

def test_isolated_margin_add_and_remove():
    t = T({A: 10_000, B: 100_000, C: 100_000})
    isolated_long(t, bids=())
    bal = t.bal(A)
    t.block(t.act(A, "isolated_margin", BTC_PERP, 500 * USDC))
    assert t.entry(A).iso_margin == 3_500 * USDC and t.bal(A) == bal - 500 * USDC
    t.block(t.act(A, "isolated_margin", BTC_PERP, -500 * USDC))
    assert t.entry(A).iso_margin == 3_000 * USDC and t.bal(A) == bal
    [ev] = evs_tx(t.results[-1], "isolated_margin")
    assert (ev["amount"], ev["reason"], ev["margin"]) == ("-500", "update", "3000")


def test_isolated_margin_errors():
    t = T({A: 10_000, B: 100_000, C: 100_000, D: 10_000})
    isolated_long(t, bids=())
    free = t.bal(A)
    r = t.try_block(t.act(A, "isolated_margin", BTC_PERP, free + 1),
                    t.act(A, "isolated_margin", BTC_PERP, -1),
                    t.act(A, "isolated_margin", BTC_PERP, 0),
                    t.act(A, "isolated_margin", BTC_SPOT, 1),
                    t.act(A, "isolated_margin", ETH_PERP, 1),
                    t.act(D, "isolated_margin", BTC_PERP, 1))
    assert [x.code for x in r] == [Code.INSUFFICIENT_MARGIN, Code.INSUFFICIENT_MARGIN,
                                   Code.INVALID_AMOUNT, Code.NOT_A_PERP_MARKET,
                                   Code.NO_ISOLATED_POSITION, Code.NO_ISOLATED_POSITION]
    assert "adding 6986.500001 needs as much cross free collateral; it is 6986.5" in r[0].log
    assert "would leave isolated equity 2999.999999 below the initial margin 3000" in r[1].log


def test_removing_isolated_margin_needs_a_fresh_oracle_price():
    t = T({A: 10_000, B: 100_000, C: 100_000})
    isolated_long(t, bids=())
    t.block(t.act(A, "isolated_margin", BTC_PERP, 500 * USDC))
    t.c.block([], 61_000)  # the oracle price is now older than max_age_ms
    r = t.try_block(t.act(A, "isolated_margin", BTC_PERP, -100 * USDC))
    assert r[0].code == Code.ORACLE_STALE


# -- liquidation: the scenario ----------------------------------------------------------

def _with_cross_eth(t: T):
    """A also holds a cross position: 1 ETH bought at 3,000 from D (fee 1.35)."""
    t.block(eth_order(t, D, False, 3_000, 1), eth_order(t, A, True, 3_000, 1, tif=IOC))


def test_an_isolated_position_is_liquidated_while_the_cross_account_is_untouched():
    t = T({A: 10_000, B: 100_000, C: 100_000, D: 100_000, BYSTANDER: 5_000})
    isolated_long(t)
    _with_cross_eth(t)
    cross_bal, eth = t.bal(A), load_account(t.c.kv, A.pub_key).entry(ETH_PERP)
    assert cross_bal == (10_000 - 3_013.5 - 1.35) * USDC
    # At 54,600: isolated equity 3,000 - 2,700 = 300 >= MM 273: nothing.
    res = t.oracle(54_600)
    assert not evs(res, "liquidation")
    # At 54,500: equity 250 < MM 272.5 (above the backstop 181.67): a reduce-only IOC sell at
    # the bankruptcy price 54,500 - 250 / 0.5 = 54,000 fills C's bid at 54,100.
    res = t.oracle(54_500)
    [liq] = evs(res, "liquidation")
    assert (liq["equity"], liq["maintenance_margin"], liq["margin_mode"]) == \
        ("250", "272.5", "isolated")
    assert (liq["filled"], liq["position_left"]) == ("0.5", "0")
    [o] = evs(res, "order")
    assert o["price"] == "54000"
    # PnL 0.5 * (54,100 - 60,000) = -2,950, fee 0.045% of 27,050 = 12.1725: the margin left,
    # 37.8275, returns to cross; the liquidation fee (0.5% of 27,250 = 136.25) takes no more
    # than that, so the cross balance ends where it was.
    assert liq["fee"] == "37.8275"
    assert t.bal(INSURANCE_FUND) == 37_827_500
    assert t.bal(A) == cross_bal
    after = load_account(t.c.kv, A.pub_key)
    assert after.entry(ETH_PERP) == eth and after.entry(BTC_PERP).iso_margin == 0
    assert t.size(A) == 0 and t.size(C) == 5_000
    assert t.bal(BYSTANDER) == 5_000 * USDC
    assert t.c.kv.get(P_ACTIVE + A.pub_key + BTC_PERP.to_bytes(4, "big")) is None


def test_a_bankrupt_isolated_position_goes_to_the_fund_at_its_own_bankruptcy_price():
    t = T({A: 10_000, B: 100_000, C: 100_000, D: 100_000}, fund=1_000)
    isolated_long(t, bids=())
    _with_cross_eth(t)
    cross_bal = t.bal(A)
    # A gap to 53,000: isolated equity 3,000 - 3,500 = -500. Bankruptcy price 53,000 +
    # 500 / 0.5 = 54,000; the fund pays 54,000 for a long worth 53,000: it loses 500, the
    # position loses exactly its margin, the cross account nothing.
    res = t.oracle(53_000)
    [take] = evs(res, "insurance_takeover")
    assert (take["price"], take["fund_loss"], take["margin_mode"]) == \
        ("54000", "500", "isolated")
    assert t.size(A) == 0 and t.size(INSURANCE_FUND) == 5_000
    assert t.bal(A) == cross_bal and t.entry(A).iso_margin == 0
    assert load_account(t.c.kv, A.pub_key).size(ETH_PERP) == 1_000


def test_an_isolated_position_in_liquidation_is_deleveraged_when_the_fund_is_empty():
    t = T({A: 10_000, B: 100_000, C: 100_000, D: 100_000})
    isolated_long(t, bids=())
    res = t.oracle(53_000)
    [adl] = evs(res, "adl")
    assert (adl["counterparty"], adl["price"], adl["size"]) == (B.pub_key.hex(), "54000", "0.5")
    assert t.size(A) == 0 and t.size(B) == 0 and t.entry(A).iso_margin == 0
    assert t.bal(A) == (10_000 - 3_013.5) * USDC


# -- funding, queries, determinism --------------------------------------------------------------

def test_funding_settles_into_the_isolated_margin():
    """Interest only (no premium: the book is empty): 0.01% per 8 h, 0.00125% for the hour;
    the 0.5 BTC long owes 0.5 * 60,000 * 0.0000125 = 0.375: it counts in its isolated equity
    at once (not in the cross equity) and is settled out of its isolated margin the next time
    the account is touched; the cross short B is owed as much."""
    t = T({A: 10_000, B: 100_000}, funding=((BTC_PERP, DEFAULT_FUNDING),))
    isolated_long(t, bids=())
    m0, a0 = t.entry(A).iso_margin, t.bal(A)
    res = t.c.block([], 3_600_000)  # past the first hour boundary
    [f] = [dict(e.attrs) for e in res.block_events if e.type == "funding"]
    assert f["rate"] == "0.0000125"
    assert t.iso(A).equity == m0 - 375_000 and t.cross(A).equity == a0
    t.block(t.act(A, "isolated_margin", BTC_PERP, 1))  # loads A: its dues are settled
    assert t.entry(A).iso_margin == m0 - 375_000 + 1 and t.bal(A) == a0 - 1
    [pay] = evs_tx(t.results[-1], "funding_payment")
    assert pay["amount"] == "-0.375"
    check_invariants(t.c.kv)


def test_queries_show_the_margin_mode_and_the_isolated_margin():
    t = T({A: 10_000, B: 100_000, C: 100_000})
    isolated_long(t, bids=())
    t.oracle(59_000)
    [p] = _rpc(t, "positions", address=A.pub_key.hex())["positions"]
    assert (p["margin_mode"], p["leverage"], p["isolated_margin"], p["isolated_equity"]) == \
        ("isolated", 10, "3000", "2500")
    # Its own liquidation price: (30,000 - 3,000) / (0.5 x 0.99) = 54,545.4545.. rounded up
    # (the isolated equity less uPnL is 3,000; no other positions).
    assert p["liquidation_price"] == "54545.454546"
    acct = _rpc(t, "margin_account", address=A.pub_key.hex())
    assert acct["maintenance_margin"] == "0" and acct["equity"] == "6986.5"
    assert acct["positions"][0]["margin_mode"] == "isolated"
    [p] = _rpc(t, "positions", address=B.pub_key.hex())["positions"]
    assert p["margin_mode"] == "cross" and "isolated_margin" not in p


def _replay(warm: bool, kv=None):
    t = T({A: 10_000, B: 100_000, C: 100_000, D: 100_000, E: 100_000}, warm=warm, kv=kv)
    isolated_long(t, bids=((54_100, 2_000),))
    _with_cross_eth(t)
    t.block(t.act(E, "set_margin_mode", BTC_PERP, ISOLATED, 3),
            t.order(E, False, 59_000, 2_000))
    t.block(t.order(D, True, 59_000, 2_000, tif=IOC), t.act(A, "isolated_margin", BTC_PERP,
                                                            100 * USDC))
    for px in (58_000, 56_000, 54_500, 54_000, 60_000, 70_000):
        t.oracle(px)
    return [r.app_hash for r in t.results]


def test_replay_gives_the_same_app_hashes(tmp_path):
    """Fresh chains apply the same blocks (isolated opens, a maker top-up, margin added, an
    isolated liquidation, a cross position): carrying derived state or cold, in memory or on
    the node's LevelDB store, they give the same app hashes."""
    a = _replay(True)
    kv = LevelKV(tmp_path / "db")
    try:
        on_disk = _replay(False, kv)
    finally:
        kv.close()
    assert a == _replay(False) == on_disk


# -- dated futures --------------------------------------------------------------------------------

def test_a_future_settles_an_isolated_position_into_its_margin_and_returns_the_rest():
    """Key 0 is isolated at 10x on the future and buys 0.5 BTC at 60,000 from key 1 (fee
    13.5, then 3,013.5 moved in: margin 3,000). The oracle holds 62,000 through the window, so
    it settles at 62,000: PnL +1,000 into the margin, and the 4,000 return to the quote
    balance."""
    from tests.unit.test_futures import FUT, Flow, fut_genesis
    from tests.chain_helpers import key
    f = Flow(Chain(fut_genesis()))
    k0, k1 = key(0), key(1)
    bal0 = ledger_balance(f, k0)
    f.at(500, [action(k0, f.n(), "set_margin_mode", FUT, ISOLATED, 10)])
    res = f.at(1_000, [order(k1, f.n(), FUT, False, 60_000 * PRICE, 5_000 * 10_000),
                       order(k0, f.n(), FUT, True, 60_000 * PRICE, 5_000 * 10_000, tif=IOC)])
    assert [r.code for r in res.tx_results] == [0, 0]
    e = load_account(f.chain.kv, k0.pub_key).entry(FUT)
    assert (e.isolated, e.iso_margin) == (1, 3_000 * USDC)
    for offset in range(299_000, 600_000, 50_000):
        f.at(offset, f.oracle(62_000))
    res = f.at(600_000)
    e = load_account(f.chain.kv, k0.pub_key).entry(FUT)
    assert (e.size, e.iso_margin) == (0, 0)
    assert ledger_balance(f, k0) == bal0 - 13_500_000 + 1_000 * USDC
    [back] = [dict(x.attrs) for x in res.block_events if x.type == "isolated_margin"]
    assert (back["amount"], back["reason"]) == ("-4000", "closed")


def ledger_balance(f, k) -> int:
    from state import ledger
    return ledger.balance(f.chain.kv, k.pub_key, "USDC")


def test_an_active_twap_locks_the_margin_mode():
    t = T({A: 10_000, B: 100_000})
    t.block(t.act(A, "twap_order", BTC_PERP, True, 1_000 * 10_000, 600_000, False))
    r = t.try_block(t.act(A, "set_margin_mode", BTC_PERP, ISOLATED, 10))
    assert r[0].code == Code.MARGIN_MODE_LOCKED and "active TWAP" in r[0].log
