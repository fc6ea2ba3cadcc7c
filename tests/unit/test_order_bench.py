"""The bench's order flow (localnet/order_flow.py) and its report (localnet/order_bench.py),
without a network: what is signed, and how figures are summarised."""

from localnet import order_bench
from localnet.bench_probes import Sample, Target
from localnet.order_flow import CANCEL_AFTER_S, ORDER_LIFETIME_S, MarketSpec, OrderFlow
from node.keys import KeyPair
from state.tx import decode_tx

SPEC = MarketSpec(1, "BTC-USD", 100_000, 10_000, 61_000 * 10**6)


def actions(raws: list[bytes]) -> list[tuple]:
    """(signer, nonce, action) of each signed tx (docs/PROTOCOL.md 2.1)."""
    return [(t.signer, t.nonce, list(t.action)) for t in map(decode_tx, raws)]


def test_the_flow_places_crosses_and_cancels_with_increasing_nonces():
    keys = [KeyPair.generate() for _ in range(3)]
    flow = OrderFlow("c", keys, SPEC, 1_000)
    txs = actions(flow.take(60, now_s=0.0, wall_ms=5_000) +
                  flow.take(60, now_s=CANCEL_AFTER_S + 1, wall_ms=8_000))
    assert flow.mix["place"] + flow.mix["cross"] + flow.mix["cancel"] == 120
    assert flow.mix["cancel"] > 0 and flow.mix["cross"] > 0
    # no cancel before its order is old enough: the first 60 only place and cross
    assert all(a[0] != "cancel_cloid" for _, _, a in txs[:60])
    for k in keys:
        nonces = [n for s, n, _ in txs if s == k.pub_key]
        assert nonces == list(range(1_000, 1_000 + len(nonces)))
    placed = {(s, a[9]) for s, _, a in txs if a[0] == "order" and a[6] == 0}
    cancelled = [(s, a[2]) for s, _, a in txs if a[0] == "cancel_cloid"]
    assert cancelled and all(c in placed for c in cancelled)   # only its own placed orders
    assert len(set(cancelled)) == len(cancelled)
    for _, _, a in txs:
        if a[0] == "order":
            assert a[4] % SPEC.tick_units == 0 and a[5] % SPEC.lot_units == 0
            resting, buy, px = a[6] == 0, a[2], a[4]
            # resting orders expire (the book stays bounded), IOCs need no expiry
            assert a[10] in ((5_000 + ORDER_LIFETIME_S * 1000, 8_000 + ORDER_LIFETIME_S * 1000)
                             if resting else (0,))
            # resting orders stay on their side of the mid; IOCs cross it
            assert (px < SPEC.mid_units) == (buy if resting else not buy)


def test_memory_growth_is_measured_from_the_first_minute():
    targets = [Target("node0", "u", 1), Target("node1", "v", None)]
    samples = [Sample(t, [0, 0], [r, None]) for t, r in
               ((0.0, 100.0), (30.0, 150.0), (60.5, 200.0), (120.0, 210.0))]
    m = order_bench.memory(targets, samples)
    assert m["node0"] == {"pid": 1, "rss_start_mib": 100.0, "rss_1min_mib": 200.0,
                          "rss_end_mib": 210.0, "rss_max_mib": 210.0,
                          "growth_after_1min_pct": 5.0}
    assert m["node1"]["rss_end_mib"] is None
    short = order_bench.memory(targets, samples[:2])
    assert short["node0"]["growth_after_1min_pct"] is None


def test_memory_figures_are_medians_of_ten_seconds_not_one_peak():
    targets = [Target("node0", "u", 1)]
    rss = [(0.0, 50.0)] + [(60.0 + k, 100.0 + (30 if k == 0 else 0)) for k in range(10)] + \
        [(300.0 + k, 110.0 + (40 if k == 9 else 0)) for k in range(10)]
    m = order_bench.memory(targets, [Sample(t, [0], [r]) for t, r in rss])["node0"]
    assert (m["rss_1min_mib"], m["rss_end_mib"], m["rss_max_mib"]) == (100.0, 110.0, 150.0)
    assert m["growth_after_1min_pct"] == 10.0


def test_refusals_are_grouped_without_their_numbers():
    assert order_bench._reason("no open order with client id 9 of this account") == \
        order_bench._reason("no open order with client id 12 of this account")


def test_the_progress_bar_shows_the_counters(capsys):
    class Counted:
        accepted, committed = 1234, 1200

    bar, tick = order_bench._progress(10, Counted, Counted, enabled=True)
    tick(Sample(3.4, [7, None], [50.0, None]))
    assert bar.n == 3
    bar.refresh()
    bar.close()
    err = capsys.readouterr().err
    assert "accepted 1,234 committed 1,200 mempool 7" in err
