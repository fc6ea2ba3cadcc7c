"""The driver simulation trades under its faults and audits every node's state after every
commit (state/invariants.py); `replay --check-invariants` names the first broken invariant and
the height after which it broke.

A broken rule is planted the same in every node (and in the replay), so the nodes agree on
every app hash and only the invariant checks can see it. Every seed of test_driver_sim.py
trades and audits too; ``pytest -m slow tests/sim/test_sim_invariants.py`` adds
``DRIVER_SIM_HEAVY_SEEDS`` (100) seeds per validator count with heavy trading (a trading tx
every 15 ms on average); a failing one re-runs alone with ``DRIVER_SIM_HEAVY_SEED=<seed>``.
"""

import os
import re
from dataclasses import replace

import pytest
import trio

from node.replay import replay
from node.store import Store
from state import ledger, orders as O
from state.codec import encode
from tests.sim.driver_harness import (PROBE, USDC, Sim, SimFailure, genesis_doc, make_genesis,
                                      make_scenario, run_scenario, run_seed)
from tests.sim.test_driver_sim import _calm

FAUCET_QUANTUMS = 10_000 * USDC   # the sim genesis' faucet payout (its balances are 1000)


def _leaky_faucet(monkeypatch) -> None:
    """Every faucet payout credits one quantum more than the supply grows (and than the
    USDC lending pool records: `lending_pool`, checked before `money_conserved`, is the
    first invariant to break)."""
    real = ledger.mint

    def mint(view, addr, asset, amount):
        real(view, addr, asset, amount)
        if amount == FAUCET_QUANTUMS:
            extra = ledger.Ledger(view, {})
            extra.credit(addr, asset, 1)
            extra.flush()

    monkeypatch.setattr(ledger, "mint", mint)


def _faucet_script(sent: dict):
    async def script(sim) -> None:
        await trio.sleep(1.0)
        nd = sim.nodes[0]
        while not nd.up:
            await trio.sleep(0.01)
        (th, res), = await sim.submit(nd, [sim._tx(PROBE, ["faucet"])])
        sent["hash"], sent["code"] = th, res.code
    return script


def test_the_simulation_trades_and_audits_every_commit():
    st = run_seed(4, 5)
    assert st["trade_txs_admitted"] > 20 and st["fills"] > 5 and st["triggers_fired"] > 0, st
    assert st["invariant_checks"] == st["commits"] > 0, st


def test_the_simulation_catches_a_broken_invariant(monkeypatch):
    _leaky_faucet(monkeypatch)
    sent: dict = {}
    with pytest.raises(SimFailure, match=r"INVARIANT: node \d after committing height \d+: "
                                         r"lending_pool: asset USDC"):
        run_scenario(_calm(4, tx_gap_ms=0), script=_faucet_script(sent))
    assert sent["code"] == 0


def test_the_simulation_catches_a_broken_trading_index(monkeypatch):
    """Trigger orders placed with a stray client-id entry: only the sim's trading workload
    places them, and the audit after the commit sees the entry."""
    real = O.put_trigger

    def put_trigger(view, o):
        real(view, o)
        view.put(O.P_CLOID + o.owner + (10**9 + o.id).to_bytes(8, "big"),
                 encode([o.market, o.id]))

    monkeypatch.setattr(O, "put_trigger", put_trigger)
    with pytest.raises(SimFailure, match=r"INVARIANT: node \d after committing height \d+: "
                                         r"order_index: client ids: "):
        run_scenario(_calm(4, trade_gap_ms=60, min_target=30))


def test_replay_check_invariants_reports_the_first_broken_height(monkeypatch, tmp_path, capsys):
    """The chain runs on past the leak (the sim's own audit is off); its final replay of each
    store, and a replay run here (also through the command line), stop at the faucet's
    height."""
    _leaky_faucet(monkeypatch)
    monkeypatch.setattr(Sim, "_check_state", lambda self, inc, h, app_hash: None)
    sent: dict = {}
    sc = _calm(4, tx_gap_ms=0, min_target=8)
    with pytest.raises(SimFailure, match=r"REPLAY of node 0's store failed: height \d+: "
                                         r"invariant broken after the block: lending_pool"):
        run_scenario(sc, root=tmp_path, script=_faucet_script(sent))
    store = Store(tmp_path / "node0" / "data" / "db")
    try:
        h, tip = store.tx_location(sent["hash"])[0], store.tip().height
        assert tip >= h + 2
        genesis = make_genesis(sc)
        rep = replay(store, genesis, progress=False, check_every=1)
        assert not rep.ok and rep.heights == h - 1 and rep.invariant_checks == h - 1, rep
        assert rep.error.startswith(f"height {h}: invariant broken after the block: "
                                    "lending_pool: asset USDC: cash "), rep.error
        every = h + 1   # audited at h + 1 only: the first report is there
        rep = replay(store, genesis, progress=False, check_every=every)
        assert re.match(rf"height {every}: .*lending_pool", rep.error) and \
            rep.invariant_checks == 0, rep
        rep = replay(store, genesis, progress=False)   # app hashes alone: all agree
        assert rep.ok and rep.heights == tip and rep.invariant_checks == 0, rep
    finally:
        store.close()
    _cli_replay_reports(monkeypatch, capsys, tmp_path, sc, h)


def _cli_replay_reports(monkeypatch, capsys, tmp_path, sc, h: int) -> None:
    """`perpchain replay --home H [--check-invariants [EVERY]]` on that chain's node 0."""
    from node import gc_tuning
    from cli.main import main
    from node.genesis import save_genesis
    from node.home import Home

    monkeypatch.setattr(gc_tuning, "tune_gc", lambda: None)  # (leave this process's gc be)
    home = Home(tmp_path / "home")
    home.config_dir.mkdir(parents=True)
    home.db_path.parent.mkdir(parents=True)
    save_genesis(home.genesis_file, genesis_doc(sc))
    (tmp_path / "node0" / "data" / "db").rename(home.db_path)

    def run(*flags) -> tuple[int, str]:
        with pytest.raises(SystemExit) as exc:
            main(["replay", "--home", str(home.root), *flags])
            raise SystemExit(0)
        out = capsys.readouterr()
        return exc.value.code, out.out + out.err

    code, out = run("--check-invariants")
    assert code == 1 and f"height {h}: invariant broken after the block: lending_pool" in out
    code, out = run("--check-invariants", "0")
    assert code == 2 and "--check-invariants 0: the interval must be at least 1 block" in out
    code, out = run()
    assert code == 0 and "OK: every app hash" in out and "invariant" not in out, out


@pytest.mark.slow
@pytest.mark.parametrize("n", [4, 7])
def test_heavy_trading_soak(n):
    only = os.environ.get("DRIVER_SIM_HEAVY_SEED")
    seeds = [int(only)] if only else range(int(os.environ.get("DRIVER_SIM_HEAVY_SEEDS", "100")))
    failures = []
    for seed in seeds:
        try:
            run_scenario(replace(make_scenario(n, seed), trade_gap_ms=15))
        except SimFailure as e:
            failures.append(f"{e}\n  (heavy trading, trade_gap_ms=15: re-run with "
                            f"DRIVER_SIM_HEAVY_SEED={seed} pytest -m slow "
                            f"'tests/sim/test_sim_invariants.py::test_heavy_trading_soak[{n}]')")
    assert not failures, f"{len(failures)} failing seeds; first:\n" + "\n".join(failures[:3])
