"""RPC limits through the ASGI entry point: each refusal is its own JSON-RPC error and HTTP
status; the RPC binds to loopback unless told otherwise; key files are private."""

import json
import logging
import os
from types import SimpleNamespace

import pytest
import trio
import trio.testing

from node.config import Config, ConfigError, load_config, render_config
from node.keys import KeyPair, load_key, save_key
from rpc.errors import RPCCode
from rpc.server import RPCServer


def _server(**rpc) -> RPCServer:
    cfg = Config()
    for k, v in rpc.items():
        setattr(cfg.rpc, k, v)
    return RPCServer(SimpleNamespace(cfg=cfg))


async def _post(server, body: bytes, ip: str = "10.0.0.1", hold: trio.Event | None = None):
    """One POST through the ASGI app: (HTTP status, decoded JSON answer)."""
    sent = []

    async def receive():
        if hold is not None:
            await hold.wait()
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(msg):
        sent.append(msg)

    scope = {"type": "http", "method": "POST", "path": "/", "client": (ip, 5000)}
    await server(scope, receive, send)
    return sent[0]["status"], json.loads(sent[1]["body"])


def _call(method="health", id_=1):
    return {"jsonrpc": "2.0", "id": id_, "method": method, "params": {}}


def test_requests_per_second_per_ip_are_limited():
    async def main():
        s = _server(max_requests_per_s_per_ip=5)
        answers = [await _post(s, json.dumps(_call()).encode()) for _ in range(8)]
        other = await _post(s, json.dumps(_call()).encode(), ip="10.0.0.2")
        return answers, other
    answers, other = trio.run(main)
    assert [st for st, _ in answers] == [200] * 5 + [429] * 3
    assert answers[-1][1]["error"]["code"] == RPCCode.RATE_LIMITED
    assert "max_requests_per_s_per_ip = 5" in answers[-1][1]["error"]["message"]
    assert other[0] == 200     # another client is not affected


def test_concurrent_requests_are_limited_per_ip_and_in_all():
    async def main():
        s = _server(max_concurrent_requests=3, max_concurrent_requests_per_ip=2)
        hold, out = trio.Event(), {}
        async with trio.open_nursery() as n:
            for k in range(2):
                n.start_soon(_post, s, json.dumps(_call()).encode(), "10.0.0.1", hold)
            await trio.testing.wait_all_tasks_blocked()
            out["same_ip"] = await _post(s, json.dumps(_call()).encode(), "10.0.0.1")
            n.start_soon(_post, s, json.dumps(_call()).encode(), "10.0.0.2", hold)
            await trio.testing.wait_all_tasks_blocked()
            out["all"] = await _post(s, json.dumps(_call()).encode(), "10.0.0.3")
            hold.set()
        out["after"] = await _post(s, json.dumps(_call()).encode(), "10.0.0.1")
        return out
    out = trio.run(main)
    assert out["same_ip"][0] == 503 and out["same_ip"][1]["error"]["code"] == RPCCode.SERVER_BUSY
    assert "max_concurrent_requests_per_ip" in out["same_ip"][1]["error"]["message"]
    assert out["all"][0] == 503 and "max_concurrent_requests =" in out["all"][1]["error"]["message"]
    assert out["after"][0] == 200


def test_queries_per_batch_are_limited_but_txs_are_not():
    async def main():
        s = _server(max_batch_queries=3)
        many = await _post(s, json.dumps([_call(id_=i) for i in range(4)]).encode())
        few = await _post(s, json.dumps([_call(id_=i) for i in range(3)]).encode())
        return many, few
    many, few = trio.run(main)
    assert many[1]["error"]["code"] == RPCCode.TOO_MUCH_WORK
    assert "max_batch_queries = 3" in many[1]["error"]["message"]
    assert [a["result"] for a in few[1]] == [{}, {}, {}]


def test_body_and_batch_size_are_limited():
    async def main():
        big = await _post(_server(max_body_bytes=100), b" " * 101)
        batch = await _post(_server(max_batch_requests=2),
                            json.dumps([_call(id_=i) for i in range(3)]).encode())
        return big, batch
    big, batch = trio.run(main)
    assert big[0] == 413 and big[1]["error"]["code"] == RPCCode.REQUEST_TOO_LARGE
    assert batch[1]["error"]["code"] == RPCCode.BATCH_TOO_LARGE


@pytest.mark.parametrize("laddr, public, ok", [
    ("tcp://127.0.0.1:1", False, True), ("tcp://localhost:1", False, True),
    ("tcp://0.0.0.0:1", False, False), ("tcp://10.1.2.3:1", False, False),
    ("tcp://0.0.0.0:1", True, True)])
def test_rpc_binds_to_loopback_unless_a_flag_allows_more(tmp_path, laddr, public, ok):
    cfg = Config()
    cfg.rpc.laddr, cfg.rpc.unsafe_public_bind = laddr, public
    path = tmp_path / "config.toml"
    path.write_text(render_config(cfg))
    if ok:
        assert load_config(path).rpc.laddr == laddr
    else:
        with pytest.raises(ConfigError, match="unsafe_public_bind"):
            load_config(path)


@pytest.mark.parametrize("field, value", [("max_batch_queries", 0), ("query_threads", 0),
                                          ("max_requests_per_s_per_ip", -1)])
def test_limits_must_be_sane(tmp_path, field, value):
    cfg = Config()
    setattr(cfg.rpc, field, value)
    path = tmp_path / "config.toml"
    path.write_text(render_config(cfg))
    with pytest.raises(ConfigError, match=field):
        load_config(path)


def test_key_files_are_0600_and_a_readable_one_is_reported(tmp_path, caplog):
    path = tmp_path / "k.json"
    save_key(path, KeyPair.generate())
    assert os.stat(path).st_mode & 0o777 == 0o600
    with caplog.at_level(logging.WARNING):
        load_key(path)
    assert not caplog.records
    os.chmod(path, 0o644)
    with caplog.at_level(logging.WARNING):
        load_key(path)
    assert any(str(path) in r.getMessage() and "chmod 600" in r.getMessage()
               for r in caplog.records)


def test_catching_up_is_true_only_while_a_live_peer_is_ahead():
    from node.app import Application

    def app(tip, heights, live, syncing=None):
        return SimpleNamespace(tip=SimpleNamespace(height=tip),
                               driver=SimpleNamespace(syncing_from=syncing, peer_heights=heights),
                               p2p=SimpleNamespace(peers=dict.fromkeys(live)))
    up = Application.catching_up
    assert up(app(10, {"a": 11}, ["a"])) is False            # one block ahead: normal
    assert up(app(10, {"a": 12}, ["a"])) is True
    assert up(app(10, {"a": 50}, [])) is False                # gone peers do not count
    assert up(app(10, {}, [], syncing="a")) is True
    assert up(SimpleNamespace(driver=None, p2p=None, tip=SimpleNamespace(height=1))) is False
