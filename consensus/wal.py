"""The consensus write-ahead log: what a validator saw and signed in the current height.

Records are appended as  [length:4 big-endian][crc32:4][msgpack payload]  with payload
[height, kind, body]. Inputs (proposals, votes, blocks, timeouts) are flushed; the node's
own signed proposals and votes are fsynced BEFORE they are sent, so after a crash the
validator replays exactly what it may already have told others.

On open, a torn or corrupt tail (a crash mid-write) is truncated with a logged warning:
never a crash loop. A WAL that cannot be read or written (a read-only file or directory, a
full disk) raises WALError naming the file: the node stops with that message rather than
sign anything it could not log. Once a height is committed to the store its records are useless, so
`next_height` empties the log (the store, not the WAL, is the record of committed blocks).
"""

import errno
import logging
import os
import struct
import zlib
from pathlib import Path

import msgpack

log = logging.getLogger("perpchain.wal")

_HDR = struct.Struct(">II")
MAX_RECORD = 64 * 1024 * 1024

# Record kinds.
PROPOSAL = "proposal"     # [proposal bytes, block bytes]
VOTE = "vote"             # vote bytes
BLOCK = "block"           # block bytes (fetched)
TIMEOUT = "timeout"       # [step, height, round]
SIGNED = "signed"         # own signed proposal/vote: [kind, bytes] (or ["snapshot", [...]])
KINDS = (PROPOSAL, VOTE, BLOCK, TIMEOUT, SIGNED)


def well_formed(height, kind, body) -> bool:
    """The shape every record of `kind` has when this node wrote it. A record with a good
    checksum but another shape (a bug, or a hand-edited file) ends the usable log."""
    if type(height) is not int or height < 0 or kind not in KINDS:
        return False
    if kind in (VOTE, BLOCK):
        return type(body) is bytes
    if kind == PROPOSAL:
        return type(body) is list and len(body) == 2 and all(type(b) is bytes for b in body)
    if kind == TIMEOUT:
        return type(body) is list and len(body) == 3 and all(type(b) is int for b in body)
    return (type(body) is list and len(body) >= 2 and body[0] in ("vote", "proposal",
                                                                   "snapshot")
            and (type(body[1]) is list if body[0] == "snapshot" else type(body[1]) is bytes))


class WALError(Exception):
    """The WAL file cannot be read or written; the message names it and the cause."""


def _io_error(path: Path, doing: str, e: OSError) -> WALError:
    why = {errno.ENOSPC: "the disk is full; free space and start the node again",
           errno.EROFS: "the file system is read-only",
           errno.EACCES: "permission denied: the file and its directory must be writable by "
                         "the user running the node",
           errno.EPERM: "operation not permitted"}.get(e.errno, e.strerror or str(e))
    return WALError(f"cannot {doing} the consensus WAL {path}: {why}")


class WAL:
    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.records = self._load()
            self.f = open(self.path, "ab")
        except OSError as e:
            raise _io_error(self.path, "open", e) from None

    def _load(self) -> list[tuple[int, str, object]]:
        """Every intact record; a torn tail is cut off (and reported)."""
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        out, pos = [], 0
        while pos < len(data):
            if pos + _HDR.size > len(data):
                break
            n, crc = _HDR.unpack_from(data, pos)
            end = pos + _HDR.size + n
            if n > MAX_RECORD or end > len(data):
                break
            payload = data[pos + _HDR.size:end]
            if zlib.crc32(payload) != crc:
                break
            try:
                rec = msgpack.unpackb(payload, raw=False)
            except (ValueError, TypeError, msgpack.UnpackException, RecursionError):
                break
            if type(rec) is not list or len(rec) != 3 or not well_formed(*rec):
                break
            out.append(tuple(rec))
            pos = end
        if pos < len(data):
            log.warning("WAL %s: truncating %d bytes of torn or corrupt tail at offset %d",
                        self.path, len(data) - pos, pos)
            with open(self.path, "r+b") as f:
                f.truncate(pos)
                f.flush()
                os.fsync(f.fileno())
        return out

    def for_height(self, height: int) -> list[tuple[str, object]]:
        return [(k, b) for h, k, b in self.records if h == height]

    def write(self, height: int, kind: str, body, sync: bool = False) -> None:
        payload = msgpack.packb([height, kind, body], use_bin_type=True)
        try:
            self.f.write(_HDR.pack(len(payload), zlib.crc32(payload)) + payload)
            self.f.flush()
            if sync:
                os.fsync(self.f.fileno())
        except OSError as e:
            raise _io_error(self.path, "write", e) from None

    def next_height(self) -> None:
        """The store has committed the height: start an empty log."""
        try:
            self.f.truncate(0)
            self.f.seek(0)
            self.f.flush()
            os.fsync(self.f.fileno())
        except OSError as e:
            raise _io_error(self.path, "empty", e) from None
        self.records = []

    def close(self) -> None:
        self.f.close()
