"""What `perpchain bench` watches while it loads a network: commits, mempools, node memory.

* `CommitWatcher` follows one node's blocks (`block`, up to FETCH_BLOCKS heights per batch
  request, so it keeps up with a fast chain) and turns each committed tx the bench
  submitted into a submit-to-commit latency; it keeps every block's header time and tx count.
* `Sampler` reads, once a second, each node's mempool depth (`num_unconfirmed_txs`) and
  resident memory (VmRSS of its pid in /proc), and ticks the progress callback.
"""

import base64
import hashlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

FETCH_BLOCKS = 50


@dataclass
class Target:
    """A node the bench submits to: its RPC URL and, when known (a localnet), its pid."""

    name: str
    url: str
    pid: int | None = None


def rss_mib(pid: int | None) -> float | None:
    """Resident memory of a process in MiB (VmRSS), or None when it is gone or unknown."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
        return None
    return None


class Pending:
    """Submit times of txs not yet seen committed (hash -> perf_counter seconds)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sent: dict[bytes, float] = {}

    def add(self, raws: list[bytes], t: float) -> None:
        with self.lock:
            for r in raws:
                self.sent[hashlib.sha256(r).digest()] = t

    def drop(self, raws: list[bytes]) -> None:
        """Txs the node refused at submit: they will never commit."""
        with self.lock:
            for r in raws:
                self.sent.pop(hashlib.sha256(r).digest(), None)

    def commit(self, h: bytes) -> float | None:
        with self.lock:
            return self.sent.pop(h, None)

    def __len__(self) -> int:
        with self.lock:
            return len(self.sent)


@dataclass
class BlockStat:
    height: int
    time_ms: int      # header time
    txs: int
    ours: int         # txs of this bench


class CommitWatcher(threading.Thread):
    def __init__(self, url: str, pending: Pending):
        super().__init__(daemon=True, name="bench-commit-watcher")
        self.url, self.pending = url, pending
        self.http = httpx.Client(timeout=30)
        self.height = self._latest()
        self.blocks: list[BlockStat] = []
        self.latencies_ms: list[float] = []
        self.committed = 0
        self.last_commit_at = 0.0
        self.stop = threading.Event()
        self.error: str | None = None

    def _latest(self) -> int:
        r = self.http.get(self.url + "/status").json()["result"]
        return int(r["sync_info"]["latest_block_height"])

    def _fetch(self, first: int, last: int) -> list[dict]:
        body = self.http.post(self.url + "/", json=[
            {"jsonrpc": "2.0", "id": h, "method": "block", "params": {"height": str(h)}}
            for h in range(first, last + 1)]).json()
        return [r["result"]["block"] for r in sorted(body, key=lambda r: r["id"])]

    def _record(self, blk: dict, now: float) -> None:
        from node.genesis import rfc3339_to_ms

        txs = blk["data"]["txs"]
        ours = 0
        for raw_b64 in txs:
            t = self.pending.commit(hashlib.sha256(base64.b64decode(raw_b64)).digest())
            if t is not None:
                ours += 1
                self.latencies_ms.append((now - t) * 1000)
        self.committed += ours
        if ours:
            self.last_commit_at = now
        hd = blk["header"]
        self.blocks.append(BlockStat(int(hd["height"]), rfc3339_to_ms(hd["time"]), len(txs),
                                     ours))

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                latest = self._latest()
                while self.height < latest and not self.stop.is_set():
                    last = min(latest, self.height + FETCH_BLOCKS)
                    blocks = self._fetch(self.height + 1, last)
                    now = time.perf_counter()
                    for blk in blocks:
                        self._record(blk, now)
                    self.height = last
                time.sleep(0.01)
        except (httpx.HTTPError, KeyError, ValueError) as e:
            self.error = f"lost the node at {self.url}: {e}"


@dataclass
class Sample:
    t_s: float                      # since the start of the load
    mempool: list[int | None]       # txs waiting, per target
    rss_mib: list[float | None]     # per target


class Sampler(threading.Thread):
    def __init__(self, targets: list[Target], t0: float, on_tick=None, interval_s: float = 1.0):
        """`on_tick(sample)` is called after each sample (the progress bar)."""
        super().__init__(daemon=True, name="bench-sampler")
        self.targets, self.t0, self.on_tick, self.interval_s = targets, t0, on_tick, interval_s
        self.samples: list[Sample] = []
        self.stop = threading.Event()
        self.http = httpx.Client(timeout=5)

    def _mempool(self, url: str) -> int | None:
        try:
            return int(self.http.get(url + "/num_unconfirmed_txs").json()["result"]["n_txs"])
        except (httpx.HTTPError, KeyError, ValueError):
            return None

    def sample(self) -> Sample:
        s = Sample(time.perf_counter() - self.t0, [self._mempool(t.url) for t in self.targets],
                   [rss_mib(t.pid) for t in self.targets])
        self.samples.append(s)
        return s

    def run(self) -> None:
        while not self.stop.wait(self.interval_s):
            s = self.sample()
            if self.on_tick is not None:
                self.on_tick(s)
