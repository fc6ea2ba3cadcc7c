"""Pool limits on automatic borrows (state/lending_limits.py): the borrow cap and the
utilisation ceiling on orders, `settle_pnl`, isolated margin and transfers out of a pool;
what cannot be refused (a maker's fee, interest) and what it leaves; and the pool's dust,
which makes cash = supplied - borrowed + dust exact."""

import dataclasses
import itertools

from localnet.fixtures import lending_genesis, pool_params
from state import lending as L, lending_pools as LP, ledger
from state.errors import Code
from state.invariants import check_invariants
from state.positions import load_account
from tests.chain_helpers import BTC_PERP, PRICE, USDC, Chain, action, key, oracle_tx, order

BTC = 10**8
_seq = itertools.count(1)


def N(c: Chain) -> int:
    return c.time_ms + next(_seq)


def capped(balances, **usdc) -> Chain:
    """A lending chain whose USDC pool has the parameters `usdc` changed."""
    g = lending_genesis(balances)
    return Chain(dataclasses.replace(
        g, lending=(("USDC", pool_params()._replace(**usdc)),) + g.lending[1:]))


def bal(c: Chain, i, asset: str = "USDC") -> int:
    return ledger.balance(c.kv, key(i).pub_key, asset)


def codes(res) -> list[int]:
    return [r.code for r in res.tx_results]


def size(c: Chain, i: int) -> int:
    return load_account(c.kv, key(i).pub_key).size(BTC_PERP)


# key 0 supplies 1,000,000 USDC; key 2 holds 10 BTC and no USDC; key 3 holds 100,000 USDC
BALANCES = ((key(0).pub_key, "USDC", 1_000_000 * USDC), (key(2).pub_key, "BTC", 10 * BTC),
            (key(3).pub_key, "USDC", 100_000 * USDC))


def test_a_taker_order_that_would_borrow_over_the_cap_is_refused_and_changes_nothing():
    c = capped(BALANCES, borrow_cap=20 * USDC)
    assert codes(c.block([order(key(3), N(c), BTC_PERP, False, 60_000 * PRICE, BTC)])) == [0]
    before = dict(c.kv.iterate(b""))
    # buying 1 BTC at 60,000: the 27 USDC taker fee is a borrow; the cap is 20
    res = c.block([order(key(2), N(c), BTC_PERP, True, 60_000 * PRICE, BTC, tif=1)])
    assert codes(res) == [Code.LENDING_CAP]
    assert res.tx_results[0].log == ("the order borrows 27 USDC (automatically): it would "
                                     "take USDC borrows to 27, over the pool's borrow cap 20")
    assert (bal(c, 2), size(c, 2), size(c, 3)) == (0, 0, 0)
    assert LP.get_pool(c.kv, "USDC").borrowed == 0
    changed = {k for k, v in c.kv.iterate(b"") if before.get(k) != v}
    assert changed and not any(k.startswith((b"acct/bal/", b"clr/", b"lend/", b"ord/"))
                               for k in changed), sorted(changed)
    # half a BTC: a 13.5 fee fits under the cap
    res = c.block([order(key(2), N(c), BTC_PERP, True, 60_000 * PRICE, BTC // 2, tif=1)])
    assert codes(res) == [0] and bal(c, 2) == -13_500_000
    check_invariants(c.kv)


def test_a_maker_borrow_is_not_refused_and_then_the_pool_refuses_new_borrows():
    c = capped(BALANCES, borrow_cap=5 * USDC)
    # key 2 rests; key 3 takes it: key 2's 9 USDC maker fee is a borrow over the cap of 5
    ok = c.block([order(key(2), N(c), BTC_PERP, False, 60_000 * PRICE, BTC),
                  order(key(3), N(c), BTC_PERP, True, 60_000 * PRICE, BTC, tif=1)])
    assert codes(ok) == [0, 0]
    assert bal(c, 2) == -9 * USDC and LP.get_pool(c.kv, "USDC").borrowed == 9 * USDC
    # the pool is over its cap: key 2 may not borrow more, even 1 quantum of fee...
    res = c.block([order(key(3), N(c), BTC_PERP, True, 60_000 * PRICE, BTC // 100),
                   order(key(2), N(c), BTC_PERP, False, 60_000 * PRICE, BTC // 100, tif=1)])
    assert codes(res) == [0, Code.LENDING_CAP]
    assert codes(c.block([action(key(3), N(c), "cancel_all", BTC_PERP)])) == [0]
    # ...but a trade that only reduces its position (realising a loss) is never refused
    short = size(c, 2)
    res = c.block([order(key(3), N(c), BTC_PERP, False, 60_000 * PRICE, BTC // 2),
                   order(key(2), N(c), BTC_PERP, True, 60_000 * PRICE, BTC // 2, tif=1)])
    assert codes(res) == [0, 0] and short < size(c, 2) < 0
    assert bal(c, 2) < -9 * USDC
    # repaying is always allowed
    res = c.block([action(key(3), N(c), "transfer", key(2).pub_key, "USDC", 100 * USDC)])
    assert codes(res) == [0] and bal(c, 2) > 0
    check_invariants(c.kv)


def test_interest_may_take_a_pool_over_its_cap_then_borrows_are_refused_and_repays_not():
    c = capped(((key(0).pub_key, "USDC", 1_000_000 * USDC), (key(1).pub_key, "BTC", 100 * BTC)),
               borrow_cap=500_000 * USDC)
    assert codes(c.block([action(key(1), N(c), "withdraw", "USDC", 500_000 * USDC)])) == [0]
    c.block([], dt_ms=L.YEAR_MS)                     # 5% a year: 525,000 borrowed
    assert LP.get_pool(c.kv, "USDC").borrowed == 525_000 * USDC
    res = c.block([action(key(1), N(c), "withdraw", "USDC", 1 * USDC),
                   action(key(1), N(c), "deposit", "USDC", 30_000 * USDC),
                   action(key(1), N(c), "withdraw", "USDC", 1 * USDC)])
    assert codes(res) == [Code.LENDING_CAP, 0, 0]    # back under the cap after the repay
    check_invariants(c.kv)


def _long_at_60k(c: Chain) -> None:
    """key 3 (opted out: its USDC is not lent) sells key 2 one BTC-USD at 60,000."""
    assert codes(c.block([action(key(3), N(c), "set_lending", 0),
                          order(key(3), N(c), BTC_PERP, False, 60_000 * PRICE, BTC),
                          order(key(2), N(c), BTC_PERP, True, 60_000 * PRICE, BTC,
                                tif=1)])) == [0, 0, 0]


def test_settle_pnl_over_the_cap_is_refused():
    c = capped(BALANCES, borrow_cap=100 * USDC)
    _long_at_60k(c)
    c.block(oracle_tx(N(c), [("BTC", 59_000 * PRICE)]))
    before = ledger.stored_balance(c.kv, key(2).pub_key, "USDC")
    res = c.block([action(key(2), N(c), "settle_pnl", BTC_PERP)])
    assert codes(res) == [Code.LENDING_CAP] and "settling the PnL borrows" in res.tx_results[0].log
    assert ledger.stored_balance(c.kv, key(2).pub_key, "USDC") == before
    check_invariants(c.kv)


def test_a_borrow_paid_out_of_the_pool_respects_the_utilisation_ceiling():
    # 1,000 USDC supplied (key 0); key 3's 100,000 is opted out: not in the pool
    c = capped(((key(0).pub_key, "USDC", 1_000 * USDC), *BALANCES[1:]))
    _long_at_60k(c)
    # key 2's 27 fee went to the fee account, lent: a borrow that stays in the pool
    p = LP.get_pool(c.kv, "USDC")
    assert (p.borrowed, p.supplied) == (27 * USDC, 1_036 * USDC)
    c.block(oracle_tx(N(c), [("BTC", 59_000 * PRICE)]))
    # realising -1,000 pays the perp settlement pool (outside the pool): U -> 99%
    scaled = LP.get_pool(c.kv, "USDC").scaled_borrowed
    res = c.block([action(key(2), N(c), "settle_pnl", BTC_PERP)])
    assert codes(res) == [Code.POOL_ILLIQUID]
    assert "above its withdrawal utilisation ceiling of 90%" in res.tx_results[0].log
    assert LP.get_pool(c.kv, "USDC").scaled_borrowed == scaled
    # with 100,000 more supplied it fits
    res = c.block([action(key(3), N(c), "set_lending", 1),
                   action(key(2), N(c), "settle_pnl", BTC_PERP)])
    assert codes(res) == [0, 0] and bal(c, 2) < -1_000 * USDC
    check_invariants(c.kv)


def test_a_borrow_that_stays_in_the_pool_is_not_bound_by_the_ceiling():
    # no USDC anywhere: every trade's fees are borrowed and supplied back (U = 100%)
    c = Chain(lending_genesis(((key(2).pub_key, "BTC", 10 * BTC),
                               (key(3).pub_key, "BTC", 10 * BTC))))
    res = c.block([order(key(3), N(c), BTC_PERP, False, 60_000 * PRICE, BTC),
                   order(key(2), N(c), BTC_PERP, True, 60_000 * PRICE, BTC, tif=1)])
    assert codes(res) == [0, 0]
    p = LP.get_pool(c.kv, "USDC")
    assert p.borrowed == p.supplied == 36 * USDC


def test_isolated_margin_added_beyond_the_balance_respects_the_cap():
    c = capped(BALANCES, borrow_cap=1_000 * USDC)
    res = c.block([order(key(3), N(c), BTC_PERP, False, 60_000 * PRICE, BTC // 10),
                   action(key(2), N(c), "set_margin_mode", BTC_PERP, 1, 10),
                   order(key(2), N(c), BTC_PERP, True, 60_000 * PRICE, BTC // 10, tif=1)])
    assert codes(res) == [0, 0, 0], [r.log for r in res.tx_results]
    assert bal(c, 2) < 0              # the position's margin came from a USDC borrow
    res = c.block([action(key(2), N(c), "isolated_margin", BTC_PERP, 2_000 * USDC),
                   action(key(2), N(c), "isolated_margin", BTC_PERP, 100 * USDC)])
    assert codes(res) == [Code.LENDING_CAP, 0]
    check_invariants(c.kv)


def test_a_transfer_out_of_lending_needs_the_pools_cash():
    c = Chain(lending_genesis(((key(0).pub_key, "USDC", 1_000 * USDC),
                               (key(1).pub_key, "BTC", BTC),
                               (key(3).pub_key, "USDC", 10 * USDC))))
    assert codes(c.block([action(key(1), N(c), "withdraw", "USDC", 800 * USDC),
                          action(key(3), N(c), "set_lending", 0)])) == [0, 0]
    # 1,000 supplied, 800 borrowed: 200 of cash
    res = c.block([action(key(0), N(c), "transfer", key(3).pub_key, "USDC", 201 * USDC),
                   action(key(0), N(c), "transfer", key(3).pub_key, "USDC", 120 * USDC),
                   action(key(0), N(c), "transfer", key(4).pub_key, "USDC", 500 * USDC),
                   action(key(1), N(c), "transfer", key(0).pub_key, "USDC", 1)])
    # 201 > cash; 120 would leave U = 800 / 880 > 90%; to a lending account: in the pool;
    # a transfer never borrows
    assert codes(res) == [Code.POOL_ILLIQUID, Code.POOL_ILLIQUID, 0,
                          Code.INSUFFICIENT_BALANCE]
    assert "not lent out" in res.tx_results[0].log and "ceiling" in res.tx_results[1].log
    check_invariants(c.kv)


def test_dust_makes_the_pool_exact_and_only_grows():
    """Odd amounts at an odd index: the rounding lands in the pool's dust, never lost."""
    c = Chain(lending_genesis(((key(0).pub_key, "USDC", 1_000_000 * USDC),
                               (key(1).pub_key, "BTC", 100 * BTC))))
    assert codes(c.block([action(key(1), N(c), "withdraw", "USDC", 333_333_333_333)])) == [0]
    c.block([], dt_ms=L.YEAR_MS // 7)
    dust = LP.get_pool(c.kv, "USDC").dust
    for amount in (1, 7, 333_333, 1):
        res = c.block([action(key(0), N(c), "transfer", key(4).pub_key, "USDC", amount),
                       action(key(1), N(c), "deposit", "USDC", amount)], dt_ms=7_777)
        assert codes(res) == [0, 0]
        p = LP.get_pool(c.kv, "USDC")
        assert p.dust >= dust
        dust = p.dust
        check_invariants(c.kv)        # cash == supplied - borrowed + dust
    assert dust > 0


def test_lending_pools_shows_the_dust():
    import trio
    from types import SimpleNamespace

    from rpc.methods import METHODS
    c = Chain(lending_genesis(((key(0).pub_key, "USDC", 1_000_000 * USDC),
                               (key(1).pub_key, "BTC", 100 * BTC))))
    assert codes(c.block([action(key(1), N(c), "withdraw", "USDC", 333_333_333_333)])) == [0]
    c.block([], dt_ms=L.YEAR_MS // 7)
    assert codes(c.block([action(key(0), N(c), "transfer", key(4).pub_key, "USDC", 7),
                          action(key(1), N(c), "deposit", "USDC", 7)], dt_ms=7_777)) == [0, 0]
    app = SimpleNamespace(store=SimpleNamespace(state=c.kv))
    pools = {p["asset"]: p for p in trio.run(METHODS["lending_pools"], app, {})["pools"]}
    dust = LP.get_pool(c.kv, "USDC").dust
    assert dust > 0 and pools["USDC"]["dust"] == f"0.{dust:06d}"
    assert pools["BTC"]["dust"] == "0"


def test_an_order_that_flips_at_a_loss_paid_out_of_the_pool_respects_the_ceiling():
    # as above: 1,000 USDC supplied, key 2 long 1 BTC from 60,000; key 3 is short and opted out
    c = capped(((key(0).pub_key, "USDC", 1_000 * USDC), *BALANCES[1:]))
    _long_at_60k(c)
    c.block(oracle_tx(N(c), [("BTC", 59_000 * PRICE)]))
    # key 3 bids 2 BTC at 59,000; key 2 sells 2 into it: -1,000 realised, paid to key 3's raw
    # balance (outside the pool), and a short of 1 opened: not only a reduction
    res = c.block([order(key(3), N(c), BTC_PERP, True, 59_000 * PRICE, 2 * BTC),
                   order(key(2), N(c), BTC_PERP, False, 59_000 * PRICE, 2 * BTC, tif=1)])
    assert codes(res) == [0, Code.POOL_ILLIQUID]
    assert res.tx_results[1].log.startswith("the order borrows 1053.1 USDC (automatically)")
    assert size(c, 2) == BTC // 10**4      # still long 1 BTC (in lots of 0.0001)
    # closing only (1 BTC) is a reduction: never refused, though it borrows the same 1,000
    res = c.block([order(key(2), N(c), BTC_PERP, False, 59_000 * PRICE, BTC, tif=1)])
    assert codes(res) == [0] and size(c, 2) == 0
    p = LP.get_pool(c.kv, "USDC")
    assert p.borrowed * 10**6 > 900_000 * p.supplied         # now above the ceiling
    check_invariants(c.kv)
