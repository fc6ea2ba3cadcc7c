"""The websocket hub: connections, their subscriptions, and the fan-out of each committed block.

One `Hub` per node (created by rpc/server.py `serve_rpc`). Consensus hands committed blocks to
a `CommitFeed` (node/commit_feed.py) and goes on; the hub's own task (`run`) wakes, drains
them and, in one synchronous pass over committed data, builds each topic's message once and
puts it on every subscriber's queue with `send_nowait`. So the pass reads one consistent
committed height, and nothing a subscriber does can slow consensus or the other subscribers:

* Each connection has a bounded queue ([rpc] ws_queue_messages). A connection whose queue is
  full is dropped: closed with code 4000 "subscriber too slow: queue of N messages full"
  after the message it is writing, and its queued messages are discarded.
* Connections in all and per client IP, and subscriptions per connection, are limited
  ([rpc] ws_max_connections, ws_max_connections_per_ip, ws_max_subscriptions); requests
  count against the client IP's [rpc] max_requests_per_s_per_ip, as HTTP requests do.

Order on a connection, for each block: book updates (if the block changed a subscribed book),
account, trades and funding messages, and last the block's `blocks` message. A reply to a
request goes on the same queue, so a `book` snapshot precedes the updates that follow it.
"""

import json
import logging

import trio

from node.book_feed import BookFeed
from node.book_seq import BookSequences
from node.commit_feed import CommitFeed
from node.read_model import CommittedBlock
from rpc import ws_messages as W
from rpc.errors import RPCCode, RPCError
from rpc.limits import Admission
from rpc.trading_methods import positions
from rpc.ws_topics import ACCOUNT, BLOCKS, BOOK, FUNDING, TRADES, Topic, parse_topic
from state import markets as MS

log = logging.getLogger("perpchain.ws")

CLOSE_TOO_SLOW = 4000       # the subscriber's queue was full
CLOSE_FELL_BEHIND = 4001    # the node's publisher missed blocks (never expected)
CLOSE_TRY_AGAIN = 1013      # connection limits (RFC 6455 "try again later")
MAX_BOOK_MARKETS = 10_000   # books followed at once (no more markets than this exist)


class Refused(Exception):
    """A connection the limits do not admit; the message names the limit."""


class Connection:
    """One websocket connection: its bounded outgoing queue and its subscriptions."""

    def __init__(self, ip: str, queue_messages: int, on_drop=None):
        """`on_drop(conn)` is called once when the connection is dropped."""
        self.ip = ip
        self.queue_messages = queue_messages
        self.on_drop = on_drop
        self.send_ch, self.recv_ch = trio.open_memory_channel(queue_messages)
        self.subs: dict[str, Topic] = {}      # subscription id -> topic
        self.next_id = 1
        self.close_reason: tuple[int, str] | None = None

    def push(self, text: str) -> bool:
        """Queue one message; a full queue drops the connection. False if not queued."""
        if self.close_reason is not None:
            return False
        try:
            self.send_ch.send_nowait(text)
            return True
        except trio.WouldBlock:
            self.drop(CLOSE_TOO_SLOW, f"subscriber too slow: queue of {self.queue_messages} "
                      "messages full")
            return False

    def drop(self, code: int, reason: str) -> None:
        """Close soon with `code`/`reason` (the writer sends it after its current message)."""
        if self.close_reason is None:
            self.close_reason = (code, reason)
            self.send_ch.close()
            if self.on_drop is not None:
                self.on_drop(self)


def notification(sub_id: str, topic_json: str, result_json: str) -> str:
    return ('{"jsonrpc":"2.0","method":"subscription","params":{"subscription":"' + sub_id
            + '","topic":' + topic_json + ',"result":' + result_json + '}}')


def _dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


def admit_connection(hub, ip: str) -> int:
    """The number of connections `ip` has open (`hub.per_ip`), if one more is within the
    limits ([rpc] ws_max_connections, ws_max_connections_per_ip); Refused otherwise. Shared
    with the Hyperliquid hub (rpc/hl_ws.py)."""
    if len(hub.connections) >= hub.max_connections:
        raise Refused(f"too many websocket connections: limit [rpc] ws_max_connections = "
                      f"{hub.max_connections}")
    n = hub.per_ip.get(ip, 0)
    if n >= hub.max_per_ip:
        raise Refused(f"too many websocket connections from {ip}: limit [rpc] "
                      f"ws_max_connections_per_ip = {hub.max_per_ip}")
    return n


async def run_publisher(hub, what: str) -> None:
    """A hub's publisher task (this one, or the Hyperliquid one in rpc/hl_ws.py): forever,
    wait for committed blocks and fan them out with `hub.publish`; if the feed lost blocks,
    close every connection (they must resubscribe). A bug in `publish` is logged and does
    not stop the task."""
    while True:
        await hub.feed.wait()
        blocks, lost = hub.feed.drain()
        if lost:
            for conn in list(hub.connections):
                conn.drop(CLOSE_FELL_BEHIND, f"the node's websocket publisher fell {lost} "
                          "blocks behind; resubscribe")
        if hub.topics:
            try:
                hub.publish(blocks)
            except Exception:
                log.exception("publishing to %s subscribers failed", what)


class Hub:
    def __init__(self, app, metrics=None):
        r = app.cfg.rpc
        self.app, self.metrics = app, metrics
        self.max_connections, self.max_per_ip = r.ws_max_connections, r.ws_max_connections_per_ip
        self.max_subs, self.queue_messages = r.ws_max_subscriptions, r.ws_queue_messages
        self.connections: set[Connection] = set()
        self.per_ip: dict[str, int] = {}
        self.topics: dict[Topic, dict[Connection, str]] = {}   # topic -> {conn: sub id}
        # sequences continue across restarts (node/book_seq.py, in the store's LevelDB)
        self.books = BookFeed(r.ws_book_depth, MAX_BOOK_MARKETS, BookSequences(app.store.db))
        # Requests over websockets share the per-IP rate of HTTP requests (rpc/limits.py).
        self.rate = Admission(2**31, 2**31, r.max_requests_per_s_per_ip)
        self.feed = CommitFeed()
        app.read_model.attach(self.feed)

    # -- connections ------------------------------------------------------------------------
    def open(self, ip: str) -> Connection:
        n = admit_connection(self, ip)
        conn = Connection(ip, self.queue_messages, self._dropped)
        self.connections.add(conn)
        self.per_ip[ip] = n + 1
        self._gauge()
        return conn

    def close(self, conn: Connection) -> None:
        if conn not in self.connections:
            return
        self.unsubscribe_all(conn)
        self.connections.discard(conn)
        n = self.per_ip.pop(conn.ip) - 1
        if n:
            self.per_ip[conn.ip] = n
        self._gauge()

    def admit_request(self, conn: Connection) -> None:
        """RPCError RATE_LIMITED if the client's IP is over its request rate."""
        self.rate.admit(conn.ip)
        self.rate.release(conn.ip)

    def _dropped(self, conn: Connection) -> None:
        code, reason = conn.close_reason
        log.info("closing websocket connection from %s: %s", conn.ip, reason,
                 extra={"close_code": code})
        if self.metrics is not None:
            self.metrics.ws_dropped.labels(str(code)).inc()

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.ws_connections.set(len(self.connections))
            self.metrics.ws_subscriptions.set(sum(len(c.subs) for c in self.connections))

    # -- subscriptions ----------------------------------------------------------------------
    def subscribe(self, conn: Connection, params: dict) -> dict:
        """Register a subscription; the reply (with a book's snapshot). Synchronous, so a
        snapshot and the registration see the same published state."""
        topic = parse_topic(self.app.store.state, params)
        for sid, t in conn.subs.items():
            if t == topic:
                raise RPCError(RPCCode.INVALID_PARAMS, f"already subscribed to "
                               f"{topic.describe()} as subscription {sid}")
        if len(conn.subs) >= self.max_subs:
            raise RPCError(RPCCode.SUBSCRIPTION_LIMIT, f"this connection has {len(conn.subs)} "
                           f"subscriptions: limit [rpc] ws_max_subscriptions = {self.max_subs}")
        reply = {"topic": topic.to_json()}
        if topic.kind == BOOK:
            rm = self.app.read_model.books
            try:
                view = self.books.track(topic.market_id, rm.book(topic.market_id), rm.height)
            except ValueError as e:
                raise RPCError(RPCCode.SUBSCRIPTION_LIMIT, str(e)) from None
            reply["snapshot"] = W.book_snapshot_json(self._market(topic.market_id), view)
        sid = str(conn.next_id)
        conn.next_id += 1
        conn.subs[sid] = topic
        self.topics.setdefault(topic, {})[conn] = sid
        self._gauge()
        return {"subscription": sid, **reply}

    def unsubscribe(self, conn: Connection, sid: str) -> None:
        topic = conn.subs.pop(sid, None)
        if topic is None:
            mine = ", ".join(conn.subs) or "none"
            raise RPCError(RPCCode.INVALID_PARAMS, f"no subscription {sid!r} on this "
                           f"connection (yours: {mine})")
        subs = self.topics[topic]
        del subs[conn]
        if not subs:
            del self.topics[topic]
            if topic.kind == BOOK:
                self.books.untrack(topic.market_id)
        self._gauge()

    def unsubscribe_all(self, conn: Connection) -> list[str]:
        ids = list(conn.subs)
        for sid in ids:
            self.unsubscribe(conn, sid)
        return ids

    def _market(self, market_id: int):
        return MS.get(self.app.store.state, market_id)

    # -- fan-out ----------------------------------------------------------------------------
    async def run(self) -> None:
        """The publisher task (`run_publisher`)."""
        await run_publisher(self, "websocket")

    def publish(self, blocks: list[CommittedBlock]) -> None:
        """Fan out `blocks` (consecutive, oldest first; the last is the committed tip)."""
        for i, cb in enumerate(blocks):
            if i == len(blocks) - 1:
                self._publish_books()
            self._publish_accounts(cb)
            self._publish_market_events(cb, TRADES, "fill", "trades")
            self._publish_market_events(cb, FUNDING, "funding", "funding")
            self._send(Topic(BLOCKS), W.block_json(cb))   # last: "height h is complete"

    def _send(self, topic: Topic, result: dict) -> None:
        subs = self.topics.get(topic)
        if not subs:
            return
        tj, rj = _dumps(topic.to_json()), _dumps(result)
        sent = 0
        for conn, sid in list(subs.items()):
            sent += conn.push(notification(sid, tj, rj))
        if self.metrics is not None:
            self.metrics.ws_messages.inc(sent)

    def _publish_books(self) -> None:
        if not self.books.views:
            return
        rm = self.app.read_model.books
        for u in self.books.advance(rm.book, rm.height):
            m = self._market(u.market_id)
            self._send(Topic(BOOK, m.id, m.symbol), W.book_update_json(m, u))

    def _publish_accounts(self, cb: CommittedBlock) -> None:
        wanted = {t.address for t in self.topics if t.kind == ACCOUNT}
        if not wanted:
            return
        for addr, data in sorted(W.by_account(cb, wanted).items()):
            result = {"address": addr, "height": str(cb.height), "time_ms": str(cb.time_ms),
                      **data}
            # positions are read from the committed state: the tip's (the block's own
            # unless the publisher is more than a block behind)
            result["positions_height"] = str(self.app.read_model.books.height)
            result["positions"] = self._positions(addr)
            self._send(Topic(ACCOUNT, address=addr), result)

    def _positions(self, addr: str) -> list[dict]:
        """The `positions` method's answer (a coroutine that never suspends), run here."""
        coro = positions(self.app, {"address": addr})
        try:
            coro.send(None)
        except StopIteration as done:
            return done.value["positions"]
        coro.close()
        raise RuntimeError("positions suspended")

    def _publish_market_events(self, cb: CommittedBlock, kind: str, event_type: str,
                               key: str) -> None:
        wanted = {t.market for t in self.topics if t.kind == kind}
        if not wanted:
            return
        every = None in wanted
        for sym, events in W.by_market(cb, event_type, None if every else wanted).items():
            if sym in wanted:
                mid = next(t.market_id for t in self.topics if t.kind == kind and t.market == sym)
                self._send(Topic(kind, mid, sym), {"market": sym, "height": str(cb.height),
                                                   "time_ms": str(cb.time_ms), key: events})
            if every:
                self._send(Topic(kind), {"market": sym, "height": str(cb.height),
                                         "time_ms": str(cb.time_ms), key: events})
