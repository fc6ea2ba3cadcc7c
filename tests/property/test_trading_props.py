"""Property tests of the exchange over random order / cancel / modify streams:

* every whole-state invariant holds after every block (`state.invariants.check_invariants`:
  books never crossed and equal to a rebuild from KV, order records and indexes, order
  aggregates, long == short, the pool holds exactly the negated cost bases, money conserved),
  and the carried books of a warm node equal the records;
* fills follow price-time priority: they equal those of a plain reference matcher;
* a warm node (books carried across blocks) and a cold one (books rebuilt from KV every block),
  the dict and LevelDB stores, and different PYTHONHASHSEEDs all give the same app hashes.
"""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from state import orders as O
from state.books import Books
from state.errors import Code
from state.invariants import carried_books, check_invariants
from tests.chain_helpers import (BTC_LOT, BTC_PERP, USDC, Chain, LevelKV, action, key, order,
                                 trading_genesis)

N = 4
KEYS = [key(i) for i in range(N)]
MID = 600_000  # ticks ($60,000 at $0.1)
TICK = 100_000
ROOT = Path(__file__).resolve().parents[2]

op = st.one_of(
    st.tuples(st.just("order"), st.integers(0, N - 1), st.booleans(), st.integers(-8, 8),
              st.integers(1, 5), st.sampled_from([0, 0, 1, 2, 3])),
    st.tuples(st.just("cancel"), st.integers(0, N - 1), st.integers(0, 30), st.just(0),
              st.just(0), st.just(0)),
    st.tuples(st.just("modify"), st.integers(0, N - 1), st.integers(0, 30), st.integers(-4, 4),
              st.integers(1, 5), st.just(0)),
)
blocks = st.lists(st.lists(op, max_size=10), min_size=1, max_size=8)


def build(spec, start_ms, open_ids):
    """Txs for one block; cancels/modifies pick among ids known to have been placed."""
    txs = []
    for i, (kind, who, a, b, c, d) in enumerate(spec):
        k = KEYS[who]
        nonce = start_ms + i
        if kind == "order":
            txs.append(order(k, nonce, BTC_PERP, a, (MID + b) * TICK, c * 10 * BTC_LOT, tif=d))
        elif kind == "cancel":
            oid = open_ids[a % len(open_ids)] if open_ids else 1
            txs.append(action(k, nonce, "cancel", BTC_PERP, oid))
        else:
            oid = open_ids[a % len(open_ids)] if open_ids else 1
            txs.append(action(k, nonce, "modify", BTC_PERP, oid, (MID + b) * TICK,
                              c * 10 * BTC_LOT))
    return txs


class RefBook:
    """Price-time priority written plainly: a list, sorted on every match."""

    def __init__(self):
        self.orders = {}  # id -> [owner, is_buy, price, lots, tif]
        self.next_id = 1

    def place(self, owner, is_buy, price, lots, tif):
        oid = self.next_id
        makers = sorted((i for i, (o, b, p, s, _) in self.orders.items()
                         if b != is_buy and (p <= price if is_buy else p >= price)),
                        key=lambda i: ((self.orders[i][2] if is_buy else -self.orders[i][2]), i))
        if tif == 3 and makers:
            return None  # post-only would cross
        if tif == 2:
            avail = sum(self.orders[i][3] for i in makers if self.orders[i][0] != owner)
            if avail < lots:
                return None
        self.next_id += 1
        fills = []
        for i in makers:
            if lots == 0:
                break
            o = self.orders[i]
            if o[0] == owner:
                del self.orders[i]
                continue
            take = min(lots, o[3])
            fills.append((i, o[2], take))
            o[3] -= take
            lots -= take
            if o[3] == 0:
                del self.orders[i]
        if lots and tif in (0, 3):
            self.orders[oid] = [owner, is_buy, price, lots, tif]
        return fills


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks)
def test_matching_matches_reference_and_invariants_hold(spec):
    chain = Chain(trading_genesis(N))
    ref = RefBook()
    for block_spec in spec:
        open_ids = sorted(ref.orders)
        txs = build(block_spec, chain.time_ms, open_ids)
        res = chain.block(txs)
        for (kind, who, a, b, c, d), r in zip(block_spec, res.tx_results):
            owner = KEYS[who].pub_key
            got = [(int(x["maker_order_id"]), x["price"], x["size"])
                   for x in (dict(e.attrs) for e in r.events if e.type == "fill")]
            if kind == "order":
                fills = ref.place(owner, a, MID + b, c * 10, d)
                if fills is None:
                    assert r.code in (21, 22), r
                    continue
                assert r.code == 0, r
                want = [(i, _usd(p), _btc(s)) for i, p, s in fills]
                assert got == want
            elif kind == "cancel":
                oid = open_ids[a % len(open_ids)] if open_ids else 1
                o = ref.orders.get(oid)
                if o is None or o[0] != owner:
                    assert r.code == 28
                else:
                    assert r.code == 0
                    del ref.orders[oid]
            else:
                oid = open_ids[a % len(open_ids)] if open_ids else 1
                o = ref.orders.get(oid)
                if o is None or o[0] != owner:
                    assert r.code == 28
                    continue
                if o[2] == MID + b and c * 10 <= o[3]:
                    assert r.code == 0, r
                    o[3] = c * 10
                else:
                    del ref.orders[oid]
                    fills = ref.place(owner, o[1], MID + b, c * 10, o[4])
                    if fills is None:  # the replacement is refused: the old order stays
                        ref.orders[oid] = o
                        assert r.code in (21, 22), r
                        continue
                    assert r.code == 0, r
                    assert got == [(i, _usd(p), _btc(s)) for i, p, s in fills]
        check_invariants(chain.kv)
        book = Books().build(chain.kv, BTC_PERP)
        assert sorted(o.order_id for s in (0, 1) for o in book.orders(s)) == sorted(ref.orders)


def _usd(ticks):
    from state.amounts import format_amount
    return format_amount(ticks * TICK, 6)


def _btc(lots):
    from state.amounts import format_amount
    return format_amount(lots * BTC_LOT, 8)


def random_blocks(seed: int, n_blocks: int = 12, per_block: int = 25):
    rng = random.Random(seed)
    return [[(rng.choice(["order", "order", "order", "cancel", "modify"]), rng.randrange(N),
              rng.random() < 0.5, rng.randint(-8, 8), rng.randint(1, 5),
              rng.choice([0, 0, 1, 2, 3])) for _ in range(per_block)] for _ in range(n_blocks)]


def run_chain(chain, spec, check: bool = False):
    """(app hash, results) hex per block; `check`: audit the state (and a warm chain's
    carried books) after every block."""
    hashes = []
    for block_spec in spec:
        ids = [i for _, i in O.account_order_ids(chain.kv, KEYS[0].pub_key)] + \
              [i for _, i in O.account_order_ids(chain.kv, KEYS[1].pub_key)]
        res = chain.block(build(block_spec, chain.time_ms, sorted(ids) or [1]))
        hashes.append((res.app_hash.hex(), res.results_bytes().hex()))
        if check:
            check_invariants(chain.kv, books=carried_books(chain.cache))
    return hashes


def fill_count(results_hex: str) -> int:
    """Fill events in one block's results (tx results and block events)."""
    from state.codec import load
    return sum(1 for _, _, events in load(bytes.fromhex(results_hex))
               for kind, _ in events if kind == "fill")


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.integers(0, 10**6))
def test_warm_cold_and_leveldb_agree(tmp_path_factory, seed):
    spec = random_blocks(seed, 6, 20)
    cold = run_chain(Chain(trading_genesis(N)), spec)
    warm = run_chain(Chain(trading_genesis(N), warm=True), spec, check=True)
    kv = LevelKV(tmp_path_factory.mktemp("lvl"))
    try:
        lvl = run_chain(Chain(trading_genesis(N), kv, warm=True), spec)
    finally:
        kv.close()
    assert cold == warm == lvl


def test_warm_cache_is_not_used_on_another_parent():
    """A cache tagged with one app hash is ignored for a block built on another state."""
    spec = random_blocks(3, 4, 20)
    a = Chain(trading_genesis(N), warm=True)
    run_chain(a, spec[:2])
    b = Chain(trading_genesis(N))
    run_chain(b, spec[:1])
    b.cache = a.cache  # the wrong cache for b's state
    assert run_chain(b, spec[1:]) == run_chain(Chain(trading_genesis(N)), spec)[1:]


def trading_run_for_seed(seed: int) -> list[tuple[str, str]]:
    return run_chain(Chain(trading_genesis(N), warm=True), random_blocks(seed))


def test_same_trading_app_hashes_under_different_pythonhashseeds():
    code = ("import json; from tests.property.test_trading_props import trading_run_for_seed; "
            "print(json.dumps(trading_run_for_seed(11)))")
    outs = []
    for hs in ("0", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=hs)
        p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        outs.append([tuple(x) for x in json.loads(p.stdout)])
    here = trading_run_for_seed(11)
    assert outs[0] == outs[1] == here
    fills = [fill_count(results) for _, results in here]
    assert sum(fills) >= 20 and sum(1 for f in fills if f) >= len(fills) // 2, fills  # it traded


def _without_published_accounts(monkeypatch) -> None:
    """Every account is decoded from its record, never taken back from `Ledger.flush`."""
    from state import ledger
    monkeypatch.setattr(ledger, "_MAX_PUBLISHED", 0)  # flush forgets every published account


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.integers(0, 10**6))
def test_published_accounts_change_nothing(monkeypatch, seed):
    """Accounts handed from one sub-transaction to the next (state.ledger: Ledger.flush) give
    the results and app hashes of decoding every account afresh, also when orders fail
    their margin check after settling (the failed tx's accounts must not leak)."""
    spec = random_blocks(seed, 5, 30)
    genesis = trading_genesis(N, amount=10 * USDC)  # little collateral: margin failures
    with_cache = run_chain(Chain(genesis, warm=True), spec)
    with monkeypatch.context() as m:
        _without_published_accounts(m)
        fresh = run_chain(Chain(genesis, warm=True), spec)
    assert with_cache == fresh
    codes = {c for _, results in with_cache for c in _codes(results)}
    assert int(Code.INSUFFICIENT_MARGIN) in codes  # the workload does reach the rollback path


def _codes(results_hex: str) -> list[int]:
    from state.codec import load
    return [r[0] for r in load(bytes.fromhex(results_hex))]
