"""A real node process on 127.0.0.1: txs over JSON-RPC, every error, the CLI and replay."""

import base64
import hashlib
import json
import os
import stat
import threading
import time

import httpx
import msgpack
import pytest

from node.keys import KeyPair
from state import constants as C
from state.errors import Code
from state.tx import build_tx
from tests.e2e.conftest import perpchain

pytestmark = pytest.mark.e2e


def rpc(url, method, **params):
    return httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method,
                                 "params": params}, timeout=10).json()


def b64(raw):
    return base64.b64encode(raw).decode()


def test_signed_transfer_lands_in_a_block_and_moves_balances(net, funded):
    alice, bob = funded
    c = net.client(alice)
    out = c.transfer(bob.address, "12.5")
    assert out.code == 0 and out.height > 0
    assert c.account(bob.address)["balances"] == {"USDC": "12.5"}
    assert c.account()["balances"] == {"USDC": "9987.5"}
    t = c.tx(out.hash)
    assert t["height"] == str(out.height) and t["tx_result"]["code"] == 0
    ev = t["tx_result"]["events"][0]
    assert ev["type"] == "transfer"
    assert {"key": "amount", "value": "12.5", "index": True} in ev["attributes"]
    blk = c.call("block", height=str(out.height))
    assert t["tx"] in blk["block"]["data"]["txs"]
    st = c.status()["sync_info"]
    assert int(st["latest_block_height"]) >= out.height and st["catching_up"] is False


def test_broadcast_tx_commit_waits_for_the_block(net, funded):
    alice, bob = funded
    c = net.client(alice)
    raw = c.sign(["transfer", bob.pub_key, "USDC", 1_000_000])
    r = c.call("broadcast_tx_commit", tx=b64(raw))
    assert r["check_tx"]["code"] == 0 and r["tx_result"]["code"] == 0 and int(r["height"]) > 0
    assert c.account(bob.address)["balances"] == {"USDC": "1"}


def test_every_bad_tx_gets_its_own_error_and_changes_nothing(net, funded):
    alice, bob = funded
    c = net.client(alice)
    good = c.sign(["transfer", bob.pub_key, "USDC", 1_000_000])
    c.broadcast(good)
    before = (c.account()["balances"], c.account(bob.address)["balances"])

    def sync(raw):
        return c.call("broadcast_tx_sync", tx=b64(raw))

    nonce = c.next_nonce()
    cases = {}
    # replaying the exact bytes of a committed tx
    cases["replay"] = (sync(good), Code.TX_ALREADY_COMMITTED)
    # a new tx reusing a nonce already used
    used = int(c.account()["nonces"][-1])
    cases["nonce"] = (sync(build_tx(c.chain_id, alice.private, used,
                                    ["transfer", bob.pub_key, "USDC", 5])), Code.NONCE_DUPLICATE)
    # a signature by another key
    obj = msgpack.unpackb(build_tx(c.chain_id, alice.private, nonce,
                                   ["transfer", bob.pub_key, "USDC", 5]))
    obj[4] = bob.private.sign(b"something else")
    cases["sig"] = (sync(msgpack.packb(obj)), Code.BAD_SIGNATURE)
    cases["chain"] = (sync(build_tx("another-chain", alice.private, nonce + 1,
                                    ["transfer", bob.pub_key, "USDC", 5])), Code.WRONG_CHAIN_ID)
    cases["msgpack"] = (sync(b"\x95\xa1x\xc1"), Code.MALFORMED_TX)
    cases["oversize"] = (sync(b"\x00" * (C.MAX_TX_BYTES + 1)), Code.TX_TOO_LARGE)
    cases["balance"] = (sync(build_tx(c.chain_id, alice.private, nonce + 2,
                                      ["transfer", bob.pub_key, "USDC", 10**12])),
                        Code.INSUFFICIENT_BALANCE)
    cases["asset"] = (sync(build_tx(c.chain_id, alice.private, nonce + 3,
                                    ["transfer", bob.pub_key, "DOGE", 5])), Code.UNKNOWN_ASSET)
    for name, (res, code) in cases.items():
        assert res["code"] == code, (name, res)
        assert res["codespace"] == "perpchain" and res["log"], (name, res)
    logs = [res["log"] for res, _ in cases.values()]
    assert len(set(logs)) == len(logs), "each error must say what was wrong"
    h = int(c.status()["sync_info"]["latest_block_height"])
    while int(c.status()["sync_info"]["latest_block_height"]) < h + 2:
        time.sleep(0.05)
    assert (c.account()["balances"], c.account(bob.address)["balances"]) == before
    assert c.call("num_unconfirmed_txs")["n_txs"] == "0"


def test_json_rpc_errors(net):
    url = net.url
    assert rpc(url, "no_such_method")["error"]["code"] == -32601
    assert "no_such_method" in rpc(url, "no_such_method")["error"]["message"]
    assert httpx.post(url, content=b"{not json", timeout=5).json()["error"]["code"] == -32700
    assert httpx.post(url, json={"id": 1}, timeout=5).json()["error"]["code"] == -32600
    assert rpc(url, "broadcast_tx_sync")["error"]["code"] == -32602
    assert rpc(url, "broadcast_tx_sync", tx="!!notbase64")["error"]["code"] == -32602
    assert rpc(url, "block", height="999999")["error"]["code"] == -32002
    assert rpc(url, "tx", hash="00" * 32)["error"]["code"] == -32001
    assert rpc(url, "account", address="xyz")["error"]["code"] == -32602
    big = httpx.post(url, content=b"[" + b"1," * (9 * 1024 * 1024) + b"1]", timeout=30)
    assert big.status_code == 413 and big.json()["error"]["code"] == -32004
    batch = httpx.post(url, json=[{"jsonrpc": "2.0", "id": 1, "method": "health"},
                                  {"jsonrpc": "2.0", "id": 2, "method": "nope"}], timeout=5).json()
    assert batch[0]["result"] == {} and batch[1]["error"]["code"] == -32601


def test_cometbft_uri_form(net, funded):
    alice, bob = funded
    c = net.client(alice)
    st = httpx.get(net.url + "/status", timeout=5).json()["result"]
    assert int(st["sync_info"]["latest_block_height"]) >= 1
    assert st["node_info"]["network"] == c.chain_id
    blk = httpx.get(net.url + "/block?height=1", timeout=5).json()["result"]
    assert blk["block"]["header"]["height"] == "1"
    raw = c.sign(["transfer", bob.pub_key, "USDC", 1])
    r = httpx.get(net.url + f"/broadcast_tx_sync?tx=0x{raw.hex()}", timeout=5).json()["result"]
    assert r["code"] == 0
    c.wait_for_tx(r["hash"])
    t = httpx.get(net.url + f'/tx?hash=0x{r["hash"]}', timeout=5).json()["result"]
    assert t["tx_result"]["code"] == 0


def test_cli_keys_faucet_transfer_query(net, tmp_path):
    kf = tmp_path / "alice.json"
    p = perpchain("keys", "new", "--out", str(kf), check=True)
    addr = p.stdout.strip()
    assert len(addr) == 64 and stat.S_IMODE(os.stat(kf).st_mode) == 0o600
    assert perpchain("keys", "new", "--out", str(kf)).returncode == 1  # never overwrite
    bob = KeyPair.generate().address
    node = f"--node={net.url}"
    assert "committed at height" in perpchain("tx", "faucet", "--key", str(kf), node, check=True).stdout
    out = perpchain("tx", "transfer", "--key", str(kf), "--to", bob, "--amount", "2.25", node,
                    check=True).stdout
    assert "transfer:" in out and "amount=2.25" in out
    bad = perpchain("tx", "transfer", "--key", str(kf), "--to", bob, "--amount", "1e9", node)
    assert bad.returncode == 2 and "decimal" in bad.stderr
    poor = perpchain("tx", "transfer", "--key", str(kf), "--to", bob, "--amount", "99999999", node)
    assert poor.returncode == 1 and "code 12" in poor.stderr
    q = json.loads(perpchain("query", "account", bob, node, "--json", check=True).stdout)
    assert q["balances"] == {"USDC": "2.25"}


def test_kill9_mid_load_loses_no_committed_tx_and_replay_agrees(net):
    keys = [KeyPair.generate() for _ in range(20)]
    c = net.client()
    chain_id = c.chain_id
    base = int(time.time() * 1000)
    for k in keys:
        c.call("broadcast_tx_sync", tx=b64(build_tx(chain_id, k.private, base, ["faucet"])))
    committed: dict[str, int] = {}
    stop = threading.Event()

    def load():
        i = 0
        http = httpx.Client(timeout=5)
        while not stop.is_set():
            body = [{"jsonrpc": "2.0", "id": j, "method": "broadcast_tx_sync",
                     "params": {"tx": b64(build_tx(chain_id, k.private, base + 1 + i,
                                                   ["transfer", keys[0].pub_key, "USDC", 1]))}}
                    for j, k in enumerate(keys)]
            i += 1
            try:
                http.post(net.url, json=body)
            except httpx.HTTPError:
                pass  # the node is being killed
            time.sleep(0.01)

    t = threading.Thread(target=load)
    t.start()
    try:
        # A loaded machine makes blocks slowly: read blocks as they commit until the load
        # has reached some of them (not a fixed time), then kill.
        deadline = time.time() + 180
        seen = 0
        while (seen < 15 or len(committed) <= 20 + len(keys)) and time.time() < deadline:
            for h in range(seen + 1, c.height() + 1):
                for raw in c.call("block", height=str(h))["block"]["data"]["txs"]:
                    committed[raw] = h
                seen = h
            time.sleep(0.05)
        h_before = seen
        net.kill9()
    finally:
        stop.set()
        t.join()
    assert len(committed) > 20 + len(keys), "the load must have reached blocks before the kill"
    net.restart()
    c = net.client()
    for raw, h in committed.items():
        th = hashlib.sha256(base64.b64decode(raw)).hexdigest()
        assert int(c.tx(th)["height"]) == h
    h_after = c.height()
    assert h_after >= h_before
    deadline = time.time() + 60
    while c.height() < h_after + 3 and time.time() < deadline:
        time.sleep(0.05)
    assert c.height() >= h_after + 3, "the chain must go on after the restart"
    net.down()
    rep = perpchain("replay", "--home", str(net.node.home), check=True)
    assert "OK:" in rep.stdout and "heights/s" in rep.stdout


def test_replay_detects_a_tampered_app_hash(net, funded):
    import plyvel

    from node.store import P_APPHASH
    net.down()
    db = plyvel.DB(str(net.node.home / "data" / "perpchain.db"))
    db.put(P_APPHASH + (2).to_bytes(8, "big"), b"\x00" * 32)
    db.close()
    rep = perpchain("replay", "--home", str(net.node.home))
    assert rep.returncode == 1 and "MISMATCH: height 2" in rep.stdout
