"""config.toml: the node's local settings (ports, block interval, mempool limits).

Protocol parameters are not here: they come from genesis. Unknown keys are an error so a
typo never silently falls back to a default. Durations are strings like "250ms" or "5s".
"""

import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from state.constants import MAX_L2_DEPTH

LOG_FORMATS = ("text", "json")


class ConfigError(Exception):
    pass


_DUR = re.compile(r"^(\d+)(ms|s|m)$")


def parse_duration_ms(text: str) -> int:
    m = _DUR.match(str(text).strip())
    if not m:
        raise ConfigError(f"duration {text!r} must look like '250ms', '5s' or '1m'")
    n, unit = int(m.group(1)), m.group(2)
    return n * {"ms": 1, "s": 1000, "m": 60_000}[unit]


@dataclass
class RPCConfig:
    # Loopback only unless unsafe_public_bind = true (the node then logs a warning).
    laddr: str = "tcp://127.0.0.1:26657"
    unsafe_public_bind: bool = False
    # Every limit below answers with its own JSON-RPC error (rpc/errors.py); docs/SECURITY.md.
    max_body_bytes: int = 16 * 1024 * 1024
    max_batch_requests: int = 10_000
    # Calls other than broadcast_tx_sync in one batch (each reads the store).
    max_batch_queries: int = 1_000
    # HTTP requests being handled at once (over all clients), and per client IP.
    max_concurrent_requests: int = 64
    max_concurrent_requests_per_ip: int = 16
    # Requests per second per client IP (token bucket, bursts of one second's worth);
    # a batch counts as one request. 0 = unlimited.
    max_requests_per_s_per_ip: int = 1_000
    # Worker threads for store reads (block, tx, commit, blockchain, ...), off the event loop.
    query_threads: int = 2
    # An idle keep-alive connection, or one that sends nothing, is closed after this.
    timeout_idle_connection: str = "5s"
    timeout_broadcast_tx_commit: str = "10s"
    # A connection whose client takes none of the data sent to it for this long (it stopped
    # reading: a stuck websocket subscriber) is aborted by the kernel (TCP_USER_TIMEOUT).
    timeout_send: str = "10s"
    # Websocket subscriptions (GET /websocket; rpc/ws_hub.py, docs/PROTOCOL.md):
    # connections open at once (over all clients, and per client IP) ...
    ws_max_connections: int = 100
    ws_max_connections_per_ip: int = 10
    # ... subscriptions per connection, and messages queued per connection: a subscriber
    # whose queue is full is closed (code 4000 "subscriber too slow") rather than waited for.
    ws_max_subscriptions: int = 50
    ws_queue_messages: int = 1000
    # Levels per side of a `book` subscription's view (at most state MAX_L2_DEPTH).
    ws_book_depth: int = 100


@dataclass
class P2PConfig:
    laddr: str = "tcp://127.0.0.1:26656"
    # Comma-separated <node id>@host:port, as CometBFT's.
    persistent_peers: str = ""
    # Node ids, besides the persistent peers, allowed to connect in (comma-separated).
    allowed_peer_ids: str = ""
    # Limits (node/p2p.py PeerLimits); breaking one disconnects and bans the peer.
    max_frame_bytes: int = 32 * 1024 * 1024
    max_msgs_per_s: int = 1000          # sustained messages a second from one peer ...
    max_msgs_burst: int = 10_000        # ... beyond a burst of this many
    max_peers: int = 50
    max_handshakes: int = 16            # unauthenticated connections at once
    ban_duration: str = "10s"           # first offence; doubles with each further one ...
    max_ban_duration: str = "10m"       # ... up to this


@dataclass
class ConsensusConfig:
    # Round timeouts grow by their delta each round (Tendermint's liveness rule).
    timeout_propose: str = "1s"
    timeout_propose_delta: str = "500ms"
    timeout_prevote: str = "500ms"
    timeout_prevote_delta: str = "250ms"
    timeout_precommit: str = "500ms"
    timeout_precommit_delta: str = "250ms"
    # Pause after a commit before the next height: the idle block interval.
    timeout_commit: str = "250ms"
    create_empty_blocks: bool = True


@dataclass
class MempoolConfig:
    size: int = 100_000
    max_txs_bytes: int = 256 * 1024 * 1024
    max_tx_bytes: int = 16 * 1024
    max_block_txs: int = 10_000
    recheck: bool = True


@dataclass
class VerifierConfig:
    # Worker processes that check Ed25519 signatures (default: one per CPU; 0 = use
    # threads instead).
    processes: int = field(default_factory=lambda: os.cpu_count() or 1)
    # Without processes: threads that check them (0 = one per CPU). -1 = no workers at all:
    # verify inline (deterministic simulations).
    threads: int = 0


MIN_KEEP_BLOCKS = 2   # the tip and the block before it (state sync serves H and H+1)


@dataclass
class StoreConfig:
    # Checks on start (node/store_check.py): "full" reads every table block with its
    # checksum (about 1 s per million entries) and checks the tip; "tip" checks the tip only.
    verify_on_start: str = "full"
    # Blocks to keep: 0 keeps every block; N >= MIN_KEEP_BLOCKS prunes blocks, commits, results
    # and validator sets below tip - N + 1 (node/store.py; docs/OPERATIONS.md "Pruning").
    keep_blocks: int = 0
    # Memory bounds (node/store.py, node/fill_log.py; docs/OPERATIONS.md "Memory").
    state_cache_entries: int = 8_192     # state keys cached in Python (~250 bytes each), by recency
    block_cache_mib: int = 1             # LevelDB's cache of table blocks
    write_buffer_mib: int = 2            # LevelDB's memtable (twice this while one is flushed)
    keep_fills: int = 200_000            # fills the read model keeps (on disk) for queries


@dataclass
class HyperliquidConfig:
    # The Hyperliquid-compatible API (rpc/hl_server.py, docs/HYPERLIQUID.md): POST /info,
    # POST /exchange and the websocket /ws. 3001 is the official SDK's LOCAL_API_URL; "" turns
    # it off. Loopback only unless [rpc] unsafe_public_bind = true; the [rpc] limits apply.
    laddr: str = "tcp://127.0.0.1:3001"


@dataclass
class Config:
    moniker: str = "node"
    # "text" (one human line per record) or "json" (one JSON object per line; node/logs.py);
    # `perpchain start --log-format` overrides it.
    log_format: str = "text"
    rpc: RPCConfig = field(default_factory=RPCConfig)
    p2p: P2PConfig = field(default_factory=P2PConfig)
    consensus: ConsensusConfig = field(default_factory=ConsensusConfig)
    mempool: MempoolConfig = field(default_factory=MempoolConfig)
    verifier: VerifierConfig = field(default_factory=VerifierConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    hyperliquid: HyperliquidConfig = field(default_factory=HyperliquidConfig)

    @property
    def hl_host_port(self) -> tuple[str, int] | None:
        """The Hyperliquid façade's listen address, or None when it is off."""
        return _host_port(self.hyperliquid.laddr) if self.hyperliquid.laddr else None

    @property
    def rpc_host_port(self) -> tuple[str, int]:
        return _host_port(self.rpc.laddr)

    @property
    def p2p_host_port(self) -> tuple[str, int]:
        return _host_port(self.p2p.laddr)


def _host_port(laddr: str) -> tuple[str, int]:
    m = re.match(r"^tcp://([^:]+):(\d+)$", laddr)
    if not m:
        raise ConfigError(f"listen address {laddr!r} must look like tcp://127.0.0.1:26657")
    return m.group(1), int(m.group(2))


_SECTIONS = {"rpc": RPCConfig, "p2p": P2PConfig, "consensus": ConsensusConfig,
             "mempool": MempoolConfig, "verifier": VerifierConfig, "store": StoreConfig,
             "hyperliquid": HyperliquidConfig}


def load_config(path: Path) -> Config:
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path} not found: run `perpchain init` first") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from None
    cfg = Config()
    for key, value in data.items():
        if key == "moniker":
            cfg.moniker = str(value)
        elif key == "log_format":
            cfg.log_format = str(value)
        elif key in _SECTIONS and isinstance(value, dict):
            section = getattr(cfg, key)
            names = {f.name: f.type for f in fields(section)}
            for k, v in value.items():
                if k not in names:
                    raise ConfigError(f"{path}: unknown setting [{key}] {k}")
                default = getattr(section, k)
                if type(v) is not type(default):
                    raise ConfigError(f"{path}: [{key}] {k} must be {type(default).__name__}")
                setattr(section, k, v)
        else:
            raise ConfigError(f"{path}: unknown setting {key}")
    try:
        _check_values(path, cfg)
    except ConfigError as e:
        raise ConfigError(str(e) if str(path) in str(e) else f"{path}: {e}") from None
    return cfg


def _check_values(path: Path, cfg: Config) -> None:
    c = cfg.consensus
    for d in (c.timeout_propose, c.timeout_propose_delta, c.timeout_prevote,
              c.timeout_prevote_delta, c.timeout_precommit, c.timeout_precommit_delta,
              c.timeout_commit, cfg.rpc.timeout_broadcast_tx_commit, cfg.rpc.timeout_send,
              cfg.rpc.timeout_idle_connection, cfg.p2p.ban_duration, cfg.p2p.max_ban_duration):
        parse_duration_ms(d)
    p = cfg.p2p
    for name in ("max_frame_bytes", "max_msgs_per_s", "max_msgs_burst", "max_peers",
                 "max_handshakes"):
        if getattr(p, name) < 1:
            raise ConfigError(f"{path}: [p2p] {name} must be at least 1")
    if parse_duration_ms(p.ban_duration) < 1 or \
            parse_duration_ms(p.max_ban_duration) < parse_duration_ms(p.ban_duration):
        raise ConfigError(f"{path}: [p2p] ban_duration must be at least 1ms and at most "
                          "max_ban_duration")
    cfg.rpc_host_port
    cfg.p2p_host_port
    hl = cfg.hl_host_port
    if hl is not None and not is_loopback(hl[0]) and not cfg.rpc.unsafe_public_bind:
        raise ConfigError(f"{path}: [hyperliquid] laddr {cfg.hyperliquid.laddr} is not a "
                          "loopback address: set [rpc] unsafe_public_bind = true to allow it "
                          "(see docs/SECURITY.md)")
    _check_limits(path, cfg)


def _check_limits(path: Path, cfg: Config) -> None:
    r = cfg.rpc
    for name in ("max_body_bytes", "max_batch_requests", "max_batch_queries",
                 "max_concurrent_requests", "max_concurrent_requests_per_ip", "query_threads",
                 "ws_max_connections", "ws_max_connections_per_ip", "ws_max_subscriptions",
                 "ws_queue_messages", "ws_book_depth"):
        if getattr(r, name) < 1:
            raise ConfigError(f"{path}: [rpc] {name} must be at least 1")
    if r.max_requests_per_s_per_ip < 0:
        raise ConfigError(f"{path}: [rpc] max_requests_per_s_per_ip must be >= 0 (0 = unlimited)")
    if parse_duration_ms(r.timeout_send) < 1:
        raise ConfigError(f"{path}: [rpc] timeout_send must be at least 1ms")
    if r.ws_book_depth > MAX_L2_DEPTH:
        raise ConfigError(f"{path}: [rpc] ws_book_depth must be at most {MAX_L2_DEPTH}")
    if cfg.log_format not in LOG_FORMATS:
        raise ConfigError(f"{path}: log_format must be one of {', '.join(LOG_FORMATS)}")
    if cfg.store.verify_on_start not in ("full", "tip"):
        raise ConfigError(f"{path}: [store] verify_on_start must be \"full\" or \"tip\"")
    for name in ("state_cache_entries", "block_cache_mib", "write_buffer_mib", "keep_fills"):
        if getattr(cfg.store, name) < 1:
            raise ConfigError(f"{path}: [store] {name} must be at least 1")
    if cfg.store.keep_blocks != 0 and cfg.store.keep_blocks < MIN_KEEP_BLOCKS:
        raise ConfigError(f"{path}: [store] keep_blocks must be 0 (keep every block) or at "
                          f"least {MIN_KEEP_BLOCKS}")
    host = cfg.rpc_host_port[0]
    if not is_loopback(host) and not r.unsafe_public_bind:
        raise ConfigError(f"{path}: [rpc] laddr {r.laddr} is not a loopback address: the RPC "
                          "would be open to the network. Set [rpc] unsafe_public_bind = true "
                          "to allow it (see docs/SECURITY.md)")


def is_loopback(host: str) -> bool:
    import ipaddress
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def render_config(cfg: Config) -> str:
    """TOML text for `cfg` (what `init` writes)."""
    def val(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    out = ["# perpchain node configuration (local settings; protocol rules live in genesis)",
           f"moniker = {val(cfg.moniker)}", f"log_format = {val(cfg.log_format)}", ""]
    for name in _SECTIONS:
        out.append(f"[{name}]")
        section = getattr(cfg, name)
        for f in fields(section):
            out.append(f"{f.name} = {val(getattr(section, f.name))}")
        out.append("")
    return "\n".join(out)
