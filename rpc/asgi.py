"""What every ASGI application of the node answers the same way: the lifespan protocol and
the websocket handshake (one path served, any other refused)."""


async def lifespan_or_websocket(scope, receive, send, ws_path: str, serve_ws) -> bool:
    """Answer a lifespan scope, or a websocket one (`serve_ws(scope, receive, send)` on
    `ws_path` when given, else refused at the handshake: HTTP 403). True if it was one of
    them (the caller then has nothing left to do)."""
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return True
    if scope["type"] == "websocket":
        if serve_ws is not None and scope["path"] == ws_path:
            await serve_ws(scope, receive, send)
        else:
            await receive()
            await send({"type": "websocket.close"})
        return True
    return False
