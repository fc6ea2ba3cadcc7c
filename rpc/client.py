"""The Python SDK: `Client(url, key)` signs txs locally and talks JSON-RPC to a node.

    c = Client("http://127.0.0.1:26657", load_key("alice.json"))
    out = c.transfer(bob_address, "12.5")      # waits for the block; raises TxRejected
    c.account()                                 # balances as decimal strings, nonces
    with c.subscriptions() as ws:               # websocket notifications (rpc/ws_client.py)
        ws.subscribe("account", address=c.key.address)

Nonces are the current time in milliseconds, made strictly increasing per Client, as
Hyperliquid's; several Clients for one key may run in parallel (the chain keeps the 100
highest nonces per account).
"""

import base64
import time
from dataclasses import dataclass, field

import httpx

from node.keys import KeyPair, parse_address
from state.amounts import parse_amount
from state.tx import build_tx


class RPCClientError(Exception):
    """The node answered with a JSON-RPC error."""

    def __init__(self, code: int, message: str, data=None):
        super().__init__(f"RPC error {code}: {message}")
        self.code, self.message, self.data = code, message, data


class TxRejected(Exception):
    """The tx was refused (by the mempool check or by block execution)."""

    def __init__(self, hash_hex: str, code: int, codespace: str, log: str, height: int = 0):
        where = f" in block {height}" if height else ""
        super().__init__(f"tx {hash_hex} rejected{where}: code {code} ({codespace}): {log}")
        self.hash, self.code, self.codespace, self.log, self.height = \
            hash_hex, code, codespace, log, height


@dataclass
class TxOutcome:
    hash: str
    height: int
    code: int
    log: str
    events: list = field(default_factory=list)


MARKET_CACHE_S = 10.0   # how long Client.market answers from its cached records


class Client:
    def __init__(self, url: str = "http://127.0.0.1:26657", key: KeyPair | None = None,
                 timeout: float = 30.0, market_cache_s: float = MARKET_CACHE_S):
        """`market_cache_s`: how long `market` answers from its cached records (see it)."""
        self.url = url.rstrip("/")
        self.market_cache_s = market_cache_s
        self._markets: dict | None = None
        self._markets_read_s = 0.0
        self.markets_height = 0
        self.key = key
        self.http = httpx.Client(timeout=timeout)
        self._id = 0
        self._chain_id: str | None = None
        self._decimals: dict[str, int] | None = None
        self._quote: str | None = None
        self._last_nonce = 0

    def close(self) -> None:
        self.http.close()

    def subscriptions(self, **kw):
        """A websocket connection to this node for `subscribe` (rpc/ws_client.py)."""
        from rpc.ws_client import Subscriptions
        return Subscriptions(self.url, **kw)

    # -- transport -------------------------------------------------------------------
    def call(self, method: str, **params):
        self._id += 1
        r = self.http.post(self.url + "/", json={"jsonrpc": "2.0", "id": self._id,
                                                 "method": method, "params": params})
        body = r.json()
        if "error" in body:
            e = body["error"]
            raise RPCClientError(e["code"], e["message"], e.get("data"))
        return body["result"]

    def call_batch(self, calls: list[tuple[str, dict]]) -> list[dict]:
        """One HTTP request for many calls; returns the raw response objects in order."""
        reqs = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p}
                for i, (m, p) in enumerate(calls)]
        body = self.http.post(self.url + "/", json=reqs).json()
        if isinstance(body, dict):  # the whole batch was refused
            e = body["error"]
            raise RPCClientError(e["code"], e["message"], e.get("data"))
        return sorted(body, key=lambda x: x["id"])

    # -- queries -----------------------------------------------------------------------
    def status(self) -> dict:
        return self.call("status")

    def height(self) -> int:
        return int(self.status()["sync_info"]["latest_block_height"])

    def account(self, address: str | None = None) -> dict:
        if address is None:
            address = self._key().address
        return self.call("account", address=address)

    def tx(self, hash_hex: str) -> dict:
        return self.call("tx", hash=hash_hex)

    @property
    def chain_id(self) -> str:
        if self._chain_id is None:
            self._chain_id = self.status()["node_info"]["network"]
        return self._chain_id

    def _load_assets(self) -> None:
        a = self.call("assets")
        self._decimals = {x["symbol"]: x["decimals"] for x in a["assets"]}
        self._quote = a["quote_asset"]

    def decimals(self, asset: str) -> int:
        if self._decimals is None:
            self._load_assets()
        if asset not in self._decimals:
            raise ValueError(f"unknown asset {asset!r}; listed: {', '.join(self._decimals)}")
        return self._decimals[asset]

    @property
    def quote_asset(self) -> str:
        if self._quote is None:
            self._load_assets()
        return self._quote

    # -- signing and sending -----------------------------------------------------------
    def _key(self) -> KeyPair:
        if self.key is None:
            raise ValueError("this Client has no key: pass key=load_key(path)")
        return self.key

    def next_nonce(self) -> int:
        n = max(time.time_ns() // 1_000_000, self._last_nonce + 1)
        self._last_nonce = n
        return n

    def sign(self, action: list, nonce: int | None = None) -> bytes:
        return build_tx(self.chain_id, self._key().private,
                        self.next_nonce() if nonce is None else nonce, action)

    def broadcast(self, raw: bytes, wait: bool = True, timeout: float = 15.0) -> TxOutcome:
        """Submit; raise TxRejected if the check fails; with `wait`, wait for the block and
        raise TxRejected if execution rejects it."""
        r = self.call("broadcast_tx_sync", tx=base64.b64encode(raw).decode())
        if r["code"] != 0:
            raise TxRejected(r["hash"], r["code"], r["codespace"], r["log"])
        if not wait:
            return TxOutcome(r["hash"], 0, 0, "")
        return self.wait_for_tx(r["hash"], timeout)

    def wait_for_tx(self, hash_hex: str, timeout: float = 15.0) -> TxOutcome:
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            try:
                t = self.tx(hash_hex)
                break
            except RPCClientError as e:
                if e.code != -32001 or time.monotonic() > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)
        res = t["tx_result"]
        out = TxOutcome(t["hash"], int(t["height"]), res["code"], res["log"], res["events"])
        if out.code != 0:
            raise TxRejected(out.hash, out.code, res["codespace"], out.log, out.height)
        return out

    def transfer(self, to: str, amount: str, asset: str | None = None,
                 wait: bool = True) -> TxOutcome:
        asset = asset or self.quote_asset
        q = parse_amount(amount, self.decimals(asset))
        return self.broadcast(self.sign(["transfer", parse_address(to), asset, q]), wait)

    def faucet(self, wait: bool = True) -> TxOutcome:
        return self.broadcast(self.sign(["faucet"]), wait)

    # -- lending (issue 10) --------------------------------------------------------------
    def withdraw(self, asset: str, amount: str, wait: bool = True) -> TxOutcome:
        """Burn `amount` (decimal, asset units) for a bridge; beyond the balance a borrow."""
        q = parse_amount(amount, self.decimals(asset))
        return self.broadcast(self.sign(["withdraw", asset, q]), wait)

    def deposit(self, asset: str, amount: str, wait: bool = True) -> TxOutcome:
        """Localnet only: mint `amount` of `asset` to this key (a bridge deposit stand-in)."""
        q = parse_amount(amount, self.decimals(asset))
        return self.broadcast(self.sign(["deposit", asset, q]), wait)

    def set_lending(self, enabled: bool, wait: bool = True) -> TxOutcome:
        return self.broadcast(self.sign(["set_lending", 1 if enabled else 0]), wait)

    def settle_pnl(self, market: int, wait: bool = True) -> TxOutcome:
        return self.broadcast(self.sign(["settle_pnl", market]), wait)

    def lending_pools(self) -> dict:
        return self.call("lending_pools")

    def set_validator(self, pub_key_hex: str, power: int, wait: bool = True) -> TxOutcome:
        """Governance: give a validator `power` (0 removes it) from two heights on."""
        return self.broadcast(self.sign(["gov_set_validator", parse_address(pub_key_hex),
                                         power]), wait)

    def evidence(self, validator: str | None = None) -> dict:
        return self.call("evidence", **({"validator": validator} if validator else {}))


    # -- trading (issue 4) ---------------------------------------------------------------------
    # Prices and sizes are decimal strings in quote units per whole base unit / base units
    # ("60000.5", "0.01"); they are converted with the market's decimals. The chain, not the
    # client, checks tick and lot multiples, so a wrong price comes back as a TxRejected.

    KINDS = ("limit", "market", "stop_market", "stop_limit", "take_profit_market",
             "take_profit_limit")
    TIFS = ("gtc", "ioc", "fok", "alo")

    def markets(self) -> dict:
        return self.call("markets")

    def refresh_markets(self) -> dict:
        """Read every market record now (method `markets`) into the cache `market` answers
        from; returns the `markets` result. `markets_height`: the height they were read at."""
        res = self.markets()
        cache = {}
        for m in res["markets"]:
            cache[m["id"]] = cache[m["symbol"]] = m
        self._markets, self._markets_read_s = cache, time.monotonic()
        self.markets_height = int(res["height"])
        return res

    def market(self, market, fresh: bool = False) -> dict:
        """Market info by id or symbol. Cached: read again when older than `market_cache_s`
        seconds (Client argument, default 10; 0 reads on every call), when `fresh`, after
        `refresh_markets()`, and when `market` is not in the cache, so a governance change
        to a market's parameters (fees, tick, lot, leverage) is seen within that time."""
        cache = self._markets
        stale = cache is None or fresh or \
            time.monotonic() - self._markets_read_s >= self.market_cache_s
        if stale or market not in cache:
            self.refresh_markets()
            cache = self._markets
            if market not in cache:
                raise ValueError(f"unknown market {market!r}")
        return cache[market]

    def _price_units(self, m: dict, price: str) -> int:
        return parse_amount(price, self.decimals(m["quote"]))

    def _size_units(self, m: dict, size: str) -> int:
        return parse_amount(size, m["base_decimals"])

    def order_action(self, market, is_buy: bool, price: str, size: str, kind: str = "limit",
                     tif: str = "gtc", reduce_only: bool = False,
                     trigger_price: str | None = None, cloid: int = 0,
                     expiry_ms: int = 0) -> list:
        """The `order` action array (for `batch`, or to sign yourself)."""
        m = self.market(market)
        return ["order", m["id"], bool(is_buy), self.KINDS.index(kind),
                self._price_units(m, price), self._size_units(m, size), self.TIFS.index(tif),
                bool(reduce_only),
                0 if trigger_price is None else self._price_units(m, trigger_price),
                int(cloid), int(expiry_ms)]

    def place_order(self, market, is_buy: bool, price: str, size: str, kind: str = "limit",
                    tif: str = "gtc", reduce_only: bool = False,
                    trigger_price: str | None = None, cloid: int = 0, expiry_ms: int = 0,
                    wait: bool = True) -> TxOutcome:
        return self.broadcast(self.sign(self.order_action(
            market, is_buy, price, size, kind, tif, reduce_only, trigger_price, cloid,
            expiry_ms)), wait)

    def worst_price(self, market, is_buy: bool, slippage_ppm: int = 100_000) -> str:
        """Mark price moved by `slippage_ppm` against the taker, rounded to a tick (integers
        only): the worst price of a market order."""
        m = self.market(market)
        marks = {x["id"]: x for x in self.mark_prices()["marks"]}
        qd = self.decimals(m["quote"])
        mark = parse_amount(marks[m["id"]]["mark_price"], qd)
        tick = int(m["tick_size_units"])
        if is_buy:
            px = -(-mark * (1_000_000 + slippage_ppm) // 1_000_000 // tick) * tick
        else:
            px = max(mark * (1_000_000 - slippage_ppm) // 1_000_000 // tick * tick, tick)
        from state.amounts import format_amount
        return format_amount(px, qd)

    def market_order(self, market, is_buy: bool, size: str, worst_price: str | None = None,
                     reduce_only: bool = False, cloid: int = 0, wait: bool = True) -> TxOutcome:
        """IOC at `worst_price` (default: mark +- 10%)."""
        if worst_price is None:
            worst_price = self.worst_price(market, is_buy)
        return self.place_order(market, is_buy, worst_price, size, "market", "ioc",
                                reduce_only, None, cloid, 0, wait)

    def cancel(self, market, order_id: int, wait: bool = True) -> TxOutcome:
        return self.broadcast(self.sign(["cancel", self.market(market)["id"], int(order_id)]),
                              wait)

    def cancel_by_cloid(self, market, cloid: int, wait: bool = True) -> TxOutcome:
        return self.broadcast(self.sign(["cancel_cloid", self.market(market)["id"], int(cloid)]),
                              wait)

    def cancel_all(self, market=None, wait: bool = True) -> TxOutcome:
        mid = 0 if market is None else self.market(market)["id"]
        return self.broadcast(self.sign(["cancel_all", mid]), wait)

    def modify(self, market, order_id: int, price: str, size: str,
               wait: bool = True) -> TxOutcome:
        m = self.market(market)
        return self.broadcast(self.sign(["modify", m["id"], int(order_id),
                                         self._price_units(m, price),
                                         self._size_units(m, size)]), wait)

    def modify_trigger(self, market, order_id: int, trigger_price: str, price: str, size: str,
                       wait: bool = True) -> TxOutcome:
        """Change a waiting trigger order (it keeps its order id)."""
        m = self.market(market)
        return self.broadcast(self.sign(["modify_trigger", m["id"], int(order_id),
                                         self._price_units(m, trigger_price),
                                         self._price_units(m, price),
                                         self._size_units(m, size)]), wait)

    def twap_order(self, market, is_buy: bool, size: str, duration_ms: int,
                   reduce_only: bool = False, wait: bool = True) -> TxOutcome:
        """A TWAP order: IOC slices every 30 s of block time over `duration_ms`."""
        m = self.market(market)
        return self.broadcast(self.sign(["twap_order", m["id"], bool(is_buy),
                                         self._size_units(m, size), int(duration_ms),
                                         bool(reduce_only)]), wait)

    def twap_cancel(self, market, twap_id: int, wait: bool = True) -> TxOutcome:
        return self.broadcast(self.sign(["twap_cancel", self.market(market)["id"],
                                         int(twap_id)]), wait)

    def twap_orders(self, address: str | None = None) -> dict:
        return self.call("twap_orders", address=address or self._key().address)

    def batch(self, actions: list[list], wait: bool = True) -> TxOutcome:
        """Up to 50 order/cancel/cancel_cloid/cancel_all/modify action arrays in one tx
        (build orders with `order_action`); each gets a `batch_item` event with its code."""
        return self.broadcast(self.sign(["batch", [list(a) for a in actions]]), wait)

    def set_leverage(self, market, leverage: int, wait: bool = True) -> TxOutcome:
        return self.broadcast(self.sign(["set_leverage", self.market(market)["id"],
                                         int(leverage)]), wait)

    def oracle_update(self, prices: dict[str, str], wait: bool = False) -> TxOutcome:
        """Validators only: publish oracle prices ({asset: decimal price in quote units})."""
        qd = self.decimals(self.quote_asset)
        return self.broadcast(self.sign(["oracle", [[a, parse_amount(p, qd)]
                                                    for a, p in sorted(prices.items())]]), wait)

    # -- trading queries ---------------------------------------------------------------------
    def orderbook(self, market, depth: int = 20) -> dict:
        return self.call("orderbook", market=self.market(market)["id"], depth=depth)

    def open_orders(self, address: str | None = None, market=None) -> dict:
        p = {"address": address or self._key().address}
        if market is not None:
            p["market"] = self.market(market)["id"]
        return self.call("open_orders", **p)

    def order(self, market=None, order_id: int | None = None, cloid: int | None = None,
              address: str | None = None) -> dict:
        if order_id is not None:
            return self.call("order", market=self.market(market)["id"], order_id=order_id)
        return self.call("order", address=address or self._key().address, cloid=cloid)

    def fills(self, address: str | None = None, market=None, page: int = 1,
              per_page: int = 100) -> dict:
        p: dict = {"page": page, "per_page": per_page}
        if address is not None:
            p["address"] = address
        if market is not None:
            p["market"] = self.market(market)["id"]
        return self.call("fills", **p)

    def positions(self, address: str | None = None) -> dict:
        return self.call("positions", address=address or self._key().address)

    def margin_account(self, address: str | None = None) -> dict:
        return self.call("margin_account", address=address or self._key().address)

    def oracle(self) -> dict:
        return self.call("oracle")

    def mark_prices(self) -> dict:
        return self.call("mark_prices")

    def funding_history(self, market, limit: int = 100) -> dict:
        """A perp market's funding parameters, current window and last `limit` settlements
        (newest first)."""
        return self.call("funding_history", market=self.market(market)["id"], limit=limit)

    # -- risk engine (rpc/risk_methods.py) ---------------------------------------------
    def liquidations(self, address: str | None = None, limit: int = 100) -> dict:
        """The last liquidation, insurance_takeover and adl events (newest first)."""
        p = {"limit": limit}
        if address is not None:
            p["address"] = address
        return self.call("liquidations", **p)

    def insurance_fund(self) -> dict:
        return self.call("insurance_fund")

    def adl_queue(self, address: str | None = None) -> dict:
        return self.call("adl_queue", address=address or self._key().address)
