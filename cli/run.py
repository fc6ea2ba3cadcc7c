"""`perpchain start`: a node (node/run.py) with its JSON-RPC server (rpc/server.py)."""

import logging

import trio

from node import process_guard
from node.home import Home
from node.run import run_node
from rpc.server import serve_rpc


def start(home: Home) -> None:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # SIGPIPE ignored (a client or peer hanging up is not fatal), any fatal exit logged
    process_guard.run_guarded(trio.run, run_node, home, (serve_rpc,))
