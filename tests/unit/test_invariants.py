"""state/invariants.py: every whole-state invariant holds on real trading states, and each
check fires (with its name and the offending record) when one record is corrupted."""

import pytest

from state import ledger, orders as O
from state.book import Side
from state.books import Books
from state.codec import encode
from state.funding_index import FUNDING_POOL
from state.invariants import INVARIANTS, InvariantViolation, carried_books, check_invariants
from state.kv import MemoryKV, Overlay
from state.ledger import Ledger
from state.positions import P_CLEARING
from state.settlement import POOL
from tests.chain_helpers import (BTC_LOT, BTC_PERP, BTC_SPOT, FEE_ACCOUNT, PRICE, Chain,
                                 action, key, order, trading_genesis)
from tests.unit.test_trading_golden import feature_blocks

A, B, C_, D = (key(i) for i in range(4))
STOP_MARKET, IOC = 2, 1


def _px(usd: int) -> int:
    return usd * PRICE


def _lots(n: int) -> int:
    return n * 10 * BTC_LOT


@pytest.fixture(scope="module")
def traded() -> Chain:
    """A state with positions, realised PnL (a non-empty pool), fees, resting orders on both
    sides of a perp and a spot market, client ids, an expiry and a waiting trigger order."""
    chain = Chain(trading_genesis(4, btc=10**8))
    n = [chain.time_ms]

    def nonce():
        n[0] += 1
        return n[0]

    def block(*txs):
        res = chain.block(list(txs))
        assert [r.code for r in res.tx_results] == [0] * len(txs), res.tx_results
        return res

    block(order(A, nonce(), BTC_PERP, True, _px(60_000), _lots(3)),
          order(B, nonce(), BTC_PERP, False, _px(60_000), _lots(2), tif=IOC))
    block(order(C_, nonce(), BTC_PERP, True, _px(60_100), _lots(1)),
          order(A, nonce(), BTC_PERP, False, _px(60_100), _lots(1), tif=IOC))  # A realises PnL
    block(order(A, nonce(), BTC_PERP, True, _px(59_000), _lots(2), cloid=7,
                expiry=chain.time_ms + 3_600_000),
          order(D, nonce(), BTC_PERP, False, _px(61_000), _lots(4), cloid=9),
          order(B, nonce(), BTC_PERP, False, _px(50_000), _lots(1), kind=STOP_MARKET, tif=IOC,
                trigger=_px(55_000)),
          order(C_, nonce(), BTC_SPOT, False, _px(62_000), _lots(1)),
          order(D, nonce(), BTC_SPOT, True, _px(58_000), _lots(1)))
    assert ledger.balance(chain.kv, POOL, "USDC") != 0
    assert list(chain.kv.iterate(O.P_TRIGGER))
    return chain


def _edit_account(ov: Overlay, addr: bytes, edit) -> None:
    """Change one account's clearing record (`edit(Account)`), written by a Ledger."""
    led = Ledger(ov, {})
    edit(led.account(addr))
    led.flush()


def _credit(ov: Overlay, addr: bytes, asset: str, amount: int) -> None:
    led = Ledger(ov, {})
    led.credit(addr, asset, amount)
    led.flush()


def _corrupt(chain: Chain, change) -> MemoryKV:
    """A copy of the chain's state with `change(overlay, kv)` written over it."""
    kv = MemoryKV(chain.kv.data)
    ov = Overlay(kv)
    change(ov, kv)
    kv.apply(ov.sorted_writes())
    return kv


def _violation(kv, **kw) -> InvariantViolation:
    with pytest.raises(InvariantViolation) as exc:
        check_invariants(kv, **kw)
    assert exc.value.invariant in INVARIANTS
    assert str(exc.value).startswith(f"{exc.value.invariant}: {exc.value.where}: ")
    return exc.value


def _resting(kv, owner, market=BTC_PERP, is_buy=True, cloid=None) -> O.OrderRecord:
    return next(o for o in O.iter_resting(kv, market) if o.owner == owner.pub_key
                and o.is_buy == is_buy and cloid in (None, o.cloid))


def _mid(o: O.OrderRecord) -> bytes:
    return o.market.to_bytes(4, "big") + o.id.to_bytes(8, "big")


def test_a_traded_state_passes_and_is_not_written(traded):
    ov = Overlay(traded.kv)
    check_invariants(ov)
    assert ov.writes == {}
    books = Books()
    check_invariants(traded.kv, books={m: books.build(traded.kv, m) for m in (1, 2, 3)})


def test_every_block_of_the_feature_workload_passes_warm_and_cold():
    """Every order kind, cancels, modifies, batches, triggers fired by the oracle, expiry,
    spot and perp fills: the invariants hold after each block, and the carried books equal
    the records."""
    genesis, blocks = feature_blocks(n_blocks=60)
    for warm in (True, False):
        chain = Chain(genesis(), warm=warm)
        fills = compared = 0
        for txs, dt in blocks(chain):
            res = chain.block([t.raw for t in txs], dt, {t.hash: t for t in txs})
            fills += sum(e.type == "fill" for r in res.tx_results for e in r.events)
            held = carried_books(chain.cache)
            compared += bool(held)
            check_invariants(chain.kv, books=held)
        assert fills > 100 and (compared > 50 if warm else compared == 0)


def test_order_record_overfilled(traded):
    def change(ov, kv):
        o = _resting(kv, A)
        o.size_lots = o.orig_lots + 1
        O.resize_resting(ov, o)
    v = _violation(_corrupt(traded, change))
    assert v.invariant == "order_record" and "remaining 31 lots of an order of 30" in v.detail
    assert v.where == f"market {BTC_PERP} order {_resting(traded.kv, A).id}"


def test_order_record_empty(traded):
    def change(ov, kv):
        o = _resting(kv, D, is_buy=False)
        o.size_lots = 0
        O.resize_resting(ov, o)
    assert _violation(_corrupt(traded, change)).invariant == "order_record"


@pytest.mark.parametrize("what", ["no_account_entry", "dangling_account_entry", "cloid",
                                  "dangling_cloid", "expiry", "trigger_index",
                                  "both_resting_and_waiting"])
def test_order_index(traded, what):
    a = _resting(traded.kv, A, cloid=7)
    assert a.expiry_ms
    (tkey, traw), = traded.kv.iterate(O.P_TRIGGER)
    t = O.record_from(BTC_PERP, int.from_bytes(tkey[-8:], "big"), traw)

    def change(ov, kv):
        if what == "no_account_entry":
            ov.delete(O.P_ACCOUNT_ORDERS + a.owner + _mid(a))
        elif what == "dangling_account_entry":
            ov.put(O.P_ACCOUNT_ORDERS + C_.pub_key + _mid(a), b"")
        elif what == "cloid":
            ov.put(O.P_CLOID + a.owner + a.cloid.to_bytes(8, "big"), encode([BTC_PERP, 999]))
        elif what == "dangling_cloid":
            ov.put(O.P_CLOID + a.owner + (8).to_bytes(8, "big"), encode([BTC_PERP, a.id]))
        elif what == "expiry":
            ov.delete(O.P_EXPIRY + a.expiry_ms.to_bytes(8, "big") + _mid(a))
        elif what == "trigger_index":
            (k, _), = kv.iterate(O.P_TRIGGER_INDEX)
            ov.delete(k)
        else:
            ov.put(O.P_TRIGGER + _mid(a), encode(a.to_stored()))
    v = _violation(_corrupt(traded, change))
    assert v.invariant == "order_index", v
    oid = t.id if what == "trigger_index" else a.id
    assert v.where == ("client ids" if what == "dangling_cloid" else
                       f"market {BTC_PERP} order {oid}")


def test_book_crossed(traded):
    def change(ov, kv):
        o = _resting(kv, A)
        o.price_ticks = _resting(kv, D, is_buy=False).price_ticks
        O.resize_resting(ov, o)
    v = _violation(_corrupt(traded, change))
    assert v.invariant == "book_crossed" and v.where == f"market {BTC_PERP} (BTC-USD)"


def test_book_structure(traded):
    """A record the book cannot hold (a bool where the price belongs)."""
    def change(ov, kv):
        o = _resting(kv, D, market=BTC_SPOT)
        o.price_ticks = True
        O.resize_resting(ov, o)
    v = _violation(_corrupt(traded, change))
    assert v.invariant == "book_structure" and v.where == f"market {BTC_SPOT} (BTC/USDC)"


@pytest.mark.parametrize("what", ["smaller", "missing", "extra"])
def test_book_matches_records(traded, what):
    book = Books().build(traded.kv, BTC_PERP)
    a = _resting(traded.kv, A)
    if what == "smaller":
        book.reduce(a.id, 1)
    elif what == "missing":
        book.cancel(a.id)
    else:
        book.add(10_000, a.owner, Side.BUY, a.price_ticks - 1, 5)
    v = _violation(traded.kv, books={BTC_PERP: book})
    assert v.invariant == "book_matches_records" and v.where == f"market {BTC_PERP} (BTC-USD)"
    check_invariants(traded.kv, books={BTC_PERP: Books().build(traded.kv, BTC_PERP)})


@pytest.mark.parametrize("field", ["buy_lots", "buy_tl", "sell_lots", "sell_tl", "orders"])
def test_order_aggregates(traded, field):
    def edit(acct):
        e = acct.entry(BTC_PERP)
        setattr(e, field, getattr(e, field) + 1)

    def change(ov, kv):
        _edit_account(ov, A.pub_key, edit)
    v = _violation(_corrupt(traded, change))
    assert v.invariant == "order_aggregates"
    assert v.where == f"account {A.pub_key.hex()} market {BTC_PERP}"


def test_aggregates_of_an_account_without_a_record(traded):
    """Open orders of an account whose clearing record is gone."""
    def change(ov, kv):
        ov.delete(P_CLEARING + D.pub_key)
    v = _violation(_corrupt(traded, change))
    assert v.invariant == "order_aggregates" and D.pub_key.hex() in v.where


@pytest.mark.parametrize("what", ["flat_with_basis", "basis_of_other_sign", "spot_position"])
def test_position_basis(traded, what):
    def edit(acct):
        if what == "flat_with_basis":
            acct.entry(BTC_PERP).size = 0
        elif what == "basis_of_other_sign":
            acct.entry(BTC_PERP).entry_tl *= -1
        else:
            acct.entry(BTC_SPOT).size = 10
            acct.entry(BTC_SPOT).entry_tl = 10

    def change(ov, kv):
        _edit_account(ov, (B if what != "spot_position" else D).pub_key, edit)
    v = _violation(_corrupt(traded, change))
    assert v.invariant == "position_basis", v


def test_positions_net_zero(traded):
    def edit(acct):
        e = acct.entry(BTC_PERP)
        assert e.size > 0
        e.size += 10
        e.entry_tl += 10 * 600_000

    def change(ov, kv):
        _edit_account(ov, A.pub_key, edit)
    v = _violation(_corrupt(traded, change))
    assert v.invariant == "positions_net_zero" and "sum to 10 lots" in v.detail


def test_pool_balance(traded):
    """One quantum moved from the fee account to the pool: money is conserved, the pool
    no longer matches the cost bases."""
    def change(ov, kv):
        _credit(ov, FEE_ACCOUNT, "USDC", -1)
        _credit(ov, POOL, "USDC", 1)
    v = _violation(_corrupt(traded, change))
    assert v.invariant == "pool_balance" and v.where == f"pool {POOL.hex()}"


def test_funding_pool(traded):
    """One quantum taken from the funding pool: money is conserved, but the pool would owe
    more than it holds."""
    def change(ov, kv):
        _credit(ov, FUNDING_POOL, "USDC", -1)
        _credit(ov, A.pub_key, "USDC", 1)
    v = _violation(_corrupt(traded, change))
    assert v.invariant == "funding_pool" and v.where == f"pool {FUNDING_POOL.hex()}"


@pytest.mark.parametrize("asset, holder", [("USDC", C_), ("BTC", D), ("ETH", A)])
def test_money_conserved(traded, asset, holder):
    def change(ov, kv):
        _credit(ov, holder.pub_key, asset, 1)
    v = _violation(_corrupt(traded, change))
    assert v.invariant == "money_conserved" and v.where == f"asset {asset}"


def test_money_conserved_catches_a_changed_supply(traded):
    def change(ov, kv):
        ov.put(ledger.P_SUPPLY + b"BTC", encode(ledger.supply(kv, "BTC") - 1))
    assert _violation(_corrupt(traded, change)).where == "asset BTC"


def test_every_invariant_has_a_failing_test():
    import inspect
    import sys
    src = inspect.getsource(sys.modules[__name__])
    untested = [name for name in INVARIANTS if f"def test_{name}" not in src]
    assert not untested, untested


@pytest.mark.parametrize("market", [BTC_PERP + 100, BTC_SPOT])
def test_isolated_margin(traded, market):
    """An isolated margin outside an isolated position breaks `isolated_margin` (checked
    before money, which it breaks too). (A cross entry cannot even store one.)"""
    def edit(acct):
        e = acct.entry(market)
        e.isolated = 1
        e.iso_margin += 5

    def change(ov, kv):
        _edit_account(ov, A.pub_key, edit)
        _credit(ov, A.pub_key, "USDC", -5)
    v = _violation(_corrupt(traded, change))
    assert v.invariant == "isolated_margin" and A.pub_key.hex() in v.where, v


def test_money_conserved_counts_isolated_margins(traded):
    """Quote moved from a balance into an isolated position's margin is still counted; one
    quantum more in the margin is not."""
    def move(extra):
        def edit(acct):
            e = acct.entry(BTC_PERP)
            e.isolated = 1
            e.iso_margin += 1_000 + extra

        def change(ov, kv):
            _edit_account(ov, A.pub_key, edit)
            _credit(ov, A.pub_key, "USDC", -1_000)
        return _corrupt(traded, change)
    check_invariants(move(0))
    v = _violation(move(1))
    assert v.invariant == "money_conserved" and v.where == "asset USDC"


# -- order types (issue 9): resting reduce-only orders and TWAPs ----------------------------------

@pytest.fixture(scope="module")
def ordertyped() -> Chain:
    """A long 20 lots with resting reduce-only sells of 10 + 10 lots, and an active TWAP."""
    chain = Chain(trading_genesis(4))
    n = [chain.time_ms]

    def nonce():
        n[0] += 1
        return n[0]

    for txs in ([order(B, nonce(), BTC_PERP, False, _px(60_000), _lots(2)),
                 order(A, nonce(), BTC_PERP, True, _px(60_000), _lots(2))],
                [order(A, nonce(), BTC_PERP, False, _px(61_000), _lots(1), reduce_only=True),
                 order(A, nonce(), BTC_PERP, False, _px(62_000), _lots(1), reduce_only=True),
                 action(C_, nonce(), "twap_order", BTC_PERP, True, _lots(5), 600_000, False)]):
        res = chain.block(txs)
        assert [r.code for r in res.tx_results] == [0] * len(txs), res.tx_results
    check_invariants(chain.kv)
    return chain


def test_reduce_only_index(ordertyped):
    key_a = O.P_REDUCE_ONLY + A.pub_key + BTC_PERP.to_bytes(4, "big")
    v = _violation(_corrupt(ordertyped, lambda ov, kv: ov.delete(key_a)))
    assert v.invariant == "reduce_only_index" and A.pub_key.hex() in v.where
    v = _violation(_corrupt(ordertyped, lambda ov, kv: ov.put(
        O.P_REDUCE_ONLY + B.pub_key + BTC_PERP.to_bytes(4, "big"), encode([1]))))
    assert v.invariant == "reduce_only_index" and v.where == "rord/"


@pytest.mark.parametrize("size, what", [(10, "exceed"), (0, "grow"), (-5, "grow")])
def test_reduce_only_within_position(ordertyped, size, what):
    def change(ov, kv):
        _edit_account(ov, A.pub_key, lambda a: setattr(a.entry(BTC_PERP), "size", size))
    v = _violation(_corrupt(ordertyped, change))
    assert v.invariant == "reduce_only_within_position" and what in v.detail


@pytest.mark.parametrize("what", ["queue", "account", "filled"])
def test_twap_index(ordertyped, what):
    from state import twap
    (tw,) = list(twap.iter_twaps(ordertyped.kv))

    def change(ov, kv):
        if what == "queue":
            ov.delete(twap.P_QUEUE + tw.due_ms().to_bytes(8, "big") + tw.id.to_bytes(8, "big"))
        elif what == "account":
            ov.delete(twap.P_ACCOUNT + tw.owner + tw.id.to_bytes(8, "big"))
        else:
            tw.filled_lots = tw.size_lots
            ov.put(twap.P_TWAP + tw.id.to_bytes(8, "big"), encode(tw.to_stored()))
    assert _violation(_corrupt(ordertyped, change)).invariant == "twap_index"


def test_settled_future():
    """A future marked settled while an order is open or a position is held on it."""
    from state import futures as FU
    from tests.unit.test_futures import FUT, Flow, fut_genesis, open_positions

    f = Flow(Chain(fut_genesis()))
    open_positions(f)                # positions of key 0 and 1, key 2's bid and stop
    check_invariants(f.chain.kv)

    def settle(ov, kv):
        ov.put(FU.P_SETTLED + FUT.to_bytes(4, "big"), encode([1, 1, 1, 2]))
    v = _violation(_corrupt(f.chain, settle))
    assert v.invariant == "settled_future" and "is still open" in v.detail
    f = Flow(Chain(fut_genesis()))
    f.at(1_000, [order(B, f.n(), FUT, False, _px(60_000), _lots(1)),
                 order(A, f.n(), FUT, True, _px(60_000), _lots(1), tif=IOC)])
    v = _violation(_corrupt(f.chain, settle))
    assert v.invariant == "settled_future" and "still holds" in v.detail


def test_lending_pool():
    """A scaled balance changed behind the pool's back, or a pool that records more supplied
    than its cash covers, breaks `lending_pool`."""
    from localnet.fixtures import lending_genesis
    from state import lending_pools as LP
    from tests.chain_helpers import USDC, action, key
    chain = Chain(lending_genesis(((key(0).pub_key, "USDC", 1_000 * USDC),
                                   (key(1).pub_key, "BTC", 10**8))))
    chain.block([action(key(1), chain.time_ms + 1, "withdraw", "USDC", 400 * USDC)])
    check_invariants(chain.kv)

    def scaled(ov, kv):
        ov.put(ledger.P_BAL + key(1).pub_key + b"USDC", encode(-401 * USDC))
    v = _violation(_corrupt(chain, scaled))
    assert v.invariant == "lending_pool" and v.where == "asset USDC"

    def pool(ov, kv):
        p = LP.get_pool(kv, "USDC")
        LP.put_pool(ov, "USDC", p._replace(scaled_supplied=p.scaled_supplied + 1,
                                           scaled_borrowed=p.scaled_borrowed))
        ov.put(ledger.P_BAL + key(0).pub_key + b"USDC",
               encode(ledger.stored_balance(kv, key(0).pub_key, "USDC") + 1))
    v = _violation(_corrupt(chain, pool))
    assert v.invariant == "lending_pool" and "cash" in v.detail


def test_insurance_assets():
    """The insurance fund owing collateral (a negative balance of a non-quote asset) breaks
    `insurance_assets`, even with the asset's supply conserved."""
    from localnet.fixtures import trading_genesis
    from state.insurance import INSURANCE_FUND
    from tests.chain_helpers import key
    chain = Chain(trading_genesis(btc=10**8))
    chain.block([])
    check_invariants(chain.kv)

    def owes(ov, kv):
        ov.put(ledger.P_BAL + INSURANCE_FUND + b"BTC", encode(-5))
        ov.put(ledger.P_BAL + key(0).pub_key + b"BTC", encode(10**8 + 5))
    v = _violation(_corrupt(chain, owes))
    assert v.invariant == "insurance_assets" and v.where == "asset BTC"
