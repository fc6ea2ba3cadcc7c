"""The Hyperliquid-compatible API of a node, on its own port ([hyperliquid] laddr, 3001 by
default: the official SDK's LOCAL_API_URL). Served by hypercorn on trio beside the JSON-RPC
server (cli/run.py starts both):

    POST /info        rpc/hl_info.py        (answers from committed state and the read model)
    POST /exchange    rpc/hl_exchange.py    (signed actions; a JSON 404 until it exists)
    GET  /ws          rpc/hl_ws.py          (subscriptions, post, ping)

Every refusal is an HTTP 4xx whose body is JSON {"code", "msg", "data"} (the SDK reads
`code` and `msg`); a bug is a 500 with the same shape. The [rpc] limits apply here too: body
size, requests in flight (in all and per IP), requests per second per IP, the websocket
limits, the idle and send timeouts (docs/SECURITY.md).
"""

import json
import logging
from functools import partial

import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve

from node.config import is_loopback, parse_duration_ms
from rpc.asgi import lifespan_or_websocket
from rpc.errors import RPCError
from rpc.hl_format import HLError
from rpc.hl_info import info
from rpc.hl_ws import HLHub, call_exchange, serve_hl_websocket
from rpc.limits import Admission
from rpc.server import listen_socket
from rpc.ws_server import MAX_REQUEST_BYTES

log = logging.getLogger("perpchain.hl")


def _error(code: str, msg: str) -> dict:
    return {"code": code, "msg": msg, "data": None}


class HLServer:
    """The ASGI application of the façade."""

    def __init__(self, app, hub: HLHub | None = None):
        r = app.cfg.rpc
        self.app, self.hub = app, hub
        self.max_body = r.max_body_bytes
        self.admission = Admission(r.max_concurrent_requests, r.max_concurrent_requests_per_ip,
                                   r.max_requests_per_s_per_ip)

    async def __call__(self, scope, receive, send):
        serve_ws = None if self.hub is None else partial(serve_hl_websocket, self.hub)
        if await lifespan_or_websocket(scope, receive, send, "/ws", serve_ws):
            return
        if scope["type"] != "http":
            return
        ip = (scope.get("client") or ("unknown",))[0]
        try:
            self.admission.admit(ip)
        except RPCError as e:
            await _respond(send, 429, _error("rate_limited", e.message))
            return
        try:
            status, payload = await self._answer(scope, receive)
            await _respond(send, status, payload)
        finally:
            self.admission.release(ip)

    async def _answer(self, scope, receive) -> tuple[int, object]:
        path = scope["path"].rstrip("/")
        if path not in ("/info", "/exchange"):
            return 404, _error("not_found", f"no {scope['path'][:80]!r} here: POST /info, "
                               "POST /exchange or the websocket /ws")
        if scope["method"] != "POST":
            return 405, _error("method_not_allowed", f"use POST {path}")
        body, too_big = await _read_body(receive, self.max_body)
        if too_big:
            return 413, _error("body_too_large", f"request body exceeds {self.max_body} bytes "
                               "([rpc] max_body_bytes)")
        try:
            req = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            return 400, _error("invalid_json", f"body is not valid JSON: {e}")
        try:
            if path == "/info":
                return 200, await info(self.app, req)
            return await call_exchange(self.app, req)
        except HLError as e:
            return e.status, e.body()
        except Exception as e:  # a bug must not kill the server
            log.exception("%s failed", path)
            return 500, _error("internal_error", f"internal error in {path}: {e}")


async def _read_body(receive, max_body: int) -> tuple[bytes, bool]:
    chunks, size = [], 0
    while True:
        msg = await receive()
        if msg["type"] != "http.request":
            return b"", False
        size += len(msg.get("body", b""))
        if size > max_body:
            return b"", True
        chunks.append(msg.get("body", b""))
        if not msg.get("more_body"):
            return b"".join(chunks), False


async def _respond(send, status: int, payload) -> None:
    data = json.dumps(payload, separators=(",", ":")).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


async def serve_hl(app, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Serve the façade on [hyperliquid] laddr until cancelled (nothing when it is "")."""
    where = app.cfg.hl_host_port
    if where is None:
        task_status.started()
        return
    host, port = where
    if not is_loopback(host):
        log.warning("the Hyperliquid API listens on %s, reachable from the network: put it "
                    "behind a proxy with TLS (docs/SECURITY.md)", host)
    hc = HyperConfig()
    send_ms = parse_duration_ms(app.cfg.rpc.timeout_send)
    sock = listen_socket(host, port, send_ms, "the Hyperliquid API", "[hyperliquid] laddr")
    hc.bind = [f"fd://{sock.detach()}"]
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.keep_alive_timeout = parse_duration_ms(app.cfg.rpc.timeout_idle_connection) / 1000
    hc.h11_max_incomplete_size = 64 * 1024
    hc.websocket_max_message_size = MAX_REQUEST_BYTES
    hub = HLHub(app)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hub.run)
        await nursery.start(partial(serve, HLServer(app, hub), hc, mode="asgi"))
        log.info("Hyperliquid API on %s (POST /info, POST /exchange, /ws)",
                 app.cfg.hyperliquid.laddr)
        task_status.started()
