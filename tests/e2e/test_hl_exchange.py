"""The official Hyperliquid SDK trading on a 4-node localnet, unchanged: `Exchange` signs
(secp256k1, phantom agent source "b") and posts to the node's /exchange; every answer is
checked against the native JSON-RPC queries. The keys are funded with `localnet up --fund`."""

import json
from decimal import Decimal

import pytest
import requests
from eth_account import Account
from hyperliquid.exchange import Exchange
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


@pytest.fixture
def hl_net(tmp_path):
    d = tmp_path / "hlnet"
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
    # replay from genesis re-verifies every secp256k1 signature and reproduces the app hashes
    perpchain("localnet", "down", "--dir", str(e0.home.parent), check=True, timeout=60)
    rep = perpchain("replay", "--home", str(hl_net[3].home), timeout=300)
    assert rep.returncode == 0 and "OK:" in rep.stdout, rep.stdout + rep.stderr


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
    again = _post(url, body)
    # the same signed bytes: refused (as a committed tx; a different body with the same nonce
    # would be NONCE_DUPLICATE, tests/unit/test_hl_actions.py)
    assert again == {"status": "err", "response": "tx is already in a committed block"}
    other = dict(action, leverage=4)
    same_nonce = {"action": other, "nonce": nonce, "vaultAddress": None, "expiresAfter": None,
                  "signature": sign_l1_action(ALICE, other, None, nonce, None, False)}
    r = _post(url, same_nonce)
    assert r["status"] == "err" and "already used" in r["response"], r
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
