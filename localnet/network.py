"""Homes for a whole network: one shared genesis, keys per node, every node a peer of all.

Used by `localnet` (all nodes on 127.0.0.1) and `testnet` (nodes spread over machines).
"""

import time
from dataclasses import dataclass
from pathlib import Path

from node.config import Config, is_loopback, render_config
from node.genesis import make_genesis_doc, save_genesis
from node.home import Home, init_home
from node.keys import load_key

VALIDATOR_POWER = 10
STATE_DIGEST_INTERVAL = 100


@dataclass(frozen=True)
class NodeSpec:
    home: Path
    moniker: str
    p2p_laddr: str        # where it listens, e.g. tcp://0.0.0.0:26656
    p2p_public: str       # how peers reach it, e.g. 10.0.0.2:26656
    rpc_laddr: str
    hl_laddr: str | None = None   # [hyperliquid] laddr (None: the default, 127.0.0.1:3001)


def build_network(specs: list[NodeSpec], chain_id: str, timeout_commit: str = "250ms",
                  configure=None, edit_genesis=None) -> list[Home]:
    """Create every home; `configure(cfg)` may adjust each node's Config,
    `edit_genesis(doc, genesis_time_ms)` the shared genesis document (e.g. add a market)."""
    genesis_time = time.time_ns() // 1_000_000
    homes, cfgs, vals = [], [], []
    for spec in specs:
        cfg = Config(moniker=spec.moniker)
        cfg.rpc.laddr = spec.rpc_laddr
        # --rpc-host asked for a non-loopback RPC: record that it was on purpose.
        cfg.rpc.unsafe_public_bind = not is_loopback(cfg.rpc_host_port[0])
        cfg.p2p.laddr = spec.p2p_laddr
        if spec.hl_laddr is not None:
            cfg.hyperliquid.laddr = spec.hl_laddr
        cfg.consensus.timeout_commit = timeout_commit
        if configure is not None:
            configure(cfg)
        home, val_key = init_home(spec.home, chain_id, genesis_time, cfg)
        homes.append(home)
        cfgs.append(cfg)
        vals.append((val_key.pub_key, VALIDATOR_POWER, spec.moniker))
    ids = [load_key(h.node_key_file).node_id for h in homes]
    doc = make_genesis_doc(chain_id, genesis_time, vals)
    # The app hash commits to the whole state every STATE_DIGEST_INTERVAL blocks, so a node
    # can join from a snapshot (state/state_digest.py, docs/OPERATIONS.md "State sync").
    doc["app_state"]["state_digest_interval"] = STATE_DIGEST_INTERVAL
    if edit_genesis is not None:
        edit_genesis(doc, genesis_time)
    for i, (home, cfg) in enumerate(zip(homes, cfgs)):
        cfg.p2p.persistent_peers = ",".join(
            f"{nid}@{s.p2p_public}" for j, (nid, s) in enumerate(zip(ids, specs)) if j != i)
        home.config_file.write_text(render_config(cfg))
        save_genesis(home.genesis_file, doc)
    return homes
