"""Genesis: the initial state (assets, chain params, balances) as a write set.

The node parses genesis.json (node/genesis.py) into `GenesisState`; `genesis_writes`
turns it into the height-0 write set, and app_hash(0) chains over it like any block.
"""

from dataclasses import dataclass

from state import accounts, params
from state.errors import InvalidBlock, TxError
from state.hashing import ZERO_HASH, chain_app_hash
from state.kv import MemoryKV, Overlay
from state.machine import put_last_block


@dataclass(frozen=True)
class GenesisState:
    chain_id: str
    genesis_time_ms: int
    quote_asset: str
    assets: tuple[tuple[str, int], ...]                 # (symbol, decimals), sorted by symbol
    balances: tuple[tuple[bytes, str, int], ...] = ()   # (address, symbol, quantums)
    faucet: params.FaucetParams | None = None
    validators: tuple[tuple[bytes, int], ...] = ()     # (Ed25519 public key, voting power)


def genesis_writes(g: GenesisState) -> tuple[list[tuple[bytes, bytes | None]], bytes]:
    """(sorted write set, app_hash(0)) for this genesis."""
    symbols = dict(g.assets)
    if g.quote_asset not in symbols:
        raise InvalidBlock(f"quote asset {g.quote_asset!r} is not among the assets")
    view = Overlay(MemoryKV())
    params.put_chain(view, g.chain_id, g.quote_asset)
    for symbol, decimals in sorted(g.assets):
        params.put_asset(view, symbol, decimals)
    if g.faucet is not None:
        if g.faucet.asset not in symbols:
            raise InvalidBlock(f"faucet asset {g.faucet.asset!r} is not among the assets")
        params.put_faucet(view, g.faucet)
    for addr, symbol, amount in sorted(g.balances):
        if symbol not in symbols:
            raise InvalidBlock(f"genesis balance in unknown asset {symbol!r}")
        try:
            accounts.mint(view, addr, symbol, amount)
        except TxError as e:
            raise InvalidBlock(f"genesis balance of {addr.hex()}: {e.log}") from None
    for pub_key, power in sorted(g.validators):
        params.put_validator(view, pub_key, power)
    put_last_block(view, 0, g.genesis_time_ms)
    writes = view.sorted_writes()
    return writes, chain_app_hash(ZERO_HASH, writes)
