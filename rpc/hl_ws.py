"""Hyperliquid's websocket `/ws`: subscriptions, `post` and `ping`, as the official SDK speaks.

Client messages (one JSON object per text frame):

    {"method": "subscribe",   "subscription": {"type": "l2Book", "coin": "BTC"}}
    {"method": "unsubscribe", "subscription": {...the same...}}
    {"method": "post", "id": 7, "request": {"type": "info" | "action", "payload": {...}}}
    {"method": "ping"}

Subscriptions: allMids, l2Book {coin}, trades {coin}, candle {coin, interval}, userFills
{user}, userEvents {user}, orderUpdates {user}, userNonFundingLedgerUpdates {user}. Each is
answered by {"channel": "subscriptionResponse", "data": {"method": ..., "subscription": ...}},
then (for allMids, l2Book, userFills and userNonFundingLedgerUpdates) a snapshot; a bad one by
{"channel": "error", "data": why}.

`HLHub` follows the native hub (rpc/ws_hub.py), reusing its pieces: committed blocks arrive
through a `CommitFeed` (node/commit_feed.py) and are published by the hub's own task, off the
consensus path; every connection has a bounded queue (ws_hub.Connection) and one whose queue
is full is closed (4000 "subscriber too slow"); connections, per-IP connections,
subscriptions per connection and requests per second come from the [rpc] ws_* limits.
Messages are built from committed data with rpc/hl_format.py, as /info answers them:
per batch of committed blocks, trades / userFills / userEvents / orderUpdates / candles for
what the blocks did, then l2Book and allMids if they changed.
"""

import json
import logging
from collections import OrderedDict

from node.commit_feed import CommitFeed
from node.read_model import Fill
from rpc import hl_format as H, hl_info, hl_lending
from rpc.hl_exchange import exchange
from rpc.hl_format import HLError, Universe
from rpc.limits import Admission
from rpc.errors import RPCError
from rpc.ws_hub import Connection, admit_connection, run_publisher
from rpc.ws_messages import block_events
from rpc.ws_server import serve_connection
from state.machine import last_block

log = logging.getLogger("perpchain.hl_ws")

COIN_SUBS = ("l2Book", "trades")
USER_SUBS = ("userFills", "userEvents", "orderUpdates", "userNonFundingLedgerUpdates")
_LIQUIDATIONS = ("liquidation", "collateral_liquidation")
SUB_TYPES = ("allMids", "l2Book", "trades", "candle") + USER_SUBS
MAX_REMEMBERED_ORDERS = 10_000    # orders of subscribed users, for cancel updates
_CANCEL_STATUS = {"self_trade": "selfTradeCanceled", "liquidation": "liquidatedCanceled",
                  "scheduled_cancel": "scheduledCancel",
                  "reduce_only": "reduceOnlyCanceled", "sibling_filled": "siblingFilledCanceled"}
_ORDER_STATUS = {"open": "open", "partially_filled_open": "open", "filled": "filled",
                 "partially_filled_cancelled": "canceled", "cancelled_unfilled": "canceled",
                 "waiting_trigger": "open", "modified_in_place": "open"}


def _dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


def channel(name: str, data) -> str:
    return _dumps({"channel": name, "data": data})


def sub_key(uni: Universe, sub) -> tuple:
    """The canonical form of a subscription: (type, market id, account, interval)."""
    if not isinstance(sub, dict) or sub.get("type") not in SUB_TYPES:
        raise H.bad("invalid_subscription", f"subscription type must be one of "
                    f"{', '.join(SUB_TYPES)}")
    t = sub["type"]
    if t == "allMids":
        return (t, None, None, None)
    if t in USER_SUBS:
        return (t, None, H.parse_user(sub.get("user")), None)
    m = uni.market(sub.get("coin"))
    interval = hl_info.interval_of(sub.get("interval")) if t == "candle" else None
    return (t, m.id, None, interval)


class HLHub:
    def __init__(self, app, metrics=None):
        r = app.cfg.rpc
        self.app = app
        self.max_connections, self.max_per_ip = r.ws_max_connections, r.ws_max_connections_per_ip
        self.max_subs, self.queue_messages = r.ws_max_subscriptions, r.ws_queue_messages
        self.connections: set[Connection] = set()
        self.per_ip: dict[str, int] = {}
        self.subs: dict[Connection, dict[tuple, dict]] = {}     # conn -> key -> as sent
        self.topics: dict[tuple, set[Connection]] = {}
        self.rate = Admission(2**31, 2**31, r.max_requests_per_s_per_ip)
        self.last_books: dict[int, list] = {}
        self.last_mids: dict | None = None
        self.orders: OrderedDict[int, dict] = OrderedDict()    # oid -> order json
        self.feed = CommitFeed()
        app.read_model.attach(self.feed)

    # -- connections ------------------------------------------------------------------------
    def open(self, ip: str) -> Connection:
        n = admit_connection(self, ip)
        conn = Connection(ip, self.queue_messages)
        self.connections.add(conn)
        self.subs[conn] = {}
        self.per_ip[ip] = n + 1
        return conn

    def close(self, conn: Connection) -> None:
        if conn not in self.connections:
            return
        for key in list(self.subs.pop(conn, {})):
            self._drop_topic(conn, key)
        self.connections.discard(conn)
        n = self.per_ip.pop(conn.ip) - 1
        if n:
            self.per_ip[conn.ip] = n

    def _drop_topic(self, conn: Connection, key: tuple) -> None:
        conns = self.topics.get(key)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self.topics[key]
                if key[0] == "l2Book" and not any(k[0] == "l2Book" and k[1] == key[1]
                                                  for k in self.topics):
                    self.last_books.pop(key[1], None)

    # -- requests ---------------------------------------------------------------------------
    async def handle(self, conn: Connection, text: str) -> None:
        """Answer one client frame (replies go on the connection's queue); a bug answers an
        error and is logged, never ends the connection."""
        try:
            await self._handle(conn, text)
        except Exception as e:
            log.exception("Hyperliquid websocket request failed")
            conn.push(channel("error", f"internal error: {e}"))

    async def _handle(self, conn: Connection, text: str) -> None:
        try:
            msg = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError):
            conn.push(channel("error", f"Invalid JSON: {text[:100]}"))
            return
        method = msg.get("method") if isinstance(msg, dict) else None
        try:
            self.rate.admit(conn.ip)
            self.rate.release(conn.ip)
        except RPCError as e:
            conn.push(channel("error", e.message))
            return
        if method == "ping":
            conn.push(_dumps({"channel": "pong"}))
        elif method in ("subscribe", "unsubscribe"):
            self._subscription(conn, method, msg.get("subscription"))
        elif method == "post":
            await self._post(conn, msg)
        else:
            conn.push(channel("error", f"Unknown method {str(method)[:40]!r}: use subscribe, "
                              "unsubscribe, post or ping"))

    def _subscription(self, conn: Connection, method: str, sub) -> None:
        try:
            key = sub_key(Universe(self.app.store.state), sub)
        except HLError as e:
            conn.push(channel("error", f"Invalid subscription {_dumps(sub)[:200]}: {e.msg}"))
            return
        mine = self.subs[conn]
        if method == "unsubscribe":
            if mine.pop(key, None) is None:
                conn.push(channel("error", f"Already unsubscribed: {_dumps(sub)[:200]}"))
                return
            self._drop_topic(conn, key)
            conn.push(channel("subscriptionResponse", {"method": method, "subscription": sub}))
            return
        if key in mine:
            conn.push(channel("error", f"Already subscribed: {_dumps(sub)[:200]}"))
            return
        if len(mine) >= self.max_subs:
            conn.push(channel("error", f"this connection has {len(mine)} subscriptions: limit "
                              f"[rpc] ws_max_subscriptions = {self.max_subs}"))
            return
        mine[key] = sub
        self.topics.setdefault(key, set()).add(conn)
        conn.push(channel("subscriptionResponse", {"method": method, "subscription": sub}))
        self._snapshot(conn, key)

    def _snapshot(self, conn: Connection, key: tuple) -> None:
        kind, mid, account, _ = key
        app = self.app
        if kind == "l2Book":
            uni = Universe(app.store.state)
            m = uni.markets[mid]
            conn.push(channel("l2Book", self._book(uni, m)))
        elif kind == "allMids":
            conn.push(channel("allMids", {"mids": hl_info.mids(app)}))
        elif kind == "userFills":
            rows = hl_info.user_fill_rows(app, account, hl_info._account_fills(app, account)[
                :hl_info.MAX_FILLS])
            conn.push(channel("userFills", {"isSnapshot": True, "user": H.user_text(account),
                                            "fills": rows}))
        elif kind == "orderUpdates":
            uni = Universe(app.store.state)
            for m, o in hl_info._open_orders(app.store.state, uni, account):
                self._remember(o.id, H.order_json(uni, m, o))
        elif kind == "userNonFundingLedgerUpdates":
            rows = hl_lending.ledger_rows(app, account)
            conn.push(channel("userNonFundingLedgerUpdates", {
                "isSnapshot": True, "user": H.user_text(account),
                "nonFundingLedgerUpdates": rows[-hl_lending.MAX_LEDGER_ROWS:]}))

    async def _post(self, conn: Connection, msg: dict) -> None:
        req = msg.get("request")
        pid = msg.get("id")
        kind = req.get("type") if isinstance(req, dict) else None
        payload = req.get("payload") if isinstance(req, dict) else None
        if kind == "info":
            try:
                data = await hl_info.info(self.app, payload)
                resp = {"type": "info", "payload": {"type": payload.get("type"), "data": data}}
            except HLError as e:
                resp = {"type": "error", "payload": e.msg}
        elif kind == "action":
            status, body = await call_exchange(self.app, payload)
            resp = {"type": "action", "payload": body} if status < 400 else \
                {"type": "error", "payload": body.get("msg", body) if isinstance(body, dict)
                 else body}
        else:
            resp = {"type": "error", "payload": 'request.type must be "info" or "action"'}
        conn.push(channel("post", {"id": pid, "response": resp}))

    # -- fan-out ----------------------------------------------------------------------------
    async def run(self) -> None:
        """The publisher task (rpc/ws_hub.run_publisher)."""
        await run_publisher(self, "Hyperliquid websocket")

    def _send(self, key: tuple, text: str) -> None:
        for conn in list(self.topics.get(key, ())):
            conn.push(text)

    def publish(self, blocks) -> None:
        """Fan out `blocks` (consecutive, oldest first; the last is the committed tip)."""
        uni = Universe(self.app.store.state)
        fills, events = [], []
        for cb in blocks:
            for i, e in block_events(cb):
                if e.type == "fill":
                    fills.append(Fill(cb.height, i, cb.time_ms, e.attrs))
                else:
                    events.append((cb.time_ms, e))
        kinds = {k[0] for k in self.topics}
        if fills:   # a restarted node's fill history starts once something reads it
            self.app.read_model.fills.catch_up(last_block(self.app.store.state)[0])
        if fills and "trades" in kinds:
            self._trades(uni, fills)
        if fills and "candle" in kinds:
            self._candles(uni, fills)
        if kinds & set(USER_SUBS):
            self._users(uni, blocks[0].height, fills, events)
        if "l2Book" in kinds:
            for key in [k for k in self.topics if k[0] == "l2Book"]:
                m = uni.markets[key[1]]
                before = self.last_books.pop(m.id, None)
                data = self._book(uni, m)
                if data["levels"] != before:
                    self._send(key, channel("l2Book", data))
        if "allMids" in kinds:
            mids = hl_info.mids(self.app)
            if mids != self.last_mids:
                self.last_mids = mids
                self._send(("allMids", None, None, None), channel("allMids", {"mids": mids}))

    def _book(self, uni: Universe, m) -> dict:
        """The coin's l2Book data now. The levels last published are remembered, so the
        next pass sends only a changed book; a new subscriber's snapshot sets them only
        when nobody followed the coin (the others must still get the change)."""
        levels = H.levels_json(m, self.app.read_model.books.book(m.id), hl_info.L2_DEPTH)
        self.last_books.setdefault(m.id, levels)
        return {"coin": uni.name[m.id], "time": hl_info._now_ms(self.app), "levels": levels}

    def _trades(self, uni: Universe, fills: list[Fill]) -> None:
        hashes = H.TxHashes(self.app.store)
        by_market: dict[int, list] = {}
        for f in fills:
            m = uni.by_symbol.get(f.attr("market"))
            if m is not None and ("trades", m.id, None, None) in self.topics:
                by_market.setdefault(m.id, []).append(H.trade_json(uni, f, hashes(f.height,
                                                                                  f.index)))
        for mid, rows in by_market.items():
            self._send(("trades", mid, None, None), channel("trades", rows))

    def _candles(self, uni: Universe, fills: list[Fill]) -> None:
        """The candles this batch's fills touched, each whole (from the read model's
        aggregates, node/fill_stats.py)."""
        for key in [k for k in self.topics if k[0] == "candle"]:
            m = uni.markets[key[1]]
            mine = [f for f in fills if f.attr("market") == m.symbol]
            if not mine:
                continue
            for c in hl_info.candle_rows(self.app, uni, m, key[3], mine[0].time_ms, 2**63):
                self._send(key, channel("candle", c))

    # -- per-user channels ------------------------------------------------------------------
    def _users(self, uni: Universe, first_height: int, fills: list[Fill], events) -> None:
        wanted = sorted({k[2] for k in self.topics if k[0] in USER_SUBS})
        for account in wanted:
            me, user = account.hex(), H.user_text(account)
            mine = [f for f in fills if f.involves(me, None)]
            rows = self._fill_rows(account, first_height, mine) if mine else []
            if rows:
                self._send(("userFills", None, account, None),
                           channel("userFills", {"user": user, "fills": rows}))
                self._send(("userEvents", None, account, None), channel("user", {"fills": rows}))
            for t, e in events:
                if e.type == "funding_payment" and e.attrs[0] == ("account", me):
                    self._send(("userEvents", None, account, None),
                               channel("user", {"funding": self._funding(uni, t, dict(e.attrs))}))
                elif e.type in _LIQUIDATIONS and e.attrs[0] == ("account", me) and \
                        dict(e.attrs)["filled"] != "0":
                    self._send(("userEvents", None, account, None), channel(
                        "user", hl_lending.user_event_liquidation(account, dict(e.attrs))))
            self._ledger(uni, account, events)
            if ("orderUpdates", None, account, None) in self.topics:
                updates = self._order_updates(uni, me, mine, events)
                if updates:
                    self._send(("orderUpdates", None, account, None),
                               channel("orderUpdates", updates))

    def _fill_rows(self, account: bytes, first_height: int, mine: list[Fill]) -> list[dict]:
        """userFills rows of `mine` (the account's fills of this batch), oldest first, with
        startPosition walked back from the state over the read model's newer fills."""
        me = account.hex()
        newest = []
        for f in reversed(self.app.read_model.fills.fills):
            if f.height < first_height:
                break
            if f.involves(me, None):
                newest.append(f)
        wanted = {(f.height, f.index, H.tid(f)) for f in mine}
        rows = hl_info.user_fill_rows(self.app, account, newest,
                                      lambda f: (f.height, f.index, H.tid(f)) in wanted)
        return list(reversed(rows))

    def _ledger(self, uni: Universe, account: bytes, events) -> None:
        """The account's userNonFundingLedgerUpdates rows of this batch (as /info's)."""
        key = ("userNonFundingLedgerUpdates", None, account, None)
        if key not in self.topics:
            return
        me = account.hex()
        rows = [r for r in (hl_lending.ledger_row(uni, t, e.type, dict(e.attrs))
                            for t, e in events if e.attrs and e.attrs[0] == ("account", me))
                if r is not None]
        if rows:
            self._send(key, channel("userNonFundingLedgerUpdates", {
                "user": H.user_text(account), "nonFundingLedgerUpdates": rows}))

    @staticmethod
    def _funding(uni: Universe, time_ms: int, a: dict) -> dict:
        m = uni.by_symbol[a["market"]]
        hist = hl_info.F.history(uni.view, m.id)
        rate = H.amt(hist[-1].rate, hl_info.F.RATE_DECIMALS) if hist else "0.0"
        return {"time": time_ms, "coin": uni.name[m.id], "usdc": H.num(a["amount"]),
                "szi": H.num(a["size"]), "fundingRate": rate, "nSamples": None}

    def _remember(self, oid: int, order: dict) -> None:
        self.orders[oid] = order
        self.orders.move_to_end(oid)
        while len(self.orders) > MAX_REMEMBERED_ORDERS:
            self.orders.popitem(last=False)

    def _order_updates(self, uni: Universe, me: str, mine: list[Fill], events) -> list[dict]:
        out = []
        for t, e in events:
            a = dict(e.attrs)
            if a.get("owner") != me or e.type not in ("order", "cancel", "trigger",
                                                      "trigger_rejected"):
                continue
            oid = int(a["order_id"])
            order = dict(self.orders.get(oid) or {"oid": oid, "timestamp": t})
            m = uni.by_symbol.get(a.get("market"))
            if m is not None:
                order["coin"] = uni.name[m.id]
            if e.type == "order":
                order.update(side="B" if a["side"] == "buy" else "A", limitPx=H.num(a["price"]),
                             origSz=H.num(a["size"]), sz=H.num(a.get("remaining", a["size"])))
                if a.get("cloid", "0") != "0":
                    order["cloid"] = H.cloid_text(int(a["cloid"]))
                status = _ORDER_STATUS.get(a["status"], "open")
            elif e.type == "cancel":
                order["sz"] = H.num(a["remaining"])
                status = _CANCEL_STATUS.get(a["reason"], "canceled")
            else:
                status = "triggered" if e.type == "trigger" else "rejected"
            self._remember(oid, order)
            if status != "open" and status != "triggered":
                self.orders.pop(oid, None)
            out.append({"order": order, "status": status, "statusTimestamp": t})
        for f in mine:   # a resting order of the account filled whole by someone else
            if f.attr("maker") == me and f.attr("maker_remaining") == "0":
                oid = int(f.attr("maker_order_id"))
                order = dict(self.orders.pop(oid, None) or {"oid": oid})
                order["sz"] = "0.0"
                out.append({"order": order, "status": "filled", "statusTimestamp": f.time_ms})
        return out


async def call_exchange(app, body) -> tuple[int, dict]:
    """`POST /exchange` and a websocket `post` of type "action": rpc/hl_exchange.py's
    `exchange(app, body)` (the Hyperliquid signature scheme)."""
    if not isinstance(body, dict):
        return 400, {"code": "invalid_request", "msg": "the body must be a JSON object",
                     "data": None}
    return await exchange(app, body)


# -- the ASGI websocket --------------------------------------------------------------------

async def serve_hl_websocket(hub: HLHub, scope, receive, send) -> None:
    """One connection (rpc/ws_server.serve_connection): each frame goes to `hub.handle`."""
    await serve_connection(hub, scope, receive, send, hub.handle)
