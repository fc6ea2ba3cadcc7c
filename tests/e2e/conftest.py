"""Fixtures that run real node processes on 127.0.0.1 (via `perpchain localnet`)."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from localnet import cluster
from node.keys import KeyPair
from rpc.client import Client

ROOT = Path(__file__).resolve().parents[2]


def free_port_pair() -> int:
    """A port p such that p (RPC) and p-1 (p2p) are both free right now."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", p - 1))
            return p
        except OSError:
            continue
    raise RuntimeError("no free port pair")


def perpchain(*args: str, check: bool = False, timeout: float = 120) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "node", *args], capture_output=True, text=True,
                       cwd=ROOT, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"perpchain {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}")
    return p


class Net:
    def __init__(self, d: Path):
        self.dir = d
        self.entries = cluster.up(d, 1, free_port_pair(), timeout_commit="100ms")
        self.node = self.entries[0]
        self.url = self.node.rpc_url

    def client(self, key: KeyPair | None = None) -> Client:
        return Client(self.url, key)

    def kill9(self) -> None:
        pid = self.node.pid()
        os.kill(pid, signal.SIGKILL)
        while self.node.pid() is not None:
            pass

    def restart(self) -> None:
        cluster.up(self.dir, 1)

    def down(self) -> None:
        cluster.down(self.dir)


@pytest.fixture
def net(tmp_path):
    n = Net(tmp_path / "localnet")
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
