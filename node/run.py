"""One node process, one root trio nursery (`perpchain start`, wired by cli/run.py).

Opens the store (initialising it from genesis the first time), then runs the services it is
given (the JSON-RPC server: node/ does not import rpc/), the p2p transport, tx gossip and the
BFT consensus driver. A node whose validator key is
not in the validator set follows the chain as a full node. SIGTERM or SIGINT stops it
cleanly; a `kill -9` is also safe: every height is committed in one atomic fsynced batch
(node/store.py), and the consensus WAL and signer state are fsynced before any vote leaves.
"""

import logging
import signal
from collections.abc import Awaitable, Callable, Sequence

import trio

from consensus.driver import MSG_TXS, Driver, DriverConfig
from consensus.rounds import TimeoutConfig
from node.app import Application
from node.config import Config, parse_duration_ms
from node.gc_tuning import tune_gc
from node.heap_trim import trim_loop, tune_malloc
from node.genesis import load_genesis
from node.home import Home
from node.keys import load_key
from node.p2p import P2P, PeerLimits, parse_peers
from node.store_check import open_verified
from state import constants as C

log = logging.getLogger("perpchain.node")

TX_GOSSIP_BATCH = 2000
TX_INGEST_QUEUE = 1000

# A service the node runs beside consensus: `await nursery.start(service, app)`.
Service = Callable[..., Awaitable[None]]


def driver_config(cfg: Config) -> DriverConfig:
    c = cfg.consensus
    d = parse_duration_ms
    return DriverConfig(
        TimeoutConfig(d(c.timeout_propose), d(c.timeout_propose_delta), d(c.timeout_prevote),
                      d(c.timeout_prevote_delta), d(c.timeout_precommit),
                      d(c.timeout_precommit_delta)),
        d(c.timeout_commit), min(cfg.mempool.max_block_txs, C.MAX_BLOCK_TXS), C.MAX_BLOCK_BYTES,
        c.create_empty_blocks)


class TxGossip:
    """Batches txs admitted to the mempool into few p2p frames; feeds peers' txs in."""

    def __init__(self, app: Application):
        self.app = app
        self.p2p: P2P | None = None
        self.pending: list[bytes] = []
        self.wakeup = trio.Event()
        self.ingest_send, self.ingest_recv = trio.open_memory_channel(TX_INGEST_QUEUE)

    def queue(self, raws: list[bytes]) -> None:
        self.pending.extend(raws)
        self.wakeup.set()

    def from_peer(self, peer: str, raws) -> None:
        if type(raws) is not list or not all(type(r) is bytes for r in raws):
            return
        try:
            self.ingest_send.send_nowait(raws)
        except trio.WouldBlock:
            pass  # gossip is best effort: the origin node still has the txs

    async def flush_loop(self) -> None:
        while True:
            await self.wakeup.wait()
            self.wakeup = trio.Event()
            await trio.sleep(0.005)  # let a burst accumulate into one frame
            batch, self.pending = self.pending, []
            for i in range(0, len(batch), TX_GOSSIP_BATCH):
                self.p2p.broadcast(MSG_TXS, batch[i:i + TX_GOSSIP_BATCH])

    async def ingest_loop(self) -> None:
        async for raws in self.ingest_recv:
            await self.app.submit(raws, from_peer=True)


async def run_node(home: Home, services: Sequence[Service] = ()) -> None:
    """Run the node of `home` until SIGTERM or SIGINT; each of `services` (such as
    rpc.server.serve_rpc) is started with the Application before p2p and consensus."""
    tune_malloc()   # before the store's and the verifier's threads (node/heap_trim.py)
    cfg = load_config_checked(home)
    genesis = load_genesis(home.genesis_file)
    node_key = load_key(home.node_key_file)
    val_key = load_key(home.validator_key_file) if home.validator_key_file.exists() else None
    store = open_verified(home.db_path, cfg.store.verify_on_start == "full",
                          block_cache_mib=cfg.store.block_cache_mib,
                          write_buffer_mib=cfg.store.write_buffer_mib)
    app = None
    try:
        app = Application(cfg, genesis, store, node_key, val_key)
        log.info("node %s chain %s at height %d, app hash %s", node_key.node_id, app.chain_id,
                 app.tip.height, app.tip.app_hash.hex())
        tune_gc()  # the state is loaded: freeze it, collect rarely (node/gc_tuning.py)
        # The key signs only at heights whose validator set holds it (RoundState checks),
        # so a node added later by governance starts voting when its power takes effect.
        is_validator = val_key is not None and genesis.validators.power_of(val_key.pub_key) > 0
        driver = Driver(app.chain_id, app, driver_config(cfg), home.root / "data" / "cs.wal",
                        home.root / "data" / "priv_validator_state.bin",
                        val_key.private if val_key else None,
                        val_key.pub_key if val_key else None)
        gossip = TxGossip(app)

        def on_message(peer: str, msg_type: int, body) -> None:
            if msg_type == MSG_TXS:
                gossip.from_peer(peer, body)
            else:
                driver.on_peer_message(peer, msg_type, body)

        p2p = P2P(node_key, app.chain_id, cfg.p2p_host_port, parse_peers(cfg.p2p.persistent_peers),
                  on_message, driver.on_peer_connect,
                  tuple(x.strip() for x in cfg.p2p.allowed_peer_ids.split(",") if x.strip()),
                  limits=PeerLimits.from_config(cfg.p2p), on_disconnect=driver.on_peer_disconnect)
        driver.net = p2p
        gossip.p2p = p2p
        app.gossip = gossip.queue
        app.p2p = p2p
        app.driver = driver
        async with trio.open_nursery() as nursery:
            for service in services:
                await nursery.start(service, app)
            await nursery.start(p2p.run)
            nursery.start_soon(gossip.flush_loop)
            nursery.start_soon(gossip.ingest_loop)
            nursery.start_soon(trim_loop)   # freed C heap back to the OS (node/heap_trim.py)
            await nursery.start(driver.run)
            log.info("RPC on %s, p2p on %s, %s", cfg.rpc.laddr, cfg.p2p.laddr,
                     "genesis validator" if is_validator else
                     "not a genesis validator (votes if governance adds its key)")
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for sig in signals:
                    log.info("received %s, shutting down", signal.Signals(sig).name)
                    nursery.cancel_scope.cancel()
                    break
    finally:
        if app is not None:
            app.verifier.close()
        store.close()


def load_config_checked(home: Home) -> Config:
    from node.config import load_config
    return load_config(home.config_file)
