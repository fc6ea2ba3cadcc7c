"""JSON-RPC 2.0 over HTTP, served by hypercorn on trio (no hand-parsed HTTP).

    POST /            a JSON-RPC 2.0 request object or a batch (array) of them
    GET  /<method>?k=v  CometBFT's URI form (e.g. /status, /block?height=5, /tx?hash=0x..)
    GET  /            the list of methods; the dashboard for a browser (rpc/dashboard_http.py)
    GET  /metrics     Prometheus text format (node/metrics.py)
    GET  /websocket   websocket subscriptions (rpc/ws_server.py, rpc/ws_hub.py)

Batches let a client submit thousands of txs in one HTTP request; their broadcast_tx_sync
calls are checked together so signatures are verified in parallel. Every failure is a
JSON-RPC error object with a code from rpc/errors.py and a message saying what was wrong.

Limits ([rpc] in config.toml, docs/SECURITY.md): body size, batch size, queries per batch,
requests in flight (in all and per IP), requests per second per IP (rpc/limits.py), idle
connections are closed, and so are connections whose client takes none of what is sent to it
for [rpc] timeout_send (TCP_USER_TIMEOUT, `listen_socket`). Methods that read stored blocks (OFF_LOOP) run in a few worker
threads, so however heavy the queries, consensus and p2p keep the event loop.
"""

import json
import logging
import socket
from functools import partial
from urllib.parse import parse_qsl

import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve

from node.app import Application
from node.config import ConfigError, is_loopback, parse_duration_ms
from node.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE, NodeMetrics
from rpc.asgi import lifespan_or_websocket
from rpc.dashboard_http import dashboard_file
from rpc.errors import RPCCode, RPCError
from rpc.limits import Admission
from rpc.methods import METHODS, check_tx_json, tx_param
from rpc.ws_hub import Hub
from rpc.ws_server import MAX_REQUEST_BYTES, serve_websocket

log = logging.getLogger("perpchain.rpc")

# Methods that only read committed data (immutable blocks, commits, results, the tx index)
# run in worker threads. They are written as coroutines that never suspend, so a thread
# runs one to completion with `_run_to_end`.
OFF_LOOP = frozenset({"tx", "block", "blockchain", "commit", "status"})
OFF_LOOP_CHUNK = 100   # a batch's OFF_LOOP calls run in one thread call per this many
# HTTP status of each admission refusal.
_HTTP_STATUS = {RPCCode.RATE_LIMITED: 429, RPCCode.SERVER_BUSY: 503}


def _run_to_end(fn, app, params):
    coro = fn(app, params)
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError(f"{fn.__name__} suspended: it cannot run in a worker thread")


def _error(id_, err: RPCError) -> dict:
    return {"jsonrpc": "2.0", "id": id_, "error": err.to_json()}


def _check_request(req) -> tuple[object, str, dict]:
    if not isinstance(req, dict) or req.get("jsonrpc") != "2.0" or \
            not isinstance(req.get("method"), str):
        raise RPCError(RPCCode.INVALID_REQUEST, "not a JSON-RPC 2.0 request: need "
                       '{"jsonrpc": "2.0", "method": "...", "params": {...}, "id": ...}')
    params = req.get("params", {})
    if params is None:
        params = {}
    if isinstance(params, list):
        params = dict(enumerate(params))
    elif not isinstance(params, dict):
        raise RPCError(RPCCode.INVALID_PARAMS, "params must be an object or an array")
    if req["method"] not in METHODS:
        raise RPCError(RPCCode.METHOD_NOT_FOUND, f"method {req['method']!r} does not exist; "
                       f"available: {', '.join(sorted(METHODS))}")
    return req.get("id"), req["method"], params


class RPCServer:
    def __init__(self, app: Application, hub: Hub | None = None,
                 metrics: NodeMetrics | None = None):
        """`hub` serves /websocket and `metrics` /metrics (both made by serve_rpc; without
        them those paths answer 404)."""
        self.app, self.hub, self.metrics = app, hub, metrics
        self.max_body = app.cfg.rpc.max_body_bytes
        self.max_batch = app.cfg.rpc.max_batch_requests
        r = app.cfg.rpc
        self.max_queries = r.max_batch_queries
        self.admission = Admission(r.max_concurrent_requests, r.max_concurrent_requests_per_ip,
                                   r.max_requests_per_s_per_ip)
        self.query_limiter = trio.CapacityLimiter(r.query_threads)

    def count(self, method: str | None, error: RPCError | None) -> None:
        """Count a call in /metrics (by method; unknown names count as "unknown")."""
        if self.metrics is not None:
            self.metrics.rpc_call(method if method in METHODS else "unknown",
                                  None if error is None else int(error.code))

    async def call(self, method: str, params: dict):
        try:
            if method in OFF_LOOP:
                return await trio.to_thread.run_sync(_run_to_end, METHODS[method], self.app,
                                                     params, limiter=self.query_limiter)
            return await METHODS[method](self.app, params)
        except RPCError:
            raise
        except Exception as e:  # a bug in a method must not kill the server
            log.exception("method %s failed", method)
            raise RPCError(RPCCode.INTERNAL_ERROR, f"internal error in {method}: {e}") from None

    async def handle_one(self, req) -> dict | None:
        id_ = req.get("id") if isinstance(req, dict) else None
        method = req.get("method") if isinstance(req, dict) else None
        try:
            id_, method, params = _check_request(req)
            result = await self.call(method, params)
        except RPCError as e:
            self.count(method, e)
            return _error(id_, e)
        self.count(method, None)
        return {"jsonrpc": "2.0", "id": id_, "result": result}

    async def handle_batch(self, reqs: list) -> list:
        """Run a batch; its broadcast_tx_sync calls are submitted together, in order."""
        out: list = [None] * len(reqs)
        txs, tx_slots, off_loop = [], [], []
        for i, req in enumerate(reqs):
            if isinstance(req, dict) and req.get("method") == "broadcast_tx_sync":
                try:
                    id_, _, params = _check_request(req)
                    raw = tx_param(params)
                except RPCError as e:
                    self.count("broadcast_tx_sync", e)
                    out[i] = _error(req.get("id"), e)
                    continue
                txs.append(raw)
                tx_slots.append((i, id_))
            elif isinstance(req, dict) and req.get("method") in OFF_LOOP:
                off_loop.append(i)
            else:
                out[i] = await self.handle_one(req)
                await trio.lowlevel.checkpoint()  # a long batch never holds the loop
        for k in range(0, len(off_loop), OFF_LOOP_CHUNK):
            part = off_loop[k:k + OFF_LOOP_CHUNK]
            answers = await trio.to_thread.run_sync(self._answer_all, [reqs[i] for i in part],
                                                    limiter=self.query_limiter)
            for i, a in zip(part, answers):
                out[i] = a
        if txs:
            for (i, id_), (th, r) in zip(tx_slots, await self.app.submit(txs)):
                self.count("broadcast_tx_sync", None)
                out[i] = {"jsonrpc": "2.0", "id": id_, "result": check_tx_json(th, r)}
        return out

    def _answer_all(self, reqs: list) -> list[dict]:
        """In a worker thread: answer OFF_LOOP requests one after the other."""
        out = []
        for req in reqs:
            id_ = req.get("id")
            method = req.get("method")
            try:
                id_, method, params = _check_request(req)
                out.append({"jsonrpc": "2.0", "id": id_,
                            "result": _run_to_end(METHODS[method], self.app, params)})
                self.count(method, None)
            except RPCError as e:
                self.count(method, e)
                out.append(_error(id_, e))
            except Exception as e:  # a bug in a method must not kill the server
                log.exception("method %s failed", req.get("method"))
                err = RPCError(RPCCode.INTERNAL_ERROR, f"internal error in {method}: {e}")
                self.count(method, err)
                out.append(_error(id_, err))
        return out

    async def handle_body(self, body: bytes) -> object:
        try:
            req = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            return _error(None, RPCError(RPCCode.PARSE_ERROR, f"body is not valid JSON: {e}"))
        if isinstance(req, list):
            if not req:
                return _error(None, RPCError(RPCCode.INVALID_REQUEST, "empty batch"))
            if len(req) > self.max_batch:
                return _error(None, RPCError(RPCCode.BATCH_TOO_LARGE, f"batch of {len(req)} "
                                             f"requests exceeds the limit of {self.max_batch}"))
            queries = sum(1 for r in req if not (isinstance(r, dict) and
                                                 r.get("method") == "broadcast_tx_sync"))
            if queries > self.max_queries:
                return _error(None, RPCError(RPCCode.TOO_MUCH_WORK, f"batch holds {queries} "
                                             "calls other than broadcast_tx_sync; the limit is "
                                             f"[rpc] max_batch_queries = {self.max_queries}"))
            return await self.handle_batch(req)
        return await self.handle_one(req)

    # -- ASGI ----------------------------------------------------------------------------
    async def __call__(self, scope, receive, send):
        serve_ws = None if self.hub is None else partial(serve_websocket, self.hub)
        if await lifespan_or_websocket(scope, receive, send, "/websocket", serve_ws):
            return
        if scope["type"] != "http":
            return
        ip = (scope.get("client") or ("unknown",))[0]
        try:
            self.admission.admit(ip)
        except RPCError as e:
            await self._respond(send, _HTTP_STATUS[e.code], _error(None, e))
            return
        try:
            await self._serve_http(scope, receive, send)
        finally:
            self.admission.release(ip)

    async def _serve_http(self, scope, receive, send):
        status, payload = 200, None
        if scope["method"] == "POST":
            body, too_big = await self._read_body(receive)
            if too_big:
                status = 413
                payload = _error(None, RPCError(RPCCode.REQUEST_TOO_LARGE, "request body exceeds "
                                                f"{self.max_body} bytes"))
            else:
                payload = await self.handle_body(body)
        elif scope["method"] == "GET":
            page = dashboard_file(scope)
            if page is not None:
                await self._respond_raw(send, 200, page.body, page.content_type, page.headers)
                return
            name = scope["path"].strip("/")
            if name == "metrics" and self.metrics is not None:
                await self._respond_raw(send, 200, self.metrics.exposition(),
                                        METRICS_CONTENT_TYPE.encode())
                return
            if not name:
                payload = {"jsonrpc": "2.0", "id": None,
                           "result": {"methods": sorted(METHODS)}}
            else:
                qs = scope.get("query_string", b"").decode("latin-1")
                params = dict(parse_qsl(qs, keep_blank_values=True))
                payload = await self.handle_one({"jsonrpc": "2.0", "id": -1, "method": name,
                                                 "params": params})
        else:
            status = 405
            payload = _error(None, RPCError(RPCCode.INVALID_REQUEST, "use POST (JSON-RPC) or GET "
                                            "(URI form)"))
        await self._respond(send, status, payload)

    @staticmethod
    async def _respond(send, status: int, payload) -> None:
        data = json.dumps(payload, separators=(",", ":")).encode()
        await RPCServer._respond_raw(send, status, data, b"application/json")

    @staticmethod
    async def _respond_raw(send, status: int, data: bytes, content_type: bytes,
                           headers=()) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", content_type),
                                (b"content-length", str(len(data)).encode()), *headers]})
        await send({"type": "http.response.body", "body": data})

    async def _read_body(self, receive) -> tuple[bytes, bool]:
        chunks, size = [], 0
        while True:
            msg = await receive()
            if msg["type"] != "http.request":
                return b"", False
            size += len(msg.get("body", b""))
            if size > self.max_body:
                return b"", True
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body"):
                return b"".join(chunks), False


def listen_socket(host: str, port: int, send_timeout_ms: int,
                  service: str = "RPC", key: str = "[rpc] laddr") -> socket.socket:
    """The RPC's listening socket, bound (hypercorn listens on it). Its connections inherit
    TCP_USER_TIMEOUT = `send_timeout_ms`: the kernel aborts one whose peer has taken none of
    the data sent to it for that long (a client or websocket subscriber that stopped reading),
    which frees the task blocked writing to it. hypercorn's writes cannot be cancelled, so
    without this such a client could hold a task, and the node's shutdown, for ever."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if hasattr(socket, "TCP_USER_TIMEOUT"):   # Linux
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, send_timeout_ms)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ConfigError(f"cannot listen for {service} on {host}:{port} ({key}): "
                          f"{e.strerror or e}") from None
    return sock


async def serve_rpc(app: Application, task_status=trio.TASK_STATUS_IGNORED) -> None:
    host, port = app.cfg.rpc_host_port
    if not is_loopback(host):
        log.warning("RPC listens on %s, reachable from the network ([rpc] unsafe_public_bind): "
                    "put it behind a proxy with TLS and authentication (docs/SECURITY.md)", host)
    hc = HyperConfig()
    send_ms = parse_duration_ms(app.cfg.rpc.timeout_send)
    hc.bind = [f"fd://{listen_socket(host, port, send_ms).detach()}"]
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    idle_s = parse_duration_ms(app.cfg.rpc.timeout_idle_connection) / 1000
    hc.keep_alive_timeout = idle_s
    hc.h11_max_incomplete_size = 64 * 1024
    hc.websocket_max_message_size = MAX_REQUEST_BYTES
    metrics = NodeMetrics(app)
    hub = Hub(app, metrics)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hub.run)   # the websocket fan-out: its own task, off consensus
        await nursery.start(partial(serve, RPCServer(app, hub, metrics), hc, mode="asgi"))
        task_status.started()
