"""State sync: a 4-validator localnet runs with a full-state digest every 5 blocks; a 5th node
starts from a `perpchain export` of one node at a digest height, checked against the hash of
the next block (the trust root), syncs the later blocks from its peers and reaches the same
app hashes. A wrong trust hash or an edited snapshot is refused and leaves the node empty."""

import json
import os
import signal
import subprocess
import sys

import httpx
import pytest

from localnet import cluster
from node.config import Config, render_config
from node.genesis import load_genesis
from node.home import init_home
from node.keys import KeyPair, load_key
from node.store import Store
from rpc.client import Client
from tests.e2e.conftest import fast_timeouts, free_base_port, perpchain, wait_until

pytestmark = pytest.mark.e2e
EVERY = 5


def rpc(url, method, **params):
    r = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
                   timeout=10).json()
    return r["result"]


def _status(url):
    try:
        return rpc(url, "status")["sync_info"]
    except (httpx.HTTPError, KeyError):
        return None


def _height(url) -> int:
    return int((_status(url) or {}).get("latest_block_height", 0))


def _fifth_home(d, base):
    """A non-validator home beside the localnet's (the validators must allow its node id)."""
    e = cluster.NodeEntry(4, d / "node4", base + 40, base + 39)
    cfg = Config(moniker="node4")
    init_home(e.home, "placeholder", 0, cfg)
    return e, load_key(e.home / "config" / "node_key.json").node_id


def _join(d, e, entries):
    """Peers and genesis of the network; listed in the manifest so `down` stops it."""
    cfg = Config(moniker="node4")
    cfg.rpc.laddr, cfg.p2p.laddr = f"tcp://127.0.0.1:{e.rpc_port}", f"tcp://127.0.0.1:{e.p2p_port}"
    fast_timeouts(cfg)
    cfg.p2p.persistent_peers = ",".join(
        f"{load_key(x.home / 'config' / 'node_key.json').node_id}@127.0.0.1:{x.p2p_port}"
        for x in entries)
    (e.home / "config" / "config.toml").write_text(render_config(cfg))
    (e.home / "config" / "genesis.json").write_text(
        (entries[0].home / "config" / "genesis.json").read_text())
    m = json.loads((d / "localnet.json").read_text())
    m["nodes"].append({"index": 4, "home": "node4", "rpc_port": e.rpc_port, "p2p_port": e.p2p_port})
    (d / "localnet.json").write_text(json.dumps(m))


def _start(e, *args):
    log = open(e.log_file, "ab")
    proc = subprocess.Popen([sys.executable, "-m", "cli", "start", "--home", str(e.home), *args],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    e.pid_file.write_text(f"{proc.pid}\n")
    return proc


def test_a_fifth_node_joins_from_a_snapshot(tmp_path):
    d = (tmp_path / "ln").resolve()
    base = free_base_port(5)

    def edit(doc, _ms):
        doc["app_state"]["state_digest_interval"] = EVERY

    fifth, fifth_id = _fifth_home(d, base)

    def configure(cfg):
        fast_timeouts(cfg)
        cfg.p2p.allowed_peer_ids = fifth_id
    entries = cluster.create(d, 4, base, "sync-test", "100ms", configure, edit)
    try:
        cluster.up(d, feeders=False)
        for _ in range(3):
            Client(entries[0].rpc_url, KeyPair.generate()).faucet()
        wait_until(lambda: _height(entries[3].rpc_url) >= 2 * EVERY + 2, 60, "height 12")
        # stop node3, export its state at its last digest height, start it again
        victim = entries[3]
        os.kill(victim.pid(), signal.SIGTERM)
        wait_until(lambda: victim.pid() is None, 20, "node3 to stop")
        s = Store(victim.home / "data" / "perpchain.db")
        tip = s.tip().height
        s.close()
        h = tip // EVERY * EVERY
        snap = tmp_path / "snap.jsonl"
        perpchain("export", "--home", str(victim.home), "--height", str(h), "--out", str(snap),
                  check=True)
        cluster.up(d, feeders=False)
        wait_until(lambda: _height(entries[0].rpc_url) > h + 1, 30, "height H+2")
        trust = rpc(entries[0].rpc_url, "block", height=str(h + 1))["block_id"]["hash"]
        _join(d, fifth, entries)

        # refused: a wrong trust hash; an edited snapshot (its digest line fixed up)
        bad = perpchain("start", "--home", str(fifth.home), "--snapshot", str(snap),
                        "--trust-hash", "00" * 32, "--trust-rpc", entries[0].rpc_url)
        assert bad.returncode == 1 and "does not have the trusted hash" in bad.stderr, bad.stderr
        assert not any((fifth.home / "data" / "perpchain.db").glob("*"))
        edited = tmp_path / "edited.jsonl"
        _edit_one_value(snap, edited)
        bad = perpchain("start", "--home", str(fifth.home), "--snapshot", str(edited),
                        "--trust-hash", trust, "--trust-rpc", entries[0].rpc_url)
        assert bad.returncode == 1 and "does not match its app hash" in bad.stderr, bad.stderr

        _start(fifth, "--snapshot", str(snap), "--trust-hash", trust,
               "--trust-rpc", entries[0].rpc_url)
        target = _height(entries[0].rpc_url) + 3
        wait_until(lambda: _height(fifth.rpc_url) >= target, 60,
                   "the fifth node to sync past the network's height")
        st5 = _status(fifth.rpc_url)
        assert st5["earliest_block_height"] == str(h)
        k = target
        assert rpc(fifth.rpc_url, "block", height=str(k))["block"]["header"]["app_hash"] == \
            rpc(entries[0].rpc_url, "block", height=str(k))["block"]["header"]["app_hash"]
        # it re-executed every block since H itself: its own app hash at its tip X is the one
        # the network's block X+1 names
        a = _status(fifth.rpc_url)
        x = int(a["latest_block_height"])
        wait_until(lambda: _height(entries[0].rpc_url) > x, 20, "block X+1 on node0")
        assert a["latest_app_hash"].lower() == rpc(entries[0].rpc_url, "block", height=str(x + 1))[
            "block"]["header"]["app_hash"].lower()
        wait_until(lambda: (st := _status(fifth.rpc_url)) and st["catching_up"] is False
                   and int(st["heights_behind"]) <= 1, 20, "the fifth node to be caught up")
        g = load_genesis(fifth.home / "config" / "genesis.json")
        assert g.state.state_digest_interval == EVERY
    except AssertionError:
        log = d / "node4" / "node.log"
        print(log.read_text()[-3000:] if log.exists() else "(node4 never started)")
        raise
    finally:
        cluster.down(d)


def _edit_one_value(src, dst):
    import hashlib
    lines = src.read_bytes().splitlines(keepends=True)
    for i, x in enumerate(lines[1:-1], 1):
        row = json.loads(x)
        if bytes.fromhex(row["key"]).startswith(b"acct/bal/"):
            row["raw"] = row["raw"][:-2] + ("00" if row["raw"][-2:] != "00" else "01")
            lines[i] = (json.dumps(row, sort_keys=True, separators=(",", ":")) + "\n").encode()
            break
    else:
        raise AssertionError("no balance in the snapshot")
    body = b"".join(lines[:-1])
    tail = json.loads(lines[-1])
    tail["digest"] = hashlib.sha256(body).hexdigest()
    dst.write_bytes(body + (json.dumps(tail, sort_keys=True, separators=(",", ":")) + "\n").encode())
