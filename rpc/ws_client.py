"""Websocket subscriptions from scripts: a small blocking client (websockets' sync client).

    with Subscriptions("http://127.0.0.1:26657") as ws:
        blocks = ws.subscribe("blocks")
        book = ws.subscribe("book", market="BTC-USD")     # book.snapshot: the L2 snapshot
        for note in ws.notifications(timeout=10):         # Notification(subscription, topic, result)
            ...

`L2Book` rebuilds a market's book from a `book` subscription's snapshot and updates and
raises `SequenceGap` when an update is missing (then resubscribe for a new snapshot).
Requests and notifications share one connection; `subscribe` keeps the notifications that
arrive before its reply for `notifications` to return. Message shapes: docs/PROTOCOL.md.
"""

import json
import time
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect


class SubscriptionError(Exception):
    """The node answered a websocket request with a JSON-RPC error."""

    def __init__(self, code: int, message: str):
        super().__init__(f"RPC error {code}: {message}")
        self.code, self.message = code, message


class SequenceGap(Exception):
    """A `book` update's sequence is not the next one: an update was missed."""


@dataclass
class Subscription:
    id: str
    topic: dict
    snapshot: dict | None = None


@dataclass
class Notification:
    subscription: str
    topic: dict
    result: dict


def ws_url(url: str) -> str:
    """`http://host:port` -> `ws://host:port/websocket`."""
    base = url.rstrip("/")
    if base.startswith("http"):
        base = "ws" + base[4:]
    return base if base.endswith("/websocket") else base + "/websocket"


class Subscriptions:
    def __init__(self, url: str = "http://127.0.0.1:26657", open_timeout: float = 10.0,
                 **connect_kw):
        """`connect_kw` go to websockets' `connect` (e.g. `max_queue`: frames buffered before
        the client stops reading the socket; `sock`: a connected socket; `ping_interval`)."""
        # (entered as a context manager: calling connect() bare is deprecated)
        self._cm = connect(ws_url(url), open_timeout=open_timeout, **connect_kw)
        self.ws = self._cm.__enter__()
        self._id = 0
        self._pending: deque[Notification] = deque()

    def close(self) -> None:
        self._cm.__exit__(None, None, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, method: str, params: dict | None = None, timeout: float = 10.0):
        """Send one JSON-RPC request and return its result (notifications that arrive
        first are kept for `notifications`)."""
        self._id += 1
        my_id = self._id
        self.ws.send(json.dumps({"jsonrpc": "2.0", "id": my_id, "method": method,
                                 "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.0, deadline - time.monotonic())))
            if msg.get("method") == "subscription":
                p = msg["params"]
                self._pending.append(Notification(p["subscription"], p["topic"], p["result"]))
            elif msg.get("id") == my_id:
                if "error" in msg:
                    raise SubscriptionError(msg["error"]["code"], msg["error"]["message"])
                return msg["result"]

    def subscribe(self, topic: str, **params) -> Subscription:
        r = self.request("subscribe", {"topic": topic, **params})
        return Subscription(r["subscription"], r["topic"], r.get("snapshot"))

    def unsubscribe(self, sub: Subscription | str) -> None:
        self.request("unsubscribe", {"subscription": getattr(sub, "id", sub)})

    def next(self, timeout: float | None = None) -> Notification:
        """The next notification (TimeoutError after `timeout` seconds; ConnectionClosed,
        with the node's close code and reason, if the node closed the connection)."""
        if self._pending:
            return self._pending.popleft()
        msg = json.loads(self.ws.recv(timeout=timeout))
        p = msg["params"]
        return Notification(p["subscription"], p["topic"], p["result"])

    def notifications(self, timeout: float | None = None):
        """Notifications until none comes for `timeout` seconds or the connection ends."""
        while True:
            try:
                yield self.next(timeout)
            except (TimeoutError, ConnectionClosed):
                return


@dataclass
class L2Book:
    """A market's L2 book kept from a `book` subscription: price -> (size, orders)."""

    market: str
    sequence: int
    height: int
    bids: dict[Decimal, tuple[Decimal, int]] = field(default_factory=dict)
    asks: dict[Decimal, tuple[Decimal, int]] = field(default_factory=dict)

    @classmethod
    def from_snapshot(cls, snap: dict) -> "L2Book":
        b = cls(snap["market"], int(snap["sequence"]), int(snap["height"]))
        b._apply(snap)
        return b

    def apply(self, update: dict) -> None:
        """Apply the next update; SequenceGap if it is not sequence + 1."""
        seq = int(update["sequence"])
        if seq != self.sequence + 1:
            raise SequenceGap(f"{self.market}: got sequence {seq} after {self.sequence}; "
                              "resubscribe for a new snapshot")
        self._apply(update)
        self.sequence, self.height = seq, int(update["height"])

    def _apply(self, msg: dict) -> None:
        for side, levels in (("bids", self.bids), ("asks", self.asks)):
            for lv in msg[side]:
                price, size = Decimal(lv["price"]), Decimal(lv["size"])
                if size:
                    levels[price] = (size, int(lv["orders"]))
                else:
                    levels.pop(price, None)

    def levels(self, depth: int | None = None) -> dict:
        """{"bids": [...], "asks": [...]} best first, shaped as the `orderbook` method's."""
        def rows(levels, reverse):
            return [{"price": _text(p), "size": _text(s), "orders": n}
                    for p, (s, n) in sorted(levels.items(), reverse=reverse)[:depth]]
        return {"bids": rows(self.bids, True), "asks": rows(self.asks, False)}


def _text(d: Decimal) -> str:
    """A decimal as the node writes it (no exponent, no trailing zeros)."""
    s = format(d, "f")
    return s.rstrip("0").rstrip(".") if "." in s else s
