"""The trading commands (cli/trading.py) against a fake client: what each sends, what it
prints (tables and --json), and one clear error line with a non-zero exit for each failure."""

import json

import httpx
import pytest

from cli import trading
from cli.main import main
from node.keys import KeyPair, save_key
from rpc.client import RPCClientError, TxOutcome, TxRejected
from state.amounts import AmountError

ALICE = "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"
BOB = "ed4928c628d1c2c6eae90338905995612959273a5c63f93636c14614ac8737d1"
FILL = {"market": "BTC-USD", "price": "60010", "size": "0.0005", "taker": ALICE, "maker": BOB,
        "taker_side": "buy", "taker_order_id": "3", "maker_order_id": "1", "taker_cloid": "1",
        "maker_cloid": "7", "taker_fee": "0.013503", "maker_fee": "0.004501",
        "taker_pnl": "0", "maker_pnl": "1.5", "maker_remaining": "0.0005", "height": "5",
        "index": 0, "time_ms": "1795596422005"}
POSITION = {"market": "BTC-USD", "market_id": 1, "size": "-0.0005", "side": "short",
            "entry_price": "60010", "mark_price": "61000", "liquidation_price": "19812346.66",
            "notional": "30.5", "unrealized_pnl": "-0.495", "leverage": 40,
            "margin_mode": "cross"}


class FakeClient:
    """Records each call; answers with shapes copied from docs/PROTOCOL.md; `raise_` makes
    every call raise that exception."""

    def __init__(self, url, key, log, raise_=None):
        self.url, self.key, self.log, self.raise_ = url, key, log, raise_

    def _tx(self, name, *args, **kw):
        self.log.append((name, args, kw))
        if self.raise_:
            raise self.raise_
        return TxOutcome("AB" * 32, 7, 0, "", [{"type": name, "attributes": [
            {"key": "status", "value": "open"}, {"key": "order_id", "value": "5"}]}])

    def __getattr__(self, name):
        if name in ("place_order", "market_order", "cancel", "cancel_by_cloid", "cancel_all",
                    "set_leverage"):
            return lambda *a, **kw: self._tx(name, *a, **kw)
        raise AttributeError(name)

    def _q(self, name, *args, **kw):
        self.log.append((name, args, kw))
        if self.raise_:
            raise self.raise_

    def orderbook(self, market, depth):
        self._q("orderbook", market, depth)
        return {"market": "BTC-USD", "id": 1, "height": "9", "sequence": "9",
                "bids": [{"price": "59990", "size": "0.001", "orders": 1}],
                "asks": [{"price": "60010", "size": "0.002", "orders": 2},
                         {"price": "61500", "size": "0.001", "orders": 1}]}

    def positions(self, address):
        self._q("positions", address)
        return {"address": address, "height": "9", "positions": [POSITION]}

    def fills(self, address, market=None, per_page=100):
        self._q("fills", address, market, per_page=per_page)
        return {"height": "9", "total": 1, "page": 1, "per_page": per_page, "fills": [FILL]}

    def open_orders(self, address, market=None):
        self._q("open_orders", address, market)
        return {"address": address, "height": "9", "orders": []}

    def markets(self):
        self._q("markets")
        return {"height": "9", "markets": [{
            "id": 1, "symbol": "BTC-USD", "kind": "perp", "tick_size": "0.1",
            "lot_size": "0.0001", "max_leverage": 40, "oracle_price": "61000",
            "mark_price": "61000", "maker_fee_ppm": 100, "taker_fee_ppm": 450}]}


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """(calls log, key file path, set_error); every command gets a FakeClient."""
    log, err = [], {}
    monkeypatch.setattr(trading, "make_client",
                        lambda url, key: FakeClient(url, key, log, err.get("e")))
    kf = tmp_path / "alice.json"
    save_key(kf, KeyPair.generate())
    return log, str(kf), lambda e: err.__setitem__("e", e)


def run(capsys, *argv) -> tuple[int, str, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_limit_and_market_orders_send_what_was_typed(fake, capsys):
    log, kf, _ = fake
    code, out, _ = run(capsys, "tx", "order", "--key", kf, "--market", "BTC-USD", "--side",
                       "sell", "--size", "0.01", "--price", "61000", "--tif", "alo",
                       "--cloid", "9")
    assert code == 0 and "committed at height 7" in out and "status=open" in out
    assert log[-1] == ("place_order", ("BTC-USD", False, "61000", "0.01"),
                       {"tif": "alo", "reduce_only": False, "cloid": 9})
    code, out, _ = run(capsys, "order", "--key", kf, "--market", "ETH-USD", "--side", "buy",
                       "--size", "0.5", "--reduce-only", "--json")   # the older name
    assert code == 0 and log[-1] == ("market_order", ("ETH-USD", True, "0.5"),
                                     {"reduce_only": True, "cloid": 0})
    doc = json.loads(out)
    assert doc["height"] == 7 and doc["events"][0]["attributes"]["order_id"] == "5"


def test_cancel_and_set_leverage(fake, capsys):
    log, kf, _ = fake
    assert run(capsys, "tx", "cancel", "--key", kf, "--market", "BTC-USD", "--id", "5")[0] == 0
    assert log[-1][:2] == ("cancel", ("BTC-USD", 5))
    assert run(capsys, "cancel", "--key", kf, "--market", "1", "--cloid", "3")[0] == 0
    assert log[-1][:2] == ("cancel_by_cloid", ("1", 3))
    assert run(capsys, "tx", "cancel", "--key", kf, "--all")[0] == 0
    assert log[-1][:2] == ("cancel_all", (None,))
    assert run(capsys, "tx", "set-leverage", "--key", kf, "--market", "BTC-USD",
               "--leverage", "10")[0] == 0
    assert log[-1][:2] == ("set_leverage", ("BTC-USD", 10))


@pytest.mark.parametrize("argv, message", [
    (["tx", "cancel", "--market", "BTC-USD"], "exactly one of --id, --cloid or --all"),
    (["tx", "cancel", "--market", "BTC-USD", "--id", "1", "--all"], "exactly one of"),
    (["tx", "cancel", "--id", "1"], "--id and --cloid need --market"),
    (["tx", "set-leverage", "--market", "BTC-USD", "--leverage", "0"], "at least 1"),
    (["tx", "order", "--market", "BTC-USD", "--side", "buy", "--size", "1", "--tif", "alo"],
     "always IOC"),
])
def test_bad_usage_is_one_line_and_exit_2_without_sending(fake, capsys, argv, message):
    log, kf, _ = fake
    code, out, err = run(capsys, *argv[:2], "--key", kf, *argv[2:])
    assert code == 2 and message in err and err.count("\n") == 1 and out == ""
    assert log == []


@pytest.mark.parametrize("exc, code, message", [
    (TxRejected("AB", 41, "perpchain", "price is not a multiple of the tick", 8), 1,
     "rejected in block 8: code 41 (perpchain): price is not a multiple of the tick"),
    (RPCClientError(-32602, "unknown market 'XYZ'"), 1, "RPC error -32602: unknown market"),
    (RPCClientError(-32001, "tx not found"), 1, "not seen in a block in time"),
    (httpx.ConnectError("[Errno 111] Connection refused"), 1,
     "cannot reach the node at http://127.0.0.1:26657: [Errno 111] Connection refused"),
    (json.JSONDecodeError("x", "doc", 0), 1, "did not answer with JSON"),
    (AmountError("'1e9' is not a non-negative decimal number like '12.5'"), 2, "'1e9' is not"),
])
def test_client_failures_are_one_line_and_non_zero(fake, capsys, exc, code, message):
    _, kf, set_error = fake
    set_error(exc)
    got, out, err = run(capsys, "tx", "order", "--key", kf, "--market", "BTC-USD", "--side",
                        "buy", "--size", "1", "--price", "1", "--node", "http://127.0.0.1:26657")
    assert (got, out) == (code, "") and message in err and err.count("\n") == 1
    got, _, err = run(capsys, "query", "book", "BTC-USD", "--node", "http://127.0.0.1:26657")
    assert got == code and message in err and err.count("\n") == 1


def test_a_bad_key_file_is_exit_2(fake, capsys, tmp_path):
    log, _, _ = fake
    code, _, err = run(capsys, "tx", "order", "--key", str(tmp_path / "nope.json"), "--market",
                       "BTC-USD", "--side", "buy", "--size", "1")
    assert code == 2 and "does not exist" in err and log == []


def test_book_table_has_asks_above_bids(fake, capsys):
    code, out, _ = run(capsys, "query", "book", "BTC-USD", "--depth", "3")
    lines = out.splitlines()
    assert code == 0 and lines[0] == "BTC-USD at height 9"
    assert [ln.split()[:3] for ln in lines[2:]] == [["ask", "61500", "0.001"],
                                                     ["ask", "60010", "0.002"],
                                                     ["bid", "59990", "0.001"]]
    assert fake[0][-1] == ("orderbook", ("BTC-USD", 3), {})
    assert run(capsys, "query", "book", "BTC-USD", "--depth", "0")[0] == 2


def test_positions_and_fills_read_the_key_files_address(fake, capsys):
    log, kf, _ = fake
    from node.keys import load_key
    me = load_key(kf).address
    code, out, _ = run(capsys, "query", "positions", "--key", kf)
    assert code == 0 and log[-1] == ("positions", (me,), {})
    row = out.splitlines()[2].split()
    assert row[:6] == ["BTC-USD", "short", "-0.0005", "60010", "61000", "-0.495"]
    code, out, _ = run(capsys, "query", "fills", BOB, "--market", "BTC-USD", "--limit", "5")
    assert code == 0 and log[-1] == ("fills", (BOB, "BTC-USD"), {"per_page": 5})
    # bob is the maker of alice's buy: a sell, the maker's fee and pnl
    assert out.splitlines()[2].split() == ["5", "BTC-USD", "sell", "maker", "60010", "0.0005",
                                           "0.004501", "1.5"]
    assert run(capsys, "query", "fills", BOB, "--key", kf)[0] == 2   # both: ambiguous


def test_json_output_is_the_nodes_answer(fake, capsys):
    code, out, _ = run(capsys, "query", "positions", ALICE, "--json")
    assert code == 0 and json.loads(out)["positions"] == [POSITION]
    code, out, _ = run(capsys, "query", "markets")
    assert code == 0 and out.splitlines()[1].split()[:3] == ["1", "BTC-USD", "perp"]
    code, out, _ = run(capsys, "query", "orders", ALICE)
    assert code == 0 and "no open orders" in out


def test_fill_row_from_each_side():
    assert trading.fill_row(FILL, ALICE)[2:4] == ["buy", "taker"]
    assert trading.fill_row(FILL, BOB)[2:4] == ["sell", "maker"]
