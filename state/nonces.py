"""Nonces, in the Hyperliquid style.

Key: acct/nonce/<addr32> -> [nonce...] ascending, at most NONCE_SET_SIZE.

A tx nonce is a millisecond timestamp. It is accepted when it is not already kept, is above
the smallest kept nonce once NONCE_SET_SIZE are kept, and lies strictly inside (block time -
2 days, block time + 1 day). Accepting it keeps the highest NONCE_SET_SIZE nonces. So a bot may
send many txs in parallel, in any order, and a replayed tx is always refused. (Balances are
state.ledger's.)
"""

import bisect

from state import constants as C
from state.codec import load
from state.errors import Code, TxError
from state.kv import KVView, Overlay

P_NONCE = b"acct/nonce/"


def nonces(view: KVView, addr: bytes) -> list[int]:
    raw = view.get(P_NONCE + addr)
    return [] if raw is None else load(raw)


def check_nonce(kept: list[int], nonce: int, block_time_ms: int) -> int:
    """Raise the specific TxError if `nonce` may not be used now; else return where it goes
    in `kept` (ascending)."""
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
    return i


def use_nonce(view: Overlay, addr: bytes, nonce: int, block_time_ms: int) -> None:
    """Check `nonce` (raising the specific TxError) and keep it."""
    key = P_NONCE + addr
    raw = view.get_stored(key) if type(view) is Overlay else view.get(key)
    kept: list[int] = [] if raw is None else raw if type(raw) is list else load(raw)
    i = check_nonce(kept, nonce, block_time_ms)
    # kept + [nonce], sorted, then only the highest NONCE_SET_SIZE, as a new list (a stored
    # list is never mutated: state.kv). A kept list is never longer than NONCE_SET_SIZE, and
    # when it is full check_nonce has refused a nonce below kept[0]: kept[0] is the one dropped.
    new = kept[1 if len(kept) >= C.NONCE_SET_SIZE else 0:i]
    new.append(nonce)
    new += kept[i:]
    view.put(key, new)
