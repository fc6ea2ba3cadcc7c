"""The Python SDK: `Client(url, key)` signs txs locally and talks JSON-RPC to a node.

    c = Client("http://127.0.0.1:26657", load_key("alice.json"))
    out = c.transfer(bob_address, "12.5")      # waits for the block; raises TxRejected
    c.account()                                 # balances as decimal strings, nonces

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


class Client:
    def __init__(self, url: str = "http://127.0.0.1:26657", key: KeyPair | None = None,
                 timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.key = key
        self.http = httpx.Client(timeout=timeout)
        self._id = 0
        self._chain_id: str | None = None
        self._decimals: dict[str, int] | None = None
        self._quote: str | None = None
        self._last_nonce = 0

    def close(self) -> None:
        self.http.close()

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

