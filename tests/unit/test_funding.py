"""Funding (state/funding.py, state/funding_index.py): the rate formula against hand-computed
Hyperliquid examples, time weighting, the index and the rounding of what a position owes,
settlement when an account is touched, conservation, genesis parameters, and a chain of blocks
spanning several funding intervals."""

import dataclasses

import pytest

from state import funding as F, funding_index as FI, ledger
from state.amounts import parse_amount
from state.errors import InvalidBlock
from state.genesis import genesis_writes
from state.funding_index import FUNDING_POOL
from state.insurance import INSURANCE_FUND
from state.margin import summary
from state.positions import load_account
from state.markets import DEFAULT_FUNDING, RATE_SCALE, FundingParams, market_from_spec
from tests.chain_helpers import (BTC_LOT, BTC_PERP, BTC_PERP_SPEC, BTC_SPOT, GENESIS_MS, PRICE,
                                 Chain, action, key, oracle_tx,
                                 order, trading_genesis)

HOUR = 3_600_000
BTC = 10**8                     # sats per BTC
M = market_from_spec(BTC_PERP, list(BTC_PERP_SPEC), 6, {})
P = DEFAULT_FUNDING


def pct(text: str) -> int:
    """'0.95' (%) -> ppb, written out by hand in the tests below."""
    whole, _, frac = text.partition(".")
    return int(whole + frac.ljust(7, "0"))


# -- the formula -------------------------------------------------------------------------------

def test_hyperliquid_docs_example():
    # Hyperliquid's docs: impact bid $10,100, oracle $10,000 -> premium 1%; I - P = -0.99% is
    # clamped to -0.05%, so F8 = 0.95%; paid hourly at F8 / 8 = 0.11875%; 10 BTC long pays
    # 10 * $10,000 * 0.11875% = $118.75.
    p = F.premium_sample(10_100 * PRICE, 10_200 * PRICE, 10_000 * PRICE)
    assert p == pct("1")
    f8 = F.rate_8h(p, P)
    assert f8 == pct("0.95")
    rate = F.window_rate(f8, HOUR, P)
    assert rate == pct("0.11875")
    assert debit(10 * BTC // BTC_LOT, 10_000 * PRICE, rate) == 118_750_000


def debit(size_lots: int, oracle_px: int, rate: int) -> int:
    """What a position owes for one window at `rate`, through the index."""
    return FI.owed(size_lots, FI.step(M, oracle_px, rate))


@pytest.mark.parametrize("premium, f8", [
    ("0", "0.01"),          # no premium: the interest rate alone
    ("0.03", "0.01"),       # |I - P| = 0.02% within the clamp: F8 = I
    ("-0.03", "0.01"),      # |I - P| = 0.04% within the clamp: F8 = I
    ("0.2", "0.15"),        # I - P = -0.19% clamped to -0.05%
    ("-1", "-0.95"),        # I - P = 1.01% clamped to +0.05%
    ("-0.1", "-0.05"),      # I - P = 0.11% clamped to +0.05%
])
def test_rate_clamps_both_ways(premium, f8):
    prem = pct(premium.lstrip("-")) * (-1 if premium.startswith("-") else 1)
    want = pct(f8.lstrip("-")) * (-1 if f8.startswith("-") else 1)
    assert F.rate_8h(prem, P) == want


def test_rate_is_capped_per_hour():
    # premium 50%: F8 = 49.95%, F8 / 8 = 6.24375% per hour, capped at 4%
    assert F.window_rate(F.rate_8h(pct("50"), P), HOUR, P) == pct("4")
    assert F.window_rate(F.rate_8h(-pct("50"), P), HOUR, P) == -pct("4")
    # a lower per-market cap, over a two-hour window: 2 x 0.5%
    p = dataclasses.replace(P, max_rate_per_hour=pct("0.5"))
    assert F.window_rate(F.rate_8h(pct("10"), p), 2 * HOUR, p) == pct("1")
    # below the cap the window pays pro rata: 0.01% per 8 h over 2 h = 0.0025%
    assert F.window_rate(pct("0.01"), 2 * HOUR, P) == pct("0.0025")


def test_premium_sample_sides_and_bounds():
    o = 60_000 * PRICE
    assert F.premium_sample(60_060 * PRICE, 60_120 * PRICE, o) == pct("0.1")   # bid above
    assert F.premium_sample(59_880 * PRICE, 59_940 * PRICE, o) == -pct("0.1")  # ask below
    assert F.premium_sample(59_990 * PRICE, 60_010 * PRICE, o) == 0            # around
    assert F.premium_sample(None, None, o) == 0                                # thin book
    assert F.premium_sample(None, 59_940 * PRICE, o) == -pct("0.1")
    assert F.premium_sample(3 * o, None, o) == RATE_SCALE                      # clamped
    # rounded toward zero both ways: 1/3 of a ppb
    assert F.premium_sample(3 * 10**9 + 1, None, 3 * 10**9) == 0
    assert F.premium_sample(None, 3 * 10**9 - 1, 3 * 10**9) == 0


# -- time weighting ----------------------------------------------------------------------------

def _sample(acc, now, premium):
    ended, acc = F.advance(acc, now, HOUR)
    return ended, acc._replace(last_premium=premium)


def test_time_weighted_average_over_block_times():
    acc = F.Accumulator(0, 0, 0, None, 0, 0)
    ended, acc = _sample(acc, 1_000, 100)           # no weight before the first sample
    assert ended is None and acc.weight_ms == 0
    ended, acc = _sample(acc, 1_801_000, 300)       # 100 ppb held for 1,800,000 ms
    assert (acc.weighted_sum, acc.weight_ms) == (100 * 1_800_000, 1_800_000)
    ended, acc = _sample(acc, 3_700_000, 0)         # 300 held to the boundary, then beyond
    assert ended == F.Window(0, HOUR, 100 * 1_800_000 + 300 * 1_799_000, 3_599_000)
    # (180,000,000 + 539,700,000) / 3,599,000 = 199.97 -> 199 (toward zero)
    assert F.average_premium(ended) == 199
    assert (acc.window_start_ms, acc.weighted_sum, acc.weight_ms) == (HOUR, 300 * 100_000,
                                                                      100_000)


def test_a_gap_of_several_intervals_is_one_window_on_the_grid():
    acc = F.Accumulator(0, 0, 0, -50, 1_000, 0)
    ended, acc = F.advance(acc, 3 * HOUR + 5, HOUR)
    assert ended == F.Window(0, 3 * HOUR, -50 * (3 * HOUR - 1_000), 3 * HOUR - 1_000)
    assert F.average_premium(ended) == -50
    assert acc.window_start_ms == 3 * HOUR and acc.weight_ms == 5
    ended, acc = F.advance(acc, 4 * HOUR - 1, HOUR)
    assert ended is None                                 # no sample since: no weight either
    assert acc.weight_ms == 5


# -- payments ----------------------------------------------------------------------------------

def test_payers_round_up_receivers_round_down():
    o, rate = 60_000 * PRICE, 12_345        # 1 lot: 6 USDC x 12,345 ppb = 74.07 quantums
    assert FI.step(M, o, rate) == 74_070_000  # per lot, x INDEX_SCALE
    assert debit(1, o, rate) == 75           # the long pays 75
    assert debit(-1, o, rate) == -74         # the short receives 74
    assert debit(1, o, -rate) == -74         # negative rate: the long receives 74
    assert debit(-1, o, -rate) == 75
    assert debit(1, o, 0) == 0
    # the index step rounds toward zero at 10^-6 quantum per lot, both ways alike
    assert FI.step(M, o + 1_000, rate) == 74_070_001  # 74,070,001.2345
    assert FI.step(M, o + 1_000, -rate) == -74_070_001
    # several windows are owed as one amount, rounded once
    assert FI.owed(1, 3 * 74_070_000) == 223


def test_genesis_funding_parameters_are_checked():
    g = trading_genesis()
    with pytest.raises(InvalidBlock, match="not a perp market"):
        genesis_writes(dataclasses.replace(g, funding=((BTC_SPOT, P),)))
    with pytest.raises(InvalidBlock, match="twice"):
        genesis_writes(dataclasses.replace(g, funding=((BTC_PERP, P), (BTC_PERP, P))))
    with pytest.raises(InvalidBlock, match="interval"):
        genesis_writes(dataclasses.replace(g, funding=((BTC_PERP, FundingParams(0, 0, 0, 0)),)))
    with pytest.raises(InvalidBlock, match="maximum rate"):
        genesis_writes(dataclasses.replace(
            g, funding=((BTC_PERP, dataclasses.replace(P, max_rate_per_hour=-1)),)))


# -- through apply_block -----------------------------------------------------------------------

def funding_genesis():
    return dataclasses.replace(trading_genesis(), funding=((BTC_PERP, P),))


def open_positions(chain, nonce=GENESIS_MS):
    """key 0 long 1 BTC from key 1 at $60,000; key 2 quotes 0.1 BTC at $60,300 / $60,400, so
    the impact bid is $60,300 and the premium 0.5% (the ask is above the oracle)."""
    txs = [order(key(1), nonce, BTC_PERP, False, 60_000 * PRICE, BTC),
           order(key(0), nonce, BTC_PERP, True, 60_000 * PRICE, BTC),
           order(key(2), nonce, BTC_PERP, True, 60_300 * PRICE, BTC // 10),
           order(key(2), nonce + 1, BTC_PERP, False, 60_400 * PRICE, BTC // 10)]
    res = chain.block(txs)
    assert [r.code for r in res.tx_results] == [0, 0, 0, 0]
    return res


def usdc(chain, i):
    return ledger.balance(chain.kv, key(i).pub_key, "USDC")


def touch(chain, *ks):
    """A tx from each key that loads its account (set_leverage): what it owes is settled."""
    n = chain.time_ms + 1_000
    res = chain.block([action(k, n, "set_leverage", BTC_PERP, 20) for k in ks])
    assert [r.code for r in res.tx_results] == [0] * len(ks)
    return [dict(e.attrs) for r in res.tx_results for e in r.events
            if e.type == "funding_payment"]


def equity(chain, i):
    return summary(chain.kv, load_account(chain.kv, key(i).pub_key)).equity


def test_funding_over_two_intervals_through_blocks():
    chain = Chain(funding_genesis())
    open_positions(chain)                          # t = G + 1 s
    before = [usdc(chain, i) for i in range(3)]
    eq_before = [equity(chain, i) for i in range(3)]
    events = []
    for _ in range(6):                             # to G + 2 h + 1 s, 20 minutes a block
        events += chain.block([], dt_ms=1_200_000).block_events
    # premium 0.5% all the time it was sampled: F8 = 0.5% - 0.05% = 0.45%, hourly 0.05625%;
    # 1 BTC at the $60,000 oracle: $33.75 per hour, exact (no rounding remainder)
    fund = [e for e in events if e.type == "funding"]
    assert [dict(e.attrs)["rate"] for e in fund] == ["0.0005625", "0.0005625"]
    assert dict(fund[0].attrs)["premium"] == "0.005"
    assert dict(fund[0].attrs)["rate_8h"] == "0.0045"
    assert dict(fund[1].attrs)["time_ms"] == str(chain.time_ms - 1_000)
    # a lot pays $0.003375 an hour: the index is 2 x 3,375 quantums x 10^6
    assert [dict(e.attrs)["index"] for e in fund] == ["3375000000", "6750000000"]
    # nobody was touched: no balance moved, but equity counts what is owed at once
    assert not [e for e in events if e.type == "funding_payment"]
    assert [usdc(chain, i) for i in range(3)] == before
    assert equity(chain, 0) - eq_before[0] == -2 * 33_750_000
    assert equity(chain, 1) - eq_before[1] == 2 * 33_750_000
    pays = touch(chain, key(0), key(1), key(2))
    assert [(p["account"], p["size"], p["amount"]) for p in pays] == [
        (key(0).pub_key.hex(), "1", "-67.5"), (key(1).pub_key.hex(), "-1", "67.5")]
    assert usdc(chain, 0) - before[0] == -2 * 33_750_000
    assert usdc(chain, 1) - before[1] == 2 * 33_750_000
    assert usdc(chain, 2) == before[2]             # no position, no funding
    assert ledger.balance(chain.kv, FUNDING_POOL, "USDC") == 0
    assert [s.rate for s in F.history(chain.kv, BTC_PERP)] == [562_500, 562_500]
    assert touch(chain, key(0), key(1)) == []      # settled once
    assert_conserved(chain)


def test_the_protocol_keeps_the_rounding_in_the_funding_pool():
    chain = Chain(funding_genesis())
    # key 0 sells 0.003 BTC into key 2's bid, and the oracle moves to $60,000.07: payments
    # are no longer whole quantums
    open_positions(chain)
    nonce = GENESIS_MS + 10
    res = chain.block([order(key(0), nonce, BTC_PERP, False, 60_300 * PRICE, 3 * BTC_LOT * 10)]
                      + oracle_tx(nonce, [("BTC", 60_000 * PRICE + 70_000)]))
    assert {r.code for r in res.tx_results} == {0}
    for _ in range(3):
        chain.block([], dt_ms=1_200_000)
    pays = touch(chain, key(0), key(1), key(2))
    assert len(pays) == 3
    total = sum(quantums(p["amount"]) for p in pays)
    pool = ledger.balance(chain.kv, FUNDING_POOL, "USDC")
    assert -total == pool and 0 < pool < len(pays)   # payers rounded up, receivers down
    assert_conserved(chain)


def test_a_trade_settles_what_is_owed_before_the_position_changes():
    chain = Chain(funding_genesis())
    open_positions(chain)
    chain.block(oracle_tx(chain.time_ms + HOUR, [("BTC", 60_000 * PRICE)]), dt_ms=HOUR)
    n = chain.time_ms + 1_000                      # one window passed: the long owes $33.75
    # key 0 sells 0.05 BTC into key 2's bid at $60,300: first pays the $33.75 on the whole
    # position, then the 0.95 BTC left starts from the new index
    res = chain.block([order(key(0), n, BTC_PERP, False, 60_300 * PRICE, BTC // 20, tif=1)])
    assert res.tx_results[0].code == 0, res.tx_results[0].log
    evs = [(e.type, dict(e.attrs)) for e in res.tx_results[0].events]
    assert evs[0] == ("funding_payment", {"account": key(0).pub_key.hex(), "market": "BTC-USD",
                                          "size": "1", "amount": "-33.75"})
    assert load_account(chain.kv, key(0).pub_key).entries[BTC_PERP].funding_index == \
        3_375_000_000
    chain.block(oracle_tx(chain.time_ms + HOUR, [("BTC", 60_000 * PRICE)]), dt_ms=HOUR)
    assert touch(chain, key(0))[0]["amount"] == "-32.0625"   # 0.95 x $33.75


def quantums(text: str) -> int:
    neg = text.startswith("-")
    q = parse_amount(text.lstrip("-"), 6)
    return -q if neg else q


def assert_conserved(chain):
    total = sum(ledger.balance(chain.kv, k[len(ledger.P_BAL):len(ledger.P_BAL) + 32], "USDC")
                for k, _ in chain.kv.iterate(ledger.P_BAL) if k.endswith(b"USDC"))
    assert total == ledger.supply(chain.kv, "USDC")


def requote(chain, dt_ms, bid_usd, ask_usd):
    """Two blocks: oracle updates (same $60,000) at boundary - 1 s, then key 2's new quotes
    at the boundary itself, so the new premium holds from the boundary on."""
    chain.block(oracle_tx(chain.time_ms + dt_ms - 1_000, [("BTC", 60_000 * PRICE)]),
                dt_ms=dt_ms - 1_000)
    n = chain.time_ms + 1_000
    res = chain.block([action(key(2), n, "cancel_all", BTC_PERP),
                       order(key(2), n + 1, BTC_PERP, True, bid_usd * PRICE, BTC // 10),
                       order(key(2), n + 2, BTC_PERP, False, ask_usd * PRICE, BTC // 10)])
    assert [r.code for r in res.tx_results] == [0, 0, 0]
    return res


def test_three_intervals_with_a_known_premium_series():
    chain = Chain(funding_genesis())
    open_positions(chain)                  # G + 1 s: premium +0.5% (impact bid $60,300)
    long0 = usdc(chain, 0)
    fund = []
    # hour 1 ends: 3,599 s at +0.5%: F8 = 0.5% - 0.05% = 0.45%, hourly 0.05625%: $33.75
    fund += requote(chain, HOUR - 1_000, 59_800, 59_900).block_events
    # hour 2 at -(60,000 - 59,900) / 60,000 = -0.1666666% (toward zero); I - P = 0.1766666%
    # clamped to 0.05%: F8 = -0.1166666%; / 8 = -0.014583325% -> -0.0145833% (toward zero);
    # the long receives $60,000 x 0.000145833 = $8.74998
    fund += requote(chain, HOUR, 59_990, 60_010).block_events
    # hour 3: impact bid and ask straddle the oracle: premium 0, F8 = I = 0.01%, hourly
    # 0.00125%: the long pays $0.75
    fund += chain.block([], dt_ms=HOUR).block_events
    got = [(d["rate"], d["premium"], d["rate_8h"]) for d in
           (dict(e.attrs) for e in fund if e.type == "funding")]
    assert got == [("0.0005625", "0.005", "0.0045"),
                   ("-0.000145833", "-0.001666666", "-0.001166666"),
                   ("0.0000125", "0", "0.0001")]
    [paid, _] = touch(chain, key(0), key(1))
    assert paid["amount"] == "-25.75002"
    assert usdc(chain, 0) - long0 == -33_750_000 + 8_749_980 - 750_000
    assert ledger.balance(chain.kv, FUNDING_POOL, "USDC") == 0
    assert_conserved(chain)


def test_no_funding_without_genesis_parameters():
    chain = Chain(trading_genesis())
    open_positions(chain)
    for _ in range(4):
        res = chain.block([], dt_ms=1_200_000)
        assert not [k for k, _ in res.writes if k.startswith((F.P_PREMIUM, F.P_HISTORY))]
        assert not [e for e in res.block_events if e.type.startswith("funding")]


def test_premium_blocks_keep_the_mempool_fast_path_payment_blocks_do_not():
    chain = Chain(funding_genesis())
    open_positions(chain)
    quiet = chain.block([], dt_ms=1_000)
    assert F.P_PREMIUM in quiet.steps_wrote and quiet.steps_wrote_only_prices()
    paying = [chain.block([], dt_ms=1_200_000) for _ in range(3)][-1]
    assert any(e.type == "funding" for e in paying.block_events)
    assert not paying.steps_wrote_only_prices()


def test_warm_and_cold_nodes_agree():
    hashes = []
    for warm in (False, True):
        chain = Chain(funding_genesis(), warm=warm)
        open_positions(chain)
        seen = [chain.block([], dt_ms=1_100_000).app_hash for _ in range(8)]
        hashes.append(seen)
    assert hashes[0] == hashes[1]


def test_history_is_bounded(monkeypatch):
    monkeypatch.setattr(F, "HISTORY_LEN", 3)
    chain = Chain(funding_genesis())
    open_positions(chain)
    for _ in range(6):
        chain.block([], dt_ms=HOUR)
    hist = F.history(chain.kv, BTC_PERP)
    assert len(hist) == 3
    assert [h.time_ms for h in hist] == [chain.time_ms - 1_000 - i * HOUR for i in (2, 1, 0)]


# -- the query ---------------------------------------------------------------------------------

def test_funding_history_rpc():
    import trio
    from types import SimpleNamespace

    from rpc.errors import RPCError
    from rpc.funding_methods import funding_history
    from rpc.methods import METHODS

    assert METHODS["funding_history"] is funding_history
    chain = Chain(funding_genesis())
    open_positions(chain)
    for _ in range(7):
        chain.block([], dt_ms=1_200_000)
    app = SimpleNamespace(store=SimpleNamespace(state=chain.kv))
    out = trio.run(funding_history, app, {"market": "BTC-USD", "limit": 1})
    assert out["funding"] is True and out["params"]["interest_rate_8h"] == "0.0001"
    assert out["params"]["max_rate_per_hour"] == "0.04"
    assert [h["rate"] for h in out["history"]] == ["0.0005625"]
    assert out["history"][0]["time_ms"] == str(GENESIS_MS + 2 * HOUR)
    assert out["history"][0]["oracle_price"] == "60000"
    assert out["history"][0]["index"] == out["index"] == "6750000000"
    assert out["current"]["window_start_ms"] == str(GENESIS_MS + 2 * HOUR)
    assert out["current"]["last_premium"] == "0.005"
    both = trio.run(funding_history, app, {0: '"1"'})["history"]
    assert [h["time_ms"] for h in both] == [str(GENESIS_MS + 2 * HOUR), str(GENESIS_MS + HOUR)]
    eth = trio.run(funding_history, app, {"market": "ETH-USD"})
    assert eth["funding"] is False and eth["history"] == [] and eth["current"] is None
    for bad, msg in (({"market": "DOGE"}, "unknown market"), ({}, "missing"),
                     ({"market": 1, "limit": 0}, "limit"), ({"market": 1, "limit": "x"}, "limit"),
                     # digits to str.isdigit but not ASCII, or too many: symbols, unknown
                     ({"market": "\u00b2"}, "unknown market"), ({"market": "\u0661"}, "unknown market"),
                     ({"market": "9" * 11}, "unknown market"), ({"market": 2**40}, "outside")):
        with pytest.raises(RPCError, match=msg):
            trio.run(funding_history, app, bad)


def test_localnet_genesis_turns_funding_on_for_the_perps():
    import copy

    from node.genesis import GenesisError, make_genesis_doc, parse_genesis

    doc = make_genesis_doc("c", GENESIS_MS, [(key(40).pub_key, 10, "v")])
    assert parse_genesis(doc).state.funding == ((1, DEFAULT_FUNDING), (2, DEFAULT_FUNDING))
    custom = copy.deepcopy(doc)
    custom["app_state"]["markets"][0]["funding"] = {"interest_rate_8h": "-0.00005",
                                                    "max_rate_per_hour": "0.01"}
    del custom["app_state"]["markets"][1]["funding"]
    assert parse_genesis(custom).state.funding == (
        (1, dataclasses.replace(DEFAULT_FUNDING, interest_8h=-50_000,
                                max_rate_per_hour=10_000_000)),)
    for bad, msg in (({"interval_ms": "0"}, "interval"), ({"cap": "1"}, "unknown fields"),
                     ({"premium_clamp_8h": "0.0000000001"}, "9 places"),
                     ({"max_rate_per_hour": "2"}, "maximum rate")):
        broken = copy.deepcopy(doc)
        broken["app_state"]["markets"][0]["funding"] = bad
        with pytest.raises(GenesisError, match=msg):
            parse_genesis(broken)
