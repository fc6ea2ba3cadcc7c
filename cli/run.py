"""`perpchain start`: a node (node/run.py) with its JSON-RPC server (rpc/server.py) and its
Hyperliquid-compatible API (rpc/hl_server.py)."""

import trio

from node import logs, process_guard
from node.config import ConfigError, load_config
from node.home import Home
from node.run import run_node
from rpc.hl_server import serve_hl
from rpc.server import serve_rpc


def start(home: Home, log_format: str | None = None) -> None:
    """`log_format`: "text" or "json"; None = config.toml's `log_format` (default text)."""
    if log_format is None:
        try:
            log_format = load_config(home.config_file).log_format
        except ConfigError:
            log_format = "text"   # run_node reports the config error itself, as text
    logs.configure(log_format)
    # SIGPIPE ignored (a client or peer hanging up is not fatal), any fatal exit logged
    process_guard.run_guarded(trio.run, run_node, home, (serve_rpc, serve_hl))
