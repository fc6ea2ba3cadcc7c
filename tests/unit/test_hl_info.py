"""The Hyperliquid façade's `/info` (rpc/hl_info.py) on a real one-validator chain: every type
checked against the native JSON-RPC answer of the same committed state, its errors, and the
official SDK's own name/asset mapping fed with our meta and spotMeta."""

import json
from decimal import Decimal

import pytest
import trio

from node.genesis import make_genesis_doc, parse_genesis, rfc3339_to_ms
from node.store import Store
from node.app import Application
from node.config import Config
from rpc.hl_format import HLError, direction
from rpc.hl_info import info
from state.hl_universe import SPOT_ASSET_OFFSET, eth_account, market_for_asset
from tests.protocol_chain import (CHAIN_ID, GENESIS_TIME, MAKER, NODE, PX, USER, VALIDATOR,
                                  RPCChain, order_action)

FUNDING_INTERVAL_MS = 2_000


class FundedChain(RPCChain):
    """RPCChain whose BTC-USD pays funding every 2 s of block time (blocks are ~1 s apart)."""

    def __init__(self, path):
        doc = make_genesis_doc(CHAIN_ID, rfc3339_to_ms(GENESIS_TIME),
                               [(VALIDATOR.pub_key, 10, "node0")])
        doc["app_state"]["markets"][0]["funding"]["interval_ms"] = str(FUNDING_INTERVAL_MS)
        self.genesis = parse_genesis(doc)
        cfg = Config(moniker="node0")
        cfg.verifier.processes, cfg.verifier.threads = 0, -1
        self.store = Store(path / "data")
        self.app = Application(cfg, self.genesis, self.store, NODE, VALIDATOR)
        self.server = None
        self.n = self.time_ms

    def blk(self, *txs):
        out = []
        for k, a in txs:
            self.n = max(self.n + 1, self.time_ms)
            out.append(self.tx(k, self.n, a))
        r = self.block(out)
        assert not [x.log for x in r.tx_results if x.code]

    def native(self, method: str, params: dict):
        from rpc.methods import METHODS
        return trio.run(METHODS[method], self.app, params)

    def hl(self, body: dict):
        return trio.run(info, self.app, body)


U = "0x" + USER.pub_key.hex()
M = "0x" + MAKER.pub_key.hex()


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    c = FundedChain(tmp_path_factory.mktemp("hl"))
    c.blk((USER, ["faucet"]), (MAKER, ["faucet"]))
    c.blk((VALIDATOR, ["oracle", [["BTC", 60_000 * PX], ["ETH", 3_000 * PX]]]))
    c.blk((MAKER, order_action(1, False, 60_010, 0.003, cloid=7)),
          (MAKER, order_action(1, True, 59_990, 0.004, cloid=8)),
          (USER, ["set_leverage", 1, 10]))
    c.blk((USER, order_action(1, True, 60_010, 0.001, tif=1, cloid=1)))   # open long
    c.blk((USER, order_action(1, True, 60_010, 0.001, tif=1)))            # add
    c.blk((USER, order_action(1, False, 59_990, 0.003, tif=1)))           # flip to short
    for _ in range(4):                                                    # funding windows
        c.blk((VALIDATOR, ["oracle", [["BTC", 60_000 * PX], ["ETH", 3_000 * PX]]]))
    c.blk((USER, order_action(1, False, 61_500, 0.002, cloid=3)),         # resting ask
          (USER, order_action(1, True, 50_000, 0.001, kind=2, tif=1, trigger=62_000, cloid=4)))
    yield c
    c.close()


def test_meta_and_spot_meta_name_every_market_in_asset_id_order(chain):
    meta, spot = chain.hl({"type": "meta"}), chain.hl({"type": "spotMeta"})
    native = {m["symbol"]: m for m in chain.native("markets", {})["markets"]}
    view = chain.app.store.state
    assert [u["name"] for u in meta["universe"]] == ["BTC", "ETH"]
    for i, u in enumerate(meta["universe"]):
        m = market_for_asset(view, i)
        assert native[m.symbol]["max_leverage"] == u["maxLeverage"]
        assert Decimal(native[m.symbol]["lot_size"]) == Decimal(1).scaleb(-u["szDecimals"])
    (pair,) = spot["universe"]
    assert market_for_asset(view, SPOT_ASSET_OFFSET + pair["index"]).symbol == pair["name"]
    tokens = {t["index"]: t["name"] for t in spot["tokens"]}
    assert [tokens[i] for i in pair["tokens"]] == ["BTC", "USDC"] and tokens[0] == "USDC"


def test_the_official_sdk_maps_names_to_our_asset_ids(chain):
    from hyperliquid.info import Info
    sdk = Info("http://127.0.0.1:1", skip_ws=True, meta=chain.hl({"type": "meta"}),
               spot_meta=chain.hl({"type": "spotMeta"}))
    assert sdk.name_to_asset("BTC") == 0 and sdk.name_to_asset("ETH") == 1
    assert sdk.name_to_asset("BTC/USDC") == SPOT_ASSET_OFFSET
    assert sdk.asset_to_sz_decimals[0] == 4 and sdk.asset_to_sz_decimals[SPOT_ASSET_OFFSET] == 4


def test_l2_book_and_mids_equal_the_native_book(chain):
    hl = chain.hl({"type": "l2Book", "coin": "BTC"})
    nat = chain.native("orderbook", {"market": "BTC-USD", "depth": 20})
    assert hl["time"] == chain.time_ms
    for side, levels in zip(("bids", "asks"), hl["levels"]):
        assert [(Decimal(lv["px"]), Decimal(lv["sz"]), lv["n"]) for lv in levels] == \
            [(Decimal(lv["price"]), Decimal(lv["size"]), lv["orders"]) for lv in nat[side]]
    bid, ask = Decimal(nat["bids"][0]["price"]), Decimal(nat["asks"][0]["price"])
    assert Decimal(chain.hl({"type": "allMids"})["BTC"]) == (bid + ask) / 2


def test_clearinghouse_state_is_the_native_margin_account(chain):
    hl = chain.hl({"type": "clearinghouseState", "user": U})
    nat = chain.native("margin_account", {"address": USER.address})
    assert Decimal(hl["marginSummary"]["accountValue"]) == Decimal(nat["equity"])
    assert Decimal(hl["marginSummary"]["totalMarginUsed"]) == Decimal(nat["margin_used"])
    assert Decimal(hl["withdrawable"]) == Decimal(nat["free_collateral"])
    (pos,) = hl["assetPositions"]
    (npos,) = [p for p in nat["positions"] if Decimal(p["size"])]
    p = pos["position"]
    assert (p["coin"], Decimal(p["szi"]), Decimal(p["entryPx"]), p["leverage"]) == \
        ("BTC", Decimal(npos["size"]), Decimal(npos["entry_price"]),
         {"type": "cross", "value": 10})
    assert Decimal(p["szi"]) == Decimal("-0.001")
    assert Decimal(p["unrealizedPnl"]) == Decimal(npos["unrealized_pnl"])
    spot = chain.hl({"type": "spotClearinghouseState", "user": U})
    assert {b["coin"]: Decimal(b["total"]) for b in spot["balances"]} == \
        {k: Decimal(v) for k, v in nat["balances"].items() if Decimal(v)}


def test_open_orders_and_order_status_equal_the_native_orders(chain):
    nat = chain.native("open_orders", {"address": USER.address})["orders"]
    hl = chain.hl({"type": "openOrders", "user": U})
    front = chain.hl({"type": "frontendOpenOrders", "user": U})
    assert sorted(o["oid"] for o in hl) == sorted(int(o["order_id"]) for o in nat) and len(nat) == 2
    by_id = {int(o["order_id"]): o for o in nat}
    for o in hl:
        n = by_id[o["oid"]]
        assert (Decimal(o["limitPx"]), Decimal(o["sz"]), o["side"]) == \
            (Decimal(n["price"]), Decimal(n["size"]), "B" if n["side"] == "buy" else "A")
    trig = next(o for o in front if o["isTrigger"])
    assert trig["orderType"] == "Stop Market" and trig["triggerCondition"] == "Price above 62000.0"
    assert trig["cloid"] == "0x" + "0" * 31 + "4"
    st = chain.hl({"type": "orderStatus", "user": U, "oid": trig["cloid"]})
    assert st["status"] == "order" and st["order"]["order"]["oid"] == trig["oid"]
    assert st["order"]["status"] == "open"
    filled = chain.hl({"type": "orderStatus", "user": U, "oid": "0x" + "0" * 31 + "1"})
    assert filled["order"]["status"] == "filled" and filled["order"]["order"]["origSz"] == "0.001"
    assert chain.hl({"type": "orderStatus", "user": U, "oid": 10**9}) == {"status": "unknownOid"}


def test_user_fills_follow_the_native_fills_and_the_position(chain):
    hl = chain.hl({"type": "userFills", "user": U})
    nat = chain.native("fills", {"address": USER.address})["fills"]
    assert [(Decimal(f["px"]), Decimal(f["sz"]), f["time"]) for f in hl] == \
        [(Decimal(f["price"]), Decimal(f["size"]), int(f["time_ms"])) for f in nat]
    assert all(f["crossed"] and f["coin"] == "BTC" for f in hl)
    # oldest first, each fill starts where the one before ended; the last ends at today's size
    pos = Decimal(0)
    for f in reversed(hl):
        assert Decimal(f["startPosition"]) == pos
        pos += Decimal(f["sz"]) * (1 if f["side"] == "B" else -1)
    assert pos == Decimal("-0.001")
    assert [f["dir"] for f in reversed(hl)] == ["Open Long", "Open Long", "Long > Short"]
    by_time = chain.hl({"type": "userFillsByTime", "user": U, "startTime": hl[-1]["time"] + 1})
    assert by_time == [f for f in reversed(hl) if f["time"] > hl[-1]["time"]]
    maker = chain.hl({"type": "userFills", "user": M})
    assert maker and not any(f["crossed"] for f in maker)
    assert {f["tid"] for f in maker} == {f["tid"] for f in hl}


def test_direction_names_every_kind_of_move():
    from state.markets import PERP, SPOT

    class Mk:
        kind = PERP
    m, s = Mk(), Mk()
    s.kind = SPOT
    assert [direction(m, a, d) for a, d in ((0, 1), (2, 1), (2, -1), (2, -3), (-2, 3),
                                            (-2, 1), (0, -1))] == \
        ["Open Long", "Open Long", "Close Long", "Long > Short", "Short > Long", "Close Short",
         "Open Short"]
    assert direction(s, 5, -1) == "Sell"


def test_funding_history_and_user_funding_follow_the_settlements(chain):
    hist = chain.hl({"type": "fundingHistory", "coin": "BTC", "startTime": 0})
    nat = chain.native("funding_history", {"market": "BTC-USD"})["history"]
    assert len(hist) == len(nat) >= 2
    assert [(h["time"], Decimal(h["fundingRate"])) for h in hist] == \
        [(int(n["time_ms"]), Decimal(n["rate"])) for n in reversed(nat)]
    assert chain.hl({"type": "fundingHistory", "coin": "BTC", "startTime": hist[-1]["time"]}) \
        == hist[-1:]
    paid = chain.hl({"type": "userFunding", "user": U, "startTime": 0})
    assert paid and all(p["delta"]["coin"] == "BTC" for p in paid)
    # the user was short 0.001 BTC through every window after the flip
    assert {p["delta"]["szi"] for p in paid} <= {"-0.001", "0.001", "0.002"}
    for p in paid:   # shorts receive what longs pay: the sign follows rate x size
        rate, size, usdc = (Decimal(p["delta"][k]) for k in ("fundingRate", "szi", "usdc"))
        assert usdc == 0 or (usdc > 0) == (rate * size < 0)


def test_candles_are_built_from_the_fills(chain):
    fills = chain.hl({"type": "userFills", "user": U})
    candles = chain.hl({"type": "candleSnapshot", "req": {"coin": "BTC", "interval": "1h",
                                                          "startTime": 0, "endTime": 2**50}})
    assert sum(c["n"] for c in candles) == len(fills)
    assert sum(Decimal(c["v"]) for c in candles) == sum(Decimal(f["sz"]) for f in fills)
    assert Decimal(candles[0]["h"]) == max(Decimal(f["px"]) for f in fills)
    assert candles[-1]["c"] == fills[0]["px"] and candles[0]["s"] == "BTC"


def test_meta_and_asset_ctxs_carry_the_native_marks(chain):
    meta, ctxs = chain.hl({"type": "metaAndAssetCtxs"})
    marks = {m["market"]: m for m in chain.native("mark_prices", {})["marks"]}
    assert meta == chain.hl({"type": "meta"}) and len(ctxs) == 2
    assert Decimal(ctxs[0]["markPx"]) == Decimal(marks["BTC-USD"]["mark_price"])
    assert Decimal(ctxs[0]["oraclePx"]) == Decimal("60000")
    assert Decimal(ctxs[0]["openInterest"]) == Decimal("0.001")   # the maker's long
    assert Decimal(ctxs[0]["dayBaseVlm"]) == Decimal("0.005")


@pytest.mark.parametrize("body, status, code", [
    ({"type": "nope"}, 422, "unknown_type"),
    ([], 400, "invalid_request"),
    ({"type": "clearinghouseState", "user": "0x1234"}, 400, "invalid_user"),
    ({"type": "clearinghouseState"}, 400, "missing_field"),
    ({"type": "l2Book", "coin": "DOGE"}, 400, "unknown_coin"),
    ({"type": "l2Book", "coin": "BTC", "nSigFigs": 5}, 400, "unsupported"),
    ({"type": "meta", "dex": "xyz"}, 400, "unknown_dex"),
    ({"type": "userFillsByTime", "user": U, "startTime": -1}, 400, "invalid_field"),
    ({"type": "candleSnapshot", "req": {"coin": "BTC", "interval": "7m", "startTime": 0}},
     400, "invalid_field"),
    ({"type": "orderStatus", "user": U, "oid": "abc"}, 400, "invalid_field"),
])
def test_bad_requests_get_a_4xx_with_code_and_msg(chain, body, status, code):
    with pytest.raises(HLError) as e:
        chain.hl(body)
    assert (e.value.status, e.value.code) == (status, code)
    assert json.loads(json.dumps(e.value.body()))["msg"]


def test_an_ethereum_user_is_its_0x_account(chain):
    addr = bytes(range(20))
    user = "0x" + addr.hex()
    state = chain.hl({"type": "clearinghouseState", "user": user.upper().replace("0X", "0x")})
    assert state["assetPositions"] == [] and state["marginSummary"]["accountValue"] == "0.0"
    nat = chain.native("margin_account", {"address": eth_account(addr).hex()})
    assert nat["equity"] == "0"
