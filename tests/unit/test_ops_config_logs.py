"""Operator settings: the websocket limits and log_format in config.toml are checked like every
other key, and JSON logs are one parseable object per line with the documented fields."""

import io
import json
import logging

import pytest

from node import logs
from node.config import Config, ConfigError, load_config, render_config


def _load(tmp_path, text: str) -> Config:
    p = tmp_path / "config.toml"
    p.write_text(text)
    return load_config(p)


def test_defaults_round_trip_and_bad_values_are_named(tmp_path):
    cfg = _load(tmp_path, render_config(Config()))
    assert (cfg.log_format, cfg.rpc.ws_queue_messages, cfg.rpc.ws_max_subscriptions,
            cfg.rpc.ws_max_connections, cfg.rpc.ws_max_connections_per_ip,
            cfg.rpc.ws_book_depth) == ("text", 1000, 50, 100, 10, 100)
    assert _load(tmp_path, 'log_format = "json"\n').log_format == "json"
    with pytest.raises(ConfigError, match="log_format must be one of text, json"):
        _load(tmp_path, 'log_format = "xml"\n')
    with pytest.raises(ConfigError, match=r"\[rpc\] ws_queue_messages must be at least 1"):
        _load(tmp_path, "[rpc]\nws_queue_messages = 0\n")
    with pytest.raises(ConfigError, match=r"\[rpc\] ws_book_depth must be at most 500"):
        _load(tmp_path, "[rpc]\nws_book_depth = 501\n")
    with pytest.raises(ConfigError, match=r"\[rpc\] ws_max_subscriptions must be int"):
        _load(tmp_path, '[rpc]\nws_max_subscriptions = "5"\n')


def test_json_log_lines_parse_with_extra_fields_and_tracebacks():
    out = io.StringIO()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        logs.configure("json", stream=out)
        log = logging.getLogger("perpchain.test")
        log.info("committed %d", 7, extra={"height": 7})
        try:
            raise ValueError("bad \"thing\"\nsecond line")
        except ValueError:
            log.exception("failed")
        logs.configure("text", stream=out)
        log.info("plain")
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    first, second, third = out.getvalue().splitlines()
    a, b = json.loads(first), json.loads(second)
    assert (a["level"], a["logger"], a["message"], a["height"]) == ("INFO", "perpchain.test",
                                                                    "committed 7", 7)
    assert a["time"].endswith("+00:00") and "T" in a["time"]
    assert b["level"] == "ERROR" and "ValueError: bad" in b["exc_info"]   # (inside its line)
    assert third.endswith("INFO perpchain.test: plain")
    with pytest.raises(ValueError, match="use one of text, json"):
        logs.configure("yaml")


def test_the_rpc_socket_sends_with_a_timeout_and_a_busy_port_is_named():
    import socket

    from rpc.server import listen_socket

    first = listen_socket("127.0.0.1", 0, 2500)
    try:
        first.listen()
        if hasattr(socket, "TCP_USER_TIMEOUT"):
            assert first.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 2500
        port = first.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"cannot listen for RPC on 127.0.0.1:{port} "
                                              r"\(\[rpc\] laddr\): Address already in use"):
            listen_socket("127.0.0.1", port, 2500)
    finally:
        first.close()
