"""Readable state keys and values, and the difference between two states (`perpchain replay`).

State keys are an ASCII record prefix (`acct/bal/`, `ord/`, ...) followed by binary fields
(addresses, big-endian ids) and sometimes a text tail (an asset symbol). `render_key` keeps
the ASCII prefix up to its last "/" as text and shows the rest as hex (or as text when it is
all printable). State values are canonical msgpack (state/codec.py): `decode_value` turns
one into JSON-friendly data with byte strings as "0x..." hex; a value that is not msgpack is
shown as hex.
"""

from dataclasses import dataclass
from typing import Iterable, Iterator

import msgpack

_PRINTABLE = set(range(0x20, 0x7F))


def render_key(key: bytes) -> str:
    """`acct/bal/0x<hex>`: the readable prefix, then the binary fields as hex."""
    cut = 0
    for i, b in enumerate(key):
        if b not in _PRINTABLE:
            break
        if b == ord("/"):
            cut = i + 1
    else:
        return key.decode("ascii")
    return key[:cut].decode("ascii") + "0x" + key[cut:].hex()


def jsonable(obj):
    """msgpack-decoded data with bytes as "0x" hex (lists stay lists)."""
    if isinstance(obj, (bytes, bytearray)):
        return "0x" + bytes(obj).hex()
    if isinstance(obj, (list, tuple)):
        return [jsonable(x) for x in obj]
    return obj


def decode_value(value: bytes | None):
    """The value decoded for people: msgpack data (bytes as hex), or "0x<hex>" if it is not
    msgpack, or None for an absent key."""
    if value is None:
        return None
    try:
        return jsonable(msgpack.unpackb(value, raw=False, use_list=True))
    except (ValueError, msgpack.UnpackException, TypeError):
        return "0x" + value.hex()


@dataclass(frozen=True)
class KeyDiff:
    key: bytes
    stored: bytes | None        # the node's value (None: absent)
    recomputed: bytes | None    # the replay's value (None: absent)
    last_written: int | None    # the last height whose block wrote the key in the replay
                                # (0: genesis), None if the replay never wrote it

    def describe(self) -> str:
        when = ("never written by the replay" if self.last_written is None
                else "last written at genesis" if self.last_written == 0
                else f"last written by block {self.last_written}")
        return (f"{render_key(self.key)} ({when})\n"
                f"      stored:     {_show(self.stored)}\n"
                f"      recomputed: {_show(self.recomputed)}")


def _show(v: bytes | None) -> str:
    return "(absent)" if v is None else f"{decode_value(v)!r}  [0x{v.hex()}]"


def diff_sorted(stored: Iterable[tuple[bytes, bytes]], recomputed: Iterable[tuple[bytes, bytes]],
                last_written: dict[bytes, int]) -> Iterator[KeyDiff]:
    """The keys whose values differ between two key-ascending (key, value) streams."""
    a, b = iter(stored), iter(recomputed)
    x, y = next(a, None), next(b, None)
    while x is not None or y is not None:
        if y is None or (x is not None and x[0] < y[0]):
            yield KeyDiff(x[0], x[1], None, last_written.get(x[0]))
            x = next(a, None)
        elif x is None or y[0] < x[0]:
            yield KeyDiff(y[0], None, y[1], last_written.get(y[0]))
            y = next(b, None)
        else:
            if x[1] != y[1]:
                yield KeyDiff(x[0], x[1], y[1], last_written.get(x[0]))
            x, y = next(a, None), next(b, None)
