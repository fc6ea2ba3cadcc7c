"""Property tests of liquidation with borrows (state/collateral_liquidation.py,
state/bad_debt.py) over random BTC price paths and block times:

* every whole-state invariant after every block (state.invariants: money conserved, with the
  pools' `lending_pool` cash and scaled totals);
* no account ends a block with negative equity (every balance at its oracle price, unweighted,
  plus unrealised PnL): whatever its collateral did not cover was covered in the same block by
  the insurance fund or the suppliers; and no account holds a negative balance once it has
  nothing left to sell;
* suppliers lose (the USDC supply index falls) only through `bad_debt_socialised`, and only
  when the insurance fund held no USDC at that moment (its balance followed through the
  block's events);
* a warm node and a cold one give the same app hashes.

Borrowers 1-3 hold BTC and borrow USDC at a random share of their limit (key 3 also holds a
BTC-USD long); key 4 bids for BTC in the spot market every block at a random 70-100% of the
oracle (above the collateral floor, 65%) and for the perp at 98%; the oracle sometimes gaps
by up to 45% in a block, so collateral sometimes covers less than the borrow (bad debt).
"""

from decimal import Decimal

from hypothesis import HealthCheck, given, settings, strategies as st

from localnet.fixtures import lending_genesis
from state import lending_pools as LP, ledger
from state.collateral_liquidation import collateral_gone, unweighted_equity
from state.insurance import INSURANCE_FUND
from state.invariants import check_invariants
from state.margin import summary
from state.positions import load_account
from tests.chain_helpers import BTC_PERP, BTC_SPOT, PRICE, USDC, Chain, action, key, oracle_tx, \
    order

BTC = 10**8
BORROWERS = (1, 2, 3)
MAKER = 4
START = 60_000

# per block: the oracle's move (per mille), the block time (short: perp bids see a fresh oracle;
# long: interest), the maker's BTC bid (per mille of the oracle)
path = st.lists(st.tuples(st.one_of(st.integers(850, 1_030), st.integers(550, 1_030)),
                          st.one_of(st.integers(1_000, 50_000),
                                    st.integers(1_000, 30 * 86_400_000)),
                          st.integers(660, 1_000)), min_size=3, max_size=12)


def genesis(fund: int, btc: tuple):
    bals = [(key(0).pub_key, "USDC", 1_000_000 * USDC), (key(MAKER).pub_key, "USDC",
                                                          50_000_000 * USDC)]
    bals += [(key(i).pub_key, "BTC", b) for i, b in zip(BORROWERS, btc)]
    if fund:
        bals.append((INSURANCE_FUND, "USDC", fund * USDC))
    return lending_genesis(tuple(bals))


def run(fund: int, btc: tuple, shares: tuple, perp_e4: int, steps: list, warm: bool):
    c = Chain(genesis(fund, btc), warm=warm)
    seq = iter(range(1, 10**6))
    dt_next = [1_000]

    class _N:  # nonces at the next block's time (state.nonces' window)
        def __iter__(self):
            return self

        def __next__(self):
            return c.time_ms + dt_next[0] + next(seq)
    n = _N()
    # (key 3 trades first: its withdrawal must then leave the perp covered, or is refused)
    first = [order(key(MAKER), next(n), BTC_PERP, False, START * PRICE, perp_e4 * BTC // 10**4),
             order(key(3), next(n), BTC_PERP, True, START * PRICE, perp_e4 * BTC // 10**4,
                   tif=1)]
    first += [action(key(i), next(n), "withdraw", "USDC",
                     b * START * 650_000 // 10**8 * share // 1_000 // USDC * USDC)
              for i, b, share in zip(BORROWERS, btc, shares)]
    hashes = [c.block(first).app_hash]
    check(c)
    px = START
    for move, dt, bid in steps:
        px = max(px * move // 1_000, 1_000)
        dt_next[0] = dt
        fund_before = ledger.balance(c.kv, INSURANCE_FUND, "USDC")
        bid_px = px * bid // 1_000
        txs = oracle_tx(next(n), [("BTC", px * PRICE)])
        txs += [order(key(MAKER), next(n), BTC_SPOT, True, bid_px * PRICE, 6 * BTC),
                order(key(MAKER), next(n), BTC_PERP, True, px * 980 // 1_000 * PRICE, BTC)]
        index_before = LP.get_pool(c.kv, "USDC").supply_index
        res = c.block(txs, dt_ms=dt)
        hashes.append(res.app_hash)
        check(c)
        socialised, fund_after = fund_when_socialising(res.block_events, fund_before)
        assert fund_after == ledger.balance(c.kv, INSURANCE_FUND, "USDC")
        assert socialised == [] or LP.get_pool(c.kv, "USDC").supply_index < index_before
        assert all(f <= 0 for f in socialised), socialised
        assert (LP.get_pool(c.kv, "USDC").supply_index < index_before) == bool(socialised)
    return hashes


def quantums(text: str) -> int:
    return int(Decimal(text) * USDC)


def fund_when_socialising(events, fund: int) -> tuple[list[int], int]:
    """The fund's USDC balance at each `bad_debt_socialised` of the block, followed through
    the block's events from `fund` (its balance before the block), and at the block's end;
    checks the events' own `fund_balance` figures on the way."""
    out = []
    for e in events:
        a = dict(e.attrs)
        if e.type == "lending_reserve" and a["asset"] == "USDC":
            fund += quantums(a["reserve"])
        elif e.type in ("liquidation", "collateral_liquidation"):
            fund += quantums(a["fee"])
        elif e.type in ("insurance_takeover", "collateral_backstop"):
            fund = quantums(a["fund_balance"])
        elif e.type == "bad_debt_covered" and a["asset"] == "USDC":
            fund -= quantums(a["amount"])
            assert fund == quantums(a["fund_balance"])
        elif e.type == "bad_debt_socialised":
            out.append(fund)
    return out, fund


def check(c: Chain) -> None:
    check_invariants(c.kv)
    for i in BORROWERS:
        addr = key(i).pub_key
        acct = load_account(c.kv, addr)
        upnl = summary(c.kv, acct).unrealized_pnl
        assert unweighted_equity(c.kv, addr, "USDC") + upnl >= 0, i
        if not any(e.size for e in acct.entries.values()) and \
                collateral_gone(c.kv, addr, "USDC"):
            assert all(v >= 0 for v in ledger.balances(c.kv, addr).values()), i


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([0, 2_000, 100_000]),
       st.tuples(*[st.integers(BTC // 10, BTC)] * 3),
       st.tuples(*[st.integers(500, 1_000)] * 3),
       st.integers(1, 20_000), path)
def test_random_price_paths_keep_money_and_leave_no_uncovered_deficit(fund, btc, shares,
                                                                      perp_e4, steps):
    cold = run(fund, btc, shares, perp_e4, steps, warm=False)
    warm = run(fund, btc, shares, perp_e4, steps, warm=True)
    assert warm == cold
