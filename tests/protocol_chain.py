"""A real one-validator chain in one process, for the JSON-RPC examples of docs/PROTOCOL.md.

The node's own Application, LevelDB Store and JSON-RPC server answer; only consensus is
replaced by the obvious single-validator schedule: the proposer builds each block with
`build_block` (BFT time from the last commit), the Application executes and commits it with
a commit the validator signs. Keys, genesis time and commit delays are fixed, so every
hash, time and signature is the same on every run: the document's examples are these
responses, verbatim (tests/unit/test_protocol_doc.py).
"""

import json
import shlex
import sys
from pathlib import Path

import trio

from consensus.driver import build_block, vals_of
from consensus.messages import PRECOMMIT
from consensus.types import Commit, CommitSig, vote_sign_bytes
from node.app import Application
from node.config import Config
from node.genesis import make_genesis_doc, parse_genesis, rfc3339_to_ms
from node.keys import KeyPair
from node.store import Store
from rpc.server import RPCServer
from state.tx import build_tx

CHAIN_ID = "perpchain-localnet"
GENESIS_TIME = "2026-11-25T08:46:58.000Z"
USER = KeyPair.from_seed(bytes([1]) * 32)        # the worked example's signer (section 2.6)
RECIPIENT = KeyPair.from_seed(bytes([2]) * 32)   # its recipient
MAKER = KeyPair.from_seed(bytes([3]) * 32)
VALIDATOR = KeyPair.from_seed(bytes([7]) * 32)   # the one validator, also the authority
NODE = KeyPair.from_seed(bytes([8]) * 32)
RPC_URL = "http://127.0.0.1:26657"
COMMIT_DELAY_MS = 1001   # from a block's time to its commit signature (the next block's time)


class RPCChain:
    def __init__(self, path: Path):
        doc = make_genesis_doc(CHAIN_ID, rfc3339_to_ms(GENESIS_TIME),
                               [(VALIDATOR.pub_key, 10, "node0")])
        self.genesis = parse_genesis(doc)
        cfg = Config(moniker="node0")
        cfg.verifier.processes, cfg.verifier.threads = 0, -1
        self.store = Store(Path(path) / "data")
        self.app = Application(cfg, self.genesis, self.store, NODE, VALIDATOR)
        self.server = RPCServer(self.app)

    def close(self) -> None:
        self.store.close()

    @property
    def time_ms(self) -> int:
        """The time of the last block (genesis time before the first)."""
        return self.app.tip.time_ms

    def block(self, txs: list[bytes]):
        """Propose, execute and commit the next block; returns its BlockResult."""
        tip = self.app.tip
        vals = vals_of(self.app.selector(tip.height + 1))
        last_vals = vals_of(self.app.selector(tip.height)) if tip.height else None
        blk = build_block(CHAIN_ID, tip, txs, VALIDATOR.pub_key, vals, last_vals)
        result = self.app.execute(blk)
        h, t = blk.header.height, blk.header.time_ms + COMMIT_DELAY_MS
        sig = VALIDATOR.private.sign(vote_sign_bytes(CHAIN_ID, PRECOMMIT, h, 0, blk.hash(), t))
        self.app.commit(blk, Commit(h, 0, blk.hash(), (CommitSig(VALIDATOR.pub_key, t, sig),)),
                        result)
        return result

    def tx(self, key: KeyPair, nonce: int, action: list) -> bytes:
        return build_tx(CHAIN_ID, key.private, nonce, action)

    def request(self, req: dict | list) -> dict | list:
        """One JSON-RPC request object (or a batch), as the HTTP server answers it."""
        return trio.run(self.server.handle_body, json.dumps(req).encode())

    def uri(self, method: str, **params) -> dict:
        """CometBFT's URI form, `GET /method?k=v` (every value a string, id -1)."""
        return trio.run(self.server.handle_one, {"jsonrpc": "2.0", "id": -1, "method": method,
                                                 "params": params})

    def http(self, method: str, target: str, body: bytes = b"") -> tuple[int, str]:
        """(status, body) of one HTTP request to the node's ASGI app (rpc/server.py)."""
        path, _, query = target.partition("?")
        scope = {"type": "http", "method": method, "path": path,
                 "query_string": query.encode("latin-1")}
        sent = []

        async def receive():
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(msg):
            sent.append(msg)

        trio.run(self.server, scope, receive, send)
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:]).decode()

    def curl(self, cmd: str) -> str:
        """The body the node answers to a document's `$ curl -s URL [-d BODY]` line."""
        args = shlex.split(cmd[2:])
        url = next(a for a in args if a.startswith(RPC_URL))
        target = url[len(RPC_URL):] or "/"
        if "-d" in args:
            return self.http("POST", target, args[args.index("-d") + 1].encode())[1]
        return self.http("GET", target)[1]

    def call(self, method: str, params=None):
        """The result, or AssertionError with the error object."""
        out = self.request({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        assert "result" in out, out
        return out["result"]


def compact(obj) -> str:
    """The HTTP body the node sends for `obj`."""
    return json.dumps(obj, separators=(",", ":"))


PX = 10**6            # quote quantums per USD: prices on the wire (section 4.2)
SATS = 10**8          # base quantums per BTC
ORDER_DEFAULTS = dict(kind=0, tif=0, reduce_only=False, trigger=0, cloid=0, expiry=0)


def order_action(market: int, is_buy: bool, price_usd: float, size_btc: float, **kw) -> list:
    o = {**ORDER_DEFAULTS, **kw}
    return ["order", market, is_buy, o["kind"], round(price_usd * PX), round(size_btc * SATS),
            o["tif"], o["reduce_only"], round(o["trigger"] * PX), o["cloid"], o["expiry"]]


def example_chain(path: Path) -> tuple[RPCChain, dict]:
    """The chain the document's examples come from, and the heights worth showing: a
    faucet, oracle prices, a transfer, resting orders, a fill, a waiting stop order, a batch
    (modify + cancel), a governance change and a fired trigger."""
    c = RPCChain(path)
    at: dict[str, int] = {}
    n = c.time_ms

    def nonce() -> int:
        nonlocal n
        n = max(n + 1, c.time_ms)
        return n

    def block(*txs: tuple) -> int:
        result = c.block([c.tx(k, nonce(), a) for k, a in txs])
        bad = [(i, r.code, r.log) for i, r in enumerate(result.tx_results) if r.code]
        assert not bad, bad
        return c.app.tip.height

    block((USER, ["faucet"]), (MAKER, ["faucet"]))
    block((VALIDATOR, ["oracle", [["BTC", 60_000 * PX], ["ETH", 3_000 * PX]]]))
    at["transfer"] = block((USER, ["transfer", RECIPIENT.pub_key, "USDC", 12_500_000]))
    at["resting"] = block(
        (MAKER, order_action(1, False, 60_010, 0.001, cloid=7)),
        (MAKER, order_action(1, True, 59_990, 0.001, cloid=8)),
        (USER, ["set_leverage", 1, 10]))
    at["fill"] = block(
        (USER, order_action(1, True, 60_010, 0.0005, tif=1, cloid=1)),
        (USER, order_action(1, True, 66_000, 0.0005, kind=2, tif=1, trigger=60_500, cloid=2)))
    at["batch"] = block(
        (MAKER, ["batch", [["modify", 1, 2, 59_990 * PX, 50_000], ["cancel_cloid", 1, 7]]]),
        (VALIDATOR, ["gov_set_param", 1, "maker_fee_ppm", 100, c.app.tip.height + 3]))
    at["trigger"] = block((VALIDATOR, ["oracle", [["BTC", 61_000 * PX], ["ETH", 3_000 * PX]]]))
    at["governance"] = block((USER, order_action(1, False, 61_500, 0.001, cloid=3)))
    at["cancel_all"] = block((MAKER, ["cancel_all", 0]))
    return c, at


def curl_examples(doc: str) -> list[tuple[int, str, str]]:
    """(line index of the response, command, response) of every `$ curl` line of a
    document, continuation lines joined."""
    lines, out, i = doc.splitlines(), [], 0
    while i < len(lines):
        if lines[i].startswith("$ curl"):
            cmd = lines[i]
            while cmd.endswith("\\"):
                i += 1
                cmd = cmd[:-1].rstrip() + " " + lines[i].strip()
            out.append((i + 1, cmd, lines[i + 1]))
        i += 1
    return out


def elided(cmd: str, resp: str) -> bool:
    """An example shortened by hand ("...", "<base64>"): not replayed."""
    return "..." in cmd + resp or "<" in cmd


def refresh(doc_path: Path, work_dir: Path) -> int:
    """Rewrite every replayable example response of `doc_path` with what the example chain
    answers now (after a deliberate change of behaviour); returns how many changed."""
    c, _ = example_chain(work_dir)
    lines = doc_path.read_text(encoding="utf-8").split("\n")
    changed = 0
    for at, cmd, resp in curl_examples("\n".join(lines)):
        if not elided(cmd, resp):
            new = c.curl(cmd)
            changed += new != lines[at]
            lines[at] = new
    c.close()
    doc_path.write_text("\n".join(lines), encoding="utf-8")
    return changed


if __name__ == "__main__":  # python -m tests.protocol_chain docs/PROTOCOL.md
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        print(f"{refresh(Path(sys.argv[1]), Path(d))} example responses rewritten")
