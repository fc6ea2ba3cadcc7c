"""The Hyperliquid façade's HTTP server (rpc/hl_server.py) as ASGI, and its config key: routes,
JSON 4xx bodies the SDK can read, the [rpc] limits, and [hyperliquid] laddr."""

import json
import socket

import pytest
import trio

from node.config import Config, ConfigError, load_config, render_config
from rpc.hl_info import info
from rpc.hl_server import HLServer
from rpc.server import listen_socket
from tests.unit.test_hl_info import FundedChain


def http(server, method: str, path: str, body: bytes = b"", ip: str = "10.0.0.1"):
    scope = {"type": "http", "method": method, "path": path, "query_string": b"",
             "client": (ip, 1234)}
    sent = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(msg):
        sent.append(msg)

    trio.run(server, scope, receive, send)
    return sent[0]["status"], json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


@pytest.fixture
def chain(tmp_path):
    c = FundedChain(tmp_path)
    yield c
    c.close()


def test_info_answers_and_refusals_are_json_with_code_and_msg(chain):
    s = HLServer(chain.app)
    assert http(s, "POST", "/info", b'{"type": "meta"}') == \
        (200, trio.run(info, chain.app, {"type": "meta"}))
    for method, path, body, status, code in (
            ("POST", "/info", b"{not json", 400, "invalid_json"),
            ("POST", "/info", b'{"type": "subAccounts", "user": "0x00"}', 422, "unknown_type"),
            ("GET", "/info", b"", 405, "method_not_allowed"),
            ("POST", "/nope", b"{}", 404, "not_found")):
        got_status, got = http(s, method, path, body)
        assert (got_status, got["code"]) == (status, code), got
        assert got["msg"] and got["data"] is None


def test_the_rpc_limits_apply(chain):
    chain.app.cfg.rpc.max_body_bytes = 100
    chain.app.cfg.rpc.max_requests_per_s_per_ip = 2
    s = HLServer(chain.app)
    status, body = http(s, "POST", "/info", b'{"type": "meta", "pad": "' + b"x" * 200 + b'"}')
    assert (status, body["code"]) == (413, "body_too_large")
    http(s, "POST", "/info", b'{"type": "meta"}')
    status, body = http(s, "POST", "/info", b'{"type": "meta"}')
    assert (status, body["code"]) == (429, "rate_limited")
    assert http(s, "POST", "/info", b'{"type": "meta"}', ip="10.0.0.2")[0] == 200


def test_exchange_goes_to_hl_exchange(chain):
    s = HLServer(chain.app)
    status, body = http(s, "POST", "/exchange", b'{"action": 1}')
    assert 400 <= status < 500 and body["msg"]
    assert http(s, "POST", "/exchange", b'[1]')[1]["code"] == "invalid_request"


def test_the_config_key(tmp_path):
    cfg = Config()
    assert cfg.hyperliquid.laddr == "tcp://127.0.0.1:3001" and cfg.hl_host_port == \
        ("127.0.0.1", 3001)
    path = tmp_path / "config.toml"
    cfg.hyperliquid.laddr = ""
    path.write_text(render_config(cfg))
    assert load_config(path).hl_host_port is None
    cfg.hyperliquid.laddr = "tcp://0.0.0.0:3001"
    path.write_text(render_config(cfg))
    with pytest.raises(ConfigError, match=r"\[hyperliquid\] laddr .* not a loopback"):
        load_config(path)
    cfg.rpc.unsafe_public_bind = True
    path.write_text(render_config(cfg))
    assert load_config(path).hl_host_port == ("0.0.0.0", 3001)


def test_a_busy_port_names_the_hyperliquid_key():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        with pytest.raises(ConfigError, match=r"the Hyperliquid API on 127.0.0.1:\d+ "
                                              r"\(\[hyperliquid\] laddr\)"):
            listen_socket("127.0.0.1", port, 1000, "the Hyperliquid API", "[hyperliquid] laddr")
