"""A soak run (marked slow): 4 validators under load while one node at a time is killed,
restarted or frozen. Afterwards every node agrees at every height and each node's own
replay from genesis reproduces every app hash. Run: pytest -m slow tests/e2e/test_soak.py
(SOAK_SECONDS sets the length, default 60)."""

import base64
import os
import random
import signal
import threading
import time

import httpx
import pytest

from node.keys import KeyPair
from state.tx import build_tx
from tests.e2e.conftest import perpchain
from tests.e2e.test_consensus import agree, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_soak_faults_under_load(net4):
    seconds = float(os.environ.get("SOAK_SECONDS", "60"))
    rng = random.Random(int(os.environ.get("SOAK_SEED", "1")))
    keys = [KeyPair.generate() for _ in range(20)]
    c = net4.client()
    chain_id = c.chain_id
    base = int(time.time() * 1000)
    for k in keys:
        c.call("broadcast_tx_sync", tx=base64.b64encode(build_tx(chain_id, k.private, base,
                                                                 ["faucet"])).decode())
    stop = threading.Event()

    def load():
        i = 0
        http = httpx.Client(timeout=5)
        while not stop.is_set():
            url = net4.entries[i % 4].rpc_url
            body = [{"jsonrpc": "2.0", "id": j, "method": "broadcast_tx_sync",
                     "params": {"tx": base64.b64encode(build_tx(
                         chain_id, k.private, base + 1 + i,
                         ["transfer", keys[(j + 1) % len(keys)].pub_key, "USDC", 1])).decode()}}
                    for j, k in enumerate(keys)]
            i += 1
            try:
                http.post(url, json=body)
            except httpx.HTTPError:
                pass  # that node is down right now
            time.sleep(0.05)

    t = threading.Thread(target=load)
    t.start()
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            k = rng.randrange(4)
            e = net4.entries[k]
            fault = rng.choice(["kill", "freeze", "rest"])
            if fault == "kill" and e.pid():
                os.kill(e.pid(), signal.SIGKILL)
                time.sleep(rng.uniform(0.5, 3))
                net4.restart()
            elif fault == "freeze" and e.pid():
                pid = e.pid()
                os.kill(pid, signal.SIGSTOP)
                time.sleep(rng.uniform(0.5, 4))
                os.kill(pid, signal.SIGCONT)
            time.sleep(rng.uniform(0.5, 2))
    finally:
        stop.set()
        t.join()
    net4.restart()
    top = max(h for h in net4.heights() if h is not None)
    wait_until(lambda: min(h or 0 for h in net4.heights()) >= top + 2, 60, "all nodes to converge")
    assert agree(net4) > 20
    net4.down()
    for e in net4.entries:
        rep = perpchain("replay", "--home", str(e.home), check=True, timeout=600)
        assert "OK:" in rep.stdout
