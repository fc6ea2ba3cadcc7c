"""Real node processes against damaged files, dead workers, full or read-only disks, and
heavy RPC: the node refuses to start or stops with one clear line naming the file, keeps
verifying when a worker dies, leaves no process behind, and keeps committing while the RPC
is busy. Disk-full and read-only cases run the node in a private mount namespace
(`unshare -rm`) on a small tmpfs; they are skipped where that is not allowed."""

import base64
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from node.keys import KeyPair
from state.tx import build_tx
from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def wait_height(c, h: int, timeout: float = 15) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if c.height() >= h:
            return c.height()
        time.sleep(0.05)
    raise AssertionError(f"height {h} not reached in {timeout}s (at {c.height()})")


def start_fails(home: Path, timeout: float = 60) -> str:
    """Run `perpchain start` on a home that must be refused; its stderr."""
    p = subprocess.run([sys.executable, "-m", "cli", "start", "--home", str(home)],
                       capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    assert p.returncode == 1, f"start should have been refused:\n{p.stdout}\n{p.stderr}"
    assert "Traceback" not in p.stderr, p.stderr
    return p.stderr


def _stop_after_commits(net, heights: int = 4) -> Path:
    c = net.client()
    wait_height(c, heights)
    net.kill9()
    return net.node.home / "data" / "perpchain.db"


def _log_file(db: Path) -> Path:
    [p] = [db / n for n in os.listdir(db) if n.endswith(".log")]
    return p


@pytest.mark.parametrize("damage", ["delete CURRENT", "corrupt .log", "truncate .log"])
def test_a_damaged_store_is_refused_naming_the_file(net, damage):
    db = _stop_after_commits(net, 6)
    if damage == "delete CURRENT":
        (db / "CURRENT").unlink()
        named = str(db / "CURRENT")
    elif damage == "corrupt .log":
        log = _log_file(db)
        data = bytearray(log.read_bytes())
        data[len(data) // 2] ^= 0xFF
        log.write_bytes(bytes(data))
        named = log.name
    else:
        log = _log_file(db)
        data = log.read_bytes()
        log.write_bytes(data[:len(data) // 2])
        named = "COMMITTED_HEIGHT"
    files_before = sorted(os.listdir(db))
    err = start_fails(net.node.home)
    assert named in err and "re-sync" in err and f"mv {db} {db}.damaged" in err, err
    if damage == "delete CURRENT":   # LevelDB did not start a new store over the old one
        assert set(files_before) <= set(os.listdir(db))


def test_a_corrupt_signer_state_file_is_named(net):
    _stop_after_commits(net, 3)
    f = net.node.home / "data" / "priv_validator_state.bin"
    assert f.exists()
    f.write_bytes(b"\xc1garbage")
    err = start_fails(net.node.home)
    assert str(f) in err and "corrupt" in err and "double signing" in err, err


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _faucet_batch(c, n: int) -> list[bytes]:
    base = int(time.time() * 1000)
    chain_id = c.chain_id
    return [build_tx(chain_id, KeyPair.generate().private, base, ["faucet"]) for _ in range(n)]


def _send(url: str, raws: list[bytes]) -> list[dict]:
    body = [{"jsonrpc": "2.0", "id": i, "method": "broadcast_tx_sync", "params": {"tx": b64(r)}}
            for i, r in enumerate(raws)]
    return httpx.post(url, json=body, timeout=30).json()


def test_a_killed_verifier_worker_is_replaced_and_nothing_outlives_the_node(net):
    c = net.client()
    for r in _send(net.url, _faucet_batch(c, 400)):
        assert r["result"]["code"] == 0
    pid = net.node.pid()
    kids = _children(pid)
    workers = [k for k in kids if "resource_tracker" not in
               Path(f"/proc/{k}/cmdline").read_bytes().decode(errors="replace")]
    assert workers, "the node should run signature worker processes"
    os.kill(workers[0], signal.SIGKILL)
    time.sleep(0.2)
    raws = _faucet_batch(c, 400)
    assert all(r["result"]["code"] == 0 for r in _send(net.url, raws))
    last = hashlib.sha256(raws[-1]).hexdigest()
    assert c.wait_for_tx(last).code == 0
    kids = _children(pid)
    assert kids, "the node should have rebuilt its worker pool"
    net.kill9()
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(k) for k in kids):
        time.sleep(0.1)
    assert not [k for k in kids if _alive(k)], "orphans outlived the node"


def test_a_batch_of_tx_lookups_does_not_stall_the_chain(net):
    c = net.client()
    raws = _faucet_batch(c, 2000)
    assert all(r["result"]["code"] == 0 for r in _send(net.url, raws))
    hashes = [hashlib.sha256(r).hexdigest() for r in raws]
    c.wait_for_tx(hashes[-1], timeout=30)
    body = [{"jsonrpc": "2.0", "id": i, "method": "tx", "params": {"hash": h}}
            for i, h in enumerate(hashes[:1000])]
    stop, worst_health_s, lookups = threading.Event(), [0.0], []

    def lookups_loop():
        with httpx.Client(timeout=60) as http:
            while not stop.is_set():
                t = time.perf_counter()
                out = http.post(net.url, json=body).json()
                lookups.append(time.perf_counter() - t)
                assert all(int(r["result"]["height"]) > 0 for r in out)

    threads = [threading.Thread(target=lookups_loop) for _ in range(2)]
    h0 = c.height()
    for t in threads:
        t.start()
    try:
        end = time.time() + 4
        while time.time() < end:
            t = time.perf_counter()
            assert httpx.get(net.url + "/health", timeout=10).status_code == 200
            worst_health_s[0] = max(worst_health_s[0], time.perf_counter() - t)
            time.sleep(0.05)
        h1 = c.height()
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert lookups, "the lookup batches must have run"
    assert h1 >= h0 + 5, f"the chain must keep committing ({h0} -> {h1})"
    print(f"batches of 1000 tx lookups: {len(lookups)} in ~4 s, median "
          f"{sorted(lookups)[len(lookups) // 2]:.3f}s; worst health {worst_health_s[0]:.3f}s; "
          f"heights {h0} -> {h1}")


# -- disk full and read-only files, in a private mount namespace --------------------------

def _unshare_ok() -> bool:
    if not shutil.which("unshare"):
        return False
    p = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m t /mnt"],
                       capture_output=True)
    return p.returncode == 0


needs_ns = pytest.mark.skipif(not _unshare_ok(), reason="needs unshare -rm (mount namespace)")


def _run_in_ns(script: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(["unshare", "-rm", "sh", "-ec", script], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


@needs_ns
def test_disk_full_stops_the_node_with_a_clear_message(net):
    net.down()
    src = net.node.home
    # The home on a 6 MB tmpfs, filled but for 96 KB: the node runs, then a write fails.
    script = f"""
mnt=$(mktemp -d); mount -t tmpfs -o size=6m t "$mnt"; cp -a {src} "$mnt/home"
free=$(df -k --output=avail "$mnt" | tail -1)
dd if=/dev/zero of="$mnt/fill" bs=1k count=$((free - 96)) 2>/dev/null || true
exec timeout -s KILL 60 {sys.executable} -m cli start --home "$mnt/home"
"""
    p = _run_in_ns(script, 90)
    assert p.returncode == 1, p.stdout + p.stderr[-3000:]
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    assert "disk is full" in p.stderr, p.stderr[-2000:]


@needs_ns
@pytest.mark.parametrize("what", ["data dir", "WAL"])
def test_read_only_files_are_named_not_called_in_use(net, what):
    _stop_after_commits(net, 3)
    data = net.node.home / "data"
    target = data if what == "data dir" else data / "cs.wal"
    if not target.exists():
        target.touch()
    script = f"""
mount --bind {target} {target}; mount -o remount,bind,ro {target}
exec {sys.executable} -m cli start --home {net.node.home}
"""
    p = _run_in_ns(script, 60)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr[-3000:]
    assert "in use by another process" not in p.stderr
    assert "read-only" in p.stderr.lower() and str(target) in p.stderr, p.stderr[-2000:]


def test_status_reports_catching_up_while_a_restarted_node_syncs(net4):
    from localnet import cluster
    from rpc.client import Client
    lag = net4.entries[3]
    c0 = net4.client()
    wait_height(c0, 3)
    net4.kill9(3)
    h = wait_height(c0, c0.height() + 60, timeout=60)
    pid = cluster.start_node(lag)
    seen, c3 = [], Client(lag.rpc_url)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            s = c3.status()["sync_info"]
        except Exception:   # noqa: BLE001 - not listening yet
            time.sleep(0.02)
            continue
        seen.append((int(s["latest_block_height"]), s["catching_up"]))
        if s["catching_up"] is False and int(s["latest_block_height"]) >= h:
            break
        time.sleep(0.02)
    assert pid == lag.pid()
    assert any(up for _, up in seen), f"catching_up never true while syncing: {seen[:5]}..."
    assert any(up for height, up in seen if height < h), "true while behind"
    assert seen[-1][1] is False and seen[-1][0] >= h, "false once caught up"
