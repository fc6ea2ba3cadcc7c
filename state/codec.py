"""Canonical msgpack: the one encoding of every tx, block, state value and write set.

Canonical means the same object always has the same bytes, and decoding accepts only
those bytes. Objects are msgpack arrays with a fixed field order (no maps: map key order
is not portable across languages); ints use msgpack's shortest form; text is `str`,
raw bytes are `bin`. `decode` rejects trailing bytes, floats, maps, extension types and
any non-shortest encoding (it re-encodes and compares), so two different byte strings can
never decode to the same object and be hashed differently.
"""

from typing import Any

import msgpack


class CodecError(ValueError):
    """Bytes that are not the canonical encoding of an allowed object."""


# One Packer for every encode: `msgpack.packb` builds a new Packer per call, which costs more
# than packing a small record (the state machine encodes several per order). Reuse is safe
# across the node's threads (the verifier's `Tx.sign_bytes`) because `pack` of the allowed
# types is one C call that holds the GIL and never calls back into Python, and it resets its
# buffer on success and on error (autoreset). The bytes are exactly `packb`'s.
_pack = msgpack.Packer(use_bin_type=True).pack


def encode(obj: Any) -> bytes:
    """Canonical bytes of `obj` (ints, str, bytes, bool, None, lists/tuples of those)."""
    return _pack(obj)


def decode(data: bytes, max_bytes: int | None = None) -> Any:
    """Decode canonical bytes; raise CodecError with the reason for anything else."""
    if max_bytes is not None and len(data) > max_bytes:
        raise CodecError(f"{len(data)} bytes exceeds the limit of {max_bytes}")
    try:
        obj = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
    except (RecursionError, msgpack.StackError):
        raise CodecError("arrays nested too deep") from None
    except msgpack.ExtraData as e:
        raise CodecError(f"{len(e.extra)} trailing bytes after the object") from None
    except (ValueError, msgpack.UnpackException, TypeError) as e:
        raise CodecError(f"not valid msgpack: {e}") from None
    _check_types(obj)
    if _pack(obj) != data:
        raise CodecError("not the canonical (shortest) msgpack encoding")
    return obj


def load(data: bytes) -> Any:
    """Decode a value this state machine wrote itself (already canonical): no checks.
    Never use it on bytes from outside the node (txs, blocks from peers): use `decode`."""
    return msgpack.unpackb(data, raw=False, use_list=True)


_SCALARS = (int, str, bytes, bool, type(None))
MAX_DEPTH = 8  # arrays nested deeper are refused (no protocol object needs more)


def _check_types(obj: Any) -> None:
    """Allowed types only, arrays nested at most MAX_DEPTH deep. Iterative: hostile input
    cannot exhaust the Python stack."""
    stack = [(obj, 0)]
    while stack:
        o, depth = stack.pop()
        t = type(o)
        if t is list:
            if depth >= MAX_DEPTH:
                raise CodecError(f"arrays nested more than {MAX_DEPTH} deep")
            for x in o:
                if type(x) is list:
                    stack.append((x, depth + 1))
                elif type(x) not in _SCALARS:
                    raise CodecError(f"type {type(x).__name__} is not allowed (only int, str, "
                                     "bin, bool, nil, array)")
        elif t not in _SCALARS:
            raise CodecError(f"type {t.__name__} is not allowed (only int, str, bin, bool, "
                             "nil, array)")
