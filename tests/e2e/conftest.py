"""Fixtures that run real node processes on 127.0.0.1 (via `perpchain localnet`)."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from localnet import cluster
from node.keys import KeyPair
from rpc.client import Client

ROOT = Path(__file__).resolve().parents[2]


def _free(port: int) -> bool:
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False


def free_port_pair() -> int:
    """A port p such that p (RPC) and p-1 (p2p) are both free right now. Chosen below the
    kernel's ephemeral range (32768+), so no outgoing connection can take it meanwhile."""
    import random
    for _ in range(200):
        p = random.randrange(20_001, 32_000)
        if _free(p) and _free(p - 1):
            return p
    raise RuntimeError("no free port pair")


def perpchain(*args: str, check: bool = False, timeout: float = 120) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True,
                       cwd=ROOT, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"perpchain {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}")
    return p


def free_base_port(n: int) -> int:
    """A base port p such that p + 10k, p - 1 + 10k (RPC, p2p) and p - 2 + 10k (the
    Hyperliquid API) are free for k < n."""
    for _ in range(200):
        p = free_port_pair()
        if p + 10 * n < 32_700 and all(_free(q) for k in range(n)
                                       for q in (p + 10 * k, p - 1 + 10 * k, p - 2 + 10 * k)):
            return p
    raise RuntimeError("no free ports")


def fast_timeouts(cfg) -> None:
    """Short round timeouts so fault tests move quickly on loopback."""
    c = cfg.consensus
    c.timeout_propose, c.timeout_propose_delta = "400ms", "200ms"
    c.timeout_prevote, c.timeout_prevote_delta = "200ms", "100ms"
    c.timeout_precommit, c.timeout_precommit_delta = "200ms", "100ms"


def wait_until(pred, timeout: float = 20.0, what: str = "condition", poll: float = 0.1):
    """pred()'s first truthy value, polling every `poll` s for up to `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


class Net:
    def __init__(self, d: Path, n: int = 1, configure=None):
        self.dir = d

        def config(cfg):
            fast_timeouts(cfg)
            if configure is not None:
                configure(cfg)
        self.entries = cluster.up(d, n, free_base_port(n), timeout_commit="100ms",
                                  configure=config, feeders=False)
        self.node = self.entries[0]
        self.url = self.node.rpc_url

    def client(self, key: KeyPair | None = None, k: int = 0) -> Client:
        return Client(self.entries[k].rpc_url, key)

    def kill9(self, k: int = 0) -> None:
        e = self.entries[k]
        os.kill(e.pid(), signal.SIGKILL)
        while e.pid() is not None:
            pass

    def restart(self) -> None:
        cluster.up(self.dir, feeders=False)

    def down(self) -> None:
        cluster.down(self.dir)

    def heights(self) -> list[int | None]:
        return [r["height"] for r in cluster.status(self.dir)]


@pytest.fixture
def net(tmp_path):
    n = Net(tmp_path / "localnet")
    try:
        yield n
    finally:
        n.down()


@pytest.fixture
def net4(tmp_path):
    n = Net(tmp_path / "localnet4", 4)
    try:
        yield n
    finally:
        n.down()


@pytest.fixture
def funded(net):
    """(alice, bob) keys; alice holds the faucet payout."""
    alice, bob = KeyPair.generate(), KeyPair.generate()
    net.client(alice).faucet()
    return alice, bob
