"""Initial and maintenance weights of lending (state/lending.py, state/lending_margin.py,
state/margin.py `maintenance_summary`) and the insurance fund's backstop of collateral the
spot book cannot absorb (state/collateral_backstop.py), with hand-computed numbers.

The chain is the localnet's lending genesis with its maintenance weights: BTC collateral 0.65
to borrow, 0.75 to liquidate; a BTC borrow counts 1.1 to open, 1.05 to liquidate. The USDC and
BTC pools charge no interest below the kink, so the numbers stay round. BTC/USDC: lot 0.0001
BTC, tick 0.1, taker fee 0.05%; liquidation fee 0.5% of the notional at the oracle."""

import dataclasses

import trio

from localnet.fixtures import lending_genesis, pool_params
from state import lending as L, lending_pools as LP, ledger
from state.errors import Code
from state.insurance import INSURANCE_FUND
from state.liquidation import P_ACTIVE
from tests.chain_helpers import BTC_SPOT, GOV, PRICE, USDC, Scenario, action, key, order

BTC = 10**8
SUPPLIER, BORROWER, BIDDER = 0, 1, 2
FREE = dict(base_ppm=0)   # 0% below the kink


class T(Scenario):
    """Key 0 supplies 1,000,000 USDC, key 1 holds `btc` sats (and `usdc`), key 2 may bid."""

    def __init__(self, btc: int = BTC, fund: int = 0, warm: bool = False, usdc: int = 0,
                 extra=()):
        bals = [(key(SUPPLIER).pub_key, "USDC", 1_000_000 * USDC),
                (key(BIDDER).pub_key, "USDC", 1_000_000 * USDC)]
        bals += [(key(BORROWER).pub_key, "BTC", btc)] if btc else []
        bals += [(key(BORROWER).pub_key, "USDC", usdc * USDC)] if usdc else []
        bals += [(INSURANCE_FUND, "USDC", fund * USDC)] if fund else []
        g = lending_genesis(tuple(bals) + tuple(extra), maint=True)
        g = dataclasses.replace(g, lending=tuple((s, p._replace(**FREE)) for s, p in g.lending))
        super().__init__(g, warm, nonce_from=g.genesis_time_ms + 1)

    def withdraw(self, i: int, asset: str, quantums: int) -> bytes:
        return action(key(i), next(self.n), "withdraw", asset, quantums)

    def bid(self, usd: int, btc_e4: int) -> bytes:
        return order(key(BIDDER), next(self.n), BTC_SPOT, True, usd * PRICE, btc_e4 * BTC // 10**4)

    def refused(self, tx: bytes) -> int:
        res = self.c.block([tx])
        self.results.append(res)
        return res.tx_results[0].code

    def bal(self, who, asset: str = "USDC") -> int:
        addr = key(who).pub_key if type(who) is int else who
        return ledger.balance(self.c.kv, addr, asset)

    def lending(self, who: int = BORROWER) -> dict:
        from rpc.lending_methods import account_lending
        return account_lending(self.c.kv, key(who).pub_key)

    def due(self) -> bool:
        return self.c.kv.get(P_ACTIVE + key(BORROWER).pub_key) is not None


def evs(res, typ):
    return [dict(e.attrs) for e in res.block_events if e.type == typ]


def same_hashes(a: T, b: T) -> None:
    assert [r.app_hash for r in a.results] == [r.app_hash for r in b.results]


# -- initial weights: borrowing -------------------------------------------------------------

def at_the_limit(warm: bool) -> T:
    """1 BTC at 60,000 x 0.65 = 39,000 of borrow limit: 39,000.000001 is refused, 39,000 not."""
    t = T(warm=warm)
    assert t.refused(t.withdraw(BORROWER, "USDC", 39_000 * USDC + 1)) == \
        Code.INSUFFICIENT_MARGIN
    t.block(t.withdraw(BORROWER, "USDC", 39_000 * USDC))
    return t


def test_a_borrow_fits_the_initial_weight_and_a_larger_one_does_not():
    t = at_the_limit(warm=False)
    assert t.bal(BORROWER) == -39_000 * USDC and t.bal(BORROWER, "BTC") == BTC
    acct = t.lending()
    # borrow limit at 0.65, liquidation threshold at 0.75: 45,000; maintenance equity 6,000
    assert (acct["borrow_limit"], acct["liquidation_threshold"]) == ("39000", "45000")
    assert (acct["equity"], acct["maint_equity"], acct["healthy"]) == ("0", "6000", True)
    from rpc.lending_methods import pool_json
    w = {s: pool_json(t.c.kv, s)["params"] for s in ("BTC", "USDC")}
    assert [w["BTC"][f] for f in ("collateral_weight", "maint_collateral_weight",
                                  "borrow_weight", "maint_borrow_weight")] == \
        ["0.65", "0.75", "1.1", "1.05"]
    assert (w["USDC"]["collateral_weight"], w["USDC"]["maint_collateral_weight"],
            w["USDC"]["maint_borrow_weight"]) == ("1", "1", "1")
    same_hashes(at_the_limit(warm=True), t)


# -- between the thresholds -----------------------------------------------------------------

def between(warm: bool) -> tuple[T, object]:
    """The 39,000 borrow, then BTC at 55,000: 35,750 at 0.65 (initial equity -3,250), 41,250 at
    0.75 (maintenance equity 2,250): not liquidated, and no further borrow (1 quantum)."""
    t = at_the_limit(warm)
    res = t.oracle(55_000)
    assert t.refused(t.withdraw(BORROWER, "USDC", 1)) == Code.INSUFFICIENT_MARGIN
    return t, res


def test_between_the_thresholds_an_account_is_not_liquidated_but_cannot_borrow():
    t, res = between(warm=False)
    assert not evs(res, "collateral_liquidation") and not t.due()
    acct = t.lending()
    assert (acct["equity"], acct["maint_equity"], acct["healthy"]) == ("-3250", "2250", True)
    assert t.bal(BORROWER, "BTC") == BTC and t.bal(BORROWER) == -39_000 * USDC
    same_hashes(between(warm=True)[0], t)


def btc_borrower(warm: bool) -> tuple[T, object, object]:
    """Key 1 holds 10,000 USDC and borrows 0.15 BTC at 60,000 (9,900 at the borrow weight 1.1:
    initial equity 100); key 4 supplies 10 BTC and offers 1 BTC at 64,500. At 62,000 the borrow
    counts 10,230 to open (refused: 0.0001 BTC more) but 9,765 at 1.05 (healthy); at 64,000
    10,080 at 1.05 > 10,000: bought back."""
    t = T(btc=0, usdc=10_000, warm=warm, extra=((key(4).pub_key, "BTC", 10 * BTC),))
    t.block(t.withdraw(BORROWER, "BTC", 15 * BTC // 100),
            order(key(4), next(t.n), BTC_SPOT, False, 64_500 * PRICE, BTC))
    quiet = t.oracle(62_000)
    assert t.refused(t.withdraw(BORROWER, "BTC", BTC // 10**4)) == Code.INSUFFICIENT_MARGIN
    return t, quiet, t.oracle(64_000)


def test_a_btc_borrow_counts_heavier_to_open_than_to_liquidate():
    t, quiet, res = btc_borrower(warm=False)
    assert not evs(quiet, "collateral_liquidation")
    [step] = evs(res, "collateral_liquidation")
    # Buy back 1,500 lots; unweighted equity 10,000 - 9,600 = 400: bankruptcy price 64,000 +
    # 400 / 0.15 = 66,666.6 (down to a tick) below the bound 64,000 x 1.05 = 67,200.
    assert (step["side"], step["size"], step["filled"], step["price"]) == \
        ("buy", "0.15", "0.15", "66666.6")
    # 0.15 x 64,500 = 9,675, taker fee 4.8375, liquidation fee 0.5% of 9,600 = 48:
    # 10,000 - 9,675 - 4.8375 - 48 = 272.1625.
    assert (step["fee"], step["quote_balance"]) == ("48", "272.1625")
    assert t.bal(BORROWER, "BTC") == 0 and t.bal(BORROWER) == 272_162_500
    same_hashes(btc_borrower(warm=True)[0], t)


# -- below maintenance: liquidated down to it ------------------------------------------------

def stepped(warm: bool) -> tuple[T, object, list]:
    """10 BTC, 390,000 borrowed at 60,000; key 2 bids 50,000 for 10 BTC; BTC falls to 50,000:
    375,000 at 0.75 < 390,000; then two blocks 30 s apart (past the step's cooldown)."""
    t = T(btc=10 * BTC, warm=warm)
    t.block(t.withdraw(BORROWER, "USDC", 390_000 * USDC), t.bid(50_000, 100_000))
    res = t.oracle(50_000)
    acct = t.lending()
    return t, (res, acct), [t.block(dt_ms=30_000) for _ in range(2)]


def test_below_maintenance_an_account_is_liquidated_back_to_it_and_no_further():
    t, (res, acct), later = stepped(warm=False)
    [step] = evs(res, "collateral_liquidation")
    # Repaying 390,000 / 0.9945 = 392,156.86 takes 78,432 lots of 5: over 100,000 of notional,
    # so 20% of it: 15,687 lots = 1.5687 BTC at 50,000 = 78,435, taker fee 39.2175,
    # liquidation fee 392.175: -390,000 + 78,435 - 39.2175 - 392.175 = -311,996.3925.
    assert (step["size"], step["filled"], step["quote_balance"]) == \
        ("1.5687", "1.5687", "-311996.3925")
    # 8.4313 BTC x 50,000 x 0.75 = 316,173.75 >= 311,996.3925: healthy at the maintenance
    # weight (at 0.65, 274,017.25, it would still be under), so nothing more is sold.
    assert acct["healthy"] and acct["maint_equity"] == "4177.3575"
    assert acct["equity"] == "-37979.1425"
    assert not any(evs(r, "collateral_liquidation") for r in later)
    assert not t.due() and t.bal(BORROWER, "BTC") == 84_313 * 10**4
    same_hashes(stepped(warm=True)[0], t)


# -- governance ------------------------------------------------------------------------------

def gov(t: T, param: str, value: int, height: int) -> bytes:
    return action(GOV, next(t.n), "gov_set_param", 0, param, value, height)


def governed(warm: bool) -> tuple[T, object]:
    """Between the thresholds at 55,000 (41,250 at 0.75 >= 39,000); governance lowers BTC's
    maintenance weight to 0.7: 38,500 < 39,000, liquidated in the block it applies (key 2 bids
    55,000)."""
    t, _ = between(warm)
    h = t.c.height + 2
    t.block(gov(t, "L.BTC.mweight", 700_000, h), t.bid(55_000, 10_000))
    return t, t.block()


def test_governance_changes_a_maintenance_weight_and_checks_the_pairs():
    t, res = governed(warm=False)
    assert LP.pool_params(t.c.kv)["BTC"].maint_collateral_weight_ppm == 700_000
    [step] = evs(res, "collateral_liquidation")
    # 39,000 / 0.9945 / 5.5 = 7,130.1 -> 7,131 lots at 55,000 = 39,220.5, taker fee 19.61025,
    # liquidation fee 196.1025: -39,000 + 39,220.5 - 19.61025 - 196.1025 = 4.78725.
    assert (step["size"], step["quote_balance"]) == ("0.7131", "4.78725")
    same_hashes(governed(warm=True)[0], t)
    h = t.c.height + 2
    bad = [("L.BTC.mweight", 600_000), ("L.BTC.mweight", 1_000_001), ("L.BTC.cweight", 750_000),
           ("L.BTC.mbweight", 1_200_000), ("L.BTC.mbweight", 999_999),
           ("L.USDC.mweight", 900_000), ("L.BTC.bweight", 1_000_000)]
    res = t.c.block([gov(t, p, v, h) for p, v in bad])
    logs = [r.log for r in res.tx_results]
    assert [r.code for r in res.tx_results] == [Code.INVALID_GOVERNANCE] * len(bad), logs
    assert "between the collateral weight 650000 ppm and 1000000" in logs[0]
    assert "above the maintenance collateral weight 700000" in logs[2]
    assert "between 1000000 ppm and the borrow weight 1100000" in logs[3]
    assert "quote asset" in logs[5]
    assert "between 1000000 ppm and the borrow weight 1000000" in logs[6]
    # 0 returns a weight to "the same as the initial one"
    t.block(gov(t, "L.BTC.mweight", 0, h + 1), gov(t, "L.BTC.cweight", 700_000, h + 1))
    t.block()
    t.block()
    p = LP.pool_params(t.c.kv)["BTC"]
    assert p.maint_collateral_weight_ppm == 0 and L.maint_borrow_weight(p) == 1_050_000


def test_genesis_checks_the_maintenance_weights():
    import pytest

    from state.errors import InvalidBlock
    from state.genesis import genesis_writes
    g = lending_genesis(maint=True)
    usdc, btc, eth = g.lending
    for pools, text in (
            ((usdc, ("BTC", btc[1]._replace(maint_collateral_weight_ppm=600_000)), eth),
             "BTC: maintenance collateral weight 600000 ppm must lie between the collateral "
             "weight 650000"),
            ((("USDC", usdc[1]._replace(maint_collateral_weight_ppm=1_000_000)), btc, eth),
             "USDC: the quote asset's collateral weight is always 1"),
            ((usdc, btc, ("ETH", eth[1]._replace(maint_borrow_weight_ppm=1_200_000))),
             "ETH: maintenance borrow weight 1200000 ppm must lie between")):
        with pytest.raises(InvalidBlock, match=text):
            genesis_writes(dataclasses.replace(g, lending=pools))


def test_unused_maintenance_weights_keep_the_stored_record():
    from state.codec import encode
    p = pool_params()
    assert L.stored(p) == list(p)[:9] and encode(L.stored(p)) == encode(list(p)[:9])
    assert L.stored(p._replace(maint_borrow_weight_ppm=1_000_000))[9:] == [0, 1_000_000]
    assert L.PoolParams(*L.stored(p)) == p


# -- the insurance fund's backstop ------------------------------------------------------------

def gapped(fund: int, usd: int, warm: bool = False) -> tuple[T, object]:
    """1 BTC, 39,000 borrowed at 60,000, nobody bids; BTC gaps to `usd`."""
    t = T(fund=fund, warm=warm)
    t.block(t.withdraw(BORROWER, "USDC", 39_000 * USDC))
    return t, t.oracle(usd)


def test_the_fund_takes_over_collateral_the_empty_book_cannot_absorb():
    t, res = gapped(fund=50_000, usd=42_000)
    s1, s2 = evs(res, "collateral_liquidation")
    b1, b2 = evs(res, "collateral_backstop")
    # 31,500 at 0.75 < 39,000. Step 1: 39,215.686 / 4.2 -> 9,338 lots; unweighted equity
    # 3,000: bankruptcy price 42,000 - 3,000 / 0.9338 = 38,787.4 (up to a tick), above
    # 42,000 x 0.75 = 31,500. The book fills nothing; the fund pays 0.9338 x 38,787.4 =
    # 36,219.67412: -39,000 + 36,219.67412 = -2,780.32588, no fee (nothing filled).
    assert (s1["size"], s1["filled"], s1["price"], s1["fee"]) == ("0.9338", "0", "38787.4", "0")
    assert (b1["size"], b1["price"], b1["paid"], b1["fund_loss"]) == \
        ("0.9338", "38787.4", "36219.67412", "0")
    assert (b1["quote_balance"], b1["balance_left"]) == ("-2780.32588", "0.0662")
    assert (b1["fund_balance"], b1["fund_asset_balance"]) == ("13780.32588", "0.9338")
    # Step 2: 2,780.32588 / 0.9945 / 4.2 -> 666 lots, at most the 662 held; unweighted equity
    # 0.0662 x 42,000 - 2,780.32588 = 0.07412: 42,000 - 0.07412 / 0.0662 = 41,998.9; the fund
    # pays 0.0662 x 41,998.9 = 2,780.32718: the account ends with 0.0013 USDC, no BTC.
    assert (s2["size"], s2["price"]) == ("0.0662", "41998.9")
    assert (b2["paid"], b2["quote_balance"], b2["balance_left"]) == \
        ("2780.32718", "0.0013", "0")
    assert t.bal(BORROWER) == 1_300 and t.bal(BORROWER, "BTC") == 0 and not t.due()
    assert t.bal(INSURANCE_FUND, "BTC") == BTC
    assert t.bal(INSURANCE_FUND) == (50_000 - 39_000) * USDC - 1_300
    assert not evs(res, "bad_debt_covered")
    # the fund's BTC is raw: outside the BTC pool (its supplied total is unchanged: 0)
    assert LP.get_pool(t.c.kv, "BTC").supplied == 0
    from rpc.risk_methods import insurance_fund
    from types import SimpleNamespace
    app = SimpleNamespace(store=SimpleNamespace(state=t.c.kv))
    fund = trio.run(insurance_fund, app, {})
    assert fund["assets"] == [{"asset": "BTC", "balance": "1"}] and fund["balance"] == "10999.9987"
    same_hashes(gapped(50_000, 42_000, warm=True)[0], t)


def test_without_quote_in_the_fund_the_account_waits_as_before():
    t, res = gapped(fund=0, usd=42_000)
    [step] = evs(res, "collateral_liquidation")
    assert step["filled"] == "0" and not evs(res, "collateral_backstop")
    assert t.bal(BORROWER, "BTC") == BTC and t.bal(BORROWER) == -39_000 * USDC and t.due()
    same_hashes(gapped(0, 42_000, warm=True)[0], t)


def test_a_fund_too_small_backstops_then_bad_debt_goes_to_the_suppliers():
    t, res = gapped(fund=30_000, usd=30_000)
    [step] = evs(res, "collateral_liquidation")
    [back] = evs(res, "collateral_backstop")
    # Bankrupt (unweighted 30,000 - 39,000 < 0): the limit is 30,000 x 0.75 = 22,500; all
    # 10,000 lots (39,215.686 / 3 is more); the fund pays 22,500, leaving the account -16,500
    # with no BTC: bad debt. The fund covers its last 7,500, the suppliers the other 9,000.
    assert (step["size"], step["price"], back["paid"]) == ("1", "22500", "22500")
    [cov] = evs(res, "bad_debt_covered")
    assert (cov["amount"], cov["fund_balance"]) == ("7500", "0")
    [soc] = evs(res, "bad_debt_socialised")
    # supplied: keys 0 and 2, 2,000,000 USDC at index 1: cut ceil((9,000 + 10^-6) x 10^12 /
    # 2,000,000) in index units
    cut = -(-(9_000 * USDC + 1) * L.INDEX_SCALE // (2_000_000 * USDC))
    assert soc["amount"] == "9000" and soc["supply_index"] == str(L.INDEX_SCALE - cut)
    assert t.bal(BORROWER) == 0 and t.bal(INSURANCE_FUND, "BTC") == BTC
    assert t.bal(INSURANCE_FUND) == 0
    same_hashes(gapped(30_000, 30_000, warm=True)[0], t)


def test_the_localnet_genesis_sets_both_weights_and_json_checks_them():
    import pytest

    from localnet.fixtures import VALIDATORS
    from node.genesis import GenesisError, make_genesis_doc, parse_genesis
    vals = [(v.pub_key, 10, f"v{i}") for i, v in enumerate(VALIDATORS)]
    doc = make_genesis_doc("c", 1_700_000_000_000, vals)
    pools = dict(parse_genesis(doc).state.lending)
    assert (pools["BTC"].maint_collateral_weight_ppm, pools["BTC"].maint_borrow_weight_ppm,
            pools["ETH"].maint_collateral_weight_ppm) == (750_000, 1_050_000, 700_000)
    assert pools["USDC"].maint_collateral_weight_ppm == 0
    doc["app_state"]["lending"][1]["maint_collateral_weight_ppm"] = 600_000
    with pytest.raises(GenesisError, match="BTC: maintenance collateral weight 600000"):
        parse_genesis(doc)
