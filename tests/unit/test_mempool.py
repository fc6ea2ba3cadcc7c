import pytest

from node.mempool import Mempool, MempoolLimits
from state.errors import Code, TxError
from state.machine import next_ctx
from state.tx import decode_tx
from tests.chain_helpers import USDC, Chain, key, transfer

A, B = key(0), key(1)


def make(chain, max_txs=100, max_bytes=1 << 20, max_tx_bytes=4096, committed=()):
    return Mempool(MempoolLimits(max_txs, max_bytes, max_tx_bytes), chain.kv,
                   next_ctx(chain.kv), lambda h: h in committed)


def admit(mp, raw):
    return mp.admit(mp.precheck(raw))


def test_check_state_sees_pending_txs():
    c = Chain()
    mp = make(c)
    t = c.time_ms
    assert admit(mp, transfer(A, t + 1, B.pub_key, 600 * USDC)).code == 0
    # a second transfer that fits the committed balance but not after the pending one
    r = admit(mp, transfer(A, t + 2, B.pub_key, 600 * USDC))
    assert r.code == Code.INSUFFICIENT_BALANCE
    assert admit(mp, transfer(A, t + 1, B.pub_key, 5)).code == Code.NONCE_DUPLICATE
    assert len(mp) == 1


def test_duplicates_full_and_oversized():
    c = Chain()
    raw = transfer(A, c.time_ms + 1, B.pub_key, 1)
    mp = make(c, max_txs=1, max_tx_bytes=len(raw))
    assert admit(mp, raw).code == 0
    for bad, code in [(raw, Code.TX_IN_MEMPOOL),
                      (transfer(B, c.time_ms + 1, A.pub_key, 1), Code.MEMPOOL_FULL),
                      (raw + b"\x00", Code.TX_TOO_LARGE)]:
        with pytest.raises(TxError) as e:
            mp.precheck(bad)
        assert e.value.code == code


def test_already_committed():
    c = Chain()
    raw = transfer(A, c.time_ms + 1, B.pub_key, 1)
    mp = make(c, committed={decode_tx(raw).hash})
    with pytest.raises(TxError) as e:
        mp.precheck(raw)
    assert e.value.code == Code.TX_ALREADY_COMMITTED


def test_bytes_limit():
    c = Chain()
    raw = transfer(A, c.time_ms + 1, B.pub_key, 1)
    mp = make(c, max_bytes=len(raw) * 2 - 1)
    assert admit(mp, raw).code == 0
    with pytest.raises(TxError) as e:
        mp.precheck(transfer(A, c.time_ms + 2, B.pub_key, 1))
    assert e.value.code == Code.MEMPOOL_FULL


def test_update_removes_committed_and_rechecks():
    c = Chain()
    mp = make(c)
    t = c.time_ms
    keep = transfer(A, t + 1, B.pub_key, 100 * USDC)
    doomed = transfer(B, t + 1, A.pub_key, 900 * USDC)
    assert admit(mp, keep).code == 0 and admit(mp, doomed).code == 0
    # another node's block spends B's money first: `doomed` no longer passes recheck
    c.block([transfer(B, t + 5, A.pub_key, 950 * USDC)])
    evicted = mp.update([], c.kv, next_ctx(c.kv))
    assert [e.raw for e in evicted] == [doomed]
    assert [t.raw for t in mp.reap(10, 1 << 20)] == [keep]
    c.block([keep])
    mp.update([decode_tx(keep).hash], c.kv, next_ctx(c.kv))
    assert len(mp) == 0 and mp.bytes == 0


def test_reap_respects_limits_and_order():
    c = Chain()
    mp = make(c)
    raws = [transfer(A, c.time_ms + i, B.pub_key, 1) for i in range(1, 6)]
    for r in raws:
        assert admit(mp, r).code == 0
    assert [t.raw for t in mp.reap(3, 1 << 20)] == raws[:3]
    assert [t.raw for t in mp.reap(10, len(raws[0]) * 2)] == raws[:2]


def test_fast_path_after_own_block_keeps_pending_state():
    """When the block is the mempool's own prefix and all succeeded, the check state is
    kept: the remaining txs still see each other's effects without a recheck."""
    c = Chain()
    mp = make(c)
    t = c.time_ms
    first = transfer(A, t + 1, B.pub_key, 400 * USDC)
    second = transfer(A, t + 2, B.pub_key, 400 * USDC)
    assert admit(mp, first).code == 0 and admit(mp, second).code == 0
    res = c.block([first])
    assert res.steps_wrote == ()  # no oracle: the block steps wrote nothing
    mp.update([decode_tx(first).hash], c.kv, next_ctx(c.kv), result=res)
    assert res.tx_results[0].code == 0 and len(mp) == 1
    # `second` is still counted against A's balance: a third 400 overdraws
    assert admit(mp, transfer(A, t + 3, B.pub_key, 400 * USDC)).code == Code.INSUFFICIENT_BALANCE
    assert admit(mp, transfer(A, t + 4, B.pub_key, 100 * USDC)).code == 0


def test_foreign_block_forces_full_recheck():
    c = Chain()
    mp = make(c)
    t = c.time_ms
    mine = transfer(A, t + 1, B.pub_key, 900 * USDC)
    assert admit(mp, mine).code == 0
    res = c.block([transfer(A, t + 7, B.pub_key, 500 * USDC)])   # not from this mempool
    evicted = mp.update([decode_tx(transfer(A, t + 7, B.pub_key, 500 * USDC)).hash], c.kv,
                        next_ctx(c.kv), result=res)
    assert [e.raw for e in evicted] == [mine]


def test_checktx_judges_time_at_the_last_committed_block():
    """docs/PROTOCOL.md section 6: CheckTx runs at the last committed block's time, whatever
    the node's clock says, and its refusals name that clock (not "the block time")."""
    from state import constants as C
    from tests.chain_helpers import BTC_LOT, BTC_PERP, PRICE, order, trading_genesis

    c = Chain(trading_genesis())
    c.block([])
    mp = make(c)
    t = c.time_ms  # the last block's time
    late = t + C.NONCE_FUTURE_WINDOW_MS  # in the window of any later clock, not of t
    r = admit(mp, transfer(A, late, B.pub_key, 1))
    assert r.code == Code.NONCE_OUT_OF_WINDOW
    assert f"last committed block's time, {t} ms (height {c.height})" in r.log
    assert admit(mp, transfer(A, late - 1, B.pub_key, 1)).code == 0
    # An order expiring 1 ms after the last block's time is not expired at that time.
    r = admit(mp, order(A, t + 5, BTC_PERP, True, 50_000 * PRICE, 10 * BTC_LOT,
                        expiry=t + 1))
    assert r.code != Code.ORDER_EXPIRED, r.log
    r = admit(mp, order(A, t + 6, BTC_PERP, True, 50_000 * PRICE, 10 * BTC_LOT,
                        expiry=t))
    assert r.code == Code.ORDER_EXPIRED and f"{t} ms (height {c.height})" in r.log


def test_driver_makes_a_block_when_the_last_one_is_old_without_empty_blocks(tmp_path):
    """create_empty_blocks = false: since CheckTx judges nonces at the last block's time,
    an idle day would lock out every fresh nonce; the driver makes a block once the last
    one is max_block_age_ms old (and not before)."""
    import trio
    import trio.testing

    from consensus.driver import Driver, DriverConfig
    from consensus.rounds import TimeoutConfig

    class App:
        class tip:
            time_ms = 1_000_000
            height = 5

        def has_txs(self):
            return False

        async def wait_for_txs(self):
            await trio.sleep_forever()

    cfg = DriverConfig(TimeoutConfig(), 0, 10, 1 << 20, create_empty_blocks=False,
                       max_block_age_ms=60_000)
    started = []

    async def main():
        for age_ms, want in ((59_000, []), (61_000, [6])):
            clock = lambda age=age_ms: App.tip.time_ms + age + int(trio.current_time() * 1000)
            d = Driver("c", App(), cfg, tmp_path / "wal", tmp_path / "signer", clock=clock)
            d.post = lambda kind, body, h: started.append(h)
            started.clear()
            with trio.move_on_after(0.5):
                await d._start_next(6)
            assert started == want

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_fast_path_is_not_taken_when_end_block_changed_orders():
    """A block that is the mempool's own prefix, all txs succeeding, can still change orders
    and accounts at its end (a trigger fires and trades): the kept check state would then
    disagree with the chain (here a resting bid it still holds was filled by the trigger,
    whose remainder now rests as a crossing ask). The mempool rechecks instead."""
    import itertools

    from state import orders as O
    from tests.chain_helpers import BTC_LOT, BTC_PERP, PRICE, oracle_tx, order, trading_genesis

    c = Chain(trading_genesis(), warm=True)
    n = itertools.count(c.time_ms)
    stop_limit = order(B, next(n), BTC_PERP, False, 59_000 * PRICE, 20 * BTC_LOT, kind=3,
                       trigger=59_500 * PRICE)  # rests as an ask at 59,000 once it fires
    assert c.block([stop_limit]).tx_results[0].code == 0
    mp = make(c)
    bid = order(A, next(n), BTC_PERP, True, 59_100 * PRICE, 10 * BTC_LOT)
    oracles = oracle_tx(next(n), [("BTC", 55_000 * PRICE)])
    for raw in [bid, *oracles]:
        assert admit(mp, raw).code == 0
    res = c.block([bid, *oracles])
    assert all(r.code == 0 for r in res.tx_results)
    assert [e.type for e in res.block_events if e.type == "trigger"] == ["trigger"]
    assert not res.steps_wrote_only_prices()  # the trigger wrote orders and accounts
    mp.update([decode_tx(t).hash for t in [bid, *oracles]], c.kv, next_ctx(c.kv), result=res)
    # The check state agrees with the chain: the bid is gone, the trigger's rest is an ask.
    assert O.account_order_ids(mp.check_state, A.pub_key) == []
    later = order(A, next(n), BTC_PERP, True, 58_000 * PRICE, 10 * BTC_LOT)
    assert admit(mp, later).code == 0


def test_fast_path_is_taken_when_block_steps_wrote_only_prices():
    """Oracle prices and marks written at the end of a block (with their events) do not stop
    the fast path: the check state keeps the pending txs' writes without a recheck."""
    import itertools

    from tests.chain_helpers import BTC_LOT, BTC_PERP, PRICE, oracle_tx, order, trading_genesis

    c = Chain(trading_genesis(), warm=True)
    n = itertools.count(c.time_ms)
    mp = make(c)
    bid = order(A, next(n), BTC_PERP, True, 59_100 * PRICE, 10 * BTC_LOT)
    oracles = oracle_tx(next(n), [("BTC", 60_000 * PRICE)])
    later = order(A, next(n), BTC_PERP, True, 59_000 * PRICE, 10 * BTC_LOT)
    for raw in [bid, *oracles, later]:
        assert admit(mp, raw).code == 0
    res = c.block([bid, *oracles])
    assert res.steps_wrote and res.steps_wrote_only_prices()
    assert any(e.type == "oracle_price" for e in res.block_events)
    kept = mp.check_state.writes
    mp.update([decode_tx(t).hash for t in [bid, *oracles]], c.kv, next_ctx(c.kv), result=res)
    assert mp.check_state.writes is kept  # kept, not rechecked
    assert len(mp) == 1
