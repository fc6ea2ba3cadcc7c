"""`perpchain bench` (order mode): load a running network with signed order flow at a target
rate for a duration, and report what it did.

    summary = run_order_bench(targets, rate_tps=200, duration_s=60, accounts=200)

1. funds `accounts` new keys from the faucet;
2. every `tick_s` signs the next txs of localnet/order_flow.py (place, cross, cancel) so
   the cumulative count follows `rate_tps`, and hands them to one sender thread per node
   (round-robin), which submits them as one JSON-RPC batch of `broadcast_tx_sync`;
3. meanwhile follows one node's blocks and samples every node's mempool and resident memory
   each second (localnet/bench_probes.py), with a progress bar on a terminal;
4. after the duration waits up to `drain_s` for the accepted txs to commit, then returns the
   summary (`print_summary` prints it; it is also the `--json-out` document).
"""

import json
import queue
import re
import statistics
import sys
import threading
import time

import httpx

from localnet.bench_probes import CommitWatcher, Pending, Sampler, Target
from localnet.loadgen import _body, fund_accounts, percentile
from localnet.order_flow import OrderFlow, market_spec
from rpc.client import Client


def targets_for(urls: list[str] | None, localnet_dir) -> list[Target]:
    """The nodes to load: `urls` if given, else every node of the localnet at `localnet_dir`.
    Nodes of that localnet get their pid (for memory), matched by RPC URL."""
    from localnet.cluster import LocalnetError, load

    try:
        entries = load(localnet_dir)
    except LocalnetError:
        if not urls:
            raise
        entries = []
    by_url = {e.rpc_url: e for e in entries}
    if not urls:
        return [Target(f"node{e.index}", e.rpc_url, e.pid()) for e in entries]
    out = []
    for k, u in enumerate(urls):
        e = by_url.get(u.rstrip("/"))
        out.append(Target(f"node{e.index}" if e else f"url{k}", u.rstrip("/"),
                          e.pid() if e else None))
    return out


def _reason(log: str) -> str:
    """A refusal message with its numbers as N, so alike refusals count together."""
    return re.sub(r"\d+", "N", log)[:120]


MAX_BACKLOG_BATCHES = 50    # per node: beyond this the network is behind; ticks are skipped


class Senders:
    """One thread per node taking batch sizes from its queue, signing that many txs of the
    flow just before it submits them (so expiries and nonces are fresh even when a slow
    network makes batches wait), and counting accepted and refused txs."""

    def __init__(self, targets: list[Target], pending: Pending, flow: OrderFlow):
        self.pending, self.flow = pending, flow
        self.queues = [queue.Queue() for _ in targets]
        self.lock = threading.Lock()
        self.sign_lock = threading.Lock()
        self.submitted = self.accepted = self.refused = self.skipped = 0
        self.reasons: dict[str, int] = {}
        self.threads = [threading.Thread(target=self._run, args=(t.url, q), daemon=True)
                        for t, q in zip(targets, self.queues)]
        for th in self.threads:
            th.start()

    def put(self, k: int, n: int) -> None:
        """Queue a batch of n txs for node k (mod the nodes), or skip it if that node's
        queue is full: the bench then offers less than the target rate, and says so."""
        q = self.queues[k % len(self.queues)]
        if q.qsize() >= MAX_BACKLOG_BATCHES:
            with self.lock:
                self.skipped += n
            return
        q.put(n)

    def _sign(self, n: int) -> list[bytes]:
        with self.sign_lock:
            return self.flow.take(n, time.perf_counter(), time.time_ns() // 10**6)

    def _post(self, http: httpx.Client, url: str, raws: list[bytes]) -> list[dict]:
        self.pending.add(raws, time.perf_counter())
        try:
            resp = http.post(url + "/", content=_body(raws),
                             headers={"content-type": "application/json"}).json()
        except (httpx.HTTPError, ValueError) as e:
            return [{"error": {"message": f"{type(e).__name__}: {e}"}}] * len(raws)
        return sorted(resp, key=lambda r: r.get("id") or 0) if isinstance(resp, list) else \
            [resp] * len(raws)

    def _run(self, url: str, q: queue.Queue) -> None:
        http = httpx.Client(timeout=30)
        while (n := q.get()) is not None:
            raws = self._sign(n)
            resp = self._post(http, url, raws)
            refused = [(r, x) for r, x in zip(raws, resp)
                       if "result" not in x or x["result"]["code"] != 0]
            self.pending.drop([r for r, _ in refused])
            with self.lock:
                self.submitted += len(raws)
                self.accepted += len(raws) - len(refused)
                self.refused += len(refused)
                for _, x in refused:
                    why = _reason(x["result"]["log"] if "result" in x else x["error"]["message"])
                    self.reasons[why] = self.reasons.get(why, 0) + 1
        http.close()

    def close(self) -> None:
        for q in self.queues:
            q.put(None)
        for th in self.threads:
            th.join()


def _progress(duration_s: float, senders: Senders, watcher: CommitWatcher, enabled: bool):
    """A tqdm bar over the duration (on a terminal only) and its per-sample callback."""
    from tqdm import tqdm

    bar = tqdm(total=int(duration_s), unit="s", disable=not enabled, leave=False,
               bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt}s {postfix}")

    def tick(s) -> None:
        bar.n = min(int(s.t_s), bar.total)
        depth = max((m for m in s.mempool if m is not None), default=0)
        bar.set_postfix_str(f"accepted {senders.accepted:,} committed {watcher.committed:,} "
                            f"mempool {depth:,}")
    return bar, tick


def drive(senders: Senders, rate_tps: float, duration_s: float, tick_s: float,
          t0: float) -> None:
    """Queue batches so that by time t the count is rate × t."""
    n_ticks = max(1, int(duration_s / tick_s))
    done = 0
    for i in range(n_ticks):
        delay = t0 + i * tick_s - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        due = round(rate_tps * (i + 1) * tick_s)
        if due > done:
            senders.put(i, due - done)
            done = due


def run_order_bench(targets: list[Target], rate_tps: float = 200, duration_s: float = 60,
                    accounts: int = 200, market: str = "BTC-USD", tick_s: float = 0.05,
                    drain_s: float = 30, progress: bool | None = None, log=print) -> dict:
    if rate_tps <= 0 or duration_s <= 0 or accounts < 1:
        raise ValueError("--rate and --duration must be positive and --accounts at least 1")
    c = Client(targets[0].url)
    spec = market_spec(c, market)
    log(f"funding {accounts} accounts from the faucet ...")
    keys = fund_accounts(targets[0].url, accounts)
    flow = OrderFlow(c.chain_id, keys, spec, time.time_ns() // 1_000_000)
    pending = Pending()
    watcher = CommitWatcher(targets[0].url, pending)
    log(f"order flow on {spec.symbol}: {rate_tps:g} txs/s for {duration_s:g} s from {accounts} "
        f"accounts over {len(targets)} node(s) ...")
    t0 = time.perf_counter()
    sampler = Sampler(targets, t0)
    first = sampler.sample()
    senders = Senders(targets, pending, flow)
    bar, sampler.on_tick = _progress(duration_s, senders, watcher,
                                     sys.stderr.isatty() if progress is None else progress)
    watcher.start()
    sampler.start()
    try:
        try:
            drive(senders, rate_tps, duration_s, tick_s, t0)
        except KeyboardInterrupt:
            log("interrupted: reporting what was sent so far")
        senders.close()   # waits for the queued batches: a slow network stretches the run
        send_s = time.perf_counter() - t0
        deadline = time.perf_counter() + drain_s
        while len(pending) and time.perf_counter() < deadline and watcher.error is None:
            time.sleep(0.05)
    finally:
        sampler.stop.set()
        watcher.stop.set()
        sampler.join()
        watcher.join()
        bar.close()
    sampler.samples.insert(0, first)
    last = sampler.sample()
    return summarize(targets, flow, senders, watcher, sampler.samples + [last], t0, send_s,
                     rate_tps, duration_s, len(pending))


def _stats(xs: list[float]) -> dict:
    r = {f"p{p}": round(percentile(xs, p), 1) for p in (50, 90, 99)} if xs else \
        {"p50": None, "p90": None, "p99": None}
    r["max"] = round(max(xs), 1) if xs else None
    r["mean"] = round(sum(xs) / len(xs), 1) if xs else None
    return r


MEMORY_WINDOW_S = 10.0   # the 1-min and end figures: medians of this many seconds of samples


def memory(targets: list[Target], samples: list, after_s: float = 60.0) -> dict:
    """Per node: resident MiB at the start, after `after_s`, at the end, the most, and the
    growth from `after_s` to the end in percent (None when the run was shorter). The
    figures after `after_s` and at the end are medians of the samples of MEMORY_WINDOW_S
    from then and up to the last, so a transient peak at that instant (LevelDB writing out
    a full memtable holds two for a moment) does not decide them; the most is the peak."""
    out = {}
    for i, t in enumerate(targets):
        series = [(s.t_s, s.rss_mib[i]) for s in samples if s.rss_mib[i] is not None]
        if not series:
            out[t.name] = {"pid": t.pid, "rss_start_mib": None, "rss_1min_mib": None,
                           "rss_end_mib": None, "rss_max_mib": None, "growth_after_1min_pct": None}
            continue
        last_s = series[-1][0]
        first = [v for ts, v in series if after_s <= ts < after_s + MEMORY_WINDOW_S]
        at1 = statistics.median(first) if first and last_s > after_s else None
        end = statistics.median([v for ts, v in series if ts > last_s - MEMORY_WINDOW_S])
        out[t.name] = {"pid": t.pid, "rss_start_mib": round(series[0][1], 1),
                       "rss_1min_mib": None if at1 is None else round(at1, 1),
                       "rss_end_mib": round(end, 1),
                       "rss_max_mib": round(max(v for _, v in series), 1),
                       "growth_after_1min_pct": None if at1 is None else
                       round((end - at1) / at1 * 100, 1)}
    return out


def summarize(targets, flow, senders, watcher, samples, t0, send_s, rate_tps, duration_s,
              uncommitted) -> dict:
    blocks = list(watcher.blocks)
    gaps = [b.time_ms - a.time_ms for a, b in zip(blocks, blocks[1:])]
    depths = [max(m for m in s.mempool if m is not None) for s in samples
              if any(m is not None for m in s.mempool)]
    commit_s = (watcher.last_commit_at - t0) if watcher.committed else 0.0
    return {
        "mode": "orders", "market": flow.m.symbol, "nodes": [t.name for t in targets],
        "accounts": len(flow.keys), "rate_target_tps": rate_tps, "duration_s": duration_s,
        "submitted": senders.submitted, "accepted": senders.accepted,
        "refused": senders.refused, "skipped": senders.skipped,
        "refused_reasons": dict(sorted(senders.reasons.items(), key=lambda kv: -kv[1])[:5]),
        "committed": watcher.committed,
        "uncommitted": uncommitted, "mix": dict(flow.mix),
        "send_s": round(send_s, 1),
        "accepted_tps": round(senders.accepted / send_s, 1),
        "committed_tps": round(watcher.committed / commit_s, 1) if commit_s > 0 else 0.0,
        "latency_ms": _stats(watcher.latencies_ms),
        "blocks": len(blocks), "block_interval_ms": _stats(gaps),
        "txs_per_block": _stats([b.txs for b in blocks]),
        "mempool_depth": {"max": max(depths, default=None),
                          "mean": round(sum(depths) / len(depths), 1) if depths else None,
                          "samples": len(depths)},
        "memory": memory(targets, samples),
        "watcher_error": watcher.error,
    }


def print_summary(s: dict, out=print) -> None:
    lat, bi, mp = s["latency_ms"], s["block_interval_ms"], s["mempool_depth"]
    out(f"submitted {s['submitted']:,} txs ({s['mix']['place']:,} place, {s['mix']['cross']:,} "
        f"cross, {s['mix']['cancel']:,} cancel): accepted {s['accepted']:,}, refused "
        f"{s['refused']:,}; committed {s['committed']:,}, {s['uncommitted']:,} not seen committed "
        f"(dropped by the mempool's recheck after a block, or still pending)")
    if s["skipped"]:
        out(f"skipped {s['skipped']:,} txs: the nodes fell behind the target rate (more than "
            f"{MAX_BACKLOG_BATCHES} batches waiting for one node)")
    out(f"throughput: accepted {s['accepted_tps']:,.1f} txs/s, committed "
        f"{s['committed_tps']:,.1f} txs/s (target {s['rate_target_tps']:g}; sending took "
        f"{s['send_s']:g} s for {s['duration_s']:g} s of load)")
    out(f"submit-to-commit latency: p50 {lat['p50']} ms, p90 {lat['p90']} ms, "
        f"p99 {lat['p99']} ms, max {lat['max']} ms")
    out(f"blocks: {s['blocks']}, interval p50 {bi['p50']} ms, p90 {bi['p90']} ms, "
        f"p99 {bi['p99']} ms, mean {bi['mean']} ms; txs per block mean "
        f"{s['txs_per_block']['mean']}")
    out(f"mempool depth (deepest node, sampled each second): max {mp['max']}, "
        f"mean {mp['mean']}")
    for name, m in s["memory"].items():
        growth = "" if m["growth_after_1min_pct"] is None else \
            f", after 1 min {m['rss_1min_mib']} MiB, growth since {m['growth_after_1min_pct']}%"
        out(f"{name} (pid {m['pid']}): resident memory start {m['rss_start_mib']} MiB, "
            f"end {m['rss_end_mib']} MiB, max {m['rss_max_mib']} MiB{growth}")
    for why, n in s["refused_reasons"].items():
        out(f"  refused {n:,}x: {why}")
    if s["refused"]:
        out("  (a cancel is refused when its order filled meanwhile: crosses take resting orders)")
    if s["watcher_error"]:
        out(f"warning: {s['watcher_error']}")


def write_json(s: dict, path) -> None:
    from pathlib import Path
    Path(path).write_text(json.dumps(s, indent=2) + "\n")

