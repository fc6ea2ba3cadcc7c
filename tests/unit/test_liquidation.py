"""Liquidation, the insurance fund and auto-deleveraging, on an in-process chain, with
hand-computed numbers (BTC-PERP: max leverage 50, so maintenance margin is 1% of notional;
taker fee 450 ppm; mark = oracle, as no block ends with a two-sided book)."""

import dataclasses

from state import ledger
from state.insurance import INSURANCE_FUND
from state.kv import MemoryKV
from state.liquidation import P_ACTIVE, P_LOG, bankruptcy_ticks
from state.liquidation_params import default_params
from state.markets import RATE_SCALE, FundingParams
from state.markets import get as get_market
from state.positions import load_account
from tests.chain_helpers import (BTC_LOT, BTC_PERP, PRICE, USDC, Chain, Scenario, key, order,
                                 trading_genesis)

A, B, C, D, E, BYSTANDER = (key(i) for i in range(6))
GTC, IOC = 0, 1
TICK = 100_000


def lots(btc_tenths_of_thousand: int) -> int:
    return btc_tenths_of_thousand * BTC_LOT


class L(Scenario):
    """A chain with chosen balances and liquidation parameters, plus a nonce source."""

    def __init__(self, balances: dict, liquidation=None, warm: bool = False, fund: int = 0,
                 funding=()):
        g = trading_genesis(0)
        bals = [(k.pub_key, "USDC", usd * USDC) for k, usd in balances.items()]
        if fund:
            bals.append((INSURANCE_FUND, "USDC", fund * USDC))
        g = dataclasses.replace(g, balances=tuple(bals), liquidation=liquidation,
                                funding=funding)
        super().__init__(g, warm)

    def order(self, k, is_buy, usd, size_btc_e4, tif=GTC):
        return order(k, next(self.n), BTC_PERP, is_buy, usd * PRICE, size_btc_e4 * BTC_LOT,
                     tif=tif)

    def size(self, k) -> int:
        addr = k if isinstance(k, bytes) else k.pub_key
        return load_account(self.c.kv, addr).size(BTC_PERP)

    def bal(self, k) -> int:
        addr = k if isinstance(k, bytes) else k.pub_key
        return ledger.balance(self.c.kv, addr, "USDC")


def evs(res, typ):
    return [dict(e.attrs) for e in res.block_events if e.type == typ]


def open_long(t: L, maker_bids=((58_400, 10_000),)):
    """A buys 0.5 BTC at 60,000 from B (taker fee 13.5 USDC); C rests the bids that will
    absorb the liquidation."""
    t.block(t.order(B, False, 60_000, 5_000), t.order(A, True, 60_000, 5_000, tif=IOC),
            *[t.order(C, True, px, size) for px, size in maker_bids])
    assert t.size(A) == 5_000 and t.bal(A) == 986_500_000


# -- in the book ---------------------------------------------------------------------------------

def test_oracle_move_liquidates_in_the_book():
    t = L({A: 1_000, B: 100_000, C: 100_000, BYSTANDER: 5_000})
    open_long(t)
    # At 58,700: equity 986.5 - 650 = 336.5 >= MM 293.5: nothing yet.
    res = t.oracle(58_700)
    assert not evs(res, "liquidation") and t.size(A) == 5_000
    # At 58,500: equity 236.5 < MM 292.5, above the backstop 195: a reduce-only IOC sell at the
    # bankruptcy price 58,500 - 236.5 / 0.5 = 58,027 fills C's bid at 58,400.
    res = t.oracle(58_500)
    [liq] = evs(res, "liquidation")
    assert (liq["size"], liq["filled"], liq["position_left"]) == ("0.5", "0.5", "0")
    assert (liq["equity"], liq["maintenance_margin"]) == ("236.5", "292.5")
    [fill] = evs(res, "fill")
    assert (fill["price"], fill["taker"], fill["maker"]) == ("58400", A.pub_key.hex(),
                                                             C.pub_key.hex())
    [o] = evs(res, "order")
    assert o["price"] == "58027" and o["tif"] == "ioc"
    # Realised -800, taker fee 13.14, liquidation fee 0.5% of 29,250 = 146.25.
    assert liq["fee"] == "146.25"
    assert t.bal(A) == 986_500_000 - 800 * USDC - 13_140_000 - 146_250_000
    assert t.bal(INSURANCE_FUND) == 146_250_000
    assert t.size(A) == 0 and t.size(C) == 5_000
    assert t.bal(BYSTANDER) == 5_000 * USDC
    assert t.c.kv.get(P_ACTIVE + A.pub_key) is None  # done: no longer in progress


def test_positions_show_the_liquidation_price_the_chain_then_keeps():
    t = L({A: 1_000, B: 100_000, C: 100_000})
    open_long(t)
    # 986.5 - 30,000 + 0.5 P = 1% of 0.5 P -> P = 29,013.5 / 0.495 = 58,613.1313... (rounded up)
    [pos] = _rpc(t, "positions", address=A.pub_key.hex())["positions"]
    assert pos["liquidation_price"] == "58613.131314"
    assert pos["adl"] == {"rank": 1, "queue_size": 1, "percentile": 100}
    [short] = _rpc(t, "positions", address=B.pub_key.hex())["positions"]
    # B (maker fee 4.5): 99,995.5 + 30,000 - 0.5 P = 1% of 0.5 P -> P = 129,995.5 / 0.505
    assert short["liquidation_price"] == "257416.831683"
    assert not evs(t.oracle(58_614), "liquidation") and t.size(A) == 5_000
    assert evs(t.oracle(58_613), "liquidation")


def test_orders_are_cancelled_first():
    t = L({A: 1_000, B: 100_000, C: 100_000})
    open_long(t)
    t.block(t.order(A, False, 70_000, 100))  # a resting ask, far away
    res = t.oracle(58_500)
    cancels = evs(res, "cancel")
    assert [c["reason"] for c in cancels] == ["liquidation"]
    kinds = [e.type for e in res.block_events]
    assert kinds.index("cancel") < kinds.index("liquidation")


def test_large_position_closes_20_percent_per_step_with_a_cooldown():
    p = dataclasses.replace(default_params(6), step_threshold_quantums=10_000 * USDC,
                            cooldown_ms=3_000)
    t = L({A: 1_000, B: 100_000, C: 100_000}, liquidation=p)
    open_long(t)
    steps = []
    res = t.oracle(58_500)
    for i in range(12):
        for liq in evs(res, "liquidation"):
            steps.append((t.c.time_ms, liq["size"], liq["position_left"]))
        if t.size(A) == 0:
            break
        res = t.block()
    # 20% of the position each step (rounded up to a lot): 0.5 -> 0.4 -> 0.32 -> ...
    assert [s[1] for s in steps[:3]] == ["0.1", "0.08", "0.064"]
    assert [s[2] for s in steps[:3]] == ["0.4", "0.32", "0.256"]
    gaps = [b[0] - a[0] for a, b in zip(steps, steps[1:])]
    assert gaps and all(g == 3_000 for g in gaps)
    # While waiting, the account stays in progress (checked every block).
    assert t.size(A) == 0 or t.c.kv.get(P_ACTIVE + A.pub_key) is not None


def test_per_block_notional_cap_limits_a_step():
    p = dataclasses.replace(default_params(6), max_notional_per_block_quantums=11_700 * USDC)
    t = L({A: 1_000, B: 100_000, C: 100_000}, liquidation=p)
    open_long(t)
    res = t.oracle(58_500)
    [liq] = evs(res, "liquidation")
    # 11,700 / 58,500 per BTC = 0.2 BTC this block; the rest next block.
    assert liq["size"] == "0.2" and t.size(A) == 3_000
    res = t.block()
    assert [x["size"] for x in evs(res, "liquidation")] == ["0.2"]


# -- the insurance fund --------------------------------------------------------------------------

def test_below_backstop_the_fund_takes_over_at_the_bankruptcy_price():
    t = L({A: 1_000, B: 100_000, C: 100_000, BYSTANDER: 5_000})
    open_long(t)
    # At 58,200: equity 86.5 < backstop 194 (2/3 of MM 291): no book order; bankruptcy price
    # 58,200 - 86.5 / 0.5 = 58,027.
    res = t.oracle(58_200)
    assert not evs(res, "liquidation")
    [take] = evs(res, "insurance_takeover")
    assert (take["price"], take["size"], take["fund_loss"]) == ("58027", "0.5", "0")
    assert t.size(A) == 0 and t.size(INSURANCE_FUND) == 5_000
    assert t.bal(A) == 0  # realised 0.5 * (58,027 - 60,000) = -986.5: all of it
    assert t.bal(BYSTANDER) == 5_000 * USDC


def test_fund_covers_a_deficit():
    t = L({A: 1_000, B: 100_000, C: 100_000}, fund=1_000)
    open_long(t, maker_bids=())
    # At 57,000 equity is -513.5; bankruptcy price 57,000 + 513.5 / 0.5 = 58,027; the fund
    # takes a long worth 513.5 less than it paid.
    res = t.oracle(57_000)
    [take] = evs(res, "insurance_takeover")
    assert (take["price"], take["fund_loss"]) == ("58027", "513.5")
    assert t.bal(A) == 0 and t.size(INSURANCE_FUND) == 5_000


def test_book_too_thin_goes_to_the_fund():
    t = L({A: 1_000, B: 100_000, C: 100_000})
    open_long(t, maker_bids=((58_400, 2_000),))
    res = t.oracle(58_500)
    [liq] = evs(res, "liquidation")
    assert (liq["size"], liq["filled"], liq["position_left"]) == ("0.5", "0.2", "0.3")
    [take] = evs(res, "insurance_takeover")
    assert take["size"] == "0.3"
    assert t.size(A) == 0 and t.size(INSURANCE_FUND) == 3_000


# -- auto-deleveraging ---------------------------------------------------------------------------

def test_empty_fund_deleverages_the_top_ranked_opposite_positions():
    t = L({A: 1_000, B: 100_000, D: 2_000, E: 100_000, BYSTANDER: 5_000})
    open_long(t, maker_bids=())
    t.block(t.order(D, False, 59_000, 3_000), t.order(E, True, 59_000, 3_000, tif=IOC))
    assert (t.size(B), t.size(D), t.size(E)) == (-5_000, -3_000, 3_000)
    d0, b0 = t.bal(D), t.bal(B)
    res = t.oracle(57_000)
    # Scores at 57,000: D (upnl 3.4% at ~6.5x) ranks above B (5% at ~0.28x).
    adl = evs(res, "adl")
    assert [(x["counterparty"], x["size"], x["price"], x["rank"]) for x in adl] == [
        (D.pub_key.hex(), "0.3", "58027", "1"), (B.pub_key.hex(), "0.2", "58027", "2")]
    assert (t.size(A), t.size(D), t.size(B)) == (0, 0, -3_000)
    assert t.bal(A) == 0
    assert t.bal(D) - d0 == 291_900_000   # 0.3 * (59,000 - 58,027)
    assert t.bal(B) - b0 == 394_600_000   # 0.2 * (60,000 - 58,027)
    assert t.bal(BYSTANDER) == 5_000 * USDC and t.bal(INSURANCE_FUND) == 0


def test_bankruptcy_price_rounds_for_the_account():
    m = get_market(Chain(trading_genesis(1)).kv, BTC_PERP)
    # long 0.3 at mark 100 with equity share 10 USDC: 100 - 10 / 0.3 = 66.666.. -> up to 66.7
    assert bankruptcy_ticks(m, 3_000, 100 * PRICE, 10 * USDC) == 667
    # short: 100 + 33.33.. -> down to 133.3
    assert bankruptcy_ticks(m, -3_000, 100 * PRICE, 10 * USDC) == 1333
    assert bankruptcy_ticks(m, 3_000, 100 * PRICE, 10**9 * USDC) == 1


# -- the log, determinism ------------------------------------------------------------------------

def test_events_are_logged_in_state():
    t = L({A: 1_000, B: 100_000, C: 100_000})
    open_long(t, maker_bids=((58_400, 2_000),))
    t.oracle(58_500)
    logged = [k for k, _ in t.c.kv.iterate(P_LOG)]
    assert len(logged) == 2  # the liquidation and the takeover


def _scenario(warm: bool, kv=None):
    t = L({A: 1_000, B: 100_000, D: 2_000, E: 100_000, C: 100_000}, warm=warm)
    open_long(t, maker_bids=((58_400, 1_000),))
    t.block(t.order(D, False, 59_000, 3_000), t.order(E, True, 59_000, 3_000, tif=IOC))
    for px in (58_900, 58_500, 57_000, 57_500, 56_000):
        t.oracle(px)
    return [r.app_hash for r in t.results]


def test_warm_and_cold_give_the_same_hashes():
    assert _scenario(True) == _scenario(False)


# -- queries -------------------------------------------------------------------------------------

def _rpc(t: L, method: str, **p):
    import types

    import trio

    from rpc.methods import METHODS
    app = types.SimpleNamespace(store=types.SimpleNamespace(state=t.c.kv))
    return trio.run(METHODS[method], app, p)


def test_queries_show_liquidations_the_fund_and_adl_queues():
    t = L({A: 1_000, B: 100_000, D: 2_000, E: 100_000, C: 100_000})
    open_long(t, maker_bids=((58_400, 2_000),))
    t.block(t.order(D, False, 59_000, 3_000), t.order(E, True, 59_000, 3_000, tif=IOC))
    q = _rpc(t, "adl_queue", address=B.pub_key.hex())
    # Shorts at 60,000 (B, 0.5) and 59,000 (D, 0.3), mark 60,000: D's PnL is negative, B's 0.
    [pos] = q["positions"]
    assert (pos["side"], pos["rank"], pos["queue_size"], pos["percentile"]) == ("short", 1, 2, 100)
    t.oracle(58_500)
    r = _rpc(t, "liquidations")
    assert [e["type"] for e in r["events"]] == ["insurance_takeover", "liquidation"]
    assert r["events"][1]["account"] == A.pub_key.hex() and r["events"][1]["filled"] == "0.2"
    assert _rpc(t, "liquidations", address=B.pub_key.hex())["events"] == []
    assert len(_rpc(t, "liquidations", limit=1)["events"]) == 1
    f = _rpc(t, "insurance_fund")
    assert f["address"] == INSURANCE_FUND.hex()
    assert f["positions"] == [{"market": "BTC-USD", "market_id": BTC_PERP, "size": "0.3"}]
    # 0.5% of the 0.2 BTC closed at the mark 58,500 = 58.5.
    assert f["balance"] == "58.5"
    import pytest

    from rpc.errors import RPCError
    with pytest.raises(RPCError, match="limit"):
        _rpc(t, "liquidations", limit=0)
    with pytest.raises(RPCError, match="address"):
        _rpc(t, "adl_queue")


def _drift(warm: bool):
    """A long that never trades again while the oracle falls $50 a block: the safety band of a
    warm node (state.risk_index) must let it be liquidated in the very block a cold node does."""
    t = L({A: 1_000, B: 100_000, C: 100_000}, warm=warm)
    open_long(t)
    liquidated_at = None
    for i in range(1, 40):
        res = t.oracle(60_000 - 50 * i)
        if evs(res, "liquidation") and liquidated_at is None:
            liquidated_at = 60_000 - 50 * i
    return liquidated_at, [r.app_hash for r in t.results]


def test_a_drifting_price_liquidates_warm_as_cold():
    warm, cold = _drift(True), _drift(False)
    assert warm == cold
    # equity 986.5 - 0.5 * (60,000 - P) < 0.5 * P / 100  <=>  P < 58,613.4: first at 58,600.
    assert warm[0] == 58_600


def _spy_checks(monkeypatch) -> list[bytes]:
    """The accounts `liquidation.check_account` is called for, in call order (it still runs)."""
    from state import liquidation
    checked: list[bytes] = []
    real = liquidation.check_account
    monkeypatch.setattr(liquidation, "check_account",
                        lambda view, ctx, p, idx, addr, *rest: checked.append(addr) or
                        real(view, ctx, p, idx, addr, *rest))
    return checked


def _bounded(monkeypatch, warm: bool):
    from state import constants
    monkeypatch.setattr(constants, "MAX_RISK_CHECKS_PER_BLOCK", 1)
    checked = _spy_checks(monkeypatch)
    t = L({A: 1_000, B: 100_000, C: 100_000}, warm=warm)
    open_long(t)
    per_block, liquidated = [], []
    for i in range(6):
        checked.clear()
        res = t.oracle(58_500 - i)
        per_block.append(list(checked))
        liquidated.append([x["account"] for x in evs(res, "liquidation")])
    return per_block, liquidated, [r.app_hash for r in t.results]


def test_open_order_changes_keep_the_band_a_fill_does_not(monkeypatch):
    """A warm node's safety band (state.risk_index) survives a block that changed only the
    account's open orders (they move only initial margin), so the account is not checked
    again; a fill changes its position, which drops the band: checked again."""
    checked = _spy_checks(monkeypatch)
    t = L({A: 1_000, B: 100_000, C: 100_000}, warm=True)
    open_long(t)
    assert A.pub_key in checked  # a new position: a full check, which finds a band
    assert C.pub_key not in checked  # C's bids rest, but C holds no position: no check
    checked.clear()
    t.block(t.order(A, False, 61_000, 1_000))  # rests: only A's open orders change
    assert A.pub_key not in checked
    t.block(t.order(B, True, 61_000, 1_000, tif=IOC))  # fills A's order: A's position shrinks
    assert A.pub_key in checked and t.size(A) == 4_000


def test_the_check_bound_resumes_next_block_from_the_cursor(monkeypatch):
    per_block, liquidated, hashes = _bounded(monkeypatch, True)
    assert all(len(c) <= 1 for c in per_block)
    # The checks go round the candidates (from the cursor), so A is reached and liquidated.
    assert len({a for c in per_block for a in c}) >= 2
    assert sum(x == [A.pub_key.hex()] for x in liquidated) == 1
    assert _bounded(monkeypatch, False)[2] == hashes


def test_genesis_json_liquidation_section():
    import pytest

    from node.genesis import GenesisError, make_genesis_doc, parse_genesis
    doc = make_genesis_doc("x", 1_700_000_000_000, [(key(40).pub_key, 10, "v")])
    assert parse_genesis(doc).state.liquidation is None  # the defaults, no record
    doc["app_state"]["liquidation"] = {"step_threshold": "50000.5", "cooldown_ms": 1_000}
    p = parse_genesis(doc).state.liquidation
    assert p == dataclasses.replace(default_params(6), step_threshold_quantums=50_000_500_000,
                                    cooldown_ms=1_000)
    for bad, words in (({"step_ppm": 0}, "step_ppm 0 outside"), ({"nope": 1}, "unknown fields"),
                       ({"fee_ppm": "x"}, "fee_ppm must be an integer")):
        doc["app_state"]["liquidation"] = bad
        with pytest.raises(GenesisError, match=words):
            parse_genesis(doc)


def _funding_drain(warm: bool):
    """A long whose mark never moves while funding at 100% / 8 h, settled every minute, eats
    its equity: only the funding index moves (state.risk_index counts it as a mark move)."""
    f = FundingParams(60_000, RATE_SCALE, RATE_SCALE, RATE_SCALE)
    t = L({A: 1_000, B: 100_000, C: 100_000}, warm=warm, funding=((BTC_PERP, f),))
    open_long(t)
    hashes, liquidated_at = [], None
    for i in range(20):
        res = t.oracle(60_000, dt_ms=60_000)
        hashes.append(res.app_hash)
        if liquidated_at is None and evs(res, "liquidation") + evs(res, "insurance_takeover"):
            liquidated_at = i
    return hashes, liquidated_at


def test_funding_alone_brings_an_account_to_liquidation_warm_as_cold():
    # 0.5 BTC at $60,000 pays 100% / 8 h of $30,000 = $62.5 a minute; equity 986.5 falls
    # under MM 300 after 11 settlements
    cold, at = _funding_drain(warm=False)
    warm, at_warm = _funding_drain(warm=True)
    assert at is not None and at == at_warm and 10 <= at <= 12
    assert warm == cold
