"""Liquidation of accounts with borrows (state/collateral_liquidation.py, state/bad_debt.py):
collateral sold through the BTC/USDC spot market on a falling oracle, a deficit the insurance
fund covers, a deficit that an empty fund leaves to the USDC suppliers, an account brought
below maintenance by interest alone, and warm = cold, with hand-computed numbers.

The USDC pool here charges no interest below the kink (base 0, slope1 0), so the numbers stay
round; the interest test uses the localnet's 5% base. BTC/USDC: lot 0.0001 BTC, tick 0.1,
maker fee 0.02%, taker fee 0.05%; liquidation fee 0.5% of the notional at the oracle."""

import dataclasses

from localnet.fixtures import FEE_ACCOUNT, lending_genesis, pool_params
from state import lending as L, lending_pools as LP, ledger
from state.insurance import INSURANCE_FUND
from state.liquidation import P_ACTIVE, P_LOG
from state.liquidation_params import default_params
from tests.chain_helpers import BTC_PERP, BTC_SPOT, PRICE, USDC, Scenario, action, key, order

BTC = 10**8
SUPPLIER, BORROWER, BIDDER = 0, 1, 2
FREE_USDC = pool_params()._replace(base_ppm=0)   # 0% below the kink


class T(Scenario):
    """A lending chain: key 0 supplies USDC, key 1 holds BTC, key 2 bids for BTC."""

    def __init__(self, btc: int = BTC, fund: int = 0, warm: bool = False, usdc_pool=FREE_USDC,
                 bidder_usdc: int = 100_000, liquidation=None, extra=(), btc_pool=None):
        bals = [(key(SUPPLIER).pub_key, "USDC", 1_000_000 * USDC),
                (key(BORROWER).pub_key, "BTC", btc),
                (key(BIDDER).pub_key, "USDC", bidder_usdc * USDC)]
        if fund:
            bals.append((INSURANCE_FUND, "USDC", fund * USDC))
        g = lending_genesis(tuple(bals) + tuple(extra))
        btc = (("BTC", btc_pool),) if btc_pool is not None else g.lending[1:2]
        g = dataclasses.replace(g, lending=(("USDC", usdc_pool),) + btc + g.lending[2:],
                                liquidation=liquidation)
        super().__init__(g, warm, nonce_from=g.genesis_time_ms + 1)

    def withdraw(self, i: int, usdc: int) -> bytes:
        return action(key(i), next(self.n), "withdraw", "USDC", usdc * USDC)

    def bid(self, usd: int, btc_e4: int) -> bytes:
        return order(key(BIDDER), next(self.n), BTC_SPOT, True, usd * PRICE, btc_e4 * BTC // 10**4)

    def bal(self, who, asset: str = "USDC") -> int:
        addr = key(who).pub_key if type(who) is int else who
        return ledger.balance(self.c.kv, addr, asset)


def evs(res, typ):
    return [dict(e.attrs) for e in res.block_events if e.type == typ]


def test_btc_collateral_sold_in_the_spot_market_repays_the_borrow():
    t = T(fund=0)
    # 1 BTC at 60,000 is 39,000 of collateral: a 30,000 withdrawal is a borrow; key 2 bids.
    t.block(t.withdraw(BORROWER, 30_000), t.bid(46_000, 10_000))
    assert t.bal(BORROWER) == -30_000 * USDC
    # At 50,000: 32,500 of collateral >= 30,000: nothing.
    res = t.oracle(50_000)
    assert not evs(res, "collateral_liquidation")
    # At 46,000: 29,900 < 30,000, equity -100: below maintenance (no position: MM 0).
    res = t.oracle(46_000)
    [step] = evs(res, "collateral_liquidation")
    # Sell enough to repay 30,000 grossed up for the fees (0.5% + 0.05%):
    # 30,000 / 0.9945 = 30,165.91..., a lot is 0.0001 x 46,000 = 4.6: 6,558 lots = 0.6558 BTC.
    # Limit: the bankruptcy price (unweighted equity 16,000: 46,000 - 16,000 / 0.6558 =
    # 21,602.3) is below the collateral value 46,000 x 0.65 = 29,900, so 29,900.
    assert (step["side"], step["size"], step["filled"]) == ("sell", "0.6558", "0.6558")
    assert (step["price"], step["oracle"], step["equity"]) == ("29900", "46000", "-100")
    [fill] = evs(res, "fill")
    assert (fill["price"], fill["size"], fill["taker_fee"], fill["maker_fee"]) == \
        ("46000", "0.6558", "15.0834", "6.03336")
    # Proceeds 0.6558 x 46,000 = 30,166.8; taker fee 15.0834; liquidation fee 0.5% of
    # 30,166.8 = 150.834 (to the fund): -30,000 + 30,166.8 - 15.0834 - 150.834 = 0.8826.
    assert step["fee"] == "150.834" and step["quote_balance"] == "0.8826"
    assert step["balance_left"] == "0.3442"
    assert t.bal(BORROWER) == 882_600 and t.bal(BORROWER, "BTC") == 3_442 * 10**4
    assert t.bal(INSURANCE_FUND) == 150_834_000
    assert t.bal(BIDDER, "BTC") == 6_558 * 10**4
    assert t.bal(BIDDER) == 100_000 * USDC - 30_166_800_000 - 6_033_360
    assert t.bal(FEE_ACCOUNT) == 15_083_400 + 6_033_360
    assert LP.get_pool(t.c.kv, "USDC").borrowed == 0
    assert t.c.kv.get(P_ACTIVE + key(BORROWER).pub_key) is None
    logged = [k for k, _ in t.c.kv.iterate(P_LOG)]
    assert len(logged) == 1
    # Nothing more at a lower price: the borrow is repaid.
    assert not evs(t.oracle(40_000), "collateral_liquidation")


def test_a_fill_below_the_oracle_stops_once_the_account_is_healthy_again():
    t = T()
    t.block(t.withdraw(BORROWER, 30_000), t.bid(46_000, 5_000), t.bid(45_500, 10_000))
    res = t.oracle(46_000)
    [step] = evs(res, "collateral_liquidation")
    # 0.5 at 46,000 (23,000, fee 11.5) and 0.1558 at 45,500 (7,088.9, fee 3.54445); fee to the
    # fund 150.834: -30,000 + 30,088.9 - 15.04445 - 150.834 = -76.97845 left borrowed, while
    # 0.3442 BTC x 46,000 x 0.65 = 10,291.58 of collateral: healthy, so no further step.
    assert step["quote_balance"] == "-76.97845" and step["filled"] == "0.6558"
    assert t.bal(BORROWER) == -76_978_450
    assert t.c.kv.get(P_ACTIVE + key(BORROWER).pub_key) is None


def bankrupt(fund: int) -> tuple[T, object]:
    """Key 1 borrows the most its 1 BTC allows (39,000), then BTC gaps to 30,000: collateral
    19,500 < 39,000, and even unweighted 30,000 < 39,000 (bankrupt). Key 2 bids 29,000."""
    t = T(fund=fund)
    t.block(t.withdraw(BORROWER, 39_000), t.bid(29_000, 10_000))
    return t, t.oracle(30_000)


def test_bad_debt_is_covered_by_the_insurance_fund():
    t, res = bankrupt(fund=50_000)
    [step] = evs(res, "collateral_liquidation")
    # Bankrupt: the limit is the collateral value alone (30,000 x 0.65 = 19,500); the whole
    # BTC goes (39,000 grossed up is more than 1 BTC) at 29,000, taker fee 14.5, and no
    # liquidation fee (nothing of the equity is left): -39,000 + 29,000 - 14.5 = -10,014.5.
    assert (step["size"], step["filled"], step["price"]) == ("1", "1", "19500")
    assert (step["fee"], step["quote_balance"]) == ("0", "-10014.5")
    [cov] = evs(res, "bad_debt_covered")
    assert (cov["asset"], cov["amount"], cov["fund_balance"]) == ("USDC", "10014.5", "39985.5")
    assert not evs(res, "bad_debt_socialised")
    assert t.bal(BORROWER) == 0 and t.bal(BORROWER, "BTC") == 0
    assert t.bal(INSURANCE_FUND) == 39_985_500_000
    assert t.bal(SUPPLIER) == 1_000_000 * USDC           # suppliers untouched
    assert LP.get_pool(t.c.kv, "USDC").supply_index == L.INDEX_SCALE
    assert LP.get_pool(t.c.kv, "USDC").borrowed == 0
    assert [dict(load_log(v))["type"] for v in _log(t)] == \
        ["collateral_liquidation", "bad_debt_covered"]


def test_an_empty_fund_leaves_the_deficit_to_the_suppliers():
    t, res = bankrupt(fund=0)
    [soc] = evs(res, "bad_debt_socialised")
    assert not evs(res, "bad_debt_covered")
    # Supplied after the sale (index 1): key 0 1,000,000, key 2 100,000 - 29,000 - 5.8 (maker
    # fee) = 70,994.2, the fee account 14.5 + 5.8 = 20.3: 1,071,014.5 USDC. The cut
    # ceil((10,014.5 + 10^-6) x 10^12 / 1,071,014.5) in index units:
    cut = -(-(10_014_500_000 + 1) * 10**12 // 1_071_014_500_000)
    assert cut == 9_350_480_317       # 0.935048...% of every supplied balance
    assert soc["amount"] == "10014.5" and soc["supply_index"] == str(10**12 - cut)
    assert t.bal(BORROWER) == 0
    # Each supplier loses the same fraction: key 0's 1,000,000 x (1 - cut / 10^12), floored.
    assert t.bal(SUPPLIER) == 1_000_000 * USDC * (10**12 - cut) // 10**12 == 990_649_519_683
    assert t.bal(INSURANCE_FUND) == 0
    assert LP.get_pool(t.c.kv, "USDC").borrowed == 0


def _log(t: T):
    return [v for _, v in t.c.kv.iterate(P_LOG)]


def load_log(raw):
    from state.codec import load
    _, _, (typ, attrs) = load(raw)
    return [("type", typ)] + [tuple(a) for a in attrs]


def interest_only(warm: bool):
    """Key 1 borrows 38,000 of its 39,000 at the localnet's 5% a year; no price moves and no tx
    touches it: a year later it owes 39,900 > 39,000 and is liquidated. Key 2 bids 60,000."""
    t = T(usdc_pool=pool_params(), warm=warm)
    t.block(t.withdraw(BORROWER, 38_000), t.bid(60_000, 10_000))
    quiet = t.block()
    res = t.block(dt_ms=L.YEAR_MS)
    return t, quiet, res


def test_interest_alone_makes_a_borrower_a_liquidation_candidate():
    t, quiet, res = interest_only(warm=False)
    assert not evs(quiet, "collateral_liquidation")
    # Borrow index: 1 s at 5% (ceil(10^12 x 0.05 / 31,536,000) = 1,586), then a year:
    # (10^12 + 1,586) x 1.05 rounded up = 1,050,000,001,666; the 38,000 borrow (scaled 38,000
    # at index 1) owes ceil(38,000 x 1.050000001666) = 39,900.000064 > 39,000 of collateral.
    assert LP.get_pool(t.c.kv, "USDC").borrow_index == 1_050_000_001_666
    [step] = evs(res, "collateral_liquidation")
    assert step["equity"] == "-900.000064"
    # 39,900.000064 / 0.9945 = 40,120.66...: 6,687 lots of 6 USDC = 0.6687 BTC, at 60,000 =
    # 40,122; taker fee 20.061, liquidation fee 200.61: 1.328936 left, less 2 quantums: once
    # positive the balance is supplied, scaled by a supply index above 1 (the year's interest)
    # and rounded against the account at each of the two credits.
    assert (step["size"], step["filled"], step["quote_balance"]) == ("0.6687", "0.6687",
                                                                     "1.328934")
    assert step["fee"] == "200.61"
    assert t.bal(BORROWER) == 1_328_934 and t.bal(BORROWER, "BTC") == 3_313 * 10**4
    warm_t, _, _ = interest_only(warm=True)
    assert [r.app_hash for r in warm_t.results] == [r.app_hash for r in t.results]


def perp_then_collateral(warm: bool):
    """Key 1 (1 BTC, no USDC) buys 5 BTC-USD perp at 60,000 from key 0 (fee 135: a borrow);
    key 0 bids 53,400 for it, key 2 bids 53,000 for BTC. One liquidation step per position
    (no 20% steps: threshold 10^7 USDC)."""
    liq = dataclasses.replace(default_params(6), step_threshold_quantums=10**7 * USDC)
    t = T(warm=warm, liquidation=liq)
    n = t.n
    t.block(order(key(SUPPLIER), next(n), BTC_PERP, False, 60_000 * PRICE, 5 * BTC),
            order(key(BORROWER), next(n), BTC_PERP, True, 60_000 * PRICE, 5 * BTC, tif=1),
            order(key(SUPPLIER), next(n), BTC_PERP, True, 53_400 * PRICE, 5 * BTC),
            t.bid(53_000, 10_000))
    assert t.bal(BORROWER) == -135 * USDC
    return t, [t.oracle(px) for px in (55_000, 54_000, 53_500, 53_000)]


def test_perp_positions_close_before_collateral_is_sold():
    t, res = perp_then_collateral(False)
    assert not any(evs(r, "liquidation") for r in res[:2])
    # At 53,500: collateral 34,775, uPnL -32,500, quote -135: equity 2,140 < MM 2,675 (1% of
    # 267,500), above the backstop: closed in the book at 53,400 (-33,000 realised, taker fee
    # 120.15, liquidation fee 1,337.5). Then MM is 0 and equity 34,775 - 34,592.65 = 182.35
    # >= 0: no collateral is sold yet.
    [liq] = evs(res[2], "liquidation")
    assert (liq["filled"], liq["equity"], liq["fee"]) == ("5", "2140", "1337.5")
    assert not evs(res[2], "collateral_liquidation")
    # At 53,000 the collateral is 34,450 < 34,592.65: BTC is sold to repay the borrow.
    # 34,592.65 / 0.9945 = 34,783.96..., lots of 5.3: 6,564 (0.6564 BTC) at 53,000 = 34,789.2;
    # taker fee 17.3946, liquidation fee 173.946: 5.2094 left.
    [step] = evs(res[3], "collateral_liquidation")
    assert (step["side"], step["equity"], step["size"]) == ("sell", "-142.65", "0.6564")
    assert (step["fee"], step["quote_balance"]) == ("173.946", "5.2094")
    assert t.bal(BORROWER) == 5_209_400 and t.bal(BORROWER, "BTC") == 3_436 * 10**4


def test_perp_then_collateral_warm_as_cold():
    cold, _ = perp_then_collateral(False)
    warm, _ = perp_then_collateral(True)
    assert [r.app_hash for r in warm.results] == [r.app_hash for r in cold.results]


def test_bankrupt_scenarios_warm_as_cold():
    for fund in (0, 50_000):
        cold = bankrupt(fund)[0]
        t = T(fund=fund, warm=True)
        t.block(t.withdraw(BORROWER, 39_000), t.bid(29_000, 10_000))
        t.oracle(30_000)
        assert [r.app_hash for r in t.results] == [r.app_hash for r in cold.results]


def test_large_collateral_sales_go_in_steps_with_a_cooldown():
    """The perp rule: above 100,000 of notional only 20% per step, then 30 s of block time."""
    t = T(btc=10 * BTC, bidder_usdc=1_000_000)
    t.block(t.withdraw(BORROWER, 300_000), t.bid(40_000, 100_000))
    # At 40,000: collateral 260,000 < 300,000. Repaying 300,000 would take 301,659.13 / 4 =
    # 75,415 lots, over 100,000 of notional: 20% of it, 15,083 lots = 1.5083 BTC, goes now.
    res = t.oracle(40_000)
    [step] = evs(res, "collateral_liquidation")
    # 60,332 of proceeds, taker fee 30.166, liquidation fee 301.66: 239,999.826 still owed,
    # against 8.4917 x 40,000 x 0.65 = 220,784.2 of collateral: still below, so it waits.
    assert (step["size"], step["filled"], step["quote_balance"]) == ("1.5083", "1.5083",
                                                                     "-239999.826")
    assert t.c.kv.get(P_ACTIVE + key(BORROWER).pub_key) is not None
    for _ in range(3):   # within the cooldown: no step
        assert not evs(t.block(), "collateral_liquidation")
    # 30 s after the first step: 239,999.826 / 0.9945 / 4 = 60,332 lots, 20%: 12,067.
    res = t.block(dt_ms=27_000)
    [step] = evs(res, "collateral_liquidation")
    assert (step["size"], step["quote_balance"]) == ("1.2067", "-191997.3")
    assert t.bal(BORROWER, "BTC") == (10 * 10**4 - 15_083 - 12_067) * 10**4


def test_a_btc_borrow_is_bought_back_with_quote():
    """Key 1 holds 10,000 USDC and borrows 0.1 BTC (worth 6,600 at 60,000 x the borrow weight
    1.1); key 4 supplies 10 BTC and offers 1 BTC at 95,000. No interest (both pools at 0%)."""
    free_btc = pool_params(1_100_000)._replace(base_ppm=0)
    t = T(btc=0, btc_pool=free_btc, extra=((key(1).pub_key, "USDC", 10_000 * USDC),
                                           (key(4).pub_key, "BTC", 10 * BTC)))
    t.block(action(key(BORROWER), next(t.n), "withdraw", "BTC", BTC // 10),
            order(key(4), next(t.n), BTC_SPOT, False, 95_000 * PRICE, BTC))
    assert t.bal(BORROWER, "BTC") == -BTC // 10
    assert not evs(t.oracle(90_000), "collateral_liquidation")   # 9,900 <= 10,000
    # At 91,000 the borrow counts 0.1 x 91,000 x 1.1 = 10,010 > 10,000: equity -10.
    res = t.oracle(91_000)
    [step] = evs(res, "collateral_liquidation")
    # Buy the 0.1 BTC back: limit the lower of the bankruptcy price 91,000 + 900 / 0.1 =
    # 100,000 (unweighted equity 10,000 - 9,100) and the borrow value 91,000 x 1.1 = 100,100.
    assert (step["side"], step["size"], step["filled"], step["price"]) == \
        ("buy", "0.1", "0.1", "100000")
    # It fills key 4's offer at 95,000: 9,500, taker fee 4.75, liquidation fee 0.5% of 9,100
    # at the oracle = 45.5: 10,000 - 9,550.25 = 449.75 left, and no BTC owed.
    assert (step["fee"], step["quote_balance"], step["balance_left"]) == ("45.5", "449.75",
                                                                          "0")
    assert t.bal(BORROWER) == 449_750_000 and t.bal(BORROWER, "BTC") == 0
    assert LP.get_pool(t.c.kv, "BTC").borrowed == 0


def maker_pushed_under(warm: bool):
    """Key 2 (after key 1 by address) holds 100,000 USDC and borrows 26.6 ETH (87,780 at 3,000
    x 1.1): equity 12,220, banded by a warm node. Key 1 borrows 38,900 against 1 BTC. BTC falls
    1% to 59,400: key 1's 0.6586 BTC is sold to key 2's bid at 59,400, and key 2, paying
    39,120.84 of USDC for 25,428.14 of collateral, falls to about -1,481: the same block's
    check must find it whatever band it had."""
    t = T(warm=warm, extra=((key(5).pub_key, "ETH", 100 * BTC),))
    t.block(t.withdraw(BORROWER, 38_900), t.bid(59_400, 10_000),
            action(key(BIDDER), next(t.n), "withdraw", "ETH", 266 * BTC // 10))
    t.block()
    res = t.oracle(59_400)
    return t, res


def test_a_spot_maker_filled_by_a_liquidation_loses_its_band_warm_as_cold():
    cold, res = maker_pushed_under(False)
    [step] = evs(res, "collateral_liquidation")
    assert step["account"] == key(BORROWER).pub_key.hex() and step["filled"] == "0.6586"
    assert cold.c.kv.get(P_ACTIVE + key(BIDDER).pub_key) is not None   # key 2 is due now
    warm, _ = maker_pushed_under(True)
    assert [r.app_hash for r in warm.results] == [r.app_hash for r in cold.results]
