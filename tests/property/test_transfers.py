"""Property tests: supply is conserved (state.invariants), the state matches a plain reference model, and the
same blocks give the same app hash on every backend and in every process."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from state import ledger
from state.errors import Code
from state.invariants import check_invariants
from tests.chain_helpers import USDC, Chain, LevelKV, faucet, genesis, key, transfer

N_KEYS = 5
KEYS = [key(i) for i in range(N_KEYS)]
ROOT = Path(__file__).resolve().parents[2]

tx_strategy = st.one_of(
    st.tuples(st.just("transfer"), st.integers(0, N_KEYS - 1), st.integers(0, N_KEYS - 1),
              st.integers(0, 1500 * USDC), st.integers(0, 6), st.sampled_from(["USDC", "BTC"])),
    st.tuples(st.just("faucet"), st.integers(0, N_KEYS - 1), st.just(0), st.just(0),
              st.integers(0, 6), st.just("USDC")),
)
blocks_strategy = st.lists(st.lists(tx_strategy, max_size=8), min_size=1, max_size=6)


def build_blocks(spec, start_ms):
    """Turn a hypothesis spec into tx bytes; nonces collide on purpose (offset 0..6)."""
    out, t = [], start_ms
    for block in spec:
        t += 1000
        txs = []
        for kind, src, dst, amount, off, asset in block:
            if kind == "transfer":
                txs.append(transfer(KEYS[src], t + off, KEYS[dst].pub_key, amount, asset))
            else:
                txs.append(faucet(KEYS[src], t + off))
        out.append(txs)
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks_strategy)
def test_supply_conserved_and_matches_reference_model(spec):
    g = genesis(N_KEYS)
    chain = Chain(g)
    model = {(k.pub_key, "USDC"): 1000 * USDC for k in KEYS}
    used: dict[bytes, set] = {k.pub_key: set() for k in KEYS}
    faucet_last: dict[bytes, int] = {}
    for txs, block in zip(build_blocks(spec, chain.time_ms), spec):
        res = chain.block(txs)
        for (kind, src, dst, amount, off, asset), r in zip(block, res.tx_results):
            s, d = KEYS[src].pub_key, KEYS[dst].pub_key
            nonce = chain.time_ms + off
            if nonce in used[s]:
                assert r.code == Code.NONCE_DUPLICATE
                continue
            used[s].add(nonce)
            if kind == "faucet":
                last = faucet_last.get(s)
                if last is not None and chain.time_ms < last + g.faucet.interval_ms:
                    assert r.code == Code.FAUCET_RATE_LIMITED
                else:
                    assert r.code == 0
                    faucet_last[s] = chain.time_ms
                    model[(s, "USDC")] = model.get((s, "USDC"), 0) + g.faucet.amount_quantums
            elif amount == 0:
                assert r.code == Code.INVALID_AMOUNT
            elif model.get((s, asset), 0) < amount:
                assert r.code == Code.INSUFFICIENT_BALANCE
            else:
                assert r.code == 0
                model[(s, asset)] = model.get((s, asset), 0) - amount
                model[(d, asset)] = model.get((d, asset), 0) + amount
        check_invariants(chain.kv)  # money conserved: every balance sums to the supply
        for asset in ("USDC", "BTC"):
            for k in KEYS:
                assert ledger.balance(chain.kv, k.pub_key, asset) == model.get((k.pub_key, asset), 0)


@settings(max_examples=15, deadline=None)
@given(blocks_strategy)
def test_dict_and_leveldb_backends_agree(tmp_path_factory, spec):
    mem = Chain(genesis(N_KEYS))
    lvl_kv = LevelKV(tmp_path_factory.mktemp("lvl"))
    try:
        lvl = Chain(genesis(N_KEYS), lvl_kv)
        for txs in build_blocks(spec, mem.time_ms):
            a, b = mem.block(txs), lvl.block(txs)
            assert a.app_hash == b.app_hash
            assert a.results_bytes() == b.results_bytes()
    finally:
        lvl_kv.close()


def app_hashes_for_seed(seed: int) -> list[str]:
    """A fixed pseudo-random chain (the same for a seed in every process)."""
    rng = random.Random(seed)
    chain = Chain(genesis(N_KEYS))
    spec = [[("transfer", rng.randrange(N_KEYS), rng.randrange(N_KEYS),
              rng.randrange(0, 300 * USDC), rng.randrange(4), "USDC") for _ in range(20)]
            for _ in range(10)]
    return [chain.block(txs).app_hash.hex() for txs in build_blocks(spec, chain.time_ms)]


def test_same_app_hashes_under_different_pythonhashseeds():
    code = ("import json, sys; from tests.property.test_transfers import app_hashes_for_seed; "
            "print(json.dumps(app_hashes_for_seed(7)))")
    outs = []
    for seed in ("0", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        outs.append(json.loads(p.stdout))
    assert outs[0] == outs[1] == app_hashes_for_seed(7)
    assert len(set(outs[0])) == len(outs[0])  # the chain did move
