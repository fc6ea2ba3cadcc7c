"""Hyperliquid's `POST /exchange`: a signed action from the official SDK, run on this chain.

    status, body = await exchange(app, request_json)

The HTTP server (the Hyperliquid façade, port 3001) calls this for `POST /exchange` and for a
websocket `post` of type "action". It

1. checks the SDK's body {action, nonce, signature {r, s, v}, vaultAddress, expiresAfter};
   a body of the wrong shape is HTTP 400 with JSON {"code", "msg"} (the SDK reads both);
2. packs the action with msgpack exactly as the SDK did before hashing it, recovers the
   signer (phantom agent source "b" / hyperliquidChain "Testnet") in a worker thread and
   builds the perpchain envelope (state.tx.HlTx) that carries those exact bytes;
3. refuses, in Hyperliquid's words, a signer with no account here ("User or API Wallet 0x..
   does not exist."), naming a mainnet-signed action as such;
4. submits the envelope through the mempool (CheckTx, then gossip, like broadcast_tx_commit),
   waits for the block that commits it, and answers from its committed result:
   {"status": "ok", "response": {"type": "order", "data": {"statuses": [...]}}} or
   {"status": "err", "response": "<reason>"}, as Hyperliquid does (a nonce used before,
   e.g. the same signed body sent twice: "Invalid nonce: duplicate nonce <nonce>").

It adds no state: every answer is the committed tx result (the `hl_status` events of
state/hl_actions.py).
"""

import msgpack
import trio

from node.app import Application
from node.config import parse_duration_ms
from state import hl_signing, ledger, nonces
from state.errors import Code, TxError
from state.hl_universe import eth_account
from state.machine import TxResult
from state.tx import HL_ADDRESS_BYTES, HlTx, build_hl_tx, decode_tx, hl_digest

BAD_REQUEST = 400
# a nonce used before, however it shows: the same bytes pending or committed (the mempool), or
# the nonce kept by the account (CheckTx, or the block)
DUPLICATE_CODES = (Code.NONCE_DUPLICATE, Code.TX_IN_MEMPOOL, Code.TX_ALREADY_COMMITTED)
# response.type per action type, for those whose answer carries statuses
STATUS_TYPES = {"order": "order", "cancel": "cancel", "cancelByCloid": "cancel",
                "batchModify": "batchModify"}


class BadRequest(Exception):
    """A body the SDK would never send: HTTP 400 {"code", "msg"}."""


def _address(text, what: str) -> bytes | None:
    if text is None:
        return None
    if type(text) is not str or not text.startswith("0x") or len(text) != 42:
        raise BadRequest(f"{what} must be null or a 0x address (40 hex digits)")
    try:
        return bytes.fromhex(text[2:])
    except ValueError:
        raise BadRequest(f"{what} {text!r} is not hex") from None


def provisional(body) -> tuple[bytes, HlTx]:
    """(action bytes, the envelope decoded with a zero address) from the SDK's body."""
    if type(body) is not dict:
        raise BadRequest("the body must be a JSON object {action, nonce, signature, ...}")
    action, nonce = body.get("action"), body.get("nonce")
    if type(action) is not dict:
        raise BadRequest("'action' must be a JSON object")
    if type(nonce) is not int or nonce < 0:
        raise BadRequest("'nonce' must be a non-negative integer (milliseconds)")
    expires = body.get("expiresAfter")
    if expires is not None and (type(expires) is not int or expires < 0):
        raise BadRequest("'expiresAfter' must be null or a non-negative integer")
    try:
        sig = hl_signing.signature_bytes(body.get("signature"))
        action_bytes = msgpack.packb(action)   # as the SDK's action_hash packs it
        tx = decode_tx(build_hl_tx(bytes(HL_ADDRESS_BYTES), action_bytes, nonce,
                                   _address(body.get("vaultAddress"), "vaultAddress"),
                                   expires, sig))
    except (hl_signing.SignatureError, TxError, ValueError, OverflowError) as e:
        raise BadRequest(getattr(e, "log", None) or str(e)) from None
    return action_bytes, tx


def recover_signers(tx: HlTx) -> tuple[bytes | None, bytes | None]:
    """(the address that signed for this chain, the one it would be as a mainnet signature);
    None where nothing recovers. Runs in a worker thread."""
    out = []
    for source, chain in ((hl_signing.L1_SOURCE, hl_signing.USER_CHAIN),
                          (hl_signing.MAINNET_SOURCE, hl_signing.MAINNET_USER_CHAIN)):
        try:
            out.append(hl_signing.recover(hl_digest(tx, source, chain), tx.signature))
        except hl_signing.SignatureError:
            out.append(None)
    return out[0], out[1]


def account_exists(view, address: bytes) -> bool:
    acct = eth_account(address)
    return bool(ledger.balances(view, acct)) or bool(nonces.nonces(view, acct))


def err(text: str) -> tuple[int, dict]:
    return 200, {"status": "err", "response": text}


def refused(code: int, log: str, nonce: int) -> tuple[int, dict]:
    """A refused action; a reused nonce in Hyperliquid's words."""
    if code in DUPLICATE_CODES:
        return err(f"Invalid nonce: duplicate nonce {nonce}")
    return err(log)


def status_json(attrs: dict):
    """An `hl_status` event -> one of Hyperliquid's per-item statuses."""
    kind = attrs["status"]
    if kind in ("success", "waitingForFill", "waitingForTrigger"):
        return kind        # bare strings, as Hyperliquid sends them (no oid for a tp/sl)
    if kind == "error":
        return {"error": attrs["error"]}
    inner = {"oid": int(attrs["oid"])}
    if kind == "filled":
        inner = {"totalSz": attrs["total_sz"], "avgPx": attrs["avg_px"], **inner}
    if attrs.get("cloid"):
        inner["cloid"] = attrs["cloid"]
    return {kind: inner}


def answer(action_type: str, result: TxResult, nonce: int) -> tuple[int, dict]:
    """A committed tx result in Hyperliquid's response shape."""
    if result.code != 0:
        return refused(result.code, result.log, nonce)
    statuses = [status_json(dict(e.attrs)) for e in result.events if e.type == "hl_status"]
    kind = STATUS_TYPES.get(action_type)
    if kind is not None:
        return 200, {"status": "ok", "response": {"type": kind, "data": {"statuses": statuses}}}
    if action_type == "modify" and statuses and "error" in statuses[0]:
        return err(statuses[0]["error"])
    return 200, {"status": "ok", "response": {"type": "default"}}


async def exchange(app: Application, body) -> tuple[int, dict]:
    """`POST /exchange`: (HTTP status, JSON body), see the module docstring."""
    try:
        action_bytes, tx = provisional(body)
    except BadRequest as e:
        return BAD_REQUEST, {"code": "bad_request", "msg": str(e)}
    signer, mainnet = await trio.to_thread.run_sync(recover_signers, tx)
    view = app.store.state
    if signer is None or not account_exists(view, signer):
        if mainnet is not None and account_exists(view, mainnet):
            return err(f"the action is signed for Hyperliquid mainnet (source 'a' / "
                       f"'Mainnet') by 0x{mainnet.hex()}; this chain accepts only "
                       "non-mainnet signatures: sign with is_mainnet=False")
        shown = "0x" + (signer or bytes(HL_ADDRESS_BYTES)).hex()
        return err(f"User or API Wallet {shown} does not exist.")
    raw = build_hl_tx(signer, action_bytes, tx.nonce, tx.vault, tx.expires_after, tx.signature)
    [(th, checked)] = await app.submit([raw])
    if checked.code != 0:
        return refused(checked.code, checked.log, tx.nonce)
    timeout_s = parse_duration_ms(app.cfg.rpc.timeout_broadcast_tx_commit) / 1000
    done = await app.wait_for_tx(th, timeout_s)
    if done is None:
        return err(f"the action was accepted (tx {th.hex().upper()}) but not committed "
                   f"within {timeout_s:g}s; check its effect before sending it again")
    return answer(tx.hl_type, done[2], tx.nonce)
