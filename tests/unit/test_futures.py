"""Dated futures (state/futures.py): spec validation, the settlement window's time-weighted
average, the end of trading at expiry, settlement into quote balances, events, invariants,
replay determinism, the RPC and genesis JSON."""

import copy
import dataclasses

import pytest

from state import futures as FU, ledger
from state.errors import Code, InvalidBlock
from state.genesis import genesis_writes
from state.insurance import INSURANCE_FUND
from state.invariants import check_invariants
from state.markets import (FUTURE, MAX_SETTLEMENT_WINDOW_MS, PERP, SPEC_FIELDS, get as get_market,
                           market_from_spec)
from state.positions import load_account
from state.settlement import POOL
from tests.chain_helpers import (BTC_LOT, BTC_PERP_SPEC, GENESIS_MS, GOV, PRICE, USDC, Chain,
                                 action, key, oracle_tx, order, trading_genesis)

FUT = 4
MIN = 60_000
EXPIRY = GENESIS_MS + 10 * MIN
WINDOW = 5 * MIN                      # [GENESIS_MS + 300_000, GENESIS_MS + 600_000)
FUT_SPEC = ["BTC-0326", FUTURE] + BTC_PERP_SPEC[2:] + [EXPIRY, WINDOW]
BTC = 10**8


def fut_genesis(**kw):
    g = trading_genesis(**kw)
    return dataclasses.replace(g, markets=g.markets + ((FUT, list(FUT_SPEC)),))


def spec(**changes) -> list:
    s = list(FUT_SPEC)
    for name, v in changes.items():
        s[(SPEC_FIELDS + ("expiry_ms", "settlement_window_ms")).index(name)] = v
    return s


# -- the spec ----------------------------------------------------------------------------------

def test_future_spec_round_trips_and_perp_specs_are_unchanged():
    m = market_from_spec(FUT, list(FUT_SPEC), 6, {})
    assert m.kind == FUTURE and m.perp_like and m.expiry_ms == EXPIRY
    assert m.settlement_window_ms == WINDOW and m.spec() == FUT_SPEC
    perp = market_from_spec(1, list(BTC_PERP_SPEC), 6, {})
    assert perp.spec() == BTC_PERP_SPEC and len(perp.spec()) == len(SPEC_FIELDS)
    assert (perp.expiry_ms, perp.settlement_window_ms) == (0, 0)


@pytest.mark.parametrize("bad, msg", [
    (FUT_SPEC[:-1], "a future market spec is an array of 13"),
    (BTC_PERP_SPEC + [EXPIRY, WINDOW], "a perp market spec is an array of 11"),
    (spec(settlement_window_ms=0), "settlement window 0 ms outside"),
    (spec(settlement_window_ms=-5), "settlement window -5 ms outside"),
    (spec(settlement_window_ms=MAX_SETTLEMENT_WINDOW_MS + 1), "settlement window"),
    (spec(expiry_ms=WINDOW - 1), "expiry 299999 ms outside 300000"),
    (spec(expiry_ms=2**60), "expiry"),
    (spec(expiry_ms="soon"), "must be integers"),
    (spec(kind=7), "market kind must be 0 (perp), 1 (spot) or 2 (future)"),
    ("x", "a market spec is an array"),
])
def test_bad_future_specs_are_refused_with_what_is_wrong(bad, msg):
    with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        market_from_spec(FUT, bad, 6, {})


def test_genesis_refuses_funding_for_a_future():
    from state.markets import DEFAULT_FUNDING

    with pytest.raises(InvalidBlock, match="not a perp market"):
        genesis_writes(dataclasses.replace(fut_genesis(), funding=((FUT, DEFAULT_FUNDING),)))


def test_genesis_refuses_a_future_already_expired():
    g = trading_genesis()
    for expiry in (GENESIS_MS, GENESIS_MS - 1):
        bad = dataclasses.replace(g, markets=g.markets + ((FUT, spec(expiry_ms=expiry)),))
        with pytest.raises(InvalidBlock, match="is not after the listing time"):
            genesis_writes(bad)


def test_governance_lists_a_future_and_refuses_a_past_expiry():
    chain = Chain(trading_genesis())
    res = chain.block([action(GOV, GENESIS_MS + 1, "gov_add_market", spec(expiry_ms=GENESIS_MS),
                              2)])
    assert res.tx_results[0].code == Code.INVALID_GOVERNANCE
    assert "is not after the listing time" in res.tx_results[0].log
    res = chain.block([action(GOV, GENESIS_MS + 2, "gov_add_market", list(FUT_SPEC), 3)])
    assert res.tx_results[0].code == 0
    chain.block([])
    m = get_market(chain.kv, FUT)
    assert m.kind == FUTURE and m.expiry_ms == EXPIRY


# -- the formula -------------------------------------------------------------------------------

def test_window_overlap_clips_to_window_and_freshness():
    m = market_from_spec(FUT, list(FUT_SPEC), 6, {})
    start = EXPIRY - WINDOW
    ov = FU.window_overlap_ms
    assert ov(m, start - 10_000, start + 5_000, start - 10_000, MIN) == 5_000   # enters
    assert ov(m, EXPIRY - 1, EXPIRY + 9_999, EXPIRY - 1, MIN) == 1              # leaves
    assert ov(m, start - 20_000, start - 1, start - 20_000, MIN) == 0           # before
    assert ov(m, start, start + 90_000, start, MIN) == MIN                      # goes stale
    assert ov(m, start + 70_000, start + 90_000, start, MIN) == 0               # stale


def test_average_price_rounds_half_up():
    assert FU.average_price(10, 4) == 3          # 2.5 -> 3
    assert FU.average_price(9, 4) == 2           # 2.25 -> 2
    assert FU.average_price(11, 4) == 3          # 2.75 -> 3


# -- the scenario: a dated future expiring and settling at the window's average ------------------

class Flow:
    """Txs with unique nonces on a chain with the future."""

    def __init__(self, chain: Chain):
        self.chain = chain
        self.nonce = GENESIS_MS

    def n(self) -> int:
        self.nonce += 1
        return self.nonce

    def oracle(self, usd: int) -> list[bytes]:
        return oracle_tx(self.n(), [("BTC", usd * PRICE)])

    def at(self, offset_ms: int, txs=()):
        """A block at GENESIS_MS + offset_ms; checks every invariant after it."""
        res = self.chain.block(list(txs), dt_ms=GENESIS_MS + offset_ms - self.chain.time_ms)
        check_invariants(self.chain.kv)
        return res


def open_positions(f: Flow) -> None:
    """key 0 long 0.5 BTC, key 1 short 0.5 BTC at 60,000; key 2 rests a bid and a stop."""
    half = BTC // 2
    res = f.at(1_000, [order(key(1), f.n(), FUT, False, 60_000 * PRICE, half),
                       order(key(0), f.n(), FUT, True, 60_000 * PRICE, half, tif=1),
                       order(key(2), f.n(), FUT, True, 50_000 * PRICE, BTC_LOT * 10),
                       order(key(2), f.n(), FUT, False, 55_000 * PRICE, BTC_LOT * 10,
                             kind=2, tif=1, trigger=55_000 * PRICE)])
    assert [r.code for r in res.tx_results] == [0, 0, 0, 0]


# (offset ms, oracle price posted in that block): a price holds from its block to the next
SERIES = [(280_000, 61_000), (310_000, 62_000), (327_500, 59_500), (380_000, 63_000),
          (470_000, None), (500_000, 60_500), (560_000, 60_500), (599_999, 70_000)]


def run_to_expiry(f: Flow):
    open_positions(f)
    for offset, usd in SERIES:
        f.at(offset, f.oracle(usd) if usd else [])
    return f.at(612_345, [order(key(3), f.n(), FUT, True, 61_000 * PRICE, BTC_LOT * 10),
                          action(key(0), f.n(), "set_leverage", FUT, 2)])


def test_future_settles_at_the_windows_time_weighted_average():
    f = Flow(Chain(fut_genesis()))
    open_positions(f)
    for offset, usd in SERIES:
        f.at(offset, f.oracle(usd) if usd else [])
    # Window [300,000, 600,000) ms after genesis, by hand:
    #   61,000 x 10,000 ms  (280,000 -> 310,000, from the window's start)
    #   62,000 x 17,500 ms  (310,000 -> 327,500)
    #   59,500 x 52,500 ms  (327,500 -> 380,000)
    #   63,000 x 60,000 ms  (380,000 -> 470,000, stale after 60 s: 30,000 ms carry no weight)
    #        0 weight       (470,000 -> 500,000: still that stale price)
    #   60,500 x 99,999 ms  (500,000 -> 560,000 -> 599,999: refreshed in between)
    #   70,000 x      1 ms  (599,999 -> 600,000: counted by the block that settles)
    # sum = 14,648,759,500 USD ms over 240,000 ms = 61,036.4979166.. -> 61,036.497917
    total, weight = FU.window_sums(f.chain.kv, FUT)
    assert (total, weight) == ((14_648_759_500 - 70_000) * PRICE, 239_999)
    before = {i: ledger.balance(f.chain.kv, key(i).pub_key, "USDC") for i in range(4)}
    fund0 = ledger.balance(f.chain.kv, INSURANCE_FUND, "USDC")
    res = f.at(612_345, [order(key(3), f.n(), FUT, True, 61_000 * PRICE, BTC_LOT * 10),
                         action(key(0), f.n(), "set_leverage", FUT, 2)])
    s = FU.settled(f.chain.kv, FUT)
    assert s == FU.Settled(61_036_497_917, GENESIS_MS + 612_345, 240_000, 2)
    # long 0.5 x (61,036.497917 - 60,000) = 518.2489585 -> floored 518.248958;
    # short -518.2489585 -> floored -518.248959; the 0.000001 left goes to the fund
    after = {i: ledger.balance(f.chain.kv, key(i).pub_key, "USDC") for i in range(4)}
    assert after[0] - before[0] == 518_248_958
    assert after[1] - before[1] == -518_248_959
    assert after[2] == before[2] and after[3] == before[3]
    assert ledger.balance(f.chain.kv, INSURANCE_FUND, "USDC") - fund0 == 1
    assert ledger.balance(f.chain.kv, POOL, "USDC") == 0
    for i in range(3):
        assert FUT not in load_account(f.chain.kv, key(i).pub_key).entries
    # the block's txs: trading has stopped
    assert [r.code for r in res.tx_results] == [Code.MARKET_EXPIRED] * 2
    assert "market BTC-0326 (id 4) expired at block time" in res.tx_results[0].log
    assert "settled at 61036.497917" in res.tx_results[0].log
    events = [(e.type, dict(e.attrs)) for e in res.block_events]
    cancels = [a for t, a in events if t == "cancel"]
    assert [(a["owner"], a["reason"]) for a in cancels] == [(key(2).pub_key.hex(),
                                                             "settlement")] * 2
    settled_pos = [a for t, a in events if t == "future_position_settled"]
    assert sorted((a["account"], a["side"], a["size"], a["price"], a["pnl"])
                  for a in settled_pos) == sorted([
        (key(0).pub_key.hex(), "long", "0.5", "61036.497917", "518.248958"),
        (key(1).pub_key.hex(), "short", "0.5", "61036.497917", "-518.248959")])
    assert [a["account"] for a in settled_pos] == sorted(a["account"] for a in settled_pos)
    (done,) = [a for t, a in events if t == "future_settled"]
    assert done == {"market": "BTC-0326", "expiry_ms": str(EXPIRY), "price": "61036.497917",
                    "source": "twap", "window_ms": "240000", "positions": "2",
                    "insurance": "0.000001"}
    types = [t for t, _ in events]   # cancels, then positions, then the summary
    assert types[:4] == ["cancel", "cancel", "future_position_settled",
                         "future_position_settled"] and types[4] == "future_settled"


def test_after_settlement_nothing_trades_and_nothing_is_written_for_it():
    f = Flow(Chain(fut_genesis()))
    run_to_expiry(f)
    res = f.at(700_000, f.oracle(90_000) + [
        order(key(0), f.n(), FUT, False, 61_000 * PRICE, BTC_LOT * 10, tif=1),
        action(key(2), f.n(), "modify", FUT, 3, 51_000 * PRICE, BTC_LOT * 10),
        action(key(0), f.n(), "set_leverage", FUT, 3),
        action(key(0), f.n(), "batch", [["order", FUT, True, 0, 61_000 * PRICE, BTC_LOT * 10,
                                         0, False, 0, 0, 0]])])
    assert [r.code for r in res.tx_results[-4:-1]] == [Code.MARKET_EXPIRED] * 3
    assert [dict(e.attrs)["code"] for e in res.tx_results[-1].events] == \
        [str(int(Code.MARKET_EXPIRED))]
    assert not any(k.startswith((FU.P_WINDOW, FU.P_SETTLED, b"mark/\x00\x00\x00\x04"))
                   for k, _ in res.writes)
    assert not any(e.type.startswith("future") for e in res.block_events)


def test_money_conserved_and_positions_net_zero_every_block():
    f = Flow(Chain(fut_genesis()))
    run_to_expiry(f)   # Flow.at checks every invariant after each block
    supply = ledger.supply(f.chain.kv, "USDC")
    assert supply == 4 * 100_000 * USDC


def test_no_oracle_price_in_the_window_settles_at_the_last_known_price():
    f = Flow(Chain(fut_genesis()))
    open_positions(f)
    f.at(200_000, f.oracle(64_000))          # stale long before the window opens
    res = f.at(650_000)
    s = FU.settled(f.chain.kv, FUT)
    assert s.price == 64_000 * PRICE and s.weight_ms == 0
    (done,) = [dict(e.attrs) for e in res.block_events if e.type == "future_settled"]
    assert done["source"] == "last_oracle" and done["price"] == "64000"
    assert ledger.balance(f.chain.kv, POOL, "USDC") == 0


@pytest.mark.parametrize("fund, covered", [(10_000 * USDC, 700_000), (500_000, 500_000),
                                           (0, 0)])
def test_a_loss_beyond_collateral_is_covered_by_the_insurance_fund(fund, covered):
    g = fut_genesis()
    poor = key(5).pub_key
    extra = ((poor, "USDC", 10_000 * USDC),) + (((INSURANCE_FUND, "USDC", fund),) if fund else ())
    f = Flow(Chain(dataclasses.replace(g, balances=g.balances + extra)))
    tenth = BTC // 10                  # poor: short 0.1 BTC at 60,000 (taker fee 2.7)
    res = f.at(1_000, [order(key(1), f.n(), FUT, True, 60_000 * PRICE, tenth),
                       order(key(5), f.n(), FUT, False, 60_000 * PRICE, tenth, tif=1)])
    assert [r.code for r in res.tx_results] == [0, 0]
    for offset, usd in ((299_000, 66_000), (349_000, 66_000), (399_000, 66_000),
                        (449_000, 60_000), (499_000, 60_000), (549_000, 60_000)):
        f.at(offset, f.oracle(usd))
    # back at 60,000 the short moves 9,700 of its 9,997.3 away (it still meets its margin)
    res = f.at(560_000, f.oracle(60_000) + [
        action(key(5), f.n(), "transfer", key(3).pub_key, "USDC", 9_700 * USDC)])
    assert res.tx_results[-1].code == 0
    fund0 = ledger.balance(f.chain.kv, INSURANCE_FUND, "USDC")
    res = f.at(600_000)
    # TWAP = (66,000 x 149,000 + 60,000 x 151,000) / 300,000 = 62,980: the short loses
    # 0.1 x 2,980 = 298 > its 297.3, a deficit of 0.7 that the fund covers as far as it can
    assert FU.settled(f.chain.kv, FUT).price == 62_980 * PRICE
    (d,) = [dict(e.attrs) for e in res.block_events if e.type == "settlement_deficit"]
    assert d == {"account": poor.hex(), "market": "BTC-0326", "deficit": "0.7",
                 "covered": f"{covered / USDC:g}"}
    assert ledger.balance(f.chain.kv, poor, "USDC") == covered - 700_000
    assert ledger.balance(f.chain.kv, INSURANCE_FUND, "USDC") == fund0 - covered


# -- replay, RPC, genesis JSON -----------------------------------------------------------------

def test_replay_gives_the_same_app_hashes_warm_and_cold():
    hashes = []
    for warm in (False, True):
        f = Flow(Chain(fut_genesis(), warm=warm))
        seen = []
        open_positions(f)
        seen.append(f.chain.app_hash)
        for offset, usd in SERIES:
            f.at(offset, f.oracle(usd) if usd else [])
            seen.append(f.chain.app_hash)
        f.at(612_345)
        seen.append(f.chain.app_hash)
        hashes.append(seen)
    assert hashes[0] == hashes[1]


def test_markets_and_positions_rpc_show_expiry_status_and_price():
    import trio
    from types import SimpleNamespace

    from rpc.trading_methods import markets, positions

    f = Flow(Chain(fut_genesis()))
    open_positions(f)
    app = SimpleNamespace(store=SimpleNamespace(state=f.chain.kv))
    (fut,) = [m for m in trio.run(markets, app, {})["markets"] if m["id"] == FUT]
    assert fut["kind"] == "future" and fut["expiry_ms"] == str(EXPIRY)
    assert fut["settlement_window_ms"] == str(WINDOW) and fut["status"] == "trading"
    assert fut["settlement_price"] is None and fut["max_leverage"] == 50
    (perp,) = [m for m in trio.run(markets, app, {})["markets"] if m["id"] == 1]
    assert "status" not in perp and perp["kind"] == "perp"
    (pos,) = trio.run(positions, app, {"address": key(0).pub_key.hex()})["positions"]
    assert pos["market"] == "BTC-0326" and pos["side"] == "long" and pos["status"] == "trading"
    for offset, usd in SERIES:
        f.at(offset, f.oracle(usd) if usd else [])
    f.at(612_345)
    (fut,) = [m for m in trio.run(markets, app, {})["markets"] if m["id"] == FUT]
    assert fut["status"] == "settled" and fut["settlement_price"] == "61036.497917"
    assert trio.run(positions, app, {"address": key(0).pub_key.hex()})["positions"] == []


def test_genesis_json_future_market():
    from node.genesis import GenesisError, future_market_json, make_genesis_doc, parse_genesis

    doc = make_genesis_doc("c", GENESIS_MS, [(key(40).pub_key, 10, "v")])
    doc["app_state"]["markets"].append(future_market_json(4, "BTC-FUT", EXPIRY))
    st = parse_genesis(doc).state
    (mid, s), = [(i, s) for i, s in st.markets if i == 4]
    assert s[1] == FUTURE and s[-2:] == [EXPIRY, 3_600_000]
    for change, msg in (({"expiry_ms": str(GENESIS_MS - 1)}, "not after the listing time"),
                        ({"settlement_window_ms": "0"}, "settlement window"),
                        ({"expiry_ms": None}, "expiry_ms must be an integer")):
        bad = copy.deepcopy(doc)
        bad["app_state"]["markets"][-1].update(change)
        with pytest.raises(GenesisError, match=msg):
            parse_genesis(bad)
    bad = copy.deepcopy(doc)
    bad["app_state"]["markets"][0]["expiry_ms"] = str(EXPIRY)
    with pytest.raises(GenesisError, match="for kind 'future' only"):
        parse_genesis(bad)
    assert parse_genesis(make_genesis_doc("c", GENESIS_MS, [(key(40).pub_key, 10, "v")])
                         ).state.markets[0][1][1] == PERP


def test_localnet_can_list_a_future():
    from localnet.cluster import FUTURE_MARKET_ID, LocalnetError, future_genesis
    from node.genesis import make_genesis_doc, parse_genesis

    doc = make_genesis_doc("c", GENESIS_MS, [(key(40).pub_key, 10, "v")])
    plain = copy.deepcopy(doc)
    future_genesis(30)(doc, GENESIS_MS)
    st = parse_genesis(doc).state
    assert st.markets[:-1] == parse_genesis(plain).state.markets   # the default, unchanged
    mid, s = st.markets[-1]
    assert mid == FUTURE_MARKET_ID and s[0] == "BTC-FUT" and s[1] == FUTURE
    assert s[-2:] == [GENESIS_MS + 30 * MIN, 15 * MIN]
    assert parse_genesis(make_genesis_doc("c", GENESIS_MS, [(key(40).pub_key, 10, "v")])
                         ).state.markets == parse_genesis(plain).state.markets
    with pytest.raises(LocalnetError, match="--future-minutes 0"):
        future_genesis(0)


def test_window_sums_beyond_64_bits():
    """The highest price over a long window: price x ms passes 2^64 and is stored exactly."""
    top = 10**15                       # MAX_PRICE
    g = fut_genesis(prices=(("BTC", top), ("ETH", 3_000 * PRICE)))
    spec = ["BTC-WEEK", FUTURE] + BTC_PERP_SPEC[2:] + [GENESIS_MS + 7 * 24 * 60 * MIN,
                                                      7 * 24 * 60 * MIN]
    f = Flow(Chain(dataclasses.replace(g, markets=g.markets + ((5, spec),))))
    for i in range(1, 4):
        f.at(i * MIN, f.oracle(top // PRICE))
    total, weight = FU.window_sums(f.chain.kv, 5)
    assert weight == 3 * MIN and total == top * 3 * MIN and total > 2**64
    assert FU.average_price(total, weight) == top


def test_window_blocks_write_only_price_records_settlement_forces_a_recheck():
    f = Flow(Chain(fut_genesis()))
    open_positions(f)
    f.at(290_000, f.oracle(61_000))
    res = f.at(310_000)                 # in the window: only the sums (and marks) change
    assert FU.P_WINDOW in res.steps_wrote and res.steps_wrote_only_prices()
    res = f.at(612_345)                 # settlement writes balances, positions and orders
    assert FU.P_SETTLED in res.steps_wrote and not res.steps_wrote_only_prices()
