"""Property tests of the order types of issue 9 over random order flow:

* a resting reduce-only order never makes its owner's |position| grow or flip: every fill of
  a reduce-only order (taker or maker) moves its owner's position toward zero, never past it;
* after every block the resting reduce-only orders of each account are on the closing side
  and total at most |position| (`check_invariants`: reduce_only_within_position), and every
  other whole-state invariant holds (indexes of rord/ and TWAPs included);
* replay: two fresh nodes (one carrying its books, one rebuilding them every block) applying
  the same blocks of reduce-only orders, trigger modifications and TWAPs get the same app
  hash after every block.
"""

import random
from decimal import Decimal

from hypothesis import HealthCheck, given, settings, strategies as st

from state import orders as O
from state.invariants import check_invariants
from state.positions import load_account
from tests.chain_helpers import BTC_LOT, BTC_PERP, PRICE, Chain, action, key, oracle_tx, \
    order, trading_genesis

N = 4
KEYS = [key(i) for i in range(N)]
GTC, IOC, ALO = 0, 1, 3

op = st.tuples(st.integers(0, N - 1), st.booleans(), st.integers(-3, 3), st.integers(1, 6),
               st.sampled_from(["plain", "plain", "ioc", "ioc", "ro", "ro", "ro_alo", "twap",
                                "pair"]))
blocks = st.lists(st.tuples(st.lists(op, max_size=12), st.integers(1_000, 40_000)),
                  min_size=2, max_size=12)


def _txs(spec, nonce: int) -> list[tuple[bytes, bool]]:
    """(tx, reduce-only?) for one op; a `pair` is a plain order and a reduce-only one on the
    same side and price (a sweep may reach both: matching rule 2)."""
    if spec[4] != "pair":
        return [(_tx(spec, nonce), spec[4].startswith("ro"))]
    return [(_tx(spec[:4] + ("plain",), nonce), False),
            (_tx(spec[:4] + ("ro",), nonce + 1), True)]


def _tx(spec, nonce: int) -> bytes:
    who, is_buy, dpx, lots, what = spec
    k, price, size = KEYS[who], (60_000 + 10 * dpx) * PRICE, lots * 10 * BTC_LOT
    if what == "twap":
        return action(k, nonce, "twap_order", BTC_PERP, is_buy, size, 300_000, False)
    tif = {"plain": GTC, "ioc": IOC, "ro": GTC, "ro_alo": ALO}[what]
    return order(k, nonce, BTC_PERP, is_buy, price, size, tif=tif,
                 reduce_only=what.startswith("ro"))


def _lots(text: str) -> int:
    return int(Decimal(text) * 10**8) // BTC_LOT


def _toward_zero(before: int, after: int) -> bool:
    return abs(after) <= abs(before) and (after == 0 or (after > 0) == (before > 0))


def _check_fills(events, pos: dict, ro_ids: set) -> None:
    """Replay the block's fills on `pos` (owner hex -> lots); reduce-only ones shrink."""
    for typ, attrs in events:
        a = dict(attrs)
        if typ == "order" and a.get("_ro"):
            ro_ids.add(a["order_id"])
        if typ != "fill":
            continue
        lots = _lots(a["size"])
        signed = lots if a["taker_side"] == "buy" else -lots
        for who, oid, d in ((a["taker"], a["taker_order_id"], signed),
                            (a["maker"], a["maker_order_id"], -signed)):
            before = pos.get(who, 0)
            pos[who] = before + d
            if oid in ro_ids:
                assert _toward_zero(before, pos[who]), (oid, before, pos[who])


def _events(res, ro_tx: list[bool]):
    """(type, attrs) of the block's events in order; the `order` events of reduce-only order
    txs are marked (their order ids join the reduce-only set)."""
    out = []
    for r, is_ro in zip(res.tx_results, ro_tx):
        for e in r.events:
            attrs = e.attrs + ((("_ro", True),) if is_ro and e.type == "order" else ())
            out.append((e.type, attrs))
    return out + [(e.type, e.attrs) for e in res.block_events]


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(blocks)
def test_resting_reduce_only_orders_never_grow_a_position(spec):
    chain = Chain(trading_genesis(N, max_age_ms=10**9), warm=True)
    nonce = chain.time_ms
    ro_ids: set = set()
    for ops, dt in spec:
        pairs = []
        for o in ops:
            nonce += 2
            pairs += _txs(o, nonce)
        pos = {k.pub_key.hex(): load_account(chain.kv, k.pub_key).size(BTC_PERP)
               for k in KEYS}
        res = chain.block([tx for tx, _ in pairs], dt_ms=dt)
        _check_fills(_events(res, [ro for _, ro in pairs]), pos, ro_ids)
        for k in KEYS:
            assert load_account(chain.kv, k.pub_key).size(BTC_PERP) == pos[k.pub_key.hex()]
        check_invariants(chain.kv)


def _waiting_triggers(chain: Chain, k) -> list[int]:
    return [oid for mid, oid in O.account_order_ids(chain.kv, k.pub_key)
            if O.get_trigger(chain.kv, mid, oid) is not None]


def _workload(seed: int, n_blocks: int = 40):
    """Blocks of (txs, dt) with reduce-only orders, triggers and their modification, TWAPs
    and oracle moves, built against a chain that applies them (so modifications name real
    waiting triggers)."""
    rng = random.Random(seed)
    gen = Chain(trading_genesis(N, max_age_ms=10**9))
    nonce = [1_700_000_000_000]

    def nx(step: int = 1):
        nonce[0] += step
        return nonce[0]
    out = []
    for h in range(n_blocks):
        txs = [tx for _ in range(rng.randint(0, 8)) for tx, _ in _txs(
            (rng.randrange(N), rng.random() < 0.5, rng.randint(-6, 6), rng.randint(1, 6),
             rng.choice(["plain", "ioc", "ro", "ro_alo", "twap", "pair"])), nx(2))]
        k = KEYS[rng.randrange(N)]
        if rng.random() < 0.3:
            txs.append(order(k, nx(), BTC_PERP, False, 55_000 * PRICE, 10 * BTC_LOT, kind=2,
                             tif=IOC, trigger=rng.randint(57_000, 59_000) * PRICE))
        waiting = _waiting_triggers(gen, k)
        if waiting and rng.random() < 0.5:
            txs.append(action(k, nx(), "modify_trigger", BTC_PERP, rng.choice(waiting),
                              rng.randint(56_000, 59_000) * PRICE, 55_000 * PRICE,
                              rng.randint(1, 3) * 10 * BTC_LOT))
        if rng.random() < 0.2:
            txs += oracle_tx(nx(), [("BTC", rng.randint(55_000, 63_000) * PRICE)])
        dt = rng.choice([1_000, 5_000, 30_000, 65_000])
        out.append((txs, dt, gen.block(txs, dt_ms=dt).app_hash))
    return out


def test_replay_of_order_types_gives_the_same_app_hashes():
    work = _workload(11)
    warm = Chain(trading_genesis(N, max_age_ms=10**9), warm=True)
    cold = Chain(trading_genesis(N, max_age_ms=10**9))
    kinds = set()
    for txs, dt, app_hash in work:
        a, b = warm.block(txs, dt_ms=dt), cold.block(txs, dt_ms=dt)
        assert a.app_hash == b.app_hash == app_hash and a.results_bytes() == b.results_bytes()
        kinds |= {e.type for r in a.tx_results for e in r.events} | \
            {e.type for e in a.block_events}
        kinds |= {dict(e.attrs).get("status") for r in a.tx_results for e in r.events}
    check_invariants(warm.kv)
    # the workload really exercised the features
    assert {"twap", "twap_slice", "twap_end", "reduce_only_shrunk", "trigger_modified",
            "trigger", "fill"} <= kinds, kinds
