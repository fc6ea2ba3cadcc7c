"""Funding payments, which are never refused, taking a pool past its limits
(state/lending_limits.py): the pool then refuses every new automatic borrow of the asset,
changing nothing, still accepts an order that only reduces a position, and lends again once
repayments bring it back within its limits. Hand-computed numbers; the USDC pool charges no
interest here (base 0, slope2 0) so the figures stay exact.

Funding: hourly, premium 0 (no book), an interest rate of 25.6% per 8 hours (clamp and cap
wide enough): one window pays 25.6% / 8 = 3.2% of the position's value at the oracle, so the
long of 1 BTC at 60,000 pays 1,920 USDC an hour.
"""

import dataclasses
import itertools

from localnet.fixtures import lending_genesis, pool_params
from state import lending_pools as LP, ledger
from state.errors import Code
from state.funding_index import FUNDING_POOL
from state.invariants import check_invariants
from state.markets import FundingParams
from state.positions import load_account
from tests.chain_helpers import BTC_PERP, PRICE, USDC, Chain, action, key, oracle_tx, order

BTC = 10**8
HOUR = 3_600_000
FUNDING = FundingParams(HOUR, 256_000_000, 256_000_000, 40_000_000)
_seq = itertools.count(1)


def chain(supplied_usdc: int, **usdc) -> Chain:
    """Key 0 supplies `supplied_usdc`; key 2 holds 10 BTC and no USDC; key 3 100,000 USDC;
    the USDC pool without interest and with `usdc` changed; funding on BTC-USD."""
    g = lending_genesis(((key(0).pub_key, "USDC", supplied_usdc * USDC),
                         (key(2).pub_key, "BTC", 10 * BTC),
                         (key(3).pub_key, "USDC", 100_000 * USDC)))
    prm = pool_params()._replace(base_ppm=0, slope2_ppm=0, **usdc)
    return Chain(dataclasses.replace(g, lending=(("USDC", prm),) + g.lending[1:],
                                     funding=((BTC_PERP, FUNDING),)))


def N(c: Chain) -> int:
    return c.time_ms + next(_seq)


def codes(res) -> list[int]:
    return [r.code for r in res.tx_results]


def usdc(c: Chain, i: int) -> int:
    return ledger.balance(c.kv, key(i).pub_key, "USDC")


def size(c: Chain, i: int) -> int:
    return load_account(c.kv, key(i).pub_key).size(BTC_PERP)


def long_then_an_hour_of_funding(c: Chain, *pre) -> None:
    """Key 2 buys 1 BTC-USD at 60,000 from key 3 (taker fee 27: its first borrow); an hour
    later key 2 is touched (set_leverage) and pays the window's 1,920 of funding."""
    res = c.block(list(pre) + [order(key(3), N(c), BTC_PERP, False, 60_000 * PRICE, BTC),
                               order(key(2), N(c), BTC_PERP, True, 60_000 * PRICE, BTC, tif=1)])
    assert set(codes(res)) == {0}, [r.log for r in res.tx_results]
    assert usdc(c, 2) == -27 * USDC
    res = c.block(oracle_tx(N(c), [("BTC", 60_000 * PRICE)]), dt_ms=HOUR)
    assert [dict(e.attrs)["rate"] for e in res.block_events if e.type == "funding"] == ["0.032"]
    res = c.block([action(key(2), N(c), "set_leverage", BTC_PERP, 20)])
    assert codes(res) == [0]
    paid = [dict(e.attrs)["amount"] for e in res.tx_results[0].events
            if e.type == "funding_payment"]
    assert paid == ["-1920"]
    assert usdc(c, 2) == -1_947 * USDC
    assert ledger.balance(c.kv, FUNDING_POOL, "USDC") == 1_920 * USDC


def _state(c: Chain) -> tuple:
    """Balances, positions, orders, credited flows and the pool's totals (not its clock)."""
    kept = {k: v for k, v in c.kv.iterate(b"")
            if k.startswith((b"acct/", b"lend/flow/", b"ord/", b"clr/"))
            and not k.startswith(b"acct/nonce/")}
    return kept, LP.get_pool(c.kv, "USDC")._replace(last_ms=0)


def test_funding_over_the_borrow_cap_stops_new_borrows_until_repaid():
    c = chain(1_000_000, borrow_cap=1_000 * USDC)
    long_then_an_hour_of_funding(c)
    # funding took the pool's borrows to 1,947, over the cap of 1,000: not refused
    assert LP.get_pool(c.kv, "USDC").borrowed == 1_947 * USDC
    check_invariants(c.kv)
    # key 3 offers 0.1 BTC; key 2 buying it would borrow its 2.7 taker fee: refused
    assert codes(c.block([order(key(3), N(c), BTC_PERP, False, 60_000 * PRICE,
                                BTC // 10)])) == [0]
    before = _state(c)
    res = c.block([order(key(2), N(c), BTC_PERP, True, 60_000 * PRICE, BTC // 10, tif=1)])
    assert codes(res) == [Code.LENDING_CAP]
    assert res.tx_results[0].log == ("the order borrows 2.7 USDC (automatically): it would "
                                     "take USDC borrows to 1949.7, over the pool's borrow cap "
                                     "1000")
    assert _state(c) == before                     # nothing changed: balances, book, pool
    # an order that only reduces key 2's long is accepted: selling 0.5 BTC into key 3's bid
    # at 60,000 borrows its 13.5 taker fee, over the cap
    res = c.block([action(key(3), N(c), "cancel_all", BTC_PERP),
                   order(key(3), N(c), BTC_PERP, True, 60_000 * PRICE, BTC // 2),
                   order(key(2), N(c), BTC_PERP, False, 60_000 * PRICE, BTC // 2, tif=1,
                         reduce_only=True)])
    assert codes(res) == [0, 0, 0]
    assert size(c, 2) == BTC // 2 // 10_000 and usdc(c, 2) == -1_960_500_000
    assert LP.get_pool(c.kv, "USDC").borrowed == 1_960_500_000
    # a repayment of 1,000 takes the borrows to 960.5, under the cap: key 2 may borrow again
    res = c.block([action(key(2), N(c), "deposit", "USDC", 1_000 * USDC),
                   order(key(3), N(c), BTC_PERP, False, 60_000 * PRICE, BTC // 10),
                   order(key(2), N(c), BTC_PERP, True, 60_000 * PRICE, BTC // 10, tif=1)])
    assert codes(res) == [0, 0, 0]
    assert usdc(c, 2) == -963_200_000              # 960.5 + the 2.7 fee
    assert LP.get_pool(c.kv, "USDC").borrowed == 963_200_000
    check_invariants(c.kv)


def test_funding_over_the_utilisation_ceiling_stops_borrows_paid_out_of_the_pool():
    # key 0 supplies 2,000; key 3 opts out (its USDC is not lent)
    c = chain(2_000)
    long_then_an_hour_of_funding(c, action(key(3), N(c), "set_lending", 0))
    # supplied: 2,000 + the fee account's 27 + 9 (key 2's taker and key 3's maker fee);
    # borrowed 27 + 1,920: U = 1,947 / 2,036 = 95.6%, over the 90% ceiling, by funding
    p = LP.get_pool(c.kv, "USDC")
    assert (p.supplied, p.borrowed) == (2_036 * USDC, 1_947 * USDC)
    check_invariants(c.kv)
    # BTC falls to 59,900: realising key 2's 100 of loss pays it to the perp settlement pool,
    # out of the USDC pool: refused
    c.block(oracle_tx(N(c), [("BTC", 59_900 * PRICE)]))
    before = _state(c)
    res = c.block([action(key(2), N(c), "settle_pnl", BTC_PERP)])
    assert codes(res) == [Code.POOL_ILLIQUID]
    assert res.tx_results[0].log == (
        "settling the PnL borrows 100 USDC (automatically): it would leave the USDC pool with "
        "2047 borrowed of 2036 supplied, above its withdrawal utilisation ceiling of 90%")
    assert _state(c) == before
    # closing half the long at 59,900 (reduce-only) realises 50 of loss and a 13.4775 fee:
    # accepted
    res = c.block([order(key(3), N(c), BTC_PERP, True, 59_900 * PRICE, BTC // 2),
                   order(key(2), N(c), BTC_PERP, False, 59_900 * PRICE, BTC // 2, tif=1,
                         reduce_only=True)])
    assert codes(res) == [0, 0]
    assert usdc(c, 2) == -2_010_477_500           # 1,947 + 50 + 13.4775
    # repaying 2,000 leaves 10.4775 borrowed: settling the other half's 50 of loss passes
    res = c.block([action(key(2), N(c), "deposit", "USDC", 2_000 * USDC),
                   action(key(2), N(c), "settle_pnl", BTC_PERP)])
    assert codes(res) == [0, 0], [r.log for r in res.tx_results]
    assert usdc(c, 2) == -60_477_500
    check_invariants(c.kv)
