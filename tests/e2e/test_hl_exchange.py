"""The official Hyperliquid SDK trading on a 4-node localnet, unchanged: `Exchange` signs
(secp256k1, phantom agent source "b") and posts to the node's /exchange; every answer is
checked against the native JSON-RPC queries. The keys are funded with `localnet up --fund`.
One cluster serves the module: the refusals first, then the round trip, which ends with
replay from genesis (so the replay re-verifies every tx of both)."""

import json
from decimal import Decimal

import pytest
import requests
from eth_account import Account
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from hyperliquid.utils.signing import get_timestamp_ms, sign_l1_action
from hyperliquid.utils.types import Cloid

from localnet import cluster
from rpc.client import Client
from tests.e2e.conftest import free_base_port, perpchain, wait_until

pytestmark = pytest.mark.e2e

ALICE = Account.from_key("0x" + "a1" * 32)
BOB = Account.from_key("0x" + "b2" * 32)
STRANGER = Account.from_key("0x" + "c3" * 32)   # never funded


def acct(wallet) -> str:
    """The perpchain account (hex) of a 0x address."""
    return "00" * 12 + wallet.address[2:].lower()


@pytest.fixture(scope="module")
def hl_net(tmp_path_factory):
    d = tmp_path_factory.mktemp("hl") / "hlnet"
    base = free_base_port(4)
    perpchain("localnet", "up", "-n", "4", "--dir", str(d), "--base-port", str(base),
              "--hl-port", str(base - 2), "--timeout-commit", "100ms",
              "--fund", f"{ALICE.address}=100000", "--fund", f"{BOB.address}=100000",
              check=True, timeout=180)
    try:
        yield cluster.load(d)
    finally:
        perpchain("localnet", "down", "--dir", str(d), timeout=60)


def statuses(resp: dict) -> list:
    assert resp["status"] == "ok", resp
    return resp["response"]["data"]["statuses"]


def book(c: Client) -> dict:
    b = c.orderbook("BTC-USD")
    return {"bids": [(x["price"], x["size"]) for x in b["bids"]],
            "asks": [(x["price"], x["size"]) for x in b["asks"]]}


def _post(url: str, body: dict) -> dict:
    r = requests.post(url + "/exchange", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_replay_mainnet_and_unknown_key_are_refused(hl_net):
    url = hl_net[0].hl_url
    c = Client(hl_net[0].rpc_url)
    action = {"type": "updateLeverage", "asset": 0, "isCross": True, "leverage": 3}
    nonce = get_timestamp_ms()
    body = {"action": action, "nonce": nonce, "vaultAddress": None, "expiresAfter": None,
            "signature": sign_l1_action(ALICE, action, None, nonce, None, False)}
    assert _post(url, body) == {"status": "ok", "response": {"type": "default"}}
    # the same signed body again, and another body with the same nonce: Hyperliquid's answer
    duplicate = {"status": "err", "response": f"Invalid nonce: duplicate nonce {nonce}"}
    assert _post(url, body) == duplicate
    assert _post(hl_net[2].hl_url, body) == duplicate       # another node: the same
    other = dict(action, leverage=4)
    same_nonce = {"action": other, "nonce": nonce, "vaultAddress": None, "expiresAfter": None,
                  "signature": sign_l1_action(ALICE, other, None, nonce, None, False)}
    assert _post(url, same_nonce) == duplicate
    main = dict(body, nonce=nonce + 1,
                signature=sign_l1_action(ALICE, action, None, nonce + 1, None, True))
    r = _post(url, main)
    assert r["status"] == "err" and "mainnet" in r["response"], r
    odd = dict(body, nonce=nonce + 2,
               signature=sign_l1_action(STRANGER, action, None, nonce + 2, None, False))
    assert _post(url, odd) == {"status": "err", "response": f"User or API Wallet "
                               f"{STRANGER.address.lower()} does not exist."}
    # a body the SDK would never send: 4xx with JSON code and msg
    r = requests.post(url + "/exchange", data=json.dumps({"action": 5}), timeout=30)
    assert r.status_code == 400 and {"code", "msg"} <= set(r.json())
    assert nonce in [int(n) for n in c.account(acct(ALICE))["nonces"]]


def test_sdk_exchange_round_trip(hl_net):
    e0 = hl_net[0]
    c = Client(e0.rpc_url)
    assert c.account(acct(ALICE))["balances"]["USDC"] == "100000"   # --fund
    wait_until(lambda: all(not a["stale"] for a in c.oracle()["assets"]), timeout=60,
               what="a fresh oracle price")
    a = Exchange(ALICE, e0.hl_url)
    b = Exchange(BOB, hl_net[1].hl_url)          # another node: the same chain
    oracle = Decimal(next(x["price"] for x in c.oracle()["assets"] if x["asset"] == "BTC"))
    low, ask, high = (int(oracle * Decimal(f)) for f in ("0.9", "1.02", "1.1"))

    # update_leverage -> set_margin_mode (cross, 10x)
    r = a.update_leverage(10, "BTC")
    assert r == {"status": "ok", "response": {"type": "default"}}, r
    # a resting order with a cloid
    [st] = statuses(a.order("BTC", True, 0.01, low, {"limit": {"tif": "Gtc"}},
                            cloid=Cloid.from_int(7)))
    oid = st["resting"]["oid"]
    assert st["resting"]["cloid"] == Cloid.from_int(7).to_raw()
    native = c.order("BTC-USD", order_id=oid)
    assert native["owner"] == acct(ALICE) and native["cloid"] == "7", native
    # bulk_orders: two more bids
    sts = statuses(a.bulk_orders([
        {"coin": "BTC", "is_buy": True, "sz": 0.02, "limit_px": low - 10,
         "order_type": {"limit": {"tif": "Gtc"}}, "reduce_only": False},
        {"coin": "BTC", "is_buy": True, "sz": 0.03, "limit_px": low - 20,
         "order_type": {"limit": {"tif": "Alo"}}, "reduce_only": False}]))
    oids = [s["resting"]["oid"] for s in sts]
    assert book(c)["bids"] == [(str(low), "0.01"), (str(low - 10), "0.02"),
                               (str(low - 20), "0.03")]
    # modify_order: a new price and size, the cloid kept
    r = a.modify_order(oid, "BTC", True, 0.04, low - 5, {"limit": {"tif": "Gtc"}},
                       cloid=Cloid.from_int(7))
    new_oid = statuses(r)[0]["resting"]["oid"]
    assert (str(low - 5), "0.04") in book(c)["bids"] and (str(low), "0.01") not in book(c)["bids"]
    assert c.order(cloid=7, address=acct(ALICE))["order_id"] == str(new_oid)
    # cancel and cancel_by_cloid
    assert statuses(a.cancel("BTC", oids[0])) == ["success"]
    assert statuses(a.cancel_by_cloid("BTC", Cloid.from_int(7))) == ["success"]
    assert "error" in statuses(a.cancel("BTC", oids[0]))[0]
    assert book(c)["bids"] == [(str(low - 20), "0.03")]
    # crossing: bob rests an ask, alice's GTC buy takes it
    [st] = statuses(b.order("BTC", False, 0.05, ask, {"limit": {"tif": "Gtc"}}))
    assert "resting" in st
    [st] = statuses(a.order("BTC", True, 0.02, high, {"limit": {"tif": "Gtc"}}))
    assert st["filled"]["totalSz"] == "0.02" and Decimal(st["filled"]["avgPx"]) == ask, st
    fills = c.fills(acct(ALICE))["fills"]
    assert any(f["size"] == "0.02" and f["price"] == str(ask) for f in fills), fills
    # market_open (IOC at the price given + 5%, as the SDK rounds it) fills against bob's ask
    r = a.market_open("BTC", True, 0.01, px=ask)
    [st] = statuses(r)
    assert "filled" in st and st["filled"]["totalSz"] == "0.01", r
    pos = c.positions(acct(ALICE))["positions"]
    # (the leverage is update_leverage's, set before the position opened)
    assert [(p["market"], p["size"], p["leverage"]) for p in pos] == [("BTC-USD", "0.03", 10)], \
        pos
    # market_close (mid from /info allMids - 5%): bob bids near the ask, alice closes her
    # whole position (reduce-only IOC)
    statuses(b.order("BTC", True, 0.05, ask - 10, {"limit": {"tif": "Gtc"}}))
    r = a.market_close("BTC")
    [st] = statuses(r)
    assert "filled" in st and st["filled"]["totalSz"] == "0.03", r
    assert [p["size"] for p in c.positions(acct(ALICE))["positions"]] in ([], ["0"])
    withdraw_and_group_and_schedule_cancel(hl_net, c, a, b, low, ask, high)
    # replay from genesis re-verifies every secp256k1 signature and reproduces the app hashes
    perpchain("localnet", "down", "--dir", str(e0.home.parent), check=True, timeout=60)
    rep = perpchain("replay", "--home", str(hl_net[3].home), timeout=300)
    assert rep.returncode == 0 and "OK:" in rep.stdout, rep.stdout + rep.stderr


def block_events(c: Client, since: int, typ: str) -> list[dict]:
    """Events `typ` of the txs and block steps of heights since..now, as {key: value}."""
    out = []
    for h in range(since, c.height() + 1):
        r = c.call("block_results", height=h)
        for ev in [e for t in r["txs_results"] for e in t["events"]] + \
                r["finalize_block_events"]:
            if ev["type"] == typ:
                out.append({a["key"]: a["value"] for a in ev["attributes"]})
    return out


def trigger(coin: str, is_buy: bool, sz: float, trigger_px: int, tpsl: str) -> dict:
    return {"coin": coin, "is_buy": is_buy, "sz": sz, "limit_px": trigger_px,
            "reduce_only": True,
            "order_type": {"trigger": {"triggerPx": trigger_px, "isMarket": True, "tpsl": tpsl}}}


def alice_orders(c: Client) -> list[dict]:
    return c.open_orders(acct(ALICE))["orders"]


def withdraw_and_group_and_schedule_cancel(hl_net, c: Client, a: Exchange, b: Exchange,
                                           low: int, ask: int, high: int) -> None:
    """withdraw_from_bridge, bulk_orders with grouping normalTpsl and positionTpsl, and
    schedule_cancel, each checked against the native RPC (alice is flat here)."""
    info = Info(hl_net[0].hl_url, skip_ws=True)
    user = ALICE.address.lower()
    # withdraw3: burned, and the withdrawal event names the destination for a bridge
    dest = "0x" + "5e" * 20
    h0, before = c.height(), Decimal(c.account(acct(ALICE))["balances"]["USDC"])
    assert a.withdraw_from_bridge(5.0, dest) == {"status": "ok", "response": {"type": "default"}}
    assert Decimal(c.account(acct(ALICE))["balances"]["USDC"]) == before - 5
    [w] = block_events(c, h0, "withdrawal")
    assert (w["account"], w["destination"], Decimal(w["amount"])) == (acct(ALICE), dest, 5), w

    # normalTpsl: a resting parent; its tp and sl wait for it to fill
    parent = {"coin": "BTC", "is_buy": True, "sz": 0.01, "limit_px": low + 30,
              "order_type": {"limit": {"tif": "Gtc"}}, "reduce_only": False}
    sts = statuses(a.bulk_orders([parent, trigger("BTC", False, 0.01, high, "tp"),
                                  trigger("BTC", False, 0.01, low - 100, "sl")],
                                 grouping="normalTpsl"))
    assert sts[1:] == ["waitingForFill", "waitingForFill"], sts
    parent_oid = sts[0]["resting"]["oid"]
    [row] = [o for o in info.frontend_open_orders(user) if o["oid"] == parent_oid]
    assert sorted(ch["triggerPx"] for ch in row["children"]) == sorted(
        [f"{high}.0", f"{low - 100}.0"]), row
    assert not [o for o in alice_orders(c) if o["kind"] != "limit"]   # no trigger order yet
    # bob sells into the parent: at the end of that block the tp and sl are placed, sized
    # to the parent's fill
    [st] = statuses(b.order("BTC", False, 0.01, low + 30, {"limit": {"tif": "Ioc"}}))
    assert st["filled"]["totalSz"] == "0.01", st
    wait_until(lambda: len([o for o in alice_orders(c) if o["kind"] != "limit"]) == 2,
               what="the tp and sl placed after the parent filled")
    kids = [o for o in alice_orders(c) if o["kind"] != "limit"]
    assert sorted(o["kind"] for o in kids) == ["stop_market", "take_profit_market"], kids
    assert all(o["size"] == "0.01" and o["side"] == "sell" for o in kids), kids
    assert [p["size"] for p in c.positions(acct(ALICE))["positions"]] == ["0.01"]

    # positionTpsl of size 0: the whole position, whatever it is when it fires
    sts = statuses(a.bulk_orders([trigger("BTC", False, 0, low - 200, "sl")],
                                 grouping="positionTpsl"))
    assert sts == ["waitingForTrigger"], sts
    whole = [o for o in info.frontend_open_orders(user) if o["isPositionTpsl"]]
    assert [(o["triggerPx"], o["sz"]) for o in whole] == [(f"{low - 200}.0", "0.01")], whole

    # schedule_cancel: at that block time every open order of alice goes (native agrees)
    assert len(alice_orders(c)) >= 4
    at = get_timestamp_ms() + 8_000
    assert a.schedule_cancel(at) == {"status": "ok", "response": {"type": "default"}}
    wait_until(lambda: alice_orders(c) == [], timeout=30, what="the scheduled cancel")
    assert info.open_orders(user) == []
    [fired] = [e for e in block_events(c, h0, "scheduled_cancel") if e["owner"] == acct(ALICE)]
    assert int(fired["time_ms"]) == at and int(fired["cancelled"]) >= 4, fired
