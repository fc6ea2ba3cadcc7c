"""`perpchain start`: one node process, one root trio nursery.

Opens the store (initialising it from genesis the first time), then runs the RPC server
and the block producer. SIGTERM or SIGINT stops it cleanly; a `kill -9` is also safe,
because every height is committed in one atomic fsynced batch (node/store.py).
"""

import logging
import signal

import trio

from consensus.solo import SoloProposer
from node.app import Application
from node.config import load_config
from node.engine import run_solo
from node.genesis import load_genesis
from node.home import Home
from node.keys import load_key
from node.store import Store
from rpc.server import serve_rpc

log = logging.getLogger("perpchain.node")


async def run_node(home: Home) -> None:
    cfg = load_config(home.config_file)
    genesis = load_genesis(home.genesis_file)
    node_key = load_key(home.node_key_file)
    val_key = load_key(home.validator_key_file) if home.validator_key_file.exists() else None
    store = Store(home.db_path)
    try:
        app = Application(cfg, genesis, store, node_key, val_key)
        log.info("node %s chain %s at height %d, app hash %s", node_key.node_id, app.chain_id,
                 app.tip.height, app.tip.app_hash.hex())
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_rpc, app)
            if val_key is not None and genesis.validators.power_of(val_key.pub_key):
                proposer = SoloProposer(app.chain_id, val_key.private, val_key.pub_key,
                                        genesis.validators)
                await nursery.start(run_solo, app, proposer)
            else:
                log.warning("this node is not the validator: it serves RPC only")
            log.info("RPC listening on %s", cfg.rpc.laddr)
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for sig in signals:
                    log.info("received %s, shutting down", signal.Signals(sig).name)
                    nursery.cancel_scope.cancel()
                    break
    finally:
        store.close()


def start(home: Home) -> None:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    trio.run(run_node, home)
