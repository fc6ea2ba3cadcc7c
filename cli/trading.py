"""The trading commands of `perpchain`: sign and send orders, read books and accounts.

    perpchain tx order --key FILE --market M --side buy|sell --size S [--price P] [--tif gtc]
    perpchain tx cancel --key FILE --market M (--id N | --cloid N | --all)
    perpchain tx set-leverage --key FILE --market M --leverage N
    perpchain query book M [--depth N]
    perpchain query positions|orders|fills|margin [ADDRESS | --key FILE]
    perpchain query markets

Every command takes `--node URL` (default $PERPCHAIN_NODE, else http://127.0.0.1:26657) and
`--json` (the node's answer, or the committed tx, as JSON for scripts); without it, aligned
tables. `perpchain order` and `perpchain cancel` are the older names of `tx order` and
`tx cancel`. Errors: one line on stderr and the exit status of cli/output.py.
"""

import argparse
import os
from pathlib import Path

from cli.output import client_errors, fail, print_json, print_outcome, table

DEFAULT_NODE = os.environ.get("PERPCHAIN_NODE", "http://127.0.0.1:26657")


def make_client(url: str, key):
    """The SDK client (a seam: unit tests replace it with a fake)."""
    from rpc.client import Client
    return Client(url, key)


def _load_key(path: str):
    from node.keys import KeyFileError, load_key
    try:
        return load_key(Path(path))
    except KeyFileError as e:
        fail(str(e), 2)


def _signer(a):
    return make_client(a.node, _load_key(a.key))


def _reader(a):
    return make_client(a.node, None)


def _address(a) -> str:
    """The ADDRESS argument, else the address of --key's file."""
    if a.address and a.key:
        fail("give an ADDRESS or --key, not both", 2)
    if a.address:
        return a.address
    if a.key:
        return _load_key(a.key).address
    fail("give an ADDRESS (64 hex chars) or --key FILE", 2)


# -- tx ---------------------------------------------------------------------------------------

def cmd_order(a) -> None:
    is_buy = a.side == "buy"
    with client_errors(a.node):
        c = _signer(a)
        if a.price is None:
            if a.tif != "gtc":
                fail("a market order (no --price) is always IOC; drop --tif", 2)
            out = c.market_order(a.market, is_buy, a.size, reduce_only=a.reduce_only,
                                 cloid=a.cloid)
        else:
            out = c.place_order(a.market, is_buy, a.price, a.size, tif=a.tif,
                                reduce_only=a.reduce_only, cloid=a.cloid)
    print_outcome(out, a.json)


def cmd_cancel(a) -> None:
    if sum((a.all, a.id is not None, a.cloid is not None)) != 1:
        fail("give exactly one of --id, --cloid or --all", 2)
    if not a.all and a.market is None:
        fail("--id and --cloid need --market", 2)
    with client_errors(a.node):
        c = _signer(a)
        if a.all:
            out = c.cancel_all(a.market)
        elif a.cloid is not None:
            out = c.cancel_by_cloid(a.market, a.cloid)
        else:
            out = c.cancel(a.market, a.id)
    print_outcome(out, a.json)


def cmd_set_leverage(a) -> None:
    if a.leverage < 1:
        fail(f"--leverage {a.leverage}: must be at least 1", 2)
    with client_errors(a.node):
        out = _signer(a).set_leverage(a.market, a.leverage)
    print_outcome(out, a.json)


# -- queries ----------------------------------------------------------------------------------

def cmd_book(a) -> None:
    if not 1 <= a.depth <= 500:
        fail(f"--depth {a.depth}: 1 to 500", 2)
    with client_errors(a.node):
        book = _reader(a).orderbook(a.market, a.depth)
    if a.json:
        return print_json(book)
    print(f"{book['market']} at height {book['height']}")
    if not book["bids"] and not book["asks"]:
        print("  the book is empty")
        return
    rows = [["ask", lv["price"], lv["size"], lv["orders"]] for lv in reversed(book["asks"])]
    rows += [["bid", lv["price"], lv["size"], lv["orders"]] for lv in book["bids"]]
    print(table(["side", "price", "size", "orders"], rows, right={1, 2, 3}))


def cmd_markets(a) -> None:
    with client_errors(a.node):
        res = _reader(a).markets()
    if a.json:
        return print_json(res)
    rows = [[m["id"], m["symbol"], m["kind"], m["tick_size"], m["lot_size"], m["max_leverage"],
             m["oracle_price"], m["mark_price"], m["maker_fee_ppm"], m["taker_fee_ppm"]]
            for m in res["markets"]]
    print(table(["id", "symbol", "kind", "tick", "lot", "max lev", "oracle", "mark",
                 "maker ppm", "taker ppm"], rows, right={0, 3, 4, 5, 6, 7, 8, 9}))


def cmd_positions(a) -> None:
    addr = _address(a)
    with client_errors(a.node):
        res = _reader(a).positions(addr)
    if a.json:
        return print_json(res)
    print(f"positions of {res['address']} at height {res['height']}")
    if not res["positions"]:
        print("  no positions")
        return
    rows = [[p["market"], p["side"], p["size"], p["entry_price"], p["mark_price"],
             p["unrealized_pnl"], p["liquidation_price"], p["leverage"], p["margin_mode"]]
            for p in res["positions"]]
    print(table(["market", "side", "size", "entry", "mark", "unrealized pnl", "liq price",
                 "lev", "mode"], rows, right={2, 3, 4, 5, 6, 7}))


def cmd_orders(a) -> None:
    addr = _address(a)
    with client_errors(a.node):
        res = _reader(a).open_orders(addr, a.market)
    if a.json:
        return print_json(res)
    print(f"open orders of {res['address']} at height {res['height']}")
    if not res["orders"]:
        print("  no open orders")
        return
    rows = [[o["order_id"], o["market"], o["side"], o["kind"], o["tif"], o["price"], o["size"],
             o["filled"], o["trigger_price"], o["cloid"], o["status"]] for o in res["orders"]]
    print(table(["id", "market", "side", "kind", "tif", "price", "size", "filled", "trigger",
                 "cloid", "status"], rows, right={0, 5, 6, 7, 8, 9}))


def fill_row(f: dict, addr: str) -> list:
    """One fill from `addr`'s side: its role, side, fee and realised PnL."""
    taker = f["taker"] == addr
    side = f["taker_side"] if taker else ("sell" if f["taker_side"] == "buy" else "buy")
    role = "taker" if taker else "maker"
    return [f["height"], f["market"], side, role, f["price"], f["size"],
            f[f"{role}_fee"], f[f"{role}_pnl"]]


def cmd_fills(a) -> None:
    addr = _address(a)
    if not 1 <= a.limit <= 1000:
        fail(f"--limit {a.limit}: 1 to 1000", 2)
    with client_errors(a.node):
        res = _reader(a).fills(addr, a.market, per_page=a.limit)
    if a.json:
        return print_json(res)
    print(f"fills of {addr} at height {res['height']}: {res['total']} in all, newest first")
    if not res["fills"]:
        return
    rows = [fill_row(f, addr) for f in res["fills"]]
    print(table(["height", "market", "side", "role", "price", "size", "fee", "realized pnl"],
                rows, right={0, 4, 5, 6, 7}))


def cmd_margin(a) -> None:
    addr = _address(a)
    with client_errors(a.node):
        res = _reader(a).margin_account(addr)
    if a.json:
        return print_json(res)
    print(f"margin of {res['address']} at height {res['height']}")
    keys = ("collateral", "unrealized_pnl", "equity", "initial_margin", "maintenance_margin",
            "free_collateral", "total_notional", "account_leverage", "volume_30d", "fee_tier")
    print(table(["", "value"], [[k.replace("_", " "), res[k]] for k in keys], right={1}))


# -- parsers ----------------------------------------------------------------------------------

def _common(s: argparse.ArgumentParser, key_required: bool) -> None:
    if key_required:
        s.add_argument("--key", required=True, help="key file (perpchain keys new --out FILE)")
    s.add_argument("--node", default=DEFAULT_NODE, help="RPC URL (default %(default)s)")
    s.add_argument("--json", action="store_true", help="print JSON for scripts")


def _order_args(s: argparse.ArgumentParser) -> None:
    _common(s, True)
    s.add_argument("--market", required=True, help="symbol or id, e.g. BTC-USD")
    s.add_argument("--side", required=True, choices=("buy", "sell"))
    s.add_argument("--size", required=True, help="decimal size in base units, e.g. 0.01")
    s.add_argument("--price", help="decimal limit price; omit for a market order (IOC at the "
                                   "mark +- 10%%)")
    s.add_argument("--tif", default="gtc", choices=("gtc", "ioc", "fok", "alo"),
                   help="time in force (alo: post-only)")
    s.add_argument("--reduce-only", action="store_true")
    s.add_argument("--cloid", type=int, default=0, help="your client order id")
    s.set_defaults(fn=cmd_order)


def _cancel_args(s: argparse.ArgumentParser) -> None:
    _common(s, True)
    s.add_argument("--market", help="market (with --all and no --market: every market)")
    s.add_argument("--id", type=int, help="order id")
    s.add_argument("--cloid", type=int, help="client order id")
    s.add_argument("--all", action="store_true", help="all your open orders")
    s.set_defaults(fn=cmd_cancel)


def add_tx_commands(tx) -> None:
    """`tx order`, `tx cancel`, `tx set-leverage` on the `tx` subparsers."""
    _order_args(tx.add_parser("order", help="place an order (a market order without --price)"))
    _cancel_args(tx.add_parser("cancel", help="cancel an order, by id or cloid, or all"))
    s = tx.add_parser("set-leverage", help="the leverage of your position in a perp market")
    _common(s, True)
    s.add_argument("--market", required=True)
    s.add_argument("--leverage", type=int, required=True, help="1 to the market's max")
    s.set_defaults(fn=cmd_set_leverage)


def _account_query(q, name: str, help_: str, fn):
    s = q.add_parser(name, help=help_)
    s.add_argument("address", nargs="?", help="64 hex chars (or --key FILE)")
    s.add_argument("--key", help="read the address from this key file")
    _common(s, False)
    s.set_defaults(fn=fn)
    return s


def add_query_commands(q) -> None:
    """`query book|markets|positions|orders|fills|margin` on the `query` subparsers."""
    s = q.add_parser("book", help="a market's L2 order book")
    s.add_argument("market")
    s.add_argument("--depth", type=int, default=10)
    _common(s, False)
    s.set_defaults(fn=cmd_book)
    s = q.add_parser("markets", help="every market and its parameters")
    _common(s, False)
    s.set_defaults(fn=cmd_markets)
    _account_query(q, "positions", "an account's perp positions", cmd_positions)
    _account_query(q, "orders", "an account's open orders", cmd_orders).add_argument(
        "--market", help="only this market")
    s = _account_query(q, "fills", "an account's fills, newest first", cmd_fills)
    s.add_argument("--market", help="only this market")
    s.add_argument("--limit", type=int, default=20, help="at most this many (1..1000)")
    _account_query(q, "margin", "an account's equity, margin used, free collateral",
                   cmd_margin)


def add_alias_commands(sub) -> None:
    """`perpchain order` / `perpchain cancel`: the older names of `tx order` / `tx cancel`."""
    _order_args(sub.add_parser("order", help="same as `tx order`"))
    _cancel_args(sub.add_parser("cancel", help="same as `tx cancel`"))
