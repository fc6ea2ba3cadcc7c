"""Chain parameters held in state: assets, the quote asset, the faucet, the chain id, and
the validator set (voting power per Ed25519 key: oracle updates and, later, validator-set
changes read it here).

They are written once from genesis (state/genesis.py) and read by the rules; later a
governance tx may change them, which is why they live in state and not in config.
"""

from dataclasses import dataclass

from state.codec import encode, load
from state.errors import Code, TxError
from state.derived import derived_of
from state.kv import KVView, Overlay

K_CHAIN = b"params/chain"        # [chain_id, quote_asset]
K_FAUCET = b"params/faucet"      # [asset, amount_quantums, interval_ms]
P_ASSET = b"params/asset/"       # + symbol -> [decimals]
P_VALIDATOR = b"params/validator/"  # + pub_key(32) -> power


@dataclass(frozen=True, slots=True)
class FaucetParams:
    asset: str
    amount_quantums: int
    interval_ms: int


def put_chain(view: Overlay, chain_id: str, quote_asset: str) -> None:
    view.put(K_CHAIN, encode([chain_id, quote_asset]))
    derived_of(view).params_changed()


def chain_id(view: KVView) -> str:
    return load(view.get(K_CHAIN))[0]


def quote_asset(view: KVView) -> str:
    return load(view.get(K_CHAIN))[1]


def put_asset(view: Overlay, symbol: str, decimals: int) -> None:
    view.put(P_ASSET + symbol.encode(), encode([decimals]))
    derived_of(view).params_changed()


def asset_decimals(view: KVView, symbol: str) -> int:
    """Decimals of a listed asset; TxError UNKNOWN_ASSET otherwise."""
    raw = view.get(P_ASSET + symbol.encode())
    if raw is None:
        raise TxError(Code.UNKNOWN_ASSET, f"unknown asset {symbol!r}; listed: "
                      f"{', '.join(list_assets(view)) or 'none'}")
    return load(raw)[0]


def list_assets(view: KVView) -> list[str]:
    return [k[len(P_ASSET):].decode() for k, _ in view.iterate(P_ASSET)]


def put_faucet(view: Overlay, p: FaucetParams) -> None:
    view.put(K_FAUCET, encode([p.asset, p.amount_quantums, p.interval_ms]))


def faucet(view: KVView) -> FaucetParams | None:
    raw = view.get(K_FAUCET)
    return None if raw is None else FaucetParams(*load(raw))


def put_validator(view: Overlay, pub_key: bytes, power: int) -> None:
    if power == 0:
        view.delete(P_VALIDATOR + pub_key)
    else:
        view.put(P_VALIDATOR + pub_key, encode(power))


def validators(view: KVView) -> list[tuple[bytes, int]]:
    """(pub_key, power) of every validator, ascending by key."""
    n = len(P_VALIDATOR)
    return [(k[n:], load(v)) for k, v in view.iterate(P_VALIDATOR)]
