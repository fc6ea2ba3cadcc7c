"""`perpchain bench`: drive a running node with signed transfers and print figures.

It measures this machine's Ed25519 verify rate in the same run (one core, and all cores
with threads), funds `accounts` fresh keys from the faucet, pre-signs `txs` transfers
between them (signing is not part of what is measured), submits them as JSON-RPC batches
over several connections, and watches committed blocks to time each tx from submission
to commit. Printed: committed txs/s, p50/p99 submit-to-commit latency, rejections.
"""

import base64
import hashlib
import json
import os
import queue
import threading
import time
from dataclasses import dataclass

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.keys import KeyPair
from rpc.client import Client
from state.tx import build_tx


def verify_rate(seconds: float = 1.0, threads: int = 1) -> float:
    """Ed25519 verifies per second with `threads` threads (cryptography releases the GIL)."""
    key = Ed25519PrivateKey.generate()
    pub, msg = key.public_key(), b"x" * 120
    sig = key.sign(msg)
    counts = [0] * threads
    stop = time.perf_counter() + seconds

    def work(i: int) -> None:
        n = 0
        while time.perf_counter() < stop:
            for _ in range(200):
                pub.verify(sig, msg)
            n += 200
        counts[i] = n

    t0 = time.perf_counter()
    ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)


def percentile(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


@dataclass
class BenchResult:
    submitted: int
    accepted: int
    committed: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def tps(self) -> float:
        return self.committed / self.seconds if self.seconds > 0 else 0.0


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def fund_accounts(url: str, n: int) -> list[KeyPair]:
    """n new keys, each paid by the faucet; waits until every payout is committed."""
    keys = [KeyPair.generate() for _ in range(n)]
    c = Client(url)
    chain_id = c.chain_id
    nonce = time.time_ns() // 1_000_000
    raws = [build_tx(chain_id, k.private, nonce, ["faucet"]) for k in keys]
    for i in range(0, len(raws), 500):
        for r in c.call_batch([("broadcast_tx_sync", {"tx": _b64(x)}) for x in raws[i:i + 500]]):
            if "error" in r or r["result"]["code"] != 0:
                raise RuntimeError(f"faucet payout refused: {r}")
    for raw in raws:
        c.wait_for_tx(hashlib.sha256(raw).hexdigest(), timeout=30)
    c.close()
    return keys


def run_load(url: str, keys: list[KeyPair], txs: int, batch: int, connections: int,
             timeout: float = 120.0) -> BenchResult:
    chain_id = Client(url).chain_id
    base = time.time_ns() // 1_000_000
    n = len(keys)
    raws = []
    for i in range(txs):
        src, dst = keys[i % n], keys[(i * 7 + 1) % n]
        raws.append(build_tx(chain_id, src.private, base + i // n, ["transfer", dst.pub_key, "USDC", 1]))
    hashes = [hashlib.sha256(r).digest() for r in raws]
    # Request bodies are encoded up front: the client's JSON work is not what is measured.
    bodies = {i: json.dumps([{"jsonrpc": "2.0", "id": j, "method": "broadcast_tx_sync",
                              "params": {"tx": _b64(r)}} for j, r in enumerate(raws[i:i + batch])])
              for i in range(0, txs, batch)}
    sent_at: dict[bytes, float] = {}
    committed_at: dict[bytes, float] = {}
    accepted = [0]
    lock = threading.Lock()
    work: queue.Queue = queue.Queue()
    for i in range(0, txs, batch):
        work.put(i)
    done_sending = threading.Event()

    start_height = Client(url).height()

    def sender() -> None:
        http = httpx.Client(timeout=60)
        while True:
            try:
                i = work.get_nowait()
            except queue.Empty:
                break
            t = time.perf_counter()
            with lock:
                for h in hashes[i:i + batch]:
                    sent_at[h] = t
            resp = http.post(url + "/", content=bodies[i],
                             headers={"content-type": "application/json"}).json()
            ok = sum(1 for r in resp if "result" in r and r["result"]["code"] == 0)
            with lock:
                accepted[0] += ok
        http.close()

    def watcher() -> None:
        http = httpx.Client(timeout=60)
        height = start_height
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            st = http.get(url + "/status").json()["result"]["sync_info"]
            latest = int(st["latest_block_height"])
            while height < latest:
                height += 1
                blk = http.get(url + f"/block?height={height}").json()["result"]["block"]
                t = time.perf_counter()
                with lock:
                    for b in blk["data"]["txs"]:
                        committed_at[hashlib.sha256(base64.b64decode(b)).digest()] = t
            with lock:
                if done_sending.is_set() and len(committed_at) >= accepted[0]:
                    break
            time.sleep(0.02)
        http.close()

    w = threading.Thread(target=watcher)
    w.start()
    t0 = time.perf_counter()
    senders = [threading.Thread(target=sender) for _ in range(connections)]
    for s in senders:
        s.start()
    for s in senders:
        s.join()
    done_sending.set()
    w.join()
    lat = [(committed_at[h] - sent_at[h]) * 1000 for h in hashes if h in committed_at]
    last = max((committed_at[h] for h in hashes if h in committed_at), default=t0)
    return BenchResult(txs, accepted[0], len(lat), last - t0, percentile(lat, 50),
                       percentile(lat, 99))


def run_bench(url: str, accounts: int = 200, txs: int = 40_000, batch: int = 500,
              connections: int = 4) -> BenchResult:
    cores = os.cpu_count() or 1
    one = verify_rate(1.0, 1)
    allc = verify_rate(1.0, cores)
    print(f"ed25519 verify on this machine: {one:,.0f}/s on one core, "
          f"{allc:,.0f}/s on {cores} cores (threads)")
    print(f"funding {accounts} accounts from the faucet ...")
    keys = fund_accounts(url, accounts)
    print(f"submitting {txs:,} signed transfers in batches of {batch} over "
          f"{connections} connections ...")
    r = run_load(url, keys, txs, batch, connections)
    print(f"accepted {r.accepted:,}/{r.submitted:,}, committed {r.committed:,} in "
          f"{r.seconds:.2f}s")
    print(f"committed txs/s: {r.tps:,.0f}   (target: {allc / 2:,.0f} = half the cores' "
          f"verify rate)")
    print(f"submit-to-commit latency: p50 {r.p50_ms:.0f} ms, p99 {r.p99_ms:.0f} ms")
    return r
