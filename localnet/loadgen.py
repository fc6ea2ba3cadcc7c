"""`perpchain bench`: drive a running network with signed transfers and print figures.

In one run it measures:
1. this machine's Ed25519 verify rate (one core, and all cores with threads): the yardstick,
   since every node verifies every tx once;
2. idle blocks: blocks/s and the median / p99 interval between block times;
3. saturation: a burst of pre-signed transfers submitted as JSON-RPC batches over several
   connections (spread over the given nodes); committed txs/s;
4. latency: transfers submitted at a steady rate (`--rate`); p50 / p99 submit-to-commit.
Signing and request encoding happen before the clock starts: they are the client's cost,
not the chain's. Accounts are funded from the faucet first.
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


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _body(raws: list[bytes]) -> str:
    return json.dumps([{"jsonrpc": "2.0", "id": j, "method": "broadcast_tx_sync",
                        "params": {"tx": _b64(r)}} for j, r in enumerate(raws)])


@dataclass
class LoadResult:
    submitted: int
    accepted: int
    committed: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def tps(self) -> float:
        return self.committed / self.seconds if self.seconds > 0 else 0.0


def fund_accounts(url: str, n: int) -> list[KeyPair]:
    """n new keys, each paid by the faucet; waits until every payout is committed."""
    keys = [KeyPair.generate() for _ in range(n)]
    c = Client(url)
    nonce = time.time_ns() // 1_000_000
    raws = [build_tx(c.chain_id, k.private, nonce, ["faucet"]) for k in keys]
    for i in range(0, len(raws), 500):
        for r in c.call_batch([("broadcast_tx_sync", {"tx": _b64(x)}) for x in raws[i:i + 500]]):
            if "error" in r or r["result"]["code"] != 0:
                raise RuntimeError(f"faucet payout refused: {r}")
    for raw in raws:
        c.wait_for_tx(hashlib.sha256(raw).hexdigest(), timeout=60)
    c.close()
    return keys


class Signer:
    """Pre-signs transfers between the funded accounts with unique, increasing nonces."""

    def __init__(self, chain_id: str, keys: list[KeyPair]):
        self.chain_id, self.keys = chain_id, keys
        self.base = time.time_ns() // 1_000_000
        self.i = 0

    def take(self, n: int) -> list[bytes]:
        out, k = [], len(self.keys)
        for _ in range(n):
            i = self.i
            src, dst = self.keys[i % k], self.keys[(i * 7 + 1) % k]
            out.append(build_tx(self.chain_id, src.private, self.base + i // k,
                                ["transfer", dst.pub_key, "USDC", 1]))
            self.i += 1
        return out


class CommitWatcher(threading.Thread):
    """Polls one node for new blocks and records when each tx hash was seen committed."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url
        self.http = httpx.Client(timeout=30)
        self.height = int(self._status()["latest_block_height"])
        self.committed: dict[bytes, float] = {}
        self.block_times: list[tuple[int, int]] = []   # (height, header time ms)
        self.stop = threading.Event()

    def _status(self) -> dict:
        return self.http.get(self.url + "/status").json()["result"]["sync_info"]

    def run(self) -> None:
        while not self.stop.is_set():
            latest = int(self._status()["latest_block_height"])
            while self.height < latest:
                self.height += 1
                blk = self.http.get(self.url + f"/block?height={self.height}").json()["result"]["block"]
                t = time.perf_counter()
                for b in blk["data"]["txs"]:
                    self.committed[hashlib.sha256(base64.b64decode(b)).digest()] = t
                self.block_times.append((self.height, _ms(blk["header"]["time"])))
            time.sleep(0.01)


def _ms(rfc3339: str) -> int:
    from node.genesis import rfc3339_to_ms
    return rfc3339_to_ms(rfc3339)


def idle_blocks(url: str, seconds: float) -> tuple[float, float, float]:
    """(blocks/s, median interval ms, p99 interval ms) from block header times."""
    w = CommitWatcher(url)
    w.start()
    time.sleep(seconds)
    w.stop.set()
    w.join()
    times = [t for _, t in w.block_times]
    gaps = [b - a for a, b in zip(times, times[1:])]
    span = (times[-1] - times[0]) / 1000 if len(times) > 1 else 0
    return (len(gaps) / span if span else 0.0), percentile(gaps, 50), percentile(gaps, 99)


def saturate(urls: list[str], raws: list[bytes], batch: int, connections: int,
             watcher: CommitWatcher, timeout: float = 120.0) -> LoadResult:
    hashes = [hashlib.sha256(r).digest() for r in raws]
    bodies = [(i, _body(raws[i:i + batch])) for i in range(0, len(raws), batch)]
    work: queue.Queue = queue.Queue()
    for item in bodies:
        work.put(item)
    sent_at: dict[bytes, float] = {}
    accepted = [0]
    lock = threading.Lock()

    def sender(k: int) -> None:
        http = httpx.Client(timeout=60)
        url = urls[k % len(urls)]
        while True:
            try:
                i, body = work.get_nowait()
            except queue.Empty:
                break
            t = time.perf_counter()
            with lock:
                for h in hashes[i:i + batch]:
                    sent_at[h] = t
            resp = http.post(url + "/", content=body,
                             headers={"content-type": "application/json"}).json()
            ok = sum(1 for r in resp if "result" in r and r["result"]["code"] == 0)
            with lock:
                accepted[0] += ok
        http.close()

    t0 = time.perf_counter()
    senders = [threading.Thread(target=sender, args=(k,)) for k in range(connections)]
    for s in senders:
        s.start()
    for s in senders:
        s.join()
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline and \
            sum(1 for h in hashes if h in watcher.committed) < accepted[0]:
        time.sleep(0.02)
    done = [h for h in hashes if h in watcher.committed]
    lat = [(watcher.committed[h] - sent_at[h]) * 1000 for h in done]
    last = max((watcher.committed[h] for h in done), default=t0)
    return LoadResult(len(raws), accepted[0], len(done), last - t0, percentile(lat, 50),
                      percentile(lat, 99))


def steady(urls: list[str], signer: Signer, rate: int, seconds: float,
           watcher: CommitWatcher, tick: float = 0.02) -> LoadResult:
    """Submit `rate` txs/s in small batches every `tick` seconds; time each to its commit."""
    per_tick = max(1, round(rate * tick))
    n_ticks = int(seconds / tick)
    batches = [signer.take(per_tick) for _ in range(n_ticks)]
    bodies = [_body(b) for b in batches]
    sent_at: dict[bytes, float] = {}
    accepted = 0
    https = [httpx.Client(timeout=30) for _ in urls]
    t0 = time.perf_counter()
    for i, (raws, body) in enumerate(zip(batches, bodies)):
        target = t0 + i * tick
        delay = target - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        t = time.perf_counter()
        for r in raws:
            sent_at[hashlib.sha256(r).digest()] = t
        k = i % len(urls)
        resp = https[k].post(urls[k] + "/", content=body,
                             headers={"content-type": "application/json"}).json()
        accepted += sum(1 for r in resp if "result" in r and r["result"]["code"] == 0)
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline and \
            sum(1 for h in sent_at if h in watcher.committed) < accepted:
        time.sleep(0.02)
    done = [h for h in sent_at if h in watcher.committed]
    lat = [(watcher.committed[h] - sent_at[h]) * 1000 for h in done]
    span = max((watcher.committed[h] for h in done), default=t0) - t0
    return LoadResult(len(sent_at), accepted, len(done), span, percentile(lat, 50),
                      percentile(lat, 99))


def run_bench(urls: list[str], accounts: int = 200, txs: int = 40_000, batch: int = 500,
              connections: int = 4, rate: int = 2500, seconds: float = 10.0,
              idle_seconds: float = 5.0) -> dict:
    cores = os.cpu_count() or 1
    one, allc = verify_rate(1.0, 1), verify_rate(1.0, cores)
    info = httpx.get(urls[0] + "/net_info", timeout=5).json()["result"]
    nodes = int(info["n_peers"]) + 1
    print(f"ed25519 verify on this machine: {one:,.0f}/s on one core, "
          f"{allc:,.0f}/s on {cores} cores (threads)")
    print(f"network: {nodes} node(s); each verifies every tx once, so the machine can "
          f"commit at most ~{allc / nodes:,.0f} txs/s (target: half of that, "
          f"{allc / nodes / 2:,.0f})")
    bps, med, p99 = idle_blocks(urls[0], idle_seconds)
    print(f"idle: {bps:.2f} blocks/s, block interval median {med:.0f} ms, p99 {p99:.0f} ms")
    print(f"funding {accounts} accounts from the faucet ...")
    keys = fund_accounts(urls[0], accounts)
    signer = Signer(Client(urls[0]).chain_id, keys)
    watcher = CommitWatcher(urls[0])
    watcher.start()
    try:
        raws = signer.take(txs)
        print(f"saturation: {txs:,} transfers in batches of {batch} over {connections} "
              f"connections to {len(urls)} node(s) ...")
        sat = saturate(urls, raws, batch, connections, watcher)
        print(f"  accepted {sat.accepted:,}/{sat.submitted:,}, committed {sat.committed:,} in "
              f"{sat.seconds:.2f}s: {sat.tps:,.0f} committed txs/s")
        print(f"steady load: {rate:,} txs/s for {seconds:g}s ...")
        st = steady(urls, signer, rate, seconds, watcher)
        print(f"  accepted {st.accepted:,}/{st.submitted:,}, committed {st.committed:,}: "
              f"submit-to-commit p50 {st.p50_ms:.0f} ms, p99 {st.p99_ms:.0f} ms")
    finally:
        watcher.stop.set()
        watcher.join()
    return {"verify_1core": one, "verify_all": allc, "nodes": nodes, "idle_bps": bps,
            "idle_median_ms": med, "idle_p99_ms": p99, "saturation_tps": sat.tps,
            "steady_rate": rate, "steady_p50_ms": st.p50_ms, "steady_p99_ms": st.p99_ms}
