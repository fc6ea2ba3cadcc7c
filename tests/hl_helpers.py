"""Test helpers for Hyperliquid-signed txs: eth-account keys, SDK-signed envelopes, a chain
whose genesis funds them."""

import dataclasses

import msgpack
from eth_account import Account
from hyperliquid.utils import signing as sdk

from localnet.fixtures import USDC, key, trading_genesis
from state.genesis import GenesisState
from state.hl_signing import signature_bytes
from state.tx import build_hl_tx

WALLETS = [Account.from_key("0x" + (bytes([0x11 + i]) * 32).hex()) for i in range(3)]


def address20(wallet) -> bytes:
    return bytes.fromhex(wallet.address[2:])


def account32(wallet) -> bytes:
    return bytes(12) + address20(wallet)


def hl_genesis(amount: int = 100_000 * USDC, n_wallets: int = 2) -> GenesisState:
    """The trading genesis, with WALLETS[:n_wallets] funded as well as key(0..3)."""
    g = trading_genesis()
    extra = tuple((account32(w), "USDC", amount) for w in WALLETS[:n_wallets])
    return dataclasses.replace(g, balances=g.balances + extra)


def l1_tx(wallet, action: dict, nonce: int, mainnet: bool = False, vault: str | None = None,
          expires_after: int | None = None, signer=None) -> bytes:
    """An envelope as the façade builds it from the SDK's body (sign_l1_action)."""
    sig = sdk.sign_l1_action(wallet, action, vault, nonce, expires_after, mainnet)
    v = None if vault is None else bytes.fromhex(vault[2:])
    return build_hl_tx(address20(signer or wallet), msgpack.packb(action), nonce, v,
                       expires_after, signature_bytes(sig))


def usd_send_tx(wallet, destination: str, amount: str, nonce: int,
                mainnet: bool = False) -> bytes:
    action = {"destination": destination, "amount": amount, "time": nonce, "type": "usdSend"}
    sig = sdk.sign_usd_transfer_action(wallet, action, mainnet)
    return build_hl_tx(address20(wallet), msgpack.packb(action), nonce, None, None,
                       signature_bytes(sig))


def withdraw3_tx(wallet, destination: str, amount: str, nonce: int) -> bytes:
    action = {"destination": destination, "amount": amount, "time": nonce, "type": "withdraw3"}
    sig = sdk.sign_withdraw_from_bridge_action(wallet, action, False)
    return build_hl_tx(address20(wallet), msgpack.packb(action), nonce, None, None,
                       signature_bytes(sig))


def order_action(*wires: dict, grouping="na") -> dict:
    return {"type": "order", "orders": list(wires), "grouping": grouping}


def limit(asset: int, is_buy: bool, px: str, sz: str, tif: str = "Gtc",
          reduce_only: bool = False, cloid: str | None = None) -> dict:
    w = {"a": asset, "b": is_buy, "p": px, "s": sz, "r": reduce_only,
         "t": {"limit": {"tif": tif}}}
    if cloid is not None:
        w["c"] = cloid
    return w


def statuses(result) -> list[dict]:
    return [dict(e.attrs) for e in result.events if e.type == "hl_status"]


__all__ = ["WALLETS", "key", "USDC"]


def trigger(asset: int, is_buy: bool, trigger_px: str, tpsl: str, sz: str = "0.01",
            px: str | None = None, is_market: bool = True, reduce_only: bool = True) -> dict:
    """A tp/sl trigger order wire; `px` (the worst / limit price) defaults to the trigger."""
    return {"a": asset, "b": is_buy, "p": px or trigger_px, "s": sz, "r": reduce_only,
            "t": {"trigger": {"isMarket": is_market, "triggerPx": trigger_px, "tpsl": tpsl}}}
