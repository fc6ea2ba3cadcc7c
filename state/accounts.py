"""Accounts: balances per asset, total supply per asset, and Hyperliquid-style nonces.

An account is its Ed25519 public key (32 bytes). Keys:
    acct/bal/<addr32><symbol>   -> int quantums (signed: lending will allow negatives)
    acct/nonce/<addr32>         -> [nonce...] ascending, at most NONCE_SET_SIZE
    supply/<symbol>             -> int quantums in existence
Invariant (checked by tests): for each asset, the sum of balances equals its supply.

Nonces (DESIGN.md §4): a tx nonce is a millisecond timestamp. It is accepted when it is
not already kept, is above the smallest kept nonce once NONCE_SET_SIZE are kept, and lies
strictly inside (block time - 2 days, block time + 1 day). Accepting it keeps the highest
NONCE_SET_SIZE nonces. So a bot may send many txs in parallel, in any order, and a
replayed tx is always refused.
"""

import bisect

from state import constants as C
from state.amounts import format_amount
from state.codec import encode, load
from state.errors import Code, TxError
from state.kv import KVView, Overlay

P_BAL = b"acct/bal/"
P_NONCE = b"acct/nonce/"
P_SUPPLY = b"supply/"


def balance(view: KVView, addr: bytes, asset: str) -> int:
    key = P_BAL + addr + asset.encode()
    if type(view) is Overlay:
        raw = view.get_stored(key)  # (trading keeps balances as ints in overlays: state.kv)
        if type(raw) is int:
            return raw
    else:
        raw = view.get(key)
    return 0 if raw is None else load(raw)


def set_balance(view: Overlay, addr: bytes, asset: str, amount: int) -> None:
    if not -C.MAX_INT64 <= amount <= C.MAX_INT64:
        raise TxError(Code.BALANCE_OVERFLOW, "balance would leave the int64 range")
    key = P_BAL + addr + asset.encode()
    if amount == 0:
        view.delete(key)
    else:
        view.put(key, encode(amount))


def balances(view: KVView, addr: bytes) -> dict[str, int]:
    prefix = P_BAL + addr
    return {k[len(prefix):].decode(): load(v) for k, v in view.iterate(prefix)}


def supply(view: KVView, asset: str) -> int:
    raw = view.get(P_SUPPLY + asset.encode())
    return 0 if raw is None else load(raw)


def mint(view: Overlay, addr: bytes, asset: str, amount: int) -> None:
    """Create `amount` of `asset` in `addr` (genesis and faucet only)."""
    total = supply(view, asset) + amount
    if total > C.MAX_INT64:
        raise TxError(Code.BALANCE_OVERFLOW, f"total supply of {asset} would leave the int64 range")
    set_balance(view, addr, asset, balance(view, addr, asset) + amount)
    view.put(P_SUPPLY + asset.encode(), encode(total))


def move(view: Overlay, src: bytes, dst: bytes, asset: str, amount: int, decimals: int) -> None:
    """Move `amount` quantums; the source must hold them (no borrowing yet)."""
    have = balance(view, src, asset)
    if have < amount:
        raise TxError(Code.INSUFFICIENT_BALANCE,
                      f"balance {format_amount(have, decimals)} {asset} is less than "
                      f"{format_amount(amount, decimals)} {asset}")
    set_balance(view, src, asset, have - amount)
    set_balance(view, dst, asset, balance(view, dst, asset) + amount)


def nonces(view: KVView, addr: bytes) -> list[int]:
    raw = view.get(P_NONCE + addr)
    return [] if raw is None else load(raw)


def check_nonce(kept: list[int], nonce: int, block_time_ms: int) -> None:
    """Raise the specific TxError if `nonce` may not be used now."""
    lo = block_time_ms - C.NONCE_PAST_WINDOW_MS
    hi = block_time_ms + C.NONCE_FUTURE_WINDOW_MS
    if not lo < nonce < hi:
        raise TxError(Code.NONCE_OUT_OF_WINDOW,
                      f"nonce {nonce} is outside ({lo}, {hi}): use the current time in "
                      f"milliseconds (block time is {block_time_ms})")
    i = bisect.bisect_left(kept, nonce)
    if i < len(kept) and kept[i] == nonce:
        raise TxError(Code.NONCE_DUPLICATE, f"nonce {nonce} was already used by this account")
    if len(kept) >= C.NONCE_SET_SIZE and nonce < kept[0]:
        raise TxError(Code.NONCE_TOO_LOW,
                      f"nonce {nonce} is below {kept[0]}, the smallest of the account's "
                      f"{C.NONCE_SET_SIZE} most recent nonces")


def use_nonce(view: Overlay, addr: bytes, nonce: int, block_time_ms: int) -> None:
    key = P_NONCE + addr
    # In an Overlay the list stays a list from one tx to the next (state.kv: a stored list
    # stands for its encoding; it is never mutated once stored, so `kept` is not either).
    raw = view.get_stored(key) if type(view) is Overlay else view.get(key)
    kept: list[int] = [] if raw is None else raw if type(raw) is list else load(raw)
    # check_nonce(kept, nonce, block_time_ms), with its bisect reused below.
    i = bisect.bisect_left(kept, nonce)
    n = len(kept)
    if not block_time_ms - C.NONCE_PAST_WINDOW_MS < nonce < \
            block_time_ms + C.NONCE_FUTURE_WINDOW_MS or (i < n and kept[i] == nonce) or \
            (n >= C.NONCE_SET_SIZE and nonce < kept[0]):
        check_nonce(kept, nonce, block_time_ms)  # raises the specific error
    # kept + [nonce], sorted, then only the highest NONCE_SET_SIZE, as a new list.
    drop = n + 1 - C.NONCE_SET_SIZE if n >= C.NONCE_SET_SIZE else 0
    if drop <= i:
        new = kept[drop:i]
        new.append(nonce)
        new += kept[i:]
    else:  # only if NONCE_SET_SIZE ever shrinks below a stored list's length
        new = (kept[:i] + [nonce] + kept[i:])[drop:]
    if type(view) is Overlay:
        view.writes[key] = new
    else:
        view.put(key, encode(new))
