"""Hyperliquid order grouping (state/hl_grouping.py, state/hl_tpsl.py): normalTpsl children
wait for their parent and are placed with the size it filled, or cancelled with an unfilled
parent; positionTpsl orders of size 0 close the whole position when they fire; the tp and the
sl are siblings (one firing cancels the other); warm = cold."""

from localnet.fixtures import BTC_PERP, PRICE
from state import hl_tpsl, orders as O
from state.errors import Code
from state.invariants import check_invariants
from tests.chain_helpers import Chain, key, oracle_tx, order
from tests.hl_helpers import (WALLETS, account32, hl_genesis, l1_tx, limit, order_action,
                              statuses, trigger)

BTC = 0                   # asset id of BTC-USD
LOTS_001 = 100            # 0.01 BTC in lots
ALICE = WALLETS[0]
MAKER, TAKER = key(0), key(1)


class T:
    def __init__(self, warm: bool = False):
        self.c = Chain(hl_genesis(), warm=warm)
        self.n = self.c.time_ms

    def nonce(self) -> int:
        self.n += 1
        return self.n

    def hl(self, action: dict):
        r = self.c.block([l1_tx(ALICE, action, self.nonce())])
        assert r.tx_results[0].code == 0, r.tx_results[0].log
        return r, statuses(r.tx_results[0])

    def audit(self):
        check_invariants(self.c.kv)

    def native(self, k, is_buy: bool, usd: int, lots: int, tif: int = 0):
        r = self.c.block([order(k, self.nonce(), BTC_PERP, is_buy, usd * PRICE,
                                lots * 10_000, tif=tif)])
        assert r.tx_results[0].code == 0, r.tx_results[0].log
        return r

    def oracle(self, usd: int):
        return self.c.block(oracle_tx(self.nonce(), [("BTC", usd * PRICE)]))

    def triggers(self) -> list[O.OrderRecord]:
        ids = O.account_order_ids(self.c.kv, account32(ALICE))
        return [t for t in (O.get_trigger(self.c.kv, m, i) for m, i in ids) if t is not None]

    def position_lots(self) -> int:
        from state.positions import load_account
        return load_account(self.c.kv, account32(ALICE)).size(BTC_PERP)


def bracket(parent: dict, sz: str = "0.01") -> dict:
    return order_action(parent, trigger(BTC, False, "62000", "tp", sz, px="61000"),
                        trigger(BTC, False, "58000", "sl", sz, px="50000"),
                        grouping="normalTpsl")


def events(r, typ: str) -> list[dict]:
    return [dict(e.attrs) for e in r.block_events if e.type == typ] + \
        [dict(e.attrs) for x in r.tx_results for e in x.events if e.type == typ]


def run_bracket(warm: bool) -> T:
    """A resting parent with tp and sl; filled in a later block; the sl fires and the tp goes."""
    t = T(warm)
    _, st = t.hl(bracket(limit(BTC, True, "59000", "0.01")))
    assert [s["status"] for s in st] == ["resting", "waitingForFill", "waitingForFill"]
    parent = int(st[0]["oid"])
    assert t.triggers() == [] and hl_tpsl.group(t.c.kv, BTC_PERP, parent) is not None
    t.audit()
    t.native(TAKER, True, 56_000, LOTS_001)                 # liquidity for the sl later
    r = t.native(MAKER, False, 59_000, LOTS_001, tif=1)      # fills the parent completely
    placed = events(r, "tpsl_placed")
    assert [int(p["parent_order_id"]) for p in placed] == [parent, parent]
    trig = t.triggers()
    assert sorted(o.kind for o in trig) == [O.STOP_MARKET, O.TAKE_PROFIT_MARKET]
    assert all(o.size_lots == LOTS_001 and o.reduce_only and not o.is_buy for o in trig)
    assert hl_tpsl.group(t.c.kv, BTC_PERP, parent) is None and not list(
        t.c.kv.iterate(hl_tpsl.P_DUE))
    t.audit()
    r = t.oracle(57_000)                                      # the sl fires, the tp is cancelled
    cancels = events(r, "cancel")
    tp = next(o for o in trig if o.kind == O.TAKE_PROFIT_MARKET)
    assert [(int(c["order_id"]), c["reason"]) for c in cancels] == [(tp.id, "sibling_filled")]
    assert t.triggers() == [] and t.position_lots() == 0
    assert not list(t.c.kv.iterate(hl_tpsl.P_SIBLING))
    t.audit()
    return t


def test_normal_tpsl_children_wait_for_the_parent_then_one_cancels_the_other():
    run_bracket(warm=False)


def test_normal_tpsl_warm_equals_cold():
    assert run_bracket(warm=True).c.app_hash == run_bracket(warm=False).c.app_hash


def test_a_parent_filled_at_once_places_its_children_now():
    t = T()
    t.native(MAKER, False, 60_000, LOTS_001 // 2)            # half the parent's size
    _, st = t.hl(bracket(limit(BTC, True, "60000", "0.01", tif="Ioc")))
    assert st[0]["status"] == "filled" and st[0]["total_sz"] == "0.005"
    assert [s["status"] for s in st[1:]] == ["waitingForTrigger"] * 2
    trig = t.triggers()
    assert sorted(o.id for o in trig) == sorted(int(s["oid"]) for s in st[1:])
    assert all(o.size_lots == LOTS_001 // 2 for o in trig)   # the size the parent filled


def test_a_cancelled_parent_resizes_or_cancels_its_children():
    t = T()
    _, st = t.hl(bracket(limit(BTC, True, "59000", "0.01")))
    parent = int(st[0]["oid"])
    t.native(MAKER, False, 59_000, 40, tif=1)                 # 0.004 of 0.01 fills
    assert t.triggers() == []                                 # still waiting: not all filled
    r, st = t.hl({"type": "cancel", "cancels": [{"a": BTC, "o": parent}]})
    assert st == [{"index": "0", "status": "success"}]
    assert [o.size_lots for o in t.triggers()] == [40, 40]    # placed at the filled size
    # a parent cancelled without a fill cancels its children
    _, st = t.hl(bracket(limit(BTC, True, "58000", "0.01")))
    r, _ = t.hl({"type": "cancel", "cancels": [{"a": BTC, "o": int(st[0]["oid"])}]})
    assert [e["reason"] for e in events(r, "tpsl_cancelled")] == ["parent_unfilled"]
    assert len(t.triggers()) == 2 and not list(t.c.kv.iterate(hl_tpsl.P_GROUP))
    t.audit()


def test_normal_tpsl_refusals():
    t = T()
    for wires, why in (
            ([limit(BTC, True, "59000", "0.01")], "one or two"),
            ([limit(BTC, True, "59000", "0.01"), trigger(BTC, True, "62000", "tp")], "selling"),
            ([trigger(BTC, False, "1", "sl"), trigger(BTC, False, "62000", "tp")], "parent"),
            ([limit(BTC, True, "59000", "0.01"), trigger(BTC, False, "62000", "tp"),
              trigger(BTC, False, "63000", "tp")], "at most one tp")):
        r = t.c.block([l1_tx(ALICE, order_action(*wires, grouping="normalTpsl"), t.nonce())])
        assert r.tx_results[0].code == Code.INVALID_FIELD and why in r.tx_results[0].log, \
            r.tx_results[0].log
    # an IOC parent that fills nothing: its children are not placed
    _, st = t.hl(bracket(limit(BTC, True, "59000", "0.01", tif="Ioc")))
    assert [s["status"] for s in st] == ["error"] * 3 and t.triggers() == []
    # a waiting parent cannot be modified
    _, st = t.hl(bracket(limit(BTC, True, "59000", "0.01")))
    _, mod = t.hl({"type": "modify", "oid": int(st[0]["oid"]),
                   "order": limit(BTC, True, "59500", "0.01")})
    assert mod[0]["status"] == "error" and "parent of tp/sl" in mod[0]["error"]


def test_position_tpsl_of_size_zero_closes_the_whole_position_when_it_fires():
    t = T()
    r = t.c.block([l1_tx(ALICE, order_action(trigger(BTC, False, "58000", "sl", "0"),
                                             grouping="positionTpsl"), t.nonce())])
    [st] = statuses(r.tx_results[0])
    assert st["status"] == "error" and "no long position" in st["error"]
    t.native(MAKER, False, 60_000, LOTS_001)
    t.hl(order_action(limit(BTC, True, "60000", "0.01", tif="Ioc")))      # long 0.01
    _, st = t.hl(order_action(trigger(BTC, False, "62000", "tp", "0", px="61000"),
                              trigger(BTC, False, "58000", "sl", "0", px="50000"),
                              grouping="positionTpsl"))
    assert [s["status"] for s in st] == ["waitingForTrigger"] * 2
    assert all(hl_tpsl.whole_position(t.c.kv, BTC_PERP, int(s["oid"])) for s in st)
    t.audit()
    t.native(MAKER, False, 60_000, LOTS_001 * 2)
    t.hl(order_action(limit(BTC, True, "60000", "0.02", tif="Ioc")))      # long 0.03
    assert t.position_lots() == 3 * LOTS_001
    t.native(TAKER, True, 56_000, LOTS_001 * 5)                            # bids for the sl
    r = t.oracle(57_000)
    fired = [e for e in events(r, "order") if e["status"] == "filled"
             and e["owner"] == account32(ALICE).hex()]
    assert [f["filled"] for f in fired] == ["0.03"], fired   # the whole position, grown
    assert t.position_lots() == 0 and t.triggers() == []
    assert not list(t.c.kv.iterate(hl_tpsl.P_WHOLE))


def test_position_tpsl_of_a_fixed_size_stays_that_size():
    t = T()
    t.native(MAKER, False, 60_000, LOTS_001 * 3)
    t.hl(order_action(limit(BTC, True, "60000", "0.03", tif="Ioc")))
    _, st = t.hl(order_action(trigger(BTC, False, "58000", "sl", "0.01", px="50000"),
                              grouping="positionTpsl"))
    [o] = t.triggers()
    assert o.id == int(st[0]["oid"]) and o.size_lots == LOTS_001 and o.reduce_only
    assert not hl_tpsl.whole_position(t.c.kv, BTC_PERP, o.id)


def test_frontend_open_orders_show_waiting_children_and_whole_position_orders():
    from rpc.hl_format import Universe, frontend_order_json
    from state.markets import get as get_market
    t = T()
    _, st = t.hl(bracket(limit(BTC, True, "59000", "0.01")))
    uni, m = Universe(t.c.kv), get_market(t.c.kv, BTC_PERP)
    row = frontend_order_json(uni, m, O.get_resting(t.c.kv, BTC_PERP, int(st[0]["oid"])))
    assert [(c["triggerPx"], c["sz"], c["side"], c["isTrigger"], c["oid"])
            for c in row["children"]] == [("62000.0", "0.01", "A", True, 0),
                                          ("58000.0", "0.01", "A", True, 0)]
    assert row["isPositionTpsl"] is False
    t.native(MAKER, False, 59_000, LOTS_001, tif=1)
    _, st = t.hl(order_action(trigger(BTC, False, "57000", "sl", "0", px="50000"),
                              grouping="positionTpsl"))
    rows = {o.id: frontend_order_json(uni, m, o) for o in t.triggers()}
    assert [rows[i]["isPositionTpsl"] for i in sorted(rows)] == [False, False, True]
    assert all(r["children"] == [] for r in rows.values())


def test_the_tpsl_links_audit_catches_a_stray_record():
    import pytest
    from state.invariants import InvariantViolation
    for prefix, value in ((hl_tpsl.P_WHOLE, b""), (hl_tpsl.P_SIBLING, b"\x05"),
                          (hl_tpsl.P_DUE, b"\x00")):
        t = T()
        t.c.kv.apply([(prefix + BTC_PERP.to_bytes(4, "big") + (77).to_bytes(8, "big"), value)])
        with pytest.raises(InvariantViolation) as e:
            t.audit()
        assert e.value.invariant == "tpsl_links"
