"""The dead-man switch (state/schedule_cancel.py): `schedule_cancel [time_ms]` cancels every
open order of the account (resting and trigger, every market) at the first block at or after
that time, once; 0 removes it; a time too soon or too far is refused; warm = cold."""

from localnet.fixtures import BTC_LOT, BTC_PERP, ETH_LOT, ETH_PERP, PRICE
from state import constants as C, orders as O, schedule_cancel as S
from state.errors import Code
from tests.chain_helpers import Chain, action, key, order, trading_genesis

A, B = key(0), key(1)


def place_three(c: Chain) -> None:
    """A: a BTC bid, an ETH ask and a BTC stop-market sell (a trigger)."""
    n = c.time_ms
    res = c.block([order(A, n + 1, BTC_PERP, True, 50_000 * PRICE, BTC_LOT * 10),
                   order(A, n + 2, ETH_PERP, False, 4_000 * PRICE, ETH_LOT * 10),
                   order(A, n + 3, BTC_PERP, False, 30_000 * PRICE, BTC_LOT * 10,
                         kind=O.STOP_MARKET, tif=1, trigger=40_000 * PRICE)])
    assert [r.code for r in res.tx_results] == [0, 0, 0], [r.log for r in res.tx_results]
    assert len(O.account_order_ids(c.kv, A.pub_key)) == 3


def sched(c: Chain, k, time_ms: int):
    return c.block([action(k, c.time_ms + 7, "schedule_cancel", time_ms)]).tx_results[0]


def run(warm: bool) -> tuple[Chain, list]:
    c = Chain(trading_genesis(), warm=warm)
    place_three(c)
    at = c.time_ms + 10_000
    r = sched(c, A, at)
    assert r.code == 0, r.log
    assert S.scheduled(c.kv, A.pub_key) == at
    fired = []
    while c.time_ms < at + 3_000:
        res = c.block([])
        fired += [e for e in res.block_events if e.type == "scheduled_cancel"]
        if c.time_ms < at:
            assert len(O.account_order_ids(c.kv, A.pub_key)) == 3
    return c, fired


def test_the_orders_go_at_the_scheduled_time_once():
    c, fired = run(warm=False)
    assert len(fired) == 1 and ("cancelled", "3") in fired[0].attrs
    assert O.account_order_ids(c.kv, A.pub_key) == [] and S.scheduled(c.kv, A.pub_key) is None
    # fired once: new orders afterwards stay
    place_three(c)
    for _ in range(3):
        c.block([])
    assert len(O.account_order_ids(c.kv, A.pub_key)) == 3


def test_warm_equals_cold():
    assert run(warm=True)[0].app_hash == run(warm=False)[0].app_hash


def test_zero_removes_and_a_new_time_replaces():
    c = Chain(trading_genesis())
    place_three(c)
    assert sched(c, A, c.time_ms + 10_000).code == 0
    assert sched(c, A, c.time_ms + 60_000).code == 0          # replaces the first
    for _ in range(12):
        c.block([])
    assert len(O.account_order_ids(c.kv, A.pub_key)) == 3
    assert sched(c, A, 0).code == 0
    assert S.scheduled(c.kv, A.pub_key) is None and list(c.kv.iterate(S.P_QUEUE)) == []


def test_too_soon_or_too_far_is_refused():
    c = Chain(trading_genesis())
    for t in (c.time_ms + 1_000, c.time_ms + 1_000 + C.SCHEDULE_MAX_DELAY_MS + 5_000):
        r = sched(c, B, t)
        assert r.code == Code.INVALID_FIELD and "must lie" in r.log
    assert S.scheduled(c.kv, B.pub_key) is None


def test_ten_firings_a_utc_day_then_refused_until_midnight():
    """Hyperliquid's limit: after SCHEDULE_TRIGGERS_PER_DAY firings in a UTC day, a new time
    is refused (SCHEDULE_LIMIT) until 00:00 UTC; removing one stays allowed."""
    c = Chain(trading_genesis())
    day = c.time_ms // C.DAY_MS
    fired = 0
    while fired < C.SCHEDULE_TRIGGERS_PER_DAY:
        assert sched(c, A, c.time_ms + 6_000).code == 0
        for _ in range(7):
            res = c.block([])
            fired += sum(e.type == "scheduled_cancel" for e in res.block_events)
        assert S.fired_today(c.kv, A.pub_key, c.time_ms) == fired
    assert c.time_ms // C.DAY_MS == day, "the test must stay within one UTC day"
    r = sched(c, A, c.time_ms + 6_000)
    assert r.code == Code.SCHEDULE_LIMIT and "00:00 UTC" in r.log, r.log
    assert S.scheduled(c.kv, A.pub_key) is None
    assert sched(c, A, 0).code == 0                      # removing is always allowed
    assert sched(c, B, c.time_ms + 6_000).code == 0      # the limit is per account
    # the next UTC day: allowed again
    c.block([], dt_ms=(day + 1) * C.DAY_MS - c.time_ms)
    assert S.fired_today(c.kv, A.pub_key, c.time_ms) == 0
    assert sched(c, A, c.time_ms + 6_000).code == 0
