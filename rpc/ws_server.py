"""One websocket connection on `GET /websocket` (ASGI, under hypercorn on trio).

Two tasks per connection: the reader answers JSON-RPC 2.0 requests (`subscribe`,
`unsubscribe`, `unsubscribe_all`; one request object per text frame) by putting the reply on
the connection's queue; the writer sends that queue's messages (replies and notifications,
rpc/ws_hub.py) in order. When the hub drops the connection, the writer sends the close frame
with the hub's code and reason after the message it is writing. A connection over the limits
is accepted and closed at once with code 1013 and a reason naming the limit, so a client
sees why. Frames larger than MAX_REQUEST_BYTES are closed by hypercorn with code 1009.
"""

import json

import trio

from rpc.errors import RPCCode, RPCError
from rpc.ws_hub import CLOSE_TRY_AGAIN, Connection, Hub, Refused

MAX_REQUEST_BYTES = 64 * 1024
WS_METHODS = ("subscribe", "unsubscribe", "unsubscribe_all")
CLOSE_GOING_AWAY = 1001


def _reply(id_, result=None, err: RPCError | None = None) -> str:
    body = {"jsonrpc": "2.0", "id": id_}
    if err is not None:
        body["error"] = err.to_json()
    else:
        body["result"] = result
    return json.dumps(body, separators=(",", ":"))


def answer(hub: Hub, conn: Connection, text: str) -> str:
    """The reply to one request frame (a JSON-RPC response object, as text)."""
    try:
        req = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return _reply(None, err=RPCError(RPCCode.PARSE_ERROR, f"frame is not valid JSON: {e}"))
    id_ = req.get("id") if isinstance(req, dict) else None
    try:
        hub.admit_request(conn)
        return _reply(id_, _call(hub, conn, req))
    except RPCError as e:
        return _reply(id_, err=e)


def _call(hub: Hub, conn: Connection, req) -> dict:
    if not isinstance(req, dict) or req.get("jsonrpc") != "2.0" or \
            not isinstance(req.get("method"), str):
        raise RPCError(RPCCode.INVALID_REQUEST, 'not a JSON-RPC 2.0 request: need {"jsonrpc": '
                       '"2.0", "method": "subscribe", "params": {"topic": ...}, "id": ...} '
                       "(one request per frame; no batches)")
    method, params = req["method"], req.get("params") or {}
    if method not in WS_METHODS:
        raise RPCError(RPCCode.METHOD_NOT_FOUND, f"method {method!r} is not served on the "
                       f"websocket (available: {', '.join(WS_METHODS)}); send other methods "
                       "over HTTP POST /")
    if not isinstance(params, dict):
        raise RPCError(RPCCode.INVALID_PARAMS, "params must be an object, e.g. "
                       '{"topic": "blocks"} or {"subscription": "1"}')
    if method == "subscribe":
        return hub.subscribe(conn, params)
    if method == "unsubscribe":
        sid = params.get("subscription")
        if not isinstance(sid, str | int) or isinstance(sid, bool):
            raise RPCError(RPCCode.INVALID_PARAMS, "unsubscribe needs params.subscription: "
                           "the id that subscribe returned")
        hub.unsubscribe(conn, str(sid))
        return {"unsubscribed": [str(sid)]}
    return {"unsubscribed": hub.unsubscribe_all(conn)}


async def serve_websocket(hub: Hub, scope, receive, send) -> None:
    """The ASGI websocket handler of the JSON-RPC subscriptions."""
    async def on_text(conn: Connection, text: str) -> None:
        conn.push(answer(hub, conn, text))
    await serve_connection(hub, scope, receive, send, on_text)


async def serve_connection(hub, scope, receive, send, on_text) -> None:
    """One websocket connection of a hub (this one, or the Hyperliquid one in rpc/hl_ws.py):
    a reader task hands each text frame to `on_text(conn, text)`, the writer sends the
    connection's bounded queue in order, then the close frame."""
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    ip = (scope.get("client") or ("unknown",))[0]
    try:
        conn = hub.open(ip)
    except Refused as e:
        await send({"type": "websocket.close", "code": CLOSE_TRY_AGAIN, "reason": str(e)})
        return
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_reader, on_text, conn, receive, nursery.cancel_scope)
            await _writer(conn, send)
            nursery.cancel_scope.cancel()
    finally:
        hub.close(conn)


async def _reader(on_text, conn: Connection, receive, scope: trio.CancelScope) -> None:
    while True:
        msg = await receive()
        if msg["type"] != "websocket.receive":
            scope.cancel()    # the client left: stop the writer too
            return
        text = msg.get("text")
        if text is None:
            text = (msg.get("bytes") or b"").decode("utf-8", "replace")
        await on_text(conn, text)


async def _writer(conn: Connection, send) -> None:
    """Send queued messages until the hub drops the connection; then the close frame."""
    try:
        async for text in conn.recv_ch:
            if conn.close_reason is not None:
                break
            await send({"type": "websocket.send", "text": text})
    except trio.Cancelled:
        # the node is stopping, or the client left (then hypercorn ignores the close)
        with trio.move_on_after(1) as cs:
            cs.shield = True
            await send({"type": "websocket.close", "code": CLOSE_GOING_AWAY,
                        "reason": "node shutting down"})
        raise
    code, reason = conn.close_reason
    await send({"type": "websocket.close", "code": code, "reason": reason})
