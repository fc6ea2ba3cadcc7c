"""The Hyperliquid websocket hub (rpc/hl_ws.py) on a real one-validator chain: subscription
replies and snapshots, what a committed block publishes (each message routed as the official
SDK routes it), ping, post, errors and the bounded queue."""

import json

import pytest
import trio

from rpc.hl_info import info
from rpc.hl_ws import HLHub
from rpc.ws_hub import CLOSE_TOO_SLOW
from tests.protocol_chain import MAKER, PX, USER, VALIDATOR, order_action
from tests.unit.test_hl_info import FundedChain

U = "0x" + USER.pub_key.hex()


class Chain(FundedChain):
    def __init__(self, path, **rpc):
        super().__init__(path)
        for k, v in rpc.items():
            setattr(self.app.cfg.rpc, k, v)
        self.hub = HLHub(self.app)

    def commit(self, *txs):
        """Commit a block and run the hub's publisher pass, as its task would."""
        self.blk(*txs)
        blocks, lost = self.hub.feed.drain()
        assert lost == 0
        self.hub.publish(blocks)

    def send(self, conn, msg: dict) -> None:
        trio.run(self.hub.handle, conn, json.dumps(msg))


def drain(conn) -> list[dict]:
    out = []
    while True:
        try:
            out.append(json.loads(conn.recv_ch.receive_nowait()))
        except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
            return out


def sdk_identifier(msg: dict):
    from hyperliquid.websocket_manager import ws_msg_to_identifier
    return ws_msg_to_identifier(msg)


@pytest.fixture
def chain(tmp_path):
    c = Chain(tmp_path)
    c.commit((USER, ["faucet"]), (MAKER, ["faucet"]))
    c.commit((VALIDATOR, ["oracle", [["BTC", 60_000 * PX], ["ETH", 3_000 * PX]]]))
    yield c
    c.close()


def subscribe(chain, conn, sub: dict) -> list[dict]:
    chain.send(conn, {"method": "subscribe", "subscription": sub})
    msgs = drain(conn)
    assert msgs[0] == {"channel": "subscriptionResponse",
                       "data": {"method": "subscribe", "subscription": sub}}
    return msgs[1:]


def test_a_fill_reaches_book_trades_user_and_order_subscribers(chain):
    conn = chain.hub.open("10.0.0.1")
    (book0,) = subscribe(chain, conn, {"type": "l2Book", "coin": "BTC"})
    assert book0["data"]["levels"] == [[], []]
    assert subscribe(chain, conn, {"type": "trades", "coin": "BTC"}) == []
    (snap,) = subscribe(chain, conn, {"type": "userFills", "user": U})
    assert snap["data"] == {"isSnapshot": True, "user": U, "fills": []}
    assert subscribe(chain, conn, {"type": "orderUpdates", "user": U}) == []
    assert subscribe(chain, conn, {"type": "userEvents", "user": U}) == []
    assert subscribe(chain, conn, {"type": "candle", "coin": "BTC", "interval": "1m"}) == []
    chain.commit((MAKER, order_action(1, False, 60_010, 0.003)))
    (book1,) = drain(conn)
    assert book1["channel"] == "l2Book"
    assert book1["data"]["levels"] == chain.hl({"type": "l2Book", "coin": "BTC"})["levels"]
    chain.commit((USER, order_action(1, True, 60_010, 0.001, tif=1, cloid=5)))
    msgs = drain(conn)
    by = {m["channel"]: m for m in msgs}
    assert {"trades", "userFills", "user", "orderUpdates", "l2Book", "candle"} <= set(by)
    fill = chain.hl({"type": "userFills", "user": U})[0]
    assert by["userFills"]["data"] == {"user": U, "fills": [fill]}
    assert by["user"]["data"] == {"fills": [fill]}
    (trade,) = by["trades"]["data"]
    assert (trade["px"], trade["sz"], trade["side"], trade["tid"]) == \
        (fill["px"], fill["sz"], "B", fill["tid"])
    assert trade["users"] == [U, "0x" + MAKER.pub_key.hex()]
    (upd,) = by["orderUpdates"]["data"]
    assert upd["status"] == "filled" and upd["order"]["cloid"] == "0x" + "0" * 31 + "5"
    assert by["candle"]["data"]["v"] == "0.001" and by["candle"]["data"]["n"] == 1
    assert by["l2Book"]["data"]["levels"][1] == [{"px": "60010.0", "sz": "0.002", "n": 1}]
    # the SDK routes each message to the subscription it came from
    assert [sdk_identifier(m) for m in msgs] == \
        [{"trades": "trades:btc", "candle": "candle:btc,1m", "userFills": f"userFills:{U}",
          "user": "userEvents", "orderUpdates": "orderUpdates", "l2Book": "l2Book:btc"}[
            m["channel"]] for m in msgs]
    chain.commit((VALIDATOR, ["oracle", [["BTC", 60_000 * PX], ["ETH", 3_000 * PX]]]))
    assert [m["channel"] for m in drain(conn)] == []   # nothing changed for these channels


def test_a_cancel_is_an_order_update_with_the_order_seen_before(chain):
    conn = chain.hub.open("10.0.0.1")
    subscribe(chain, conn, {"type": "orderUpdates", "user": U})
    chain.commit((USER, order_action(1, True, 59_000, 0.002, cloid=9)))
    (placed,) = drain(conn)[0]["data"]
    assert placed["status"] == "open" and placed["order"]["limitPx"] == "59000.0"
    chain.commit((USER, ["cancel_cloid", 1, 9]))
    (cancelled,) = drain(conn)[0]["data"]
    assert cancelled["status"] == "canceled"
    assert cancelled["order"] == placed["order"]


def test_all_mids_is_sent_when_a_mid_changes(chain):
    conn = chain.hub.open("10.0.0.1")
    (first,) = subscribe(chain, conn, {"type": "allMids"})
    marks = {m["market"]: m["mark_price"] for m in chain.native("mark_prices", {})["marks"]}
    assert first["data"] == {"mids": {"BTC": marks["BTC-USD"] + ".0",   # no book yet: marks
                                      "ETH": marks["ETH-USD"] + ".0"}}
    chain.commit((MAKER, order_action(1, False, 60_010, 0.003)),
                 (MAKER, order_action(1, True, 59_990, 0.003)))
    msgs = drain(conn)
    assert msgs[-1]["channel"] == "allMids"
    assert msgs[-1]["data"]["mids"]["BTC"] == "60000.0"


def test_ping_post_and_errors(chain):
    conn = chain.hub.open("10.0.0.1")
    chain.send(conn, {"method": "ping"})
    chain.send(conn, {"method": "post", "id": 3, "request": {"type": "info",
                                                               "payload": {"type": "meta"}}})
    chain.send(conn, {"method": "post", "id": 4, "request": {"type": "info",
                                                               "payload": {"type": "x"}}})
    chain.send(conn, {"method": "subscribe", "subscription": {"type": "l2Book", "coin": "X"}})
    chain.send(conn, {"method": "subscribe", "subscription": {"type": "bbo", "coin": "BTC"}})
    chain.send(conn, {"method": "unsubscribe", "subscription": {"type": "allMids"}})
    chain.send(conn, {"method": "dance"})
    pong, meta, bad_post, *errors = drain(conn)
    assert pong == {"channel": "pong"}
    assert meta == {"channel": "post", "data": {"id": 3, "response": {
        "type": "info", "payload": {"type": "meta", "data": chain.hl({"type": "meta"})}}}}
    assert bad_post["data"]["id"] == 4 and bad_post["data"]["response"]["type"] == "error"
    assert [e["channel"] for e in errors] == ["error"] * 4
    assert "unknown coin" in errors[0]["data"]
    assert "subscription type must be one of" in errors[1]["data"]
    assert "Already unsubscribed" in errors[2]["data"] and "dance" in errors[3]["data"]


def test_an_action_post_goes_to_the_exchange_handler(chain, monkeypatch):
    import rpc.hl_ws as W
    seen = []

    async def fake(app, body):
        seen.append(body)
        return 200, {"status": "ok", "response": {"type": "default"}}
    monkeypatch.setattr(W, "call_exchange", fake)
    conn = chain.hub.open("10.0.0.1")
    chain.send(conn, {"method": "post", "id": 9, "request": {"type": "action",
                                                               "payload": {"action": 1}}})
    assert drain(conn) == [{"channel": "post", "data": {"id": 9, "response": {
        "type": "action", "payload": {"status": "ok", "response": {"type": "default"}}}}}]
    assert seen == [{"action": 1}]


def test_a_slow_subscriber_is_closed_and_the_others_go_on(tmp_path):
    chain = Chain(tmp_path, ws_queue_messages=3)
    try:
        slow, fast = chain.hub.open("10.0.0.1"), chain.hub.open("10.0.0.2")
        for conn in (slow, fast):
            chain.send(conn, {"method": "subscribe", "subscription": {"type": "allMids"}})
        drain(fast)
        chain.commit((USER, ["faucet"]), (MAKER, ["faucet"]))
        chain.commit((VALIDATOR, ["oracle", [["BTC", 60_000 * PX], ["ETH", 3_000 * PX]]]))
        for px in (59_000, 59_100, 59_200):
            chain.commit((MAKER, order_action(1, True, px, 0.001)),
                         (MAKER, order_action(1, False, px + 2_000, 0.001)))
            drain(fast)
        assert slow.close_reason is not None and slow.close_reason[0] == CLOSE_TOO_SLOW
        assert fast.close_reason is None
    finally:
        chain.close()


def test_subscription_limit_and_duplicates(tmp_path):
    chain = Chain(tmp_path, ws_max_subscriptions=2)
    try:
        conn = chain.hub.open("10.0.0.1")
        subscribe(chain, conn, {"type": "allMids"})
        chain.send(conn, {"method": "subscribe", "subscription": {"type": "allMids"}})
        assert "Already subscribed" in drain(conn)[0]["data"]
        subscribe(chain, conn, {"type": "trades", "coin": "ETH"})
        chain.send(conn, {"method": "subscribe", "subscription": {"type": "trades",
                                                                  "coin": "BTC"}})
        assert "ws_max_subscriptions" in drain(conn)[0]["data"]
        chain.send(conn, {"method": "unsubscribe", "subscription": {"type": "allMids"}})
        assert drain(conn)[0]["channel"] == "subscriptionResponse"
        chain.hub.close(conn)
        assert chain.hub.topics == {}
    finally:
        chain.close()


def test_info_and_post_info_give_the_same_answer(chain):
    conn = chain.hub.open("10.0.0.1")
    body = {"type": "clearinghouseState", "user": U}
    chain.send(conn, {"method": "post", "id": 1, "request": {"type": "info", "payload": body}})
    (msg,) = drain(conn)
    assert msg["data"]["response"]["payload"]["data"] == trio.run(info, chain.app, body)
