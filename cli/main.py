"""The `perpchain` command (also `python -m cli`).

    perpchain init --home DIR --chain-id ID        keys, config.toml, genesis.json
    perpchain start --home DIR                     run a node
    perpchain start --home DIR --snapshot FILE --trust-hash HEX --trust-rpc URL
                                                   state sync: start from an export (node/snapshot.py)
    perpchain replay --home DIR [--check-invariants [N]]  re-execute the chain, check every app
                                                   hash (and audit the state every N blocks)
    perpchain export --home DIR [--height H] [--out FILE]  the full state at a height as
                                                   canonical JSON lines with a digest
    perpchain keys new [--out FILE] | show FILE    account keys (files are mode 0600)
    perpchain localnet up [-n N] [--dir DIR] | status | down
    perpchain tx faucet|transfer --key FILE ...    sign, send, wait for the block
    perpchain tx order|cancel|set-leverage ...     trading (cli/trading.py)
    perpchain query account ADDR [--json]
    perpchain query book|markets|positions|orders|fills|margin ...   (cli/trading.py)
    perpchain bench [--rate R] [--duration S] ...  load a running localnet, print figures

Exit status: 0 on success, 1 when the chain or a tx said no, 2 on bad usage.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

from cli.lending_output import account_lines, pools_table
from cli.output import fail, print_outcome

DEFAULT_NODE = os.environ.get("PERPCHAIN_NODE", "http://127.0.0.1:26657")


# -- node commands ---------------------------------------------------------------------

def cmd_init(a) -> None:
    from node.config import Config
    from node.home import init_home

    cfg = Config(moniker=a.moniker or Path(a.home).name)
    cfg.rpc.laddr = f"tcp://127.0.0.1:{a.rpc_port}"
    cfg.p2p.laddr = f"tcp://127.0.0.1:{a.p2p_port}"
    try:
        home, val = init_home(Path(a.home), a.chain_id, time.time_ns() // 1_000_000, cfg)
    except FileExistsError as e:
        fail(str(e))
    print(f"initialised {home.root} for chain {a.chain_id}")
    print(f"validator address: {val.address}")
    print(f"start it with: perpchain start --home {home.root}")


def cmd_start(a) -> None:
    from node.fatal import describe
    from node.home import Home
    from cli.run import start

    home = Home(Path(a.home))  # (SIGPIPE and faulthandler: node/process_guard.py)
    if a.snapshot:
        _state_sync(a, home)
    try:
        start(home, a.log_format)
    except KeyboardInterrupt:
        pass
    except Exception as e:  # a fault with a clear message (node/fatal.py), else a bug
        msg = describe(e, home.db_path)
        if msg is None:
            raise
        fail(msg)


def cmd_replay(a) -> None:
    from node.replay import replay

    if a.check_invariants is not None and a.check_invariants < 1:
        fail(f"--check-invariants {a.check_invariants}: the interval must be at least 1 block", 2)
    genesis, store = _open_stopped_store(a)
    base = store.base_height()
    if base > 1:
        store.close()
        fail(f"this store has no blocks below height {base} (pruned with "
             "[store] keep_blocks, or the node started from a snapshot): a replay from "
             "genesis needs a store that kept every block")
    from node.gc_tuning import tune_gc

    tune_gc()  # as `start` does (node/gc_tuning.py)
    try:
        rep = replay(store, genesis, check_every=a.check_invariants or 0)
    finally:
        store.close()
    print(f"replayed {rep.heights} heights ({rep.txs} txs) in {rep.seconds:.2f}s: "
          f"{rep.heights_per_s:.0f} heights/s")
    if rep.ok:
        print(f"OK: every app hash and tx result matches; final app hash {rep.app_hash.hex()}")
        if rep.invariant_checks:
            print(f"OK: every state invariant holds at the {rep.invariant_checks} audited heights")
    else:
        print(f"MISMATCH: {rep.error}")
        if rep.diverged_at is not None:
            print(f"first diverging height: {rep.diverged_at}")
        for d in rep.diffs:
            print(f"  key {d.describe()}")
        if rep.more_diffs:
            print(f"  ... and {rep.more_diffs} more key(s)")
        sys.exit(1)


def _open_stopped_store(a):
    """(genesis, store) of a stopped node's home, or exit with the reason."""
    from node.genesis import load_genesis
    from node.home import Home
    from node.store import StoreError
    from node.store_check import open_verified

    home = Home(Path(a.home))
    genesis = load_genesis(home.genesis_file)
    if not home.db_path.exists():
        fail(f"no chain data at {home.db_path}")
    try:
        return genesis, open_verified(home.db_path)
    except StoreError as e:
        fail(str(e))


def _state_sync(a, home) -> None:
    """Create the store of `home` from a snapshot, checked against the trusted hash."""
    from node.genesis import load_genesis
    from node.snapshot import SnapshotError, bootstrap, fetch_context, read_snapshot
    from node.store import Store, StoreError, is_empty_dir

    if not a.trust_hash or not a.trust_rpc:
        fail("--snapshot needs --trust-hash (the hash of block H+1, from a source you trust) "
             "and --trust-rpc (a node to fetch blocks H and H+1 from)", 2)
    try:
        trust = bytes.fromhex(a.trust_hash)
    except ValueError:
        fail(f"--trust-hash {a.trust_hash!r} is not hex", 2)
    if not is_empty_dir(home.db_path):
        fail(f"{home.db_path} already holds chain data: --snapshot starts an empty node only "
             "(move the data directory aside first)")
    try:
        snap = read_snapshot(Path(a.snapshot))
        ctx = fetch_context(a.trust_rpc, snap.height)
        genesis = load_genesis(home.genesis_file)
        store = Store(home.db_path)
        try:
            tip = bootstrap(store, genesis, snap, ctx, trust)
        finally:
            store.close()
    except (SnapshotError, StoreError) as e:
        import shutil
        shutil.rmtree(home.db_path, ignore_errors=True)   # it was empty: leave it so
        fail(f"state sync refused: {e}")
    print(f"state sync: started from the snapshot at height {tip.height} (app hash "
          f"{tip.app_hash.hex()}); syncing later blocks from peers", file=sys.stderr)


def cmd_export(a) -> None:
    from node.export import ExportError, exported_state, write_export

    genesis, store = _open_stopped_store(a)
    try:
        height = store.tip().height if a.height is None else a.height
        with exported_state(store, genesis, height, None) as (pairs, app_hash):
            out = open(a.out, "wb") if a.out else sys.stdout.buffer
            try:
                n, digest = write_export(pairs, out, genesis.chain_id, height, app_hash)
            finally:
                if a.out:
                    out.close()
    except ExportError as e:
        fail(str(e))
    finally:
        store.close()
    print(f"exported {n} keys at height {height} (app hash {app_hash.hex()}); digest {digest}",
          file=sys.stderr)


# -- keys ----------------------------------------------------------------------------------

def cmd_keys_new(a) -> None:
    from node.keys import KeyPair, save_key

    key = KeyPair.generate()
    if a.out:
        try:
            save_key(Path(a.out), key)
        except FileExistsError:
            fail(f"{a.out} already exists; refusing to overwrite a key")
        print(key.address)
    else:
        print(json.dumps(key.to_json(), indent=2))


def cmd_keys_show(a) -> None:
    from node.keys import KeyFileError, load_key

    try:
        print(load_key(Path(a.file)).address)
    except KeyFileError as e:
        fail(str(e))


# -- client commands -----------------------------------------------------------------------

def _client(a, with_key: bool = True):
    from node.keys import KeyFileError, load_key
    from rpc.client import Client

    key = None
    if with_key:
        try:
            key = load_key(Path(a.key))
        except KeyFileError as e:
            fail(str(e))
    return Client(a.node, key)


def _send(a, fn) -> None:
    import httpx

    from rpc.client import RPCClientError, TxRejected

    try:
        out = fn()
    except TxRejected as e:
        fail(str(e))
    except RPCClientError as e:
        fail(str(e))
    except httpx.HTTPError as e:
        fail(f"cannot reach the node at {a.node}: {e}")
    except ValueError as e:
        fail(str(e), 2)
    print_outcome(out, getattr(a, "json", False))


def cmd_tx_faucet(a) -> None:
    c = _client(a)
    _send(a, c.faucet)


def cmd_tx_transfer(a) -> None:
    c = _client(a)
    _send(a, lambda: c.transfer(a.to, a.amount, a.asset))


def _query(a, fn, text=None) -> None:
    """Print the node's answer `fn(client)`: as JSON, or `text(answer)` if given."""
    import httpx

    from rpc.client import RPCClientError

    try:
        answer = fn(_client(a, with_key=False))
        print(json.dumps(answer, indent=2) if text is None else text(answer))
    except RPCClientError as e:
        fail(str(e))
    except httpx.HTTPError as e:
        fail(f"cannot reach the node at {a.node}: {e}")


def cmd_query_account(a) -> None:
    import httpx

    from rpc.client import RPCClientError

    c = _client(a, with_key=False)
    try:
        acct = c.account(a.address)
    except RPCClientError as e:
        fail(str(e))
    except httpx.HTTPError as e:
        fail(f"cannot reach the node at {a.node}: {e}")
    if a.json:
        print(json.dumps(acct, indent=2))
        return
    print(f"account {acct['address']} at height {acct['height']}")
    if not acct["balances"]:
        print("  no balances")
    for sym, amt in sorted(acct["balances"].items()):
        print(f"  {sym}: {amt}")
    print(f"  nonces kept: {len(acct['nonces'])}")
    for line in account_lines(acct.get("lending")):
        print(line)


# -- localnet ------------------------------------------------------------------------------

def _funds(values: list[str] | None) -> list[tuple[str, str]]:
    """--fund ADDRESS=AMOUNT values, checked (localnet/fund.py)."""
    from localnet.fund import FundError, parse_fund

    try:
        return [parse_fund(v) for v in values or ()]
    except FundError as e:
        fail(str(e))


def cmd_localnet_up(a) -> None:
    from localnet.cluster import LocalnetError, up

    try:
        entries = up(Path(a.dir), a.n, a.base_port, timeout_commit=a.timeout_commit,
                     feeders=not a.no_feeders,
                     prices_csv=Path(a.prices_csv) if a.prices_csv else None,
                     future_minutes=a.future_minutes, log_format=a.log_format,
                     hl_base_port=a.hl_port, funds=_funds(a.fund))
    except (LocalnetError, FileExistsError) as e:
        fail(str(e))
    for e in entries:
        hl = f"  hyperliquid {e.hl_url}" if e.hl_url else ""
        print(f"node{e.index}: {e.rpc_url}{hl}  (pid {e.pid()}, log {e.log_file})")


def cmd_localnet_status(a) -> None:
    from localnet.cluster import LocalnetError, status

    try:
        rows = status(Path(a.dir))
    except LocalnetError as e:
        fail(str(e))
    if a.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'node':6} {'state':8} {'height':>8} {'round':>5} {'peers':>5} {'feeder':>6}  "
          f"{'app hash':18} rpc")
    for r in rows:
        state = "running" if r["running"] else ("no-rpc" if r["pid"] else "stopped")
        h = "-" if r["height"] is None else str(r["height"])
        ah = (r["app_hash"] or "-")[:16]
        fd = "yes" if r["feeder"] else "no"
        print(f"{r['node']:6} {state:8} {h:>8} {r['round']:>5} {r['peers']:>5} {fd:>6}  "
              f"{ah:18} {r['rpc']}")


def cmd_localnet_down(a) -> None:
    from localnet.cluster import LocalnetError, down

    try:
        stopped = down(Path(a.dir))
    except LocalnetError as e:
        fail(str(e))
    print(f"stopped {len(stopped)} node(s)")


def cmd_testnet(a) -> None:
    from localnet.network import NodeSpec, build_network

    if len(a.hostname) != a.v:
        fail(f"--v {a.v} needs {a.v} --hostname values, got {len(a.hostname)}", 2)
    out = Path(a.o)
    specs = [NodeSpec(out / f"node{k}", f"node{k}", f"tcp://0.0.0.0:{a.p2p_port}",
                      f"{host}:{a.p2p_port}", f"tcp://{a.rpc_host}:{a.rpc_port}")
             for k, host in enumerate(a.hostname)]
    try:
        homes = build_network(specs, a.chain_id)
    except FileExistsError as e:
        fail(str(e))
    for k, (h, host) in enumerate(zip(homes, a.hostname)):
        print(f"node{k}: {h.root}  (copy to {host}; run: perpchain start --home <dir>)")


def cmd_bench(a) -> None:
    import httpx

    from localnet.cluster import LocalnetError

    try:
        if a.mode == "transfers":
            from localnet.loadgen import run_bench
            urls = [u.rstrip("/") for u in (a.node or [DEFAULT_NODE])]
            run_bench(urls, accounts=a.accounts, txs=a.txs, batch=a.batch,
                      connections=a.connections, rate=int(a.rate or 2500), seconds=a.duration)
            return
        from localnet.order_bench import print_summary, run_order_bench, targets_for, write_json
        targets = targets_for(a.node, Path(a.dir))
        summary = run_order_bench(targets, rate_tps=a.rate or 200, duration_s=a.duration,
                                  accounts=a.accounts, market=a.market)
    except httpx.HTTPError as e:
        fail(f"cannot reach the node: {e}")
    except LocalnetError as e:
        fail(f"{e}; or name the nodes with --node URL")
    except (ValueError, RuntimeError) as e:
        fail(str(e))
    print_summary(summary)
    if a.json_out:
        write_json(summary, a.json_out)
        print(f"summary written to {a.json_out}")


# -- parser --------------------------------------------------------------------------------

def add_state_sync_args(s) -> None:
    """`start --snapshot FILE --trust-hash HEX --trust-rpc URL` (node/snapshot.py)."""
    s.add_argument("--snapshot", metavar="FILE",
                   help="state sync: start an empty node from this `perpchain export` file (at "
                        "a digest height H), then sync blocks from peers")
    s.add_argument("--trust-hash", metavar="HEX",
                   help="with --snapshot: the hash of block H+1, from a source you trust")
    s.add_argument("--trust-rpc", metavar="URL",
                   help="with --snapshot: a node's RPC to fetch blocks H, H+1 and the "
                        "validator sets from (all checked against --trust-hash)")


def add_audit_parsers(sub) -> None:
    """`replay` and `export` (node/replay.py, node/export.py)."""
    s = sub.add_parser("replay", help="re-execute stored blocks from genesis; check app hashes")
    s.add_argument("--home", required=True)
    s.add_argument("--check-invariants", type=int, nargs="?", const=1, metavar="EVERY",
                   help="also audit the whole state (state/invariants.py) after every block, "
                        "or every EVERY blocks and the last; stops at the first broken one")
    s.set_defaults(fn=cmd_replay)
    s = sub.add_parser("export", help="write the full state at a height as canonical JSON "
                                      "lines with a digest (also a state-sync snapshot)")
    s.add_argument("--home", required=True)
    s.add_argument("--height", type=int, default=None, help="default: the store's tip")
    s.add_argument("--out", help="file to write (default: standard output)")
    s.set_defaults(fn=cmd_export)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="perpchain", description="perpchain node and client")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("init", help="create a node home: keys, config.toml, genesis.json")
    s.add_argument("--home", required=True)
    s.add_argument("--chain-id", required=True)
    s.add_argument("--moniker")
    s.add_argument("--rpc-port", type=int, default=26657)
    s.add_argument("--p2p-port", type=int, default=26656)
    s.set_defaults(fn=cmd_init)

    s = sub.add_parser("start", help="run a node")
    s.add_argument("--home", required=True)
    s.add_argument("--log-format", choices=("text", "json"), default=None,
                   help="one JSON object per log line, or text (default: config.toml's "
                        "log_format, else text)")
    add_state_sync_args(s)
    s.set_defaults(fn=cmd_start)

    add_audit_parsers(sub)

    keys = sub.add_parser("keys", help="account keys").add_subparsers(dest="keys_cmd", required=True)
    s = keys.add_parser("new", help="generate a key (file mode 0600); prints the address")
    s.add_argument("--out", help="key file to write (prints the key JSON if omitted)")
    s.set_defaults(fn=cmd_keys_new)
    s = keys.add_parser("show", help="print the address of a key file")
    s.add_argument("file")
    s.set_defaults(fn=cmd_keys_show)

    ln = sub.add_parser("localnet", help="run N nodes on 127.0.0.1").add_subparsers(
        dest="ln_cmd", required=True)
    s = ln.add_parser("up", help="create (first time) and start the nodes")
    s.add_argument("-n", type=int, default=None,
                   help="number of validators, 1 to 7 (default 4 for a new localnet)")
    s.add_argument("--dir", default=".localnet")
    s.add_argument("--base-port", type=int, default=26657)
    s.add_argument("--hl-port", type=int, default=3001,
                   help="node k of a new localnet serves the Hyperliquid API on this port + 10k "
                        "(default 3001, the SDK's LOCAL_API_URL, for node0)")
    s.add_argument("--timeout-commit", default="250ms",
                   help="pause after each commit: the idle block interval")
    s.add_argument("--fund", action="append", metavar="ADDRESS=AMOUNT",
                   help="credit AMOUNT of the quote asset at genesis to ADDRESS (64 hex, or an "
                        "Ethereum 0x address); repeatable; a new localnet only")
    s.add_argument("--prices-csv", help="oracle prices for the feeders (see localnet/feeder.py)")
    s.add_argument("--no-feeders", action="store_true", help="start no price feeders")
    s.add_argument("--future-minutes", type=int, default=None,
                   help="a new localnet also lists BTC-FUT, a dated future expiring this many "
                        "minutes after genesis")
    s.add_argument("--log-format", choices=("text", "json"), default=None,
                   help="passed to each node's `perpchain start` (default: its config)")
    s.set_defaults(fn=cmd_localnet_up)
    s = ln.add_parser("status", help="height, app hash and RPC URL of each node")
    s.add_argument("--dir", default=".localnet")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_localnet_status)
    s = ln.add_parser("down", help="stop the nodes (data is kept)")
    s.add_argument("--dir", default=".localnet")
    s.set_defaults(fn=cmd_localnet_down)

    tx = sub.add_parser("tx", help="sign and send a tx").add_subparsers(dest="tx_cmd", required=True)
    for name, fn in (("faucet", cmd_tx_faucet), ("transfer", cmd_tx_transfer)):
        s = tx.add_parser(name)
        s.add_argument("--key", required=True, help="key file (perpchain keys new --out FILE)")
        s.add_argument("--node", default=DEFAULT_NODE)
        s.add_argument("--json", action="store_true", help="print the committed tx as JSON")
        if name == "transfer":
            s.add_argument("--to", required=True, help="recipient address (64 hex chars)")
            s.add_argument("--amount", required=True, help="decimal amount, e.g. 12.5")
            s.add_argument("--asset", default=None, help="asset symbol (default: quote asset)")
        s.set_defaults(fn=fn)

    q = sub.add_parser("query", help="read chain state").add_subparsers(dest="q_cmd", required=True)
    s = q.add_parser("account")
    s.add_argument("address")
    s.add_argument("--node", default=DEFAULT_NODE)
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_query_account)

    s = sub.add_parser("testnet", help="write node homes for a network spread over machines")
    s.add_argument("--v", type=int, required=True, help="number of validators")
    s.add_argument("--hostname", action="append", default=[], required=True,
                   help="host of validator k, in order (repeat --v times)")
    s.add_argument("--o", required=True, help="output directory (node0, node1, ...)")
    s.add_argument("--chain-id", default="perpchain-testnet")
    s.add_argument("--p2p-port", type=int, default=26656)
    s.add_argument("--rpc-port", type=int, default=26657)
    s.add_argument("--rpc-host", default="127.0.0.1",
                   help="RPC listen host on each machine (0.0.0.0 exposes it)")
    s.set_defaults(fn=cmd_testnet)

    from cli.trading import add_alias_commands, add_query_commands, add_tx_commands
    add_tx_commands(tx)
    add_query_commands(q)
    add_alias_commands(sub)

    s = sub.add_parser("bench", help="load a running network with signed order flow (or "
                                     "transfers); print throughput, latency, memory")
    s.add_argument("--mode", choices=("orders", "transfers"), default="orders",
                   help="orders: many accounts place, cross and cancel orders at --rate for "
                        "--duration; transfers: verify rate, saturation and steady transfers")
    s.add_argument("--node", action="append",
                   help="RPC URL of a node to submit to (repeat to spread the load; default: "
                        "every node of the localnet at --dir)")
    s.add_argument("--dir", default=".localnet",
                   help="localnet directory: its nodes and their pids (for memory)")
    s.add_argument("--rate", type=float, default=None,
                   help="txs/s to submit (default 200 orders, 2500 transfers)")
    s.add_argument("--duration", "--seconds", dest="duration", type=float, default=10.0,
                   help="seconds of load")
    s.add_argument("--accounts", type=int, default=200, help="signing accounts (faucet-funded)")
    s.add_argument("--market", default="BTC-USD", help="perp market of the order flow")
    s.add_argument("--json-out", help="also write the summary as JSON to this file")
    s.add_argument("--txs", type=int, default=40_000, help="transfers: saturation burst size")
    s.add_argument("--batch", type=int, default=500, help="transfers: txs per JSON-RPC batch")
    s.add_argument("--connections", type=int, default=4, help="transfers: parallel senders")
    s.set_defaults(fn=cmd_bench)
    _lending_parsers(tx, q)
    return p


def _lending_parsers(tx, q) -> None:
    """`tx withdraw|deposit|lending|settle-pnl` and `query pools|interest` (state/lending*)."""
    def market_id(c, name: str) -> int:
        ms = c.call("markets")["markets"]
        for m in ms:
            if name in (m["symbol"], str(m["id"])):
                return int(m["id"])
        raise ValueError(f"unknown market {name!r}")

    for name, help_, fn in (
            ("withdraw", "burn a balance for a bridge (beyond the balance: a borrow)",
             lambda a: _send(a, lambda: _client(a).withdraw(a.asset, a.amount))),
            ("deposit", "localnet only: credit an asset to your key",
             lambda a: _send(a, lambda: _client(a).deposit(a.asset, a.amount)))):
        s = tx.add_parser(name, help=help_)
        s.add_argument("--key", required=True)
        s.add_argument("--node", default=DEFAULT_NODE)
        s.add_argument("--asset", required=True, help="asset symbol, e.g. BTC")
        s.add_argument("--amount", required=True, help="decimal amount in asset units")
        s.set_defaults(fn=fn)
    s = tx.add_parser("lending", help="lend your positive balances (on) or opt out (off)")
    s.add_argument("state", choices=("on", "off"))
    s.add_argument("--key", required=True)
    s.add_argument("--node", default=DEFAULT_NODE)
    s.set_defaults(fn=lambda a: _send(a, lambda: _client(a).set_lending(a.state == "on")))
    s = tx.add_parser("settle-pnl", help="realise a perp position's PnL into your balance")
    s.add_argument("--market", required=True, help="e.g. BTC-USD")
    s.add_argument("--key", required=True)
    s.add_argument("--node", default=DEFAULT_NODE)
    s.set_defaults(fn=lambda a: _send(a, lambda: (lambda c: c.settle_pnl(
        market_id(c, a.market)))(_client(a))))
    s = q.add_parser("pools", help="lending pools: supplied, borrowed, utilisation, APRs")
    s.add_argument("--node", default=DEFAULT_NODE)
    s.add_argument("--json", action="store_true", help="the node's answer, with parameters")
    s.set_defaults(fn=lambda a: _query(a, lambda c: c.call("lending_pools"),
                                       None if a.json else pools_table))
    s = q.add_parser("interest", help="an asset's hourly interest-rate history")
    s.add_argument("asset")
    s.add_argument("--limit", type=int, default=24)
    s.add_argument("--node", default=DEFAULT_NODE)
    s.set_defaults(fn=lambda a: _query(a, lambda c: c.call("interest_history", asset=a.asset,
                                                           limit=a.limit)))


def main(argv: list[str] | None = None) -> None:
    import signal
    # `perpchain ... | head` exits quietly; the caller's handler comes back afterwards (a test
    # runner calling main() in-process must not die later of a worker's broken pipe).
    previous = signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        args = build_parser().parse_args(argv)
        args.fn(args)
    finally:
        signal.signal(signal.SIGPIPE, previous)
