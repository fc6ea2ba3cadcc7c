"""genesis.json: chain id, genesis time, validators and the initial app state.

The JSON follows CometBFT's top level (genesis_time, chain_id, initial_height, validators,
app_state); amounts are decimal strings in asset units. `load_genesis` validates it fully
and converts it to `state.genesis.GenesisState` and a consensus `ValidatorSet`.
"""

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from consensus.types import Validator, ValidatorSet
from node.keys import PUB_TYPE, parse_address
from state import constants as C
from state.amounts import AmountError, parse_amount
from state.genesis import GenesisState
from state.params import FaucetParams


class GenesisError(Exception):
    pass


@dataclass(frozen=True)
class Genesis:
    doc: dict
    state: GenesisState
    validators: ValidatorSet

    @property
    def chain_id(self) -> str:
        return self.state.chain_id


def ms_to_rfc3339(ms: int) -> str:
    dt = datetime.fromtimestamp(ms // 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def rfc3339_to_ms(text: str) -> int:
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise GenesisError(f"genesis_time {text!r} is not RFC 3339") from None
    if dt.tzinfo is None:
        raise GenesisError("genesis_time needs a time zone (e.g. a trailing Z)")
    delta = dt - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def make_genesis_doc(chain_id: str, genesis_time_ms: int, validators: list[tuple[bytes, int, str]],
                     balances: list[tuple[bytes, str]] = (), faucet_amount: str | None = "10000",
                     faucet_interval_ms: int = 3_600_000) -> dict:
    """A genesis document with USDC (6 decimals) as the quote asset."""
    return {
        "genesis_time": ms_to_rfc3339(genesis_time_ms),
        "chain_id": chain_id,
        "initial_height": "1",
        "validators": [
            {"address": pk.hex(), "pub_key": {"type": PUB_TYPE, "value": base64.b64encode(pk).decode()},
             "power": str(power), "name": name} for pk, power, name in validators],
        "app_state": {
            "quote_asset": "USDC",
            "assets": [{"symbol": "USDC", "decimals": 6}],
            "balances": [{"address": a.hex(), "asset": "USDC", "amount": amt} for a, amt in balances],
            "faucet": None if faucet_amount is None else
            {"asset": "USDC", "amount": faucet_amount, "interval_ms": str(faucet_interval_ms)},
        },
    }


def _req(obj: dict, key: str, where: str):
    if not isinstance(obj, dict) or key not in obj:
        raise GenesisError(f"genesis: {where} is missing {key!r}")
    return obj[key]


def parse_genesis(doc: dict) -> Genesis:
    chain_id = _req(doc, "chain_id", "the document")
    if not isinstance(chain_id, str) or not 0 < len(chain_id) <= C.MAX_CHAIN_ID_LEN \
            or not chain_id.isascii():
        raise GenesisError(f"chain_id must be 1..{C.MAX_CHAIN_ID_LEN} ASCII characters")
    if str(doc.get("initial_height", "1")) != "1":
        raise GenesisError("initial_height other than 1 is not supported")
    time_ms = rfc3339_to_ms(_req(doc, "genesis_time", "the document"))
    vals = []
    for i, v in enumerate(_req(doc, "validators", "the document")):
        where = f"validators[{i}]"
        try:
            pk = base64.b64decode(_req(_req(v, "pub_key", where), "value", where), validate=True)
            power = int(_req(v, "power", where))
        except (ValueError, TypeError) as e:
            raise GenesisError(f"genesis: {where}: {e}") from None
        if len(pk) != C.PUBKEY_BYTES or power <= 0:
            raise GenesisError(f"genesis: {where} needs a 32-byte key and positive power")
        vals.append(Validator(pk, power, str(v.get("name", ""))))
    if not vals:
        raise GenesisError("genesis has no validators")
    if len({v.pub_key for v in vals}) != len(vals):
        raise GenesisError("genesis lists a validator twice")
    app = _req(doc, "app_state", "the document")
    assets = []
    for i, a in enumerate(_req(app, "assets", "app_state")):
        sym, dec = _req(a, "symbol", f"assets[{i}]"), _req(a, "decimals", f"assets[{i}]")
        if not isinstance(sym, str) or not 0 < len(sym) <= C.MAX_ASSET_SYMBOL_LEN \
                or not sym.isascii() \
                or not isinstance(dec, int) or not 0 <= dec <= C.MAX_ASSET_DECIMALS:
            raise GenesisError(f"genesis: assets[{i}] needs a short symbol and 0..18 decimals")
        assets.append((sym, dec))
    decimals = dict(assets)
    if len(decimals) != len(assets):
        raise GenesisError("genesis lists an asset twice")
    quote = _req(app, "quote_asset", "app_state")
    if quote not in decimals:
        raise GenesisError(f"quote asset {quote!r} is not among the assets")

    def amount(text, sym, where):
        if sym not in decimals:
            raise GenesisError(f"genesis: {where}: unknown asset {sym!r}")
        try:
            return parse_amount(text, decimals[sym])
        except AmountError as e:
            raise GenesisError(f"genesis: {where}: {e}") from None

    balances = []
    for i, b in enumerate(app.get("balances") or []):
        where = f"balances[{i}]"
        try:
            addr = parse_address(_req(b, "address", where))
        except ValueError as e:
            raise GenesisError(f"genesis: {where}: {e}") from None
        sym = _req(b, "asset", where)
        balances.append((addr, sym, amount(_req(b, "amount", where), sym, where)))
    faucet = None
    f = app.get("faucet")
    if f:
        sym = _req(f, "asset", "faucet")
        faucet = FaucetParams(sym, amount(_req(f, "amount", "faucet"), sym, "faucet"),
                              int(_req(f, "interval_ms", "faucet")))
    state = GenesisState(chain_id, time_ms, quote, tuple(sorted(assets)), tuple(balances), faucet,
                         tuple(sorted((v.pub_key, v.power) for v in vals)))
    return Genesis(doc, state, ValidatorSet.of(vals))


def load_genesis(path: Path) -> Genesis:
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise GenesisError(f"{path} not found: run `perpchain init` first") from None
    except json.JSONDecodeError as e:
        raise GenesisError(f"{path} is not JSON: {e}") from None
    return parse_genesis(doc)


def save_genesis(path: Path, doc: dict) -> None:
    Path(path).write_text(json.dumps(doc, indent=2) + "\n")

