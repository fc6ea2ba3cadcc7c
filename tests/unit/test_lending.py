"""Lending (state/lending*.py): the rate curve, a year of interest at fixed utilisation to the
last quantum, the kink, automatic borrowing by a losing trader and the profit that earns,
withdrawals (pool cash, the utilisation ceiling, initial margin), opting out, governance, and
a chain without pools unchanged."""

import dataclasses
import itertools

import pytest

from localnet.fixtures import FEE_ACCOUNT, lending_genesis, pool_params
from state import lending as L, lending_pools as LP, ledger
from state.errors import Code, InvalidBlock
from state.genesis import genesis_writes
from state.insurance import INSURANCE_FUND
from state.invariants import check_invariants as check_all
from tests.chain_helpers import (BTC_PERP, GOV, PRICE, USDC, Chain, action, key, order,
                                 trading_genesis)

BTC = 10**8
YEAR = L.YEAR_MS
HL = pool_params()


def pct(whole: int, frac: str = "") -> int:
    """A percentage written out by hand -> RATE_SCALE (e.g. pct(52, '5') is 52.5%)."""
    return int(str(whole) + frac.ljust(10, "0"))


def util(ppm: int) -> int:
    return ppm * (L.UTIL_SCALE // 10**6)


# -- the curve ---------------------------------------------------------------------------------

@pytest.mark.parametrize("u_ppm, borrow, supply", [
    (0, pct(5), 0),                       # base
    (500_000, pct(5), pct(2, "25")),      # flat below the kink: 5% x 0.5 x 0.9 = 2.25%
    (800_000, pct(5), pct(3, "6")),       # at the kink
    (900_000, pct(52, "5"), pct(42, "525")),  # 5% + 4.75 x 0.1 = 52.5%; x 0.9 x 0.9
    (1_000_000, pct(100), pct(90)),       # 5% + 95%
])
def test_hyperliquid_curve(u_ppm, borrow, supply):
    assert L.borrow_rate(HL, util(u_ppm)) == borrow
    assert L.supply_rate(HL, util(u_ppm)) == supply


def test_slope1_is_linear_to_the_kink_and_rounds_up():
    p = HL._replace(base_ppm=20_000, slope1_ppm=40_000)
    assert L.borrow_rate(p, util(400_000)) == pct(4)          # 2% + 4% x 0.4 / 0.8
    # 1 / 3 of the way: 4% / 3 = 1.3333..% rounded up to the last RATE_SCALE unit
    assert L.borrow_rate(p, L.UTIL_SCALE * 8 // 30) == pct(2) + 13_333_333_334


def test_bad_params_are_refused():
    for bad in (HL._replace(optimal_ppm=0), HL._replace(reserve_ppm=1_000_001),
                HL._replace(borrow_weight_ppm=999_999), HL._replace(withdraw_ceiling_ppm=0)):
        with pytest.raises(ValueError):
            L.check_params(bad)


# -- chains ------------------------------------------------------------------------------------

def supplier_and_borrower(**kw) -> Chain:
    """key 0 supplies 1,000,000 USDC; key 1 holds 100 BTC ($6,000,000, worth 3,900,000 as
    collateral at 0.65) and no USDC."""
    return Chain(lending_genesis(((key(0).pub_key, "USDC", 1_000_000 * USDC),
                                  (key(1).pub_key, "BTC", 100 * BTC)), **kw))


_seq = itertools.count(1)


def N(c: Chain) -> int:
    """A fresh nonce for the chain's next block (nonces are block-time milliseconds)."""
    return c.time_ms + next(_seq)


def withdraw(c: Chain, i: int, asset: str, amount: int) -> bytes:
    return action(key(i), N(c), "withdraw", asset, amount)


def bal(c: Chain, i, asset: str = "USDC") -> int:
    addr = key(i).pub_key if type(i) is int else i
    return ledger.balance(c.kv, addr, asset)


def ok(res, n: int | None = None) -> None:
    bad = [(r.code, r.log) for r in res.tx_results if r.code]
    assert not bad, bad
    if n is not None:
        assert len(res.tx_results) == n


def test_a_year_at_fixed_utilisation_pays_the_curves_apr_to_the_quantum():
    c = supplier_and_borrower()
    ok(c.block([withdraw(c, 1, "USDC", 500_000 * USDC)]))   # U = 50%: 5% / 2.25%
    pool = LP.get_pool(c.kv, "USDC")
    assert (pool.supplied, pool.borrowed) == (1_000_000 * USDC, 500_000 * USDC)
    res = c.block([], dt_ms=YEAR)
    assert bal(c, 1) == -525_000 * USDC                  # 500,000 x 1.05
    assert bal(c, 0) == 1_022_500 * USDC                 # 1,000,000 x 1.0225
    assert bal(c, INSURANCE_FUND) == 2_500 * USDC        # 10% of the 25,000 interest
    assert [e.type for e in res.block_events].count("lending_reserve") == 1
    check_all(c.kv)


def test_utilisation_crossing_the_kink():
    c = supplier_and_borrower()
    # both withdrawals in one block: no time passes between them
    ok(c.block([withdraw(c, 1, "USDC", 500_000 * USDC), withdraw(c, 1, "USDC", 400_000 * USDC)]))
    p = LP.get_pool(c.kv, "USDC")
    assert L.utilisation(p.supplied, p.borrowed) == util(900_000)
    c.block([], dt_ms=YEAR)
    # 52.5% on 900,000 = 472,500; suppliers 90% of it, the fund 10%
    assert bal(c, 1) == -1_372_500 * USDC
    assert bal(c, 0) == 1_425_250 * USDC
    assert bal(c, INSURANCE_FUND) == 47_250 * USDC
    check_all(c.kv)


def test_a_losing_trader_borrows_and_pays_while_the_winner_earns():
    # keys 2 and 3 hold 10 BTC each and no USDC: every USDC balance comes from the trades
    c = Chain(lending_genesis(((key(2).pub_key, "BTC", 10 * BTC),
                               (key(3).pub_key, "BTC", 10 * BTC))))
    ok(c.block([order(key(3), N(c), BTC_PERP, False, 60_000 * PRICE, BTC),
                order(key(2), N(c), BTC_PERP, True, 60_000 * PRICE, BTC),
                order(key(3), N(c), BTC_PERP, True, 59_000 * PRICE, BTC),
                order(key(2), N(c), BTC_PERP, False, 59_000 * PRICE, BTC)]))
    # key 2: -1,000 realised, taker fees 27 + 26.55: an automatic borrow of 1,053.55
    assert bal(c, 2) == -1_053_550_000
    # key 3: +1,000, maker fees 9 + 8.85; the fee account 71.4: both supplied
    assert (bal(c, 3), bal(c, FEE_ACCOUNT)) == (982_150_000, 71_400_000)
    c.block([], dt_ms=YEAR)
    # U = 100%: 100% a year; interest 1,053.55, suppliers earn 90% of their balances
    assert bal(c, 2) == -2_107_100_000
    assert (bal(c, 3), bal(c, FEE_ACCOUNT)) == (1_866_085_000, 135_660_000)
    assert bal(c, INSURANCE_FUND) == 105_355_000
    check_all(c.kv)


def test_withdrawals_need_pool_cash_the_ceiling_and_initial_margin():
    c = supplier_and_borrower()
    res = c.block([withdraw(c, 1, "USDC", 1_000_001 * USDC),    # more than the pool holds
                   withdraw(c, 1, "USDC", 950_000 * USDC),      # U 95% > ceiling 90%
                   withdraw(c, 1, "BTC", 101 * BTC),            # 1 BTC beyond the pool's 100
                   withdraw(c, 0, "BTC", BTC)])                 # a BTC borrow against USDC
    assert [r.code for r in res.tx_results] == [Code.POOL_ILLIQUID] * 3 + [0]
    assert bal(c, 0, "BTC") == -BTC
    assert "holds 1000000 USDC not lent out" in res.tx_results[0].log
    assert "ceiling of 90%" in res.tx_results[1].log
    # 100 BTC at 60,000 x 0.65 = 3,900,000 of collateral: a tighter pool shows the margin rule
    c2 = Chain(lending_genesis(((key(0).pub_key, "USDC", 1_000_000 * USDC),
                                (key(1).pub_key, "BTC", 1 * BTC))))
    res = c2.block([withdraw(c2, 1, "USDC", 39_001 * USDC)])
    assert res.tx_results[0].code == Code.INSUFFICIENT_MARGIN
    assert bal(c2, 1) == 0 and bal(c2, 1, "BTC") == BTC
    ok(c2.block([withdraw(c2, 1, "USDC", 39_000 * USDC)]))       # exactly at the limit
    assert bal(c2, 1) == -39_000 * USDC


def test_withdrawal_burns_and_emits_what_a_bridge_reads():
    c = supplier_and_borrower()
    res = c.block([withdraw(c, 0, "USDC", 250 * USDC)])
    ok(res)
    ev = [e for e in res.tx_results[0].events if e.type == "withdrawal"][0]
    assert dict(ev.attrs) == {"account": key(0).pub_key.hex(), "asset": "USDC",
                              "amount": "250", "borrowed": "0"}
    assert ledger.supply(c.kv, "USDC") == 999_750 * USDC
    assert bal(c, 0) == 999_750 * USDC


def test_an_opted_out_balance_earns_nothing_and_is_not_lent():
    c = Chain(lending_genesis(((key(0).pub_key, "USDC", 1_000_000 * USDC),
                               (key(2).pub_key, "USDC", 1_000_000 * USDC),
                               (key(1).pub_key, "BTC", 100 * BTC))))
    ok(c.block([action(key(2), N(c), "set_lending", 0), withdraw(c, 1, "USDC", 500_000 * USDC)]))
    assert LP.get_pool(c.kv, "USDC").supplied == 1_000_000 * USDC   # key 2 is out
    c.block([], dt_ms=YEAR)
    assert bal(c, 2) == 1_000_000 * USDC
    assert bal(c, 0) == 1_022_500 * USDC
    # back in: it is supplied from now on
    scaled = LP.get_pool(c.kv, "USDC").scaled_supplied
    ok(c.block([action(key(2), N(c), "set_lending", 1)]))
    p = LP.get_pool(c.kv, "USDC")
    assert p.scaled_supplied == scaled + 10**12 * L.INDEX_SCALE // p.supply_index
    check_all(c.kv)


def test_opting_out_needs_the_pools_cash():
    c = supplier_and_borrower()
    ok(c.block([withdraw(c, 1, "USDC", 500_000 * USDC)]))
    res = c.block([action(key(0), N(c), "set_lending", 0)])
    assert res.tx_results[0].code == Code.POOL_ILLIQUID


def test_settle_pnl_realises_into_the_quote_balance():
    c = Chain(lending_genesis(((key(2).pub_key, "BTC", 10 * BTC),
                               (key(3).pub_key, "BTC", 10 * BTC))))
    ok(c.block([order(key(3), N(c), BTC_PERP, False, 60_000 * PRICE, BTC),
                order(key(2), N(c), BTC_PERP, True, 60_000 * PRICE, BTC)]))
    before = ledger.stored_balance(c.kv, key(2).pub_key, "USDC")
    assert before == -27 * USDC      # a borrow of the taker fee, scaled at index 1
    res = c.block([action(key(2), N(c), "settle_pnl", BTC_PERP)])
    ok(res)
    ev = [e for e in res.tx_results[0].events if e.type == "settle_pnl"][0]
    assert dict(ev.attrs)["pnl"] == "0"          # the mark is still 60,000
    assert ledger.stored_balance(c.kv, key(2).pub_key, "USDC") == before
    res = c.block([action(key(0), N(c), "settle_pnl", BTC_PERP)])
    assert res.tx_results[0].code == Code.NOTHING_TO_SETTLE


def test_deposit_is_localnet_only_and_respects_the_supply_cap():
    g = lending_genesis()
    g = dataclasses.replace(g, lending=(("USDC", HL._replace(supply_cap=1_000 * USDC)),)
                            + g.lending[1:])
    c = Chain(g)
    res = c.block([action(key(5), N(c), "deposit", "BTC", 2 * BTC),
                   action(key(6), N(c), "deposit", "USDC", 1 * USDC)])
    assert res.tx_results[0].code == 0
    assert res.tx_results[1].code == Code.LENDING_CAP     # 4 x 100,000 already supplied
    assert bal(c, 5, "BTC") == 2 * BTC
    c2 = Chain(dataclasses.replace(g, faucet=None))
    assert c2.block([action(key(5), N(c2), "deposit", "BTC", 1)]).tx_results[0].code == \
        Code.DEPOSIT_DISABLED


def test_governance_changes_a_pool_parameter():
    c = supplier_and_borrower()
    ok(c.block([action(GOV, N(c), "gov_set_param", 0, "L.USDC.base", 100_000, 3),
                action(GOV, N(c), "gov_set_param", 0, "L.BTC.cweight", 500_000,
                       3)]))
    res = c.block([action(GOV, N(c), "gov_set_param", 0, "L.USDC.nope", 1, 4),
                   action(GOV, N(c), "gov_set_param", 0, "L.DOGE.base", 1, 4),
                   action(GOV, N(c), "gov_set_param", 0, "L.USDC.kink", 0, 4)])
    assert [r.code for r in res.tx_results] == [Code.INVALID_GOVERNANCE] * 3
    c.block([])
    assert LP.pool_params(c.kv)["USDC"].base_ppm == 100_000
    ok(c.block([withdraw(c, 1, "USDC", 100_000 * USDC)]))
    c.block([], dt_ms=YEAR)
    assert bal(c, 1) == -110_000 * USDC                   # 10% now


def test_genesis_refuses_a_pool_for_a_non_collateral_asset():
    g = lending_genesis()
    with pytest.raises(InvalidBlock, match="not a collateral asset"):
        genesis_writes(dataclasses.replace(g, collateral=()))
    with pytest.raises(InvalidBlock, match="optimal utilisation"):
        genesis_writes(dataclasses.replace(g, lending=(("USDC", HL._replace(optimal_ppm=0)),)))


def test_raw_accounts_are_the_protocols_own():
    from state.funding_index import FUNDING_POOL
    from state.settlement import POOL
    assert set(LP.RAW_ACCOUNTS) == {POOL, FUNDING_POOL, INSURANCE_FUND}


def test_a_chain_without_pools_writes_nothing_of_lending():
    c = Chain(trading_genesis())
    res = c.block([])
    assert not any(k.startswith((b"lend/", b"params/lending/")) for k, _ in res.writes)
    res = c.block([withdraw(c, 0, "USDC", 100 * USDC), withdraw(c, 1, "USDC", 200_000 * USDC)])
    assert res.tx_results[0].code == 0
    assert res.tx_results[1].code == Code.INSUFFICIENT_BALANCE
    assert bal(c, 0) == 99_900 * USDC


# -- queries -----------------------------------------------------------------------------------

def test_rpc_shows_pools_accounts_and_history():
    import trio
    from types import SimpleNamespace

    from rpc import lending_methods as RM
    from rpc.methods import METHODS, account

    assert 10**RM.RATE_DECIMALS == L.RATE_SCALE == L.UTIL_SCALE
    assert 10**RM.INDEX_DECIMALS == L.INDEX_SCALE
    c = supplier_and_borrower()
    ok(c.block([withdraw(c, 1, "USDC", 500_000 * USDC)]))
    c.block([], dt_ms=YEAR)
    app = SimpleNamespace(store=SimpleNamespace(state=c.kv))
    pools = {p["asset"]: p for p in trio.run(METHODS["lending_pools"], app, {})["pools"]}
    usdc = pools["USDC"]
    assert (usdc["supplied"], usdc["borrowed"]) == ("1022500", "525000")
    assert usdc["borrow_index"] == "1.05" and usdc["supply_index"] == "1.0225"
    assert usdc["borrow_apr"] == "0.05" and usdc["reserve_total"] == "2500"
    assert usdc["params"]["slope2"] == "0.95" and pools["BTC"]["params"]["borrow_weight"] == "1.1"
    acct = trio.run(account, app, {"address": key(1).pub_key.hex()})["lending"]
    rows = {r["asset"]: r for r in acct["assets"]}
    assert rows["USDC"] == {"asset": "USDC", "balance": "-525000", "interest": "-25000",
                            "lent": False}
    assert acct["borrow_limit"] == "3900000" and acct["borrowed_value"] == "525000"
    assert acct["equity"] == "3375000" and acct["healthy"] is True
    sup = trio.run(account, app, {"address": key(0).pub_key.hex()})["lending"]
    assert [r["interest"] for r in sup["assets"] if r["asset"] == "USDC"] == ["22500"]
    hist = trio.run(METHODS["interest_history"], app, {"asset": "USDC"})["history"]
    assert hist[0]["borrow_apr"] == "0.05" and hist[0]["utilisation"] == "0.513447432762"
    assert len(hist) == 1       # the first block was in genesis's hour


def test_a_trade_that_would_borrow_beyond_initial_margin_is_refused_and_changes_nothing():
    # 0.01 BTC = 600 at 60,000, worth 390 as collateral; key 2 holds no USDC
    c = Chain(lending_genesis(((key(2).pub_key, "BTC", BTC // 100),
                               (key(3).pub_key, "USDC", 100_000 * USDC))))
    ok(c.block([order(key(3), N(c), BTC_PERP, False, 60_000 * PRICE, BTC)]))
    res = c.block([order(key(2), N(c), BTC_PERP, True, 60_000 * PRICE, BTC, tif=1)])
    assert res.tx_results[0].code == Code.INSUFFICIENT_MARGIN
    assert (bal(c, 2), bal(c, 2, "BTC")) == (0, BTC // 100)
    # 0.005 BTC: notional 300, initial margin 6 at 50x; the 0.135 taker fee is borrowed
    ok(c.block([order(key(2), N(c), BTC_PERP, True, 60_000 * PRICE, BTC // 200, tif=1)]))
    assert bal(c, 2) == -135_000


def test_a_borrowed_asset_counts_at_its_borrow_weight():
    from state.margin import summary
    from state.positions import load_account
    c = Chain(lending_genesis(((key(0).pub_key, "BTC", 10 * BTC),
                               (key(1).pub_key, "USDC", 100_000 * USDC))))
    ok(c.block([withdraw(c, 1, "BTC", BTC)]))
    s = summary(c.kv, load_account(c.kv, key(1).pub_key))
    assert s.equity == 34_000 * USDC        # 100,000 - 1 BTC x 60,000 x 1.1 (no interest yet)


def test_a_borrowers_safety_band_counts_interest():
    """Interest lowers a borrower's equity with no write and no price move: the liquidation
    step's safety band (state.risk_index) counts the growth of the borrow index as a move, so a
    warm node never skips an account that a cold node (replay) liquidates."""
    from state.kv import Overlay
    from state.liquidation import check_account
    from state.liquidation_params import liquidation_params
    from state.risk_index import HolderIndex

    c = supplier_and_borrower()
    ok(c.block([order(key(0), N(c), BTC_PERP, False, 60_000 * PRICE, BTC),
                order(key(1), N(c), BTC_PERP, True, 60_000 * PRICE, BTC)]))
    ok(c.block([withdraw(c, 1, "USDC", 10_000 * USDC)]))
    assert bal(c, 1) < 0
    view = Overlay(c.kv)
    idx = HolderIndex()
    idx.build(view)
    idx.build_borrowers(view)
    assert key(1).pub_key in idx.borrowers
    assert check_account(view, None, liquidation_params(view), idx, key(1).pub_key) == []
    assert idx.is_safe(key(1).pub_key)
    # Its equity (3,900,000 of BTC collateral less the 10,000 borrow, the perp at mark) is far
    # above MM; what prices and interest move is the perp's 60,000, the BTC's 3,900,000 and
    # the borrow's 10,000: 2 x 3,970,000 of N0 against ~3,889,400 of slack, so the band holds
    # through 10% of index growth and not through 50%.
    idx.advance(0, idx.params_version, 100_000)
    assert idx.is_safe(key(1).pub_key)
    idx.advance(0, idx.params_version, 400_000)
    assert not idx.is_safe(key(1).pub_key)
