"""`perpchain localnet up | status | down`: N nodes on 127.0.0.1 under one directory.

    DIR/localnet.json     chain id and each node's ports (RPC, p2p, Hyperliquid API)
    DIR/nodeK/            a node home (node/home.py) plus node.pid and node.log

`up` creates the homes on first use (keys, one genesis shared by all with every node as
a validator of equal power and a faucet, distinct ports, every node a persistent peer of
every other), starts every node that is not running in the background, and returns once
each answers `health`, then starts a price feeder per validator (localnet/feeder.py; pid in
DIR/nodeK/feeder.pid, log in DIR/nodeK/feeder.log). On an existing DIR it restarts stopped
nodes and feeders with their data.
"""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from localnet.feeder import start_feeder
from localnet.fund import fund_genesis
from localnet.network import NodeSpec, build_network
from node.genesis import future_market_json

DEFAULT_DIR = Path(".localnet")
DEFAULT_CHAIN_ID = "perpchain-localnet"
MAX_NODES = 7
DEFAULT_NODES = 4


class LocalnetError(Exception):
    pass


@dataclass
class NodeEntry:
    index: int
    home: Path
    rpc_port: int
    p2p_port: int
    hl_port: int | None = None      # the Hyperliquid API (rpc/hl_server.py)

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}"

    @property
    def hl_url(self) -> str | None:
        """The Hyperliquid API's base URL (the SDK's base_url), if the node serves it."""
        return None if self.hl_port is None else f"http://127.0.0.1:{self.hl_port}"

    @property
    def pid_file(self) -> Path:
        return self.home / "node.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "node.log"

    @property
    def feeder_pid_file(self) -> Path:
        return self.home / "feeder.pid"

    def pid(self) -> int | None:
        """The pid of the running node process, or None."""
        return _live_pid(self.pid_file)

    def feeder_pid(self) -> int | None:
        """The pid of this validator's running price feeder, or None."""
        return _live_pid(self.feeder_pid_file)


def _live_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    if _is_zombie(pid):
        return None
    return pid


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except (FileNotFoundError, IndexError):
        return False


def _manifest(d: Path) -> Path:
    return d / "localnet.json"


def load(d: Path) -> list[NodeEntry]:
    d = d.resolve()  # absolute: node and feeder processes run in other directories
    try:
        m = json.loads(_manifest(d).read_text())
    except FileNotFoundError:
        raise LocalnetError(f"no localnet in {d} (run `perpchain localnet up` first)") from None
    return [NodeEntry(n["index"], d / n["home"], n["rpc_port"], n["p2p_port"], n.get("hl_port"))
            for n in m["nodes"]]


def create(d: Path, n: int, base_port: int, chain_id: str,
           timeout_commit: str = "250ms", configure=None, edit_genesis=None,
           hl_base_port: int | None = None) -> list[NodeEntry]:
    """`configure(cfg)`, if given, may adjust each node's Config before it is written;
    `edit_genesis(doc, genesis_time_ms)` the genesis document. Node k listens for RPC on
    base_port + 10k, p2p one below, and serves the Hyperliquid API on hl_base_port + 10k
    (default: base_port - 2 + 10k, inside the node's block of ports; the CLI passes 3001)."""
    if not 1 <= n <= MAX_NODES:
        raise LocalnetError(f"-n {n}: a localnet has 1 to {MAX_NODES} validators")
    d = d.resolve()  # absolute: node and feeder processes run in other directories
    d.mkdir(parents=True, exist_ok=True)
    hl_base = base_port - 2 if hl_base_port is None else hl_base_port
    entries = [NodeEntry(k, d / f"node{k}", base_port + 10 * k, base_port - 1 + 10 * k,
                         hl_base + 10 * k) for k in range(n)]
    build_network([NodeSpec(e.home, f"node{e.index}", f"tcp://127.0.0.1:{e.p2p_port}",
                            f"127.0.0.1:{e.p2p_port}", f"tcp://127.0.0.1:{e.rpc_port}",
                            f"tcp://127.0.0.1:{e.hl_port}")
                   for e in entries], chain_id, timeout_commit, configure, edit_genesis)
    _manifest(d).write_text(json.dumps({
        "chain_id": chain_id,
        "nodes": [{"index": e.index, "home": e.home.name, "rpc_port": e.rpc_port,
                   "p2p_port": e.p2p_port, "hl_port": e.hl_port} for e in entries]},
        indent=2) + "\n")
    return entries


def start_node(e: NodeEntry, log_format: str | None = None) -> int:
    """Start node `e` in the background; `log_format` ("text"/"json") overrides its config."""
    log = open(e.log_file, "ab")
    fmt = ["--log-format", log_format] if log_format else []
    proc = subprocess.Popen([sys.executable, "-m", "cli", "start", "--home", str(e.home), *fmt],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, cwd=str(e.home))
    log.close()
    e.pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def wait_healthy(e: NodeEntry, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if e.pid() is None:
            raise LocalnetError(f"node{e.index} exited during start; see {e.log_file}:\n"
                                + _tail(e.log_file))
        try:
            if httpx.get(e.rpc_url + "/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise LocalnetError(f"node{e.index} did not answer on {e.rpc_url} within {timeout:g}s; "
                        f"see {e.log_file}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


FUTURE_MARKET_ID = 4
FUTURE_SYMBOL = "BTC-FUT"


def future_genesis(minutes: int):
    """An `edit_genesis` listing BTC-FUT (market 4) expiring `minutes` after genesis, settling
    at the average oracle price over the last half of that time (at most one hour)."""
    if not 1 <= minutes <= 525_600:
        raise LocalnetError(f"--future-minutes {minutes}: 1 to 525600 (a year)")

    def edit(doc: dict, genesis_time_ms: int) -> None:
        ms = minutes * 60_000
        doc["app_state"]["markets"].append(future_market_json(
            FUTURE_MARKET_ID, FUTURE_SYMBOL, genesis_time_ms + ms, min(ms // 2, 3_600_000)))
    return edit


def up(d: Path = DEFAULT_DIR, n: int | None = None, base_port: int = 26657,
       chain_id: str = DEFAULT_CHAIN_ID, timeout: float = 30.0,
       timeout_commit: str = "250ms", configure=None, feeders: bool = True,
       prices_csv: Path | None = None, future_minutes: int | None = None,
       log_format: str | None = None, hl_base_port: int | None = None,
       funds: list[tuple[str, str]] = ()) -> list[NodeEntry]:
    """Create (first time) and start the nodes, then one price feeder per validator.
    `future_minutes`: a new localnet also lists a BTC dated future expiring that many minutes
    after genesis (`future_genesis`). `log_format`, if given, is passed to each node's
    `perpchain start --log-format`. `hl_base_port`: see `create` (a new localnet only).
    `funds`: (account hex, quote amount) credited at genesis (localnet/fund.py; new only)."""
    if _manifest(d).exists():
        entries = load(d)
        if funds:
            raise LocalnetError(f"{d} already holds a localnet: --fund credits accounts in a "
                                "new genesis only (use another --dir, or `localnet down` and "
                                "remove the directory)")
        if n is not None and n != len(entries):
            raise LocalnetError(f"{d} holds a {len(entries)}-node localnet; use -n "
                                f"{len(entries)} or another --dir")
    else:
        edit = None if future_minutes is None else future_genesis(future_minutes)
        if funds:
            edit = fund_genesis(list(funds), edit)
        entries = create(d, n or DEFAULT_NODES, base_port, chain_id, timeout_commit, configure,
                         edit, hl_base_port)
    for e in entries:
        if e.pid() is None:
            start_node(e, log_format)
    for e in entries:
        wait_healthy(e, timeout)
    if feeders:
        for e in entries:
            if e.feeder_pid() is None:
                proc = start_feeder(e.home, e.rpc_url, csv_path=prices_csv)
                e.feeder_pid_file.write_text(f"{proc.pid}\n")
    return entries


def status(d: Path = DEFAULT_DIR) -> list[dict]:
    out = []
    for e in load(d):
        row = {"node": f"node{e.index}", "rpc": e.rpc_url, "hl": e.hl_url, "pid": e.pid(),
               "running": False,
               "height": None, "app_hash": None, "peers": 0, "round": 0,
               "feeder": e.feeder_pid() is not None}
        if row["pid"] is not None:
            try:
                res = [r["result"] for r in sorted(httpx.post(e.rpc_url, json=[
                    {"jsonrpc": "2.0", "id": i, "method": m}
                    for i, m in enumerate(("status", "net_info", "consensus_state"))],
                    timeout=2.0).json(), key=lambda r: r["id"])]
                s, net, cs = res[0]["sync_info"], res[1], res[2]["round_state"]
                row.update(running=True, height=int(s["latest_block_height"]),
                           app_hash=s["latest_app_hash"], peers=int(net["n_peers"]),
                           round=int(cs["height/round/step"].split("/")[1]))
            except (httpx.HTTPError, KeyError, ValueError, IndexError):
                pass
        out.append(row)
    return out


def down(d: Path = DEFAULT_DIR, timeout: float = 10.0) -> list[int]:
    """SIGTERM every running node, SIGKILL what has not exited after `timeout`."""
    stopped = []
    entries = load(d)
    for e in entries:
        fpid = e.feeder_pid()
        if fpid is not None:
            os.kill(fpid, signal.SIGTERM)
        e.feeder_pid_file.unlink(missing_ok=True)
        pid = e.pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            stopped.append(pid)
    deadline = time.monotonic() + timeout
    for e in entries:
        while e.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        pid = e.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        e.pid_file.unlink(missing_ok=True)
    return stopped
