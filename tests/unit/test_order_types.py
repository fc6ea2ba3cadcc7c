"""Order types of issue 9: resting reduce-only orders, modifying a waiting trigger order and
TWAP orders, each rule and each error on an in-process chain."""

from state import orders as O
from state.errors import Code
from state.invariants import check_invariants
from tests.chain_helpers import BTC_PERP, BTC_SPOT, PRICE
from tests.unit.test_trading import A, ALO, B, C3, GTC, IOC, STOP_LIMIT, T, evs, ticks


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
