"""Order types of issue 9: resting reduce-only orders, modifying a waiting trigger order and
TWAP orders, each rule and each error on an in-process chain."""

from state import orders as O, reduce_only as RO
from state.derived import DerivedCache
from state.errors import Code
from state.invariants import check_invariants
from state.kv import MemoryKV, Overlay
from tests.chain_helpers import BTC_PERP, BTC_SPOT, PRICE
from tests.chain_helpers import BTC_LOT
from tests.unit.test_trading import A, ALO, B, C3, GTC, IOC, STOP_LIMIT, STOP_MARKET, T, evs, ticks


def _long(t: T, lots: int, who=A, px: int = 60_000) -> None:
    """`who` buys `lots` from C3 at `px`."""
    t.block(t.order(C3, BTC_PERP, False, px, lots), t.order(who, BTC_PERP, True, px, lots))
    assert t.pos(who)[0] == lots


def _resting(t: T, who=A, market=BTC_PERP) -> list[tuple[int, bool, int, bool]]:
    """(id, is_buy, lots, reduce_only) of `who`'s resting orders, ascending id."""
    out = []
    for mid, oid in O.account_order_ids(t.c.kv, who.pub_key, market):
        o = O.get_resting(t.c.kv, mid, oid)
        if o is not None:
            out.append((o.id, o.is_buy, o.size_lots, o.reduce_only))
    return out


def _ro(t: T, who, is_buy: bool, usd: int, lots: int, tif: int = GTC):
    return t.one(t.order(who, BTC_PERP, is_buy, usd, lots, tif=tif, reduce_only=True))


# -- resting reduce-only ------------------------------------------------------------------------

def test_reduce_only_gtc_and_alo_rest_and_are_clipped_to_the_uncovered_position():
    t = T()
    _long(t, 100)
    r = _ro(t, A, False, 61_000, 60)
    assert r.code == 0 and evs(r, "order")[0]["status"] == "open"
    r = _ro(t, A, False, 62_000, 100, tif=ALO)  # 40 lots of the position are left uncovered
    assert r.code == 0 and evs(r, "order")[0]["remaining"] == "0.004"
    assert [x[2:] for x in _resting(t)] == [(60, True), (40, True)]
    r = _ro(t, A, False, 63_000, 10)
    assert r.code == Code.REDUCE_ONLY_WOULD_INCREASE and "already cover" in r.log
    r = _ro(t, A, True, 59_000, 10)  # a buy would grow the long
    assert r.code == Code.REDUCE_ONLY_WOULD_INCREASE and "position 100" in r.log
    check_invariants(t.c.kv)


def test_reduce_only_needs_a_position_and_a_perp_market():
    t = T()
    r = _ro(t, A, False, 61_000, 10)
    assert r.code == Code.REDUCE_ONLY_WOULD_INCREASE and "position 0" in r.log
    r = t.one(t.order(A, BTC_SPOT, False, 61_000, 10, reduce_only=True))
    assert r.code == Code.INVALID_ORDER and "spot" in r.log


def test_a_shrinking_position_shrinks_the_newest_reduce_only_orders_first():
    t = T()
    _long(t, 100)
    _ro(t, A, False, 61_000, 60)
    _ro(t, A, False, 62_000, 40)
    (old, _, _, _), (new, _, _, _) = _resting(t)
    t.block(t.order(C3, BTC_PERP, True, 59_000, 100))
    # A sells 30 lots: position 70 < 100 resting reduce-only: the newest shrinks by 30
    r = t.one(t.order(A, BTC_PERP, False, 59_000, 30, tif=IOC))
    (ev,) = evs(r, "reduce_only_shrunk")
    assert (ev["order_id"], ev["by"], ev["remaining"], ev["position"]) == \
        (str(new), "0.003", "0.001", "0.007")
    assert [(x[0], x[2]) for x in _resting(t)] == [(old, 60), (new, 10)]
    # 50 more: position 20; the newest (10) goes whole, the older shrinks to 20
    r = t.one(t.order(A, BTC_PERP, False, 59_000, 50, tif=IOC))
    (c,) = evs(r, "cancel")
    assert (c["order_id"], c["reason"]) == (str(new), "reduce_only")
    assert evs(r, "reduce_only_shrunk")[0]["remaining"] == "0.002"
    assert [(x[0], x[2]) for x in _resting(t)] == [(old, 20)]
    check_invariants(t.c.kv)


def test_the_reduce_only_holders_index_learns_of_new_orders_on_a_warm_chain():
    """state.derived rule 5: the holders index, built by a trade before any reduce-only order
    existed, learns of the new ones (rule 3 still shrinks them), and it always holds every
    owner of a `rord/` record."""
    t = T()
    t.c.cache = DerivedCache()  # warm: the derived state goes from block to block
    _long(t, 100)
    _long(t, 100, who=B)
    held = t.c.cache.derived.reduce_only_holders
    assert held is not None and not held.get(BTC_PERP)  # scanned by the trades: none yet
    _ro(t, A, False, 61_000, 60)
    assert A.pub_key in t.c.cache.derived.reduce_only_holders[BTC_PERP]
    assert B.pub_key not in RO.holders(Overlay(t.c.kv), BTC_PERP)  # (a cold scan)
    t.block(t.order(C3, BTC_PERP, True, 59_000, 100))
    r = t.one(t.order(A, BTC_PERP, False, 59_000, 50, tif=IOC))
    assert evs(r, "reduce_only_shrunk")[0]["remaining"] == "0.005"
    held = t.c.cache.derived.reduce_only_holders
    for k, _ in t.c.kv.iterate(O.P_REDUCE_ONLY):
        assert k[len(O.P_REDUCE_ONLY):-4] in held[int.from_bytes(k[-4:], "big")]
    check_invariants(t.c.kv)


def test_closing_or_flipping_the_position_cancels_reduce_only_orders():
    t = T()
    _long(t, 50)
    _ro(t, A, False, 61_000, 50)
    t.block(t.order(C3, BTC_PERP, True, 59_000, 200))
    r = t.one(t.order(A, BTC_PERP, False, 59_000, 80, tif=IOC))  # long 50 -> short 30
    assert t.pos(A)[0] == -30
    assert [(c["reason"], c["remaining"]) for c in evs(r, "cancel")] == \
        [("reduce_only", "0.005")]
    assert _resting(t) == [] and O.reduce_only_ids(t.c.kv, A.pub_key, BTC_PERP) == []
    check_invariants(t.c.kv)


def test_a_reduce_only_maker_fills_and_leaves_its_index():
    t = T()
    _long(t, 50)
    _ro(t, A, False, 61_000, 50)
    r = t.one(t.order(B, BTC_PERP, True, 61_000, 50, tif=IOC))
    assert [f["maker_order_id"] for f in evs(r, "fill")] and t.pos(A)[0] == 0
    assert O.reduce_only_ids(t.c.kv, A.pub_key, BTC_PERP) == []
    check_invariants(t.c.kv)


def test_matching_never_takes_a_reduce_only_maker_past_its_position():
    """A's plain sell fills first in the same match; its reduce-only sell behind it may then
    fill only what is left of the position (shrunk first), or nothing (cancelled)."""
    t = T()
    _long(t, 50)
    t.block(t.order(A, BTC_PERP, False, 60_500, 20))          # plain, older
    _ro(t, A, False, 60_500, 50)                               # reduce-only, newer
    r = t.one(t.order(B, BTC_PERP, True, 60_500, 100, tif=IOC))
    assert [ev["remaining"] for ev in evs(r, "reduce_only_shrunk")] == ["0.003"]
    assert [f["size"] for f in evs(r, "fill")] == ["0.002", "0.003"]
    assert t.pos(A)[0] == 0 and _resting(t) == []
    # nothing left at all: the reduce-only maker is cancelled, the taker trades past it
    t2 = T()
    _long(t2, 50)
    t2.block(t2.order(A, BTC_PERP, False, 60_500, 50))
    _ro(t2, A, False, 60_500, 50)
    t2.block(t2.order(C3, BTC_PERP, False, 60_600, 30))
    r = t2.one(t2.order(B, BTC_PERP, True, 60_600, 80, tif=IOC))
    assert [c["reason"] for c in evs(r, "cancel")] == ["reduce_only"]
    assert [(f["price"], f["size"]) for f in evs(r, "fill")] == [("60500", "0.005"),
                                                               ("60600", "0.003")]
    assert t2.pos(A)[0] == 0
    check_invariants(t2.c.kv)


def test_a_stop_limit_reduce_only_gtc_rests_after_firing_within_the_position():
    t = T()
    _long(t, 50)
    r = t.one(t.order(A, BTC_PERP, False, 62_000, 50, kind=STOP_LIMIT, tif=GTC,
                      reduce_only=True, trigger=59_000 * PRICE))
    assert r.code == 0 and evs(r, "order")[0]["status"] == "waiting_trigger"
    _ro(t, A, False, 63_000, 30)
    r = t.oracle([("BTC", 58_500 * PRICE)])
    # the fired order keeps its (older) id: the newer 30-lot order is the one cancelled
    assert [(e.type, dict(e.attrs).get("reason")) for e in r.block_events
            if e.type in ("trigger", "cancel")] == [("trigger", None), ("cancel", "reduce_only")]
    assert [x[2] for x in _resting(t)] == [50]
    check_invariants(t.c.kv)


def test_a_resting_reduce_only_order_needs_no_margin():
    """Equity below the initial margin: a new position is refused, a closing order rests."""
    t = T(amount=1_000 * 10**6)
    _long(t, 1_500)  # 0.15 BTC at 60,000 = $9,000 notional, $1,000 equity
    t.oracle([("BTC", 54_000 * PRICE)])
    r = t.one(t.order(A, BTC_PERP, True, 50_000, 10))
    assert r.code == Code.INSUFFICIENT_MARGIN
    assert _ro(t, A, False, 70_000, 1_500).code == 0


# -- modify a waiting trigger order --------------------------------------------------------------

def _stop(t: T, who=A, lots: int = 50, trigger_usd: int = 58_000, **kw):
    kw.setdefault("reduce_only", True)
    r = t.one(t.order(who, BTC_PERP, False, 50_000, lots, kind=STOP_MARKET, tif=IOC,
                      trigger=trigger_usd * PRICE, **kw))
    assert r.code == 0
    return int(evs(r, "order")[0]["order_id"])


def _modify_trigger(t: T, who, oid: int, trigger_usd: int, usd: int, lots: int):
    return t.one(t.act(who, "modify_trigger", BTC_PERP, oid, trigger_usd * PRICE, usd * PRICE,
                       lots * BTC_LOT))


def test_modify_trigger_moves_trigger_price_and_size_keeping_the_order_id():
    t = T()
    _long(t, 50)
    t.block(t.order(C3, BTC_PERP, True, 55_000, 100))
    oid = _stop(t)
    r = _modify_trigger(t, A, oid, 57_000, 51_000, 30)
    (ev,) = evs(r, "order")
    assert (ev["order_id"], ev["status"], ev["trigger_price"], ev["price"], ev["size"]) == \
        (str(oid), "trigger_modified", "57000", "51000", "0.003")
    assert O.get_trigger(t.c.kv, BTC_PERP, oid).trigger_ticks == ticks(57_000)
    check_invariants(t.c.kv)
    r = t.oracle([("BTC", 57_500 * PRICE)])  # the old trigger (58,000) would fire here
    assert not [e for e in r.block_events if e.type == "trigger"]
    r = t.oracle([("BTC", 56_900 * PRICE)])
    (fired,) = [dict(e.attrs) for e in r.block_events if e.type == "trigger"]
    assert fired["order_id"] == str(oid) and t.pos(A)[0] == 20


def test_modify_trigger_errors():
    t = T()
    _long(t, 50)
    oid = _stop(t)
    rest = t.one(t.order(A, BTC_PERP, False, 70_000, 10))
    rid = int(evs(rest, "order")[0]["order_id"])
    r = _modify_trigger(t, A, rid, 57_000, 51_000, 10)
    assert r.code == Code.INVALID_ORDER and "use modify" in r.log
    r = _modify_trigger(t, B, oid, 57_000, 51_000, 10)
    assert r.code == Code.ORDER_NOT_FOUND and "waiting trigger" in r.log
    r = _modify_trigger(t, A, oid + 100, 57_000, 51_000, 10)
    assert r.code == Code.ORDER_NOT_FOUND
    r = t.one(t.act(A, "modify_trigger", BTC_PERP, oid, 57_000 * PRICE + 1, 51_000 * PRICE,
                    10 * BTC_LOT))
    assert r.code == Code.INVALID_TICK and "trigger price" in r.log
    r = _modify_trigger(t, A, oid, 57_000, 51_000, 5)
    assert r.code == Code.ORDER_TOO_SMALL
    # the position is closed: a reduce-only trigger cannot be re-validated
    t.block(t.order(C3, BTC_PERP, True, 60_000, 50), t.order(A, BTC_PERP, False, 60_000, 50,
                                                              tif=IOC))
    r = _modify_trigger(t, A, oid, 57_000, 51_000, 10)
    assert r.code == Code.REDUCE_ONLY_WOULD_INCREASE
    assert O.get_trigger(t.c.kv, BTC_PERP, oid).trigger_ticks == ticks(58_000)  # unchanged


# -- TWAP orders ---------------------------------------------------------------------------------

def _twap(t: T, who, lots: int, duration_ms: int = 300_000, is_buy: bool = True,
          reduce_only: bool = False, market: int = BTC_PERP, dt_ms: int = 1000):
    return t.block(t.act(who, "twap_order", market, is_buy, lots * BTC_LOT, duration_ms,
                         reduce_only), dt_ms=dt_ms)


def _tevs(res, typ):
    return [dict(e.attrs) for e in res.block_events if e.type == typ]


def _mark_band(t: T, is_buy: bool) -> str:
    from state.margin import mark_price
    from state.markets import get as get_market
    from state.twap import band_ticks
    m = get_market(t.c.kv, BTC_PERP)
    return f"{band_ticks(m, mark_price(t.c.kv, m), is_buy) * m.tick_size // PRICE}"


def test_twap_slices_over_irregular_block_times_with_carry_over_and_catch_up_cap():
    """1000 lots over 5 min: 10 slices of 100 (catch-up cap 300). Hand-computed:
    +30 s  k=1: ceil(1000*1/10) = 100, only 40 fill (thin book)     filled 40
    +65 s  k=2: ceil(960*1/9)   = 107                               filled 147
    +200 s k=6: ceil(853*4/8)   = 427 -> capped at 300              filled 447
    +210 s k=7: ceil(553*1/4)   = 139                               filled 586
    +215 s nothing due (slice 8 is due at +240 s)
    +400 s k=10: ceil(414*3/3)  = 414 -> capped at 300; the last slice: filled 886, 114 left."""
    t = T(max_age_ms=10**9)
    t.block(t.order(C3, BTC_PERP, False, 60_000, 40))
    r = _twap(t, A, 1_000)
    (placed,) = evs(r.tx_results[0], "twap")
    assert (placed["slices"], placed["slice_size"], placed["size"]) == ("10", "0.01", "0.1")
    sizes = []
    for dt, txs in ((29_000, []), (1_000, []), (35_000, [t.order(C3, BTC_PERP, False, 60_000,
                                                                  10_000)]),
                    (135_000, []), (10_000, []), (5_000, []), (185_000, [])):
        r = t.block(*txs, dt_ms=dt)
        sl = _tevs(r, "twap_slice")
        if sl:
            assert sl[0]["price"] == _mark_band(t, True)
        sizes.append([(s["slice"], s["size"], s["filled"], s["twap_filled"]) for s in sl])
    assert sizes == [[], [("1", "0.01", "0.004", "0.004")],
                     [("2", "0.0107", "0.0107", "0.0147")], [("6", "0.03", "0.03", "0.0447")],
                     [("7", "0.0139", "0.0139", "0.0586")], [],
                     [("10", "0.03", "0.03", "0.0886")]]
    (end,) = _tevs(r, "twap_end")
    assert (end["reason"], end["filled"], end["remaining"]) == \
        ("duration_elapsed", "0.0886", "0.0114")
    assert t.pos(A)[0] == 886
    from state import twap
    assert twap.account_twaps(t.c.kv, A.pub_key) == [] and twap.queued(t.c.kv) == []
    check_invariants(t.c.kv)


def test_twap_ends_when_filled_and_slice_events_follow_the_fills():
    t = T(max_age_ms=10**9)
    t.block(t.order(C3, BTC_PERP, False, 60_000, 1_000))
    _twap(t, A, 20, duration_ms=600_000)   # 20 slices of 1 lot
    r = t.block(dt_ms=600_000)             # everything due: one slice, capped at 3 lots
    assert [e.type for e in r.block_events if e.type.startswith(("fill", "twap"))] == \
        ["fill", "twap_slice", "twap_end"]
    assert _tevs(r, "twap_slice")[0]["size"] == "0.0003"
    t2 = T(max_age_ms=10**9)
    t2.block(t2.order(C3, BTC_PERP, False, 60_000, 1_000))
    _twap(t2, A, 10, duration_ms=300_000)  # 10 slices of 1 lot
    for _ in range(9):
        assert _tevs(t2.block(dt_ms=30_000), "twap_end") == []
    (end,) = _tevs(t2.block(dt_ms=30_000), "twap_end")
    assert (end["reason"], end["remaining"]) == ("filled", "0")


def test_twap_sell_band_and_reduce_only_slices_end_when_the_position_is_gone():
    t = T(max_age_ms=10**9)
    _long(t, 30)
    t.block(t.order(B, BTC_PERP, True, 59_000, 1_000))
    _twap(t, A, 100, is_buy=False, reduce_only=True)   # slices of 10, cap 30
    out = []
    for _ in range(5):
        r = t.block(dt_ms=30_000)
        out += [(e.type, dict(e.attrs).get("size"), dict(e.attrs).get("reason"))
                for e in r.block_events if e.type.startswith("twap")]
        for s in _tevs(r, "twap_slice"):
            assert s["price"] == _mark_band(t, False)
    assert out == [("twap_slice", "0.001", None)] * 3 + [
        ("twap_slice_failed", "0.001", None), ("twap_end", None, "nothing_to_reduce")]
    assert t.pos(A)[0] == 0


def test_twap_slice_failing_margin_ends_the_twap():
    t = T(max_age_ms=10**9)
    t.block(t.order(C3, BTC_PERP, False, 60_000, 100_000),
            t.act(A, "transfer", B.pub_key, "USDC", 99_000 * 10**6))  # A keeps $1,000
    _twap(t, A, 200_000)   # 20 BTC over 10 slices: $120,000 a slice on $1,000
    r = t.block(dt_ms=30_000)
    (f,) = _tevs(r, "twap_slice_failed")
    assert f["code"] == str(int(Code.INSUFFICIENT_MARGIN))
    assert [x["reason"] for x in _tevs(r, "twap_end")] == ["insufficient_margin"]
    assert t.pos(A)[0] == 0


def test_twap_stale_oracle_slice_fails_and_carries_over():
    t = T()  # oracle max age 60 s
    t.block(t.order(C3, BTC_PERP, False, 60_000, 1_000))
    _twap(t, A, 100)
    r = t.block(dt_ms=90_000)  # the oracle price is stale: the slice fails, the TWAP stays
    (f,) = _tevs(r, "twap_slice_failed")
    assert f["code"] == str(int(Code.ORACLE_STALE)) and not _tevs(r, "twap_end")
    t.oracle([("BTC", 60_000 * PRICE)])        # +91 s: a fresh price; nothing due
    r = t.block(dt_ms=29_000)                   # +120 s: slice 4
    (s,) = _tevs(r, "twap_slice")
    # slices 1..3 failed, so 100 lots remain over 7 slices: ceil(100 * 1 / 7) = 15
    assert (s["slice"], s["size"], s["filled"]) == ("4", "0.0015", "0.0015")


def test_twap_errors_and_cancel():
    t = T()
    def one(who, *a):
        return t.one(t.act(who, *a))
    assert one(A, "twap_order", BTC_PERP, True, 100 * BTC_LOT, 299_999, False).code == \
        Code.INVALID_ORDER
    r = one(A, "twap_order", BTC_PERP, True, 100 * BTC_LOT, 86_400_001, False)
    assert r.code == Code.INVALID_ORDER and "5 min .. 24 h" in r.log
    assert one(A, "twap_order", BTC_PERP, True, 100 * BTC_LOT + 1, 300_000, False).code == \
        Code.INVALID_LOT
    assert one(A, "twap_order", BTC_PERP, True, 5 * BTC_LOT, 300_000, False).code == \
        Code.ORDER_TOO_SMALL
    assert one(A, "twap_order", BTC_PERP, False, 100 * BTC_LOT, 300_000, True).code == \
        Code.REDUCE_ONLY_WOULD_INCREASE
    assert one(A, "twap_order", BTC_SPOT, False, 100 * BTC_LOT, 300_000, True).code == \
        Code.INVALID_ORDER
    assert one(A, "twap_order", 99, True, 100 * BTC_LOT, 300_000, False).code == \
        Code.UNKNOWN_MARKET
    for _ in range(10):
        assert one(A, "twap_order", BTC_PERP, True, 100 * BTC_LOT, 3_600_000, False).code == 0
    r = one(A, "twap_order", BTC_PERP, True, 100 * BTC_LOT, 3_600_000, False)
    assert r.code == Code.TOO_MANY_OPEN_ORDERS and "TWAP" in r.log
    from state import twap
    ids = twap.account_twaps(t.c.kv, A.pub_key)
    assert len(ids) == 10
    assert one(B, "twap_cancel", BTC_PERP, ids[0]).code == Code.ORDER_NOT_FOUND
    assert one(A, "twap_cancel", 2, ids[0]).code == Code.ORDER_NOT_FOUND
    assert one(A, "twap_cancel", BTC_PERP, 999).code == Code.ORDER_NOT_FOUND
    r = one(A, "twap_cancel", BTC_PERP, ids[0])
    (end,) = evs(r, "twap_end")
    assert (end["twap_id"], end["reason"], end["filled"]) == (str(ids[0]), "user", "0")
    assert twap.account_twaps(t.c.kv, A.pub_key) == ids[1:]
    check_invariants(t.c.kv)


# -- RPC ------------------------------------------------------------------------------------------

def _rpc(t: T, fn, **params):
    from types import SimpleNamespace

    import trio
    app = SimpleNamespace(store=SimpleNamespace(state=t.c.kv))
    return trio.run(fn, app, params)


def test_rpc_open_orders_show_resting_reduce_only_and_twap_orders_show_progress():
    from rpc.trading_methods import open_orders, twap_orders
    t = T(max_age_ms=10**9)
    _long(t, 50)
    _ro(t, A, False, 61_000, 50)
    (o,) = _rpc(t, open_orders, address=A.pub_key.hex())["orders"]
    assert (o["reduce_only"], o["status"], o["size"], o["tif"]) == (True, "open", "0.005", "gtc")
    t.block(t.order(C3, BTC_PERP, False, 60_000, 1_000))
    _twap(t, A, 100, duration_ms=600_000)
    start = t.c.time_ms
    t.block(dt_ms=30_000)
    (tw,) = _rpc(t, twap_orders, address=A.pub_key.hex())["twaps"]
    assert tw == {"twap_id": "1", "market": "BTC-USD", "market_id": BTC_PERP, "side": "buy",
                  "size": "0.01", "filled": "0.0005", "remaining": "0.0095",
                  "reduce_only": False, "start_ms": str(start), "duration_ms": "600000",
                  "end_ms": str(start + 600_000), "slices": "20", "slices_done": "1",
                  "slice_size": "0.0005", "next_slice_ms": str(start + 60_000)}
    assert _rpc(t, twap_orders, address=B.pub_key.hex())["twaps"] == []


def test_adl_counterparties_reduce_only_orders_follow_their_smaller_positions():
    """The ADL scenario of tests/unit/test_liquidation.py; D and B rest reduce-only buys
    covering their shorts. ADL closes D (its buy is cancelled) and 0.2 of B's 0.5 (its buy
    shrinks to 0.3)."""
    from tests.unit.test_liquidation import BYSTANDER, D, E, L, evs as block_evs, open_long
    from tests.unit.test_liquidation import A as LA, B as LB
    t = L({LA: 1_000, LB: 100_000, D: 2_000, E: 100_000, BYSTANDER: 5_000})
    open_long(t, maker_bids=())
    t.block(t.order(D, False, 59_000, 3_000), t.order(E, True, 59_000, 3_000, tif=IOC))
    t.block(order_ro(t, D, 3_000), order_ro(t, LB, 5_000))
    res = t.oracle(57_000)
    assert [x["counterparty"] for x in block_evs(res, "adl")] == [D.pub_key.hex(),
                                                                 LB.pub_key.hex()]
    assert [(c["owner"], c["reason"]) for c in block_evs(res, "cancel")
            if c["owner"] == D.pub_key.hex()] == [(D.pub_key.hex(), "reduce_only")]
    (s,) = block_evs(res, "reduce_only_shrunk")
    assert (s["owner"], s["remaining"], s["position"]) == (LB.pub_key.hex(), "0.3", "-0.3")
    check_invariants(t.c.kv)


def order_ro(t, k, size_btc_e4: int):
    from tests.chain_helpers import order as order_tx
    return order_tx(k, next(t.n), BTC_PERP, True, 50_000 * PRICE, size_btc_e4 * BTC_LOT,
                    reduce_only=True)


def test_modify_keeps_reduce_only_and_reclips_to_the_position():
    t = T()
    _long(t, 50)
    r = _ro(t, A, False, 61_000, 30)
    oid = int(evs(r, "order")[0]["order_id"])
    r = t.one(t.act(A, "modify", BTC_PERP, oid, 61_500 * PRICE, 80 * BTC_LOT))
    (o,) = evs(r, "order")
    assert o["remaining"] == "0.005"           # 80 lots asked, clipped to the position of 50
    assert [x[2:] for x in _resting(t)] == [(50, True)]
    check_invariants(t.c.kv)


def test_twap_on_a_dated_future_ends_when_it_expires():
    from tests.unit.test_futures import EXPIRY, FUT, fut_genesis
    from tests.chain_helpers import Chain
    t = T()
    t.c = Chain(fut_genesis())
    r = _twap(t, A, 100, duration_ms=3_600_000, market=FUT)
    assert r.tx_results[0].code == 0
    r = t.block(dt_ms=EXPIRY - t.c.time_ms)        # the first block at the expiry
    (f,) = _tevs(r, "twap_slice_failed")
    assert f["code"] == str(int(Code.MARKET_EXPIRED))
    assert [e["reason"] for e in _tevs(r, "twap_end")] == ["market_expired"]
    r = _twap(t, A, 100, market=FUT)
    assert r.tx_results[0].code == Code.MARKET_EXPIRED


def test_the_reduce_only_holders_scan_counts_a_record_an_open_sub_transaction_deleted():
    """state.derived rule 5: the first scan may run inside sub-transactions that added or
    deleted a `rord/` record; either may be rolled back, so both owners count."""
    kv = MemoryKV()
    root = Overlay(kv)
    a, b = b"a" * 32, b"b" * 32
    ro = dict(kind=0, price_ticks=1, size_lots=1, orig_lots=1, tif=0, reduce_only=True,
              trigger_ticks=0, cloid=0, expiry_ms=0, placed_ms=0)
    O.rest(root, O.OrderRecord(1, BTC_PERP, a, False, **ro))
    batch = root.child()
    O.rest(batch, O.OrderRecord(2, BTC_PERP, b, False, **ro))   # added by an open batch
    item = batch.child()
    O.remove_resting(item, O.get_resting(item, BTC_PERP, 1))   # deleted by an open item
    O.remove_resting(item, O.get_resting(item, BTC_PERP, 2))
    assert O.reduce_only_ids(item, a, BTC_PERP) == O.reduce_only_ids(item, b, BTC_PERP) == []
    assert set(RO.holders(item, BTC_PERP)) == {a, b}  # the item may still be rolled back
