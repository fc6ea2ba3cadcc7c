"""Golden results: fixed pseudo-random trading workloads must give byte-identical app hashes and
block results (events, logs, codes) forever, whatever is optimised underneath.

The expected digests below were computed on the code BEFORE the performance work on the apply
path (today state/placement.py, settlement.py and friends) and held through its restructure;
any change to them is a consensus change and needs a reason, never just a refresh. Two workloads:

* `feature_blocks`: every trading action on three markets (BTC and ETH perps, BTC spot), all
  order kinds and times in force, reduce-only, client ids, good-til-time expiry, triggers fired
  by oracle moves, cancels by id / client id / all, modify (in place and requeue), batches,
  leverage changes, transfers, a governance fee change to a maker rebate, day jumps (fee tiers
  from volume, stale oracle), accounts too small for their orders (rejections and roll-backs).
* `bench_blocks`: the shape of bench/bench_matching.py, smaller: a deep book, crossing IOCs that
  take 1-3 makers, cancels and the mixed flow, many txs per block.

Each runs warm (books carried across blocks, as a node) and cold (books rebuilt every block):
both must give the same digests. Txs are handed over pre-verified (as the mempool does), so no
signing is needed and the test stays fast.
"""

import hashlib
import random

import pytest

from state import orders as O
from state.books import Books
from state.codec import encode
from state.constants import DAY_MS
from state.markets import FeeTier
from state.tx import Tx, check_action, tx_hash
from tests.chain_helpers import (BTC_LOT, BTC_PERP, BTC_SPOT, CHAIN_ID, ETH_LOT, ETH_PERP, GOV,
                                 PRICE, USDC, VALIDATORS, Chain, key, trading_genesis)

N_ACCOUNTS = 10
KEYS = [key(i) for i in range(N_ACCOUNTS)]
KEYS_B = [key(i) for i in range(31)]  # the bench workload: 30 makers and a taker
BTC_TICK, ETH_TICK = 100_000, 10_000
LOT = {BTC_PERP: BTC_LOT, ETH_PERP: ETH_LOT, BTC_SPOT: BTC_LOT}
TICKS = {BTC_PERP: BTC_TICK, ETH_PERP: ETH_TICK, BTC_SPOT: BTC_TICK}


class Gen:
    """Pre-verified txs with unique nonces (one clock for every signer)."""

    def __init__(self):
        self.nonce = 0

    def tx(self, pub: bytes, action: list, now_ms: int) -> Tx:
        self.nonce = max(self.nonce + 1, now_ms)
        raw = encode([CHAIN_ID, pub, self.nonce, action, bytes(64)])
        return Tx(CHAIN_ID, pub, self.nonce, check_action(action), bytes(64), raw, tx_hash(raw))


def _digest(chain: Chain, blocks) -> tuple[str, str, int]:
    """Apply blocks (a generator that sees the chain) and digest app hashes and results."""
    h = hashlib.sha256()
    n = 0
    for txs, dt in blocks(chain):
        known = {t.hash: t for t in txs}
        res = chain.block([t.raw for t in txs], dt, known)
        h.update(res.app_hash)
        h.update(hashlib.sha256(res.results_bytes()).digest())
        n += 1
    return chain.app_hash.hex(), h.hexdigest(), n


# -- workload 1: every feature ------------------------------------------------------------------

def feature_blocks(seed: int = 20240601, n_blocks: int = 120):
    tiers = (FeeTier(0, 0, 0), FeeTier(200_000 * USDC, 50, 30),
             FeeTier(1_000_000 * USDC, 100, 60))

    def genesis():
        return trading_genesis(N_ACCOUNTS, amount=1_000_000 * USDC, btc=20 * 10**8,
                               fee_tiers=tiers)

    def blocks(chain: Chain):
        rng = random.Random(seed)
        g = Gen()
        mid = {BTC_PERP: 60_000 * PRICE, ETH_PERP: 3_000 * PRICE, BTC_SPOT: 60_000 * PRICE}
        oracle_px = {"BTC": 60_000 * PRICE, "ETH": 3_000 * PRICE}
        now = chain.time_ms + 1000
        # Block 1: make accounts 6..9 small (margin and balance rejections later).
        yield [g.tx(KEYS[i].pub_key, ["transfer", KEYS[0].pub_key, "USDC", 995_000 * USDC], now)
               for i in range(6, 10)] + \
              [g.tx(KEYS[i].pub_key, ["transfer", KEYS[1].pub_key, "BTC", 19 * 10**8], now)
               for i in range(6, 10)], 1000
        for b in range(n_blocks):
            dt = 1000
            if b in (40, 80):
                dt = DAY_MS + 17_000  # a new fee day; the oracle is stale for a block
            elif rng.random() < 0.2:
                dt = rng.randint(1_000, 20_000)
            now = chain.time_ms + dt
            txs = []
            if b in (40, 80) or rng.random() < 0.35:
                for asset in ("BTC", "ETH"):
                    step = oracle_px[asset] // 200
                    oracle_px[asset] += rng.randint(-3, 3) * step
                vals = VALIDATORS if rng.random() < 0.85 else VALIDATORS[:1]
                txs += [g.tx(v.pub_key, ["oracle", [["BTC", oracle_px["BTC"]],
                                                    ["ETH", oracle_px["ETH"]]]], now)
                        for v in vals]
            mid[BTC_PERP] = mid[BTC_SPOT] = oracle_px["BTC"]
            mid[ETH_PERP] = oracle_px["ETH"]
            if b == 10:
                txs.append(g.tx(GOV.pub_key, ["gov_set_param", BTC_PERP, "maker_fee_ppm", -100,
                                              chain.height + 3], now))
            if b == 60:
                txs.append(g.tx(GOV.pub_key, ["gov_set_param", BTC_PERP, "taker_fee_ppm", 700,
                                              chain.height + 2], now))
            open_ids = {}
            for i, k in enumerate(KEYS):
                open_ids[i] = O.account_order_ids(chain.kv, k.pub_key)
            all_open = sorted(x for ids in open_ids.values() for x in ids)
            recs = {x: O.get_open(chain.kv, *x) for x in all_open}
            for _ in range(rng.randint(15, 45)):
                who = rng.randrange(N_ACCOUNTS)
                act = _feature_action(rng, who, mid, now, open_ids[who], all_open, recs)
                txs.append(g.tx(KEYS[who].pub_key, act, now))
            if rng.random() < 0.1:  # a replayed nonce: rejected without trace
                t = txs[-1]
                txs.append(Tx(t.chain_id, t.signer, t.nonce, t.action, t.signature, t.raw + b"",
                              t.hash))
            yield txs, dt

    return genesis, blocks


def _order_action(rng, who, mid, now):
    market = rng.choice([BTC_PERP, BTC_PERP, BTC_PERP, ETH_PERP, BTC_SPOT])
    tick = TICKS[market]
    px = mid[market] // tick + rng.randint(-30, 30)
    is_buy = rng.random() < 0.5
    r = rng.random()
    kind, tif, trigger, reduce_only = 0, rng.choice([0, 0, 0, 1, 1, 2, 3]), 0, False
    if market != BTC_SPOT and r < 0.08:
        kind = rng.choice([2, 3, 4, 5])
        trig = mid[market] // tick + rng.randint(-60, 60)
        trigger = max(trig, 1) * tick
        tif = 1 if kind in (2, 4) else rng.choice([0, 1])
        reduce_only = tif == 1 and rng.random() < 0.5
    elif r < 0.16:
        kind, tif = 1, rng.choice([1, 2])
        px += 40 if is_buy else -40
    elif market != BTC_SPOT and r < 0.24:
        tif, reduce_only = rng.choice([1, 2]), True
    big = (who < 3 or who >= 6) and rng.random() < 0.3
    lots = rng.randint(1, 40) * 10 * (rng.randint(20, 200) if big else 1)
    size = lots * LOT[market]
    if rng.random() < 0.03:
        size += 1  # not a lot multiple
    price = max(px, 1) * tick
    if rng.random() < 0.03:
        price += 1  # not a tick multiple
    cloid = rng.randint(1, 40) if rng.random() < 0.3 else 0
    expiry = now + rng.randint(-500, 6_000) if rng.random() < 0.12 else 0
    return ["order", market, is_buy, kind, price, size, tif, reduce_only, trigger, cloid,
            max(expiry, 0)]


def _feature_action(rng, who, mid, now, mine, all_open, recs):
    r = rng.random()
    if r < 0.55 or not all_open:
        return _order_action(rng, who, mid, now)
    pick = rng.choice(mine) if mine and rng.random() < 0.85 else rng.choice(all_open)
    market, oid = pick
    if r < 0.68:
        return ["cancel", market, oid if rng.random() < 0.95 else oid + 10_000]
    if r < 0.73:
        return ["cancel_cloid", rng.choice([market, BTC_PERP]), rng.randint(1, 40)]
    if r < 0.75:
        return ["cancel_all", rng.choice([0, market, ETH_PERP])]
    if r < 0.86:
        tick = TICKS[market]
        rec = recs[pick]
        if rng.random() < 0.4:  # same price, maybe smaller: in place (keeps priority)
            lots = max(rng.randint(0, rec.size_lots // 10) * 10, 10)
            return ["modify", market, oid, rec.price_ticks * tick, lots * LOT[market]]
        px = mid[market] // tick + rng.randint(-30, 30)
        lots = rng.randint(1, 40) * 10
        return ["modify", market, oid, px * tick, lots * LOT[market]]
    if r < 0.95:
        subs = []
        for _ in range(rng.randint(2, 6)):
            x = rng.random()
            if x < 0.6:
                subs.append(_order_action(rng, who, mid, now))
            elif x < 0.8 and mine:
                subs.append(["cancel", *rng.choice(mine)])
            elif x < 0.9:
                subs.append(["cancel_cloid", BTC_PERP, rng.randint(1, 40)])
            else:
                m2, o2 = rng.choice(mine or all_open)
                subs.append(["modify", m2, o2, mid[m2] // TICKS[m2] * TICKS[m2],
                             rng.randint(1, 20) * 10 * LOT[m2]])
        return ["batch", subs]
    if r < 0.98:
        return ["set_leverage", rng.choice([BTC_PERP, ETH_PERP, BTC_SPOT]),
                rng.choice([1, 2, 3, 5, 10, 20, 25, 50, 60])]
    return ["transfer", KEYS[rng.randrange(N_ACCOUNTS)].pub_key, "USDC",
            rng.randint(1, 5_000) * USDC]


# -- workload 2: the bench's shape --------------------------------------------------------------

def bench_blocks(seed: int = 7, n_book: int = 1_500, n_ops: int = 600, block: int = 300):
    n_makers = 30
    mid = 600_000

    def genesis():
        return trading_genesis(n_makers + 1, amount=10_000_000 * USDC)

    def blocks(chain: Chain):
        rng = random.Random(seed)
        g = Gen()
        resting: dict[int, int] = {}
        next_id = [1]
        planned: dict[int, int] = {}

        def order(who, is_buy, ticks, lots, tif=0):
            return ["order", BTC_PERP, is_buy, 0, ticks * BTC_TICK, lots * BTC_LOT, tif, False,
                    0, 0, 0]

        def add(now):
            who = rng.randrange(n_makers)
            if rng.random() < 0.5:
                a = order(who, True, mid - rng.randint(1, 100), rng.randint(1, 10) * 10)
            else:
                a = order(who, False, mid + rng.randint(1, 100), rng.randint(1, 10) * 10)
            resting[next_id[0]] = who
            next_id[0] += 1
            return g.tx(KEYS_B[who].pub_key, a, now)

        def cross(now):
            is_buy = rng.random() < 0.5
            k = rng.randint(1, 3)
            sizes, last_px = [], None
            for o in book.orders(1 if is_buy else 0):
                left = o.size_lots - planned.get(o.order_id, 0)
                if left <= 0:
                    continue
                take = left if len(sizes) < k - 1 else rng.randint(1, left)
                sizes.append(take)
                planned[o.order_id] = planned.get(o.order_id, 0) + take
                last_px = o.price_ticks
                if len(sizes) == k:
                    break
            next_id[0] += 1
            lots = max(sum(sizes), 10)
            lots = lots - lots % 10 if lots % 10 else lots
            return g.tx(KEYS_B[n_makers].pub_key, order(n_makers, is_buy, last_px, lots, 1), now)

        def cancel(now):
            oid = rng.choice(sorted(i for i in resting if i not in planned)[:5000])
            who = resting.pop(oid)
            return g.tx(KEYS_B[who].pub_key, ["cancel", BTC_PERP, oid], now)

        def mixed(now):
            x = rng.random()
            return add(now) if x < 0.5 else cross(now) if x < 0.8 else cancel(now)

        def after(res):
            for r in res.tx_results:
                for e in r.events:
                    a = dict(e.attrs)
                    if e.type == "fill" and a["maker_remaining"] == "0":
                        resting.pop(int(a["maker_order_id"]), None)
                    elif e.type == "cancel":
                        resting.pop(int(a["order_id"]), None)
                    elif e.type == "order" and a["status"] not in ("open",
                                                                    "partially_filled_open"):
                        resting.pop(int(a["order_id"]), None)

        for make, n in ((add, n_book), (cross, n_ops // 3), (cancel, n_ops), (add, n_ops),
                        (mixed, n_ops)):
            while n > 0:
                k = min(n, block)
                planned.clear()
                # Plan against the book as the previous block left it (a rebuild from KV).
                book = Books().build(chain.kv, BTC_PERP)
                now = chain.time_ms + 250
                yield [make(now) for _ in range(k)], 250
                after(chain.last)
                n -= k

    return genesis, blocks


class RecChain(Chain):
    """A Chain that keeps its last BlockResult (the bench workload tracks its orders)."""

    last = None

    def block(self, txs, dt_ms=1000, known=None):
        self.last = super().block(txs, dt_ms, known)
        return self.last


def run(workload, warm: bool) -> tuple[str, str, int]:
    genesis, blocks = workload
    return _digest(RecChain(genesis(), warm=warm), blocks)


# Computed before the apply-path optimisations (see the module docstring):
# (final app hash, sha256 chain over every block's app hash and results, number of blocks).
FEATURE_GOLDEN = {
    20240601: ("10fcaa6d84e0f2bd25fc0379fba23919acf296eb99efc9b10e02d5659b0dda16",
               "890ccf3ac8272f43d16dc0dce20613495533101448ac6edc3e88a8247f9ebe30", 121),
    5: ("15f03b199d39a1173ef90e9bd359f4e4fd25d2136d554bd9648f202e892f3cbb",
        "a1f2da448bf3e03b44e0c75329cf28537dcd2c7e52daaf007353071c40c82b29", 121),
}
BENCH_GOLDEN = ("27addbd12af6d579aad8e42b1466e907d69eae8ec29fb6667dcd76951a7d40d4",
                "54eead2473e530b042aa2e92c97a0e16e28e65b2084ad8440c26d1886ba59968", 12)


@pytest.mark.parametrize("seed", sorted(FEATURE_GOLDEN))
@pytest.mark.parametrize("warm", [True, False])
def test_feature_workload_is_byte_identical(seed, warm):
    assert run(feature_blocks(seed), warm) == FEATURE_GOLDEN[seed]


@pytest.mark.parametrize("warm", [True, False])
def test_bench_workload_is_byte_identical(warm):
    assert run(bench_blocks(), warm) == BENCH_GOLDEN
