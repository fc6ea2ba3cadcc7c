"""The node's Prometheus metrics (`GET /metrics` on the RPC port, docs/OPERATIONS.md).

One `NodeMetrics` per node, with its own `CollectorRegistry` (never prometheus_client's
global one: two nodes in one process, as in the simulations and tests, must not share
counters). Three kinds of source:

* read on each scrape from the Application (`_AppCollector`): height, round, mempool size
  and bytes, peers, whether the node is catching up;
* observed on each commit (a read-model projection, O(1) on the consensus path): block
  interval, txs per block, failed txs, apply time;
* counted by the RPC server and the websocket hub: requests and errors by method,
  websocket connections, subscriptions, messages and drops.
"""

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import GaugeMetricFamily

from node.read_model import CommittedBlock

CONTENT_TYPE = CONTENT_TYPE_LATEST
INTERVAL_BUCKETS_S = (0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60)
TXS_BUCKETS = (0, 1, 10, 50, 100, 500, 1000, 2500, 5000, 10_000)
APPLY_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class _AppCollector:
    """Gauges read from the Application when Prometheus scrapes."""

    def __init__(self, app):
        self.app = app

    def describe(self):
        return []   # (not known before the first collect: no auto-describe)

    def collect(self):
        app = self.app
        rs = getattr(app.driver, "rs", None)
        p2p = app.p2p
        for name, doc, value in (
                ("perpchain_height", "Last committed height", app.tip.height),
                ("perpchain_round", "Consensus round of the height being decided",
                 rs.round if rs is not None else 0),
                ("perpchain_mempool_txs", "Txs in the mempool", len(app.mempool)),
                ("perpchain_mempool_bytes", "Bytes of the txs in the mempool",
                 app.mempool.bytes),
                ("perpchain_peers", "Connected p2p peers",
                 len(p2p.peers) if p2p is not None else 0),
                ("perpchain_catching_up", "1 while the node syncs blocks from peers",
                 int(app.catching_up()))):
            yield GaugeMetricFamily(name, doc, value=value)


class NodeMetrics:
    def __init__(self, app):
        self.registry = r = CollectorRegistry(auto_describe=False)
        self.block_interval = Histogram(
            "perpchain_block_interval_seconds", "Wall-clock time between two commits",
            buckets=INTERVAL_BUCKETS_S, registry=r)
        self.block_txs = Histogram("perpchain_block_txs", "Txs per committed block",
                                   buckets=TXS_BUCKETS, registry=r)
        self.txs_failed = Counter("perpchain_txs_failed", "Committed txs with a non-zero "
                                  "result code", registry=r)
        self.txs = Counter("perpchain_txs", "Committed txs", registry=r)
        self.apply_time = Histogram("perpchain_block_apply_seconds", "Time to execute a "
                                    "block (apply_block)", buckets=APPLY_BUCKETS_S, registry=r)
        self.rpc_requests = Counter("perpchain_rpc_requests", "JSON-RPC calls by method",
                                    ["method"], registry=r)
        self.rpc_errors = Counter("perpchain_rpc_errors", "JSON-RPC calls answered with an "
                                  "error, by method and error code", ["method", "code"],
                                  registry=r)
        self.ws_connections = Gauge("perpchain_ws_connections", "Open websocket "
                                    "connections", registry=r)
        self.ws_subscriptions = Gauge("perpchain_ws_subscriptions", "Websocket "
                                      "subscriptions", registry=r)
        self.ws_messages = Counter("perpchain_ws_messages", "Websocket notifications queued",
                                   registry=r)
        self.ws_dropped = Counter("perpchain_ws_dropped", "Websocket connections closed by "
                                  "the node, by close code (4000: too slow)", ["code"],
                                  registry=r)
        r.register(_AppCollector(app))
        self._app = app
        self._last_commit_s: float | None = None
        app.read_model.attach(self)

    def on_commit(self, block: CommittedBlock) -> None:
        now = time.monotonic()
        if self._last_commit_s is not None:
            self.block_interval.observe(now - self._last_commit_s)
        self._last_commit_s = now
        n = len(block.tx_results)
        self.block_txs.observe(n)
        self.txs.inc(n)
        self.txs_failed.inc(sum(1 for t in block.tx_results if t.code))
        self.apply_time.observe(self._app.last_apply_s)

    def rpc_call(self, method: str, error_code: int | None) -> None:
        self.rpc_requests.labels(method).inc()
        if error_code is not None:
            self.rpc_errors.labels(method, str(error_code)).inc()

    def exposition(self) -> bytes:
        """The text format (version 0.0.4) of every metric."""
        return generate_latest(self.registry)
