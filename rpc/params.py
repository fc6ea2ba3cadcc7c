"""JSON-RPC parameter parsing: one strict reader per parameter format (docs/PROTOCOL.md 8.1).

Params arrive normalised to a dict (rpc/server.py): names from a JSON object or a URI query,
or integer positions from a JSON array. A method reads each parameter by its name or by its
positional index. Every malformed value raises RPCError INVALID_PARAMS naming the parameter;
nothing else escapes these functions (tests/fuzz/test_fuzz_tx_rpc.py).
"""

import base64
import binascii
import re

from rpc.errors import RPCCode, RPCError

# A height (or any unsigned count) as text: ASCII digits only. No sign, no spaces, no
# fraction, no exponent, no "_" and no non-ASCII digits (Python's int() accepts all of those).
_DIGITS = re.compile(r"[0-9]{1,20}")
_ADDRESS = re.compile(r"(?:0[xX])?([0-9a-fA-F]{64})")
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")  # bytes.fromhex alone would also take spaces
MAX_UINT64 = 2**64 - 1


def invalid(message: str) -> RPCError:
    return RPCError(RPCCode.INVALID_PARAMS, message)


def unquote(v):
    """CometBFT's URI style: `tx="..."` -> `...`."""
    if isinstance(v, str) and len(v) >= 2 and v[0] == v[-1] == '"':
        return v[1:-1]
    return v


def param(p: dict, name: str, positional: int, required: bool = True):
    """The value of parameter `name` (or of its position), unquoted; None if absent."""
    if name in p:
        return unquote(p[name])
    if positional in p:
        return unquote(p[positional])
    if required:
        raise invalid(f"missing parameter {name!r}")
    return None


def uint_value(v, name: str) -> int:
    """A JSON integer (not a bool, not a float) or a string of ASCII digits, 0..2^64-1."""
    if type(v) is int:
        n = v
    elif type(v) is str and _DIGITS.fullmatch(v):
        n = int(v)
    else:
        raise invalid(f"parameter {name!r} must be a non-negative integer (a JSON number or a "
                      f"string of digits 0-9), got {_show(v)}")
    if not 0 <= n <= MAX_UINT64:
        raise invalid(f"parameter {name!r} must be in 0..2^64-1, got {n}")
    return n


def optional_height(p: dict, name: str = "height", positional: int = 0) -> int | None:
    """A height, or None when absent, null or "" (= the method's default)."""
    v = param(p, name, positional, required=False)
    if v is None or v == "":
        return None
    return uint_value(v, name)


def tx_bytes(v) -> bytes:
    """A tx in JSON: base64 (CometBFT's JSON form) or 0x-prefixed hex (its URI form)."""
    v = unquote(v)
    if not isinstance(v, str):
        raise invalid("parameter 'tx' must be a base64 or 0x-hex string")
    try:
        if v.startswith(("0x", "0X")):
            if not _HEX.fullmatch(v, 2):
                raise ValueError
            return bytes.fromhex(v[2:])
        return base64.b64decode(v, validate=True)
    except (ValueError, binascii.Error):
        raise invalid("parameter 'tx' is neither valid base64 nor 0x-prefixed hex") from None


def hash_bytes(v) -> bytes:
    """32 bytes as hex (optionally 0x-prefixed) or base64."""
    if isinstance(v, str):
        s = v[2:] if v.startswith(("0x", "0X")) else v
        if len(s) == 64 and _HEX.fullmatch(s):
            return bytes.fromhex(s)
        try:
            b = base64.b64decode(v, validate=True)
            if len(b) == 32:
                return b
        except (ValueError, binascii.Error):
            pass
    raise invalid("parameter 'hash' must be a 32-byte hash in hex (optionally 0x-prefixed) "
                  "or base64")


def address_bytes(v, name: str = "address") -> bytes:
    """An account address: 64 hex characters, either case, optional 0x prefix."""
    m = _ADDRESS.fullmatch(v) if isinstance(v, str) else None
    if m is None:
        raise invalid(f"parameter {name!r} must be 64 hex characters (32 bytes, optionally "
                      f"0x-prefixed), got {_show(v)}")
    return bytes.fromhex(m.group(1))


def _show(v) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def market_value(view, v):
    """A market (state.markets.Market) by id (number or numeric string) or by symbol."""
    from state import markets as MS
    from state.errors import TxError

    if v is None:
        raise invalid("missing parameter 'market'")
    # A numeric string is an id only in ASCII digits ('²' and '١' are digits to str.isdigit).
    numeric = isinstance(v, str) and v.isascii() and v.isdigit() and len(v) <= 10
    if isinstance(v, int) and not isinstance(v, bool) or numeric:
        if not 0 <= int(v) < 2**32:
            raise invalid(f"market id {v} is outside 0..{2**32 - 1}")
        try:
            return MS.get(view, int(v))
        except TxError as e:
            raise invalid(e.log) from None
    for m in MS.list_markets(view):
        if m.symbol == v:
            return m
    raise invalid(f"unknown market {v!r}; markets: "
                  + ", ".join(f"{m.id} {m.symbol}" for m in MS.list_markets(view)))


def limit_value(v, maximum: int, default: int, why: str = "") -> int:
    """An optional 'limit' parameter within 1..maximum (`default` when absent)."""
    if v is None:
        return default
    try:
        if isinstance(v, bool):
            raise ValueError
        n = int(v)
    except (TypeError, ValueError):
        raise invalid("parameter 'limit' must be an integer") from None
    if not 1 <= n <= maximum:
        raise invalid(f"parameter 'limit' must be within 1..{maximum}{why}")
    return n
