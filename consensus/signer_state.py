"""The validator's signer-state file (priv_validator_state.bin): the last signed message.

It is what keeps a restarted validator from signing twice at one height, round and step
(CometBFT's priv_validator_state.json). Format: msgpack [height, round, step, kind,
message bytes], written to a temporary file, fsynced and renamed over the old one.

A file that cannot be read or written is a SignerStateError naming it: a validator never
starts signing from a state it could not read, and never signs what it could not persist.
"""

import errno
import os
from pathlib import Path

import msgpack

from consensus.messages import DecodeError, LastSigned, Proposal, Vote

STEPS = (1, 2, 3)   # propose, prevote, precommit
MAX_FILE_BYTES = 1024 * 1024


class SignerStateError(Exception):
    """The signer-state file is unreadable, corrupt or cannot be written."""


def _corrupt(path: Path, why: str) -> SignerStateError:
    return SignerStateError(
        f"the signer state file {path} is corrupt ({why}). It guards this validator against "
        "double signing: restore it from a backup; if none exists, keep the validator "
        "stopped until the chain is past the last height it may have signed, then move "
        "the file aside and start it again")


def save_last_signed(path: Path, ls: LastSigned) -> None:
    kind = "proposal" if isinstance(ls.message, Proposal) else "vote"
    tmp = Path(path).with_suffix(".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(msgpack.packb([ls.height, ls.round, ls.step, kind, ls.message.encode()]))
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except OSError as e:
        why = "the disk is full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
        raise SignerStateError(f"cannot write the signer state file {path}: {why}; the "
                               "validator stops rather than sign what it could not record"
                               ) from None


def load_last_signed(path: Path) -> LastSigned | None:
    """The saved state, None if the file does not exist (a validator that never signed)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise SignerStateError(f"cannot read the signer state file {path}: "
                               f"{e.strerror or e}") from None
    if len(data) > MAX_FILE_BYTES:
        raise _corrupt(path, f"{len(data)} bytes, more than any signed message")
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as e:
        raise _corrupt(path, f"not msgpack: {e}") from None
    if not (type(obj) is list and len(obj) == 5):
        raise _corrupt(path, "not [height, round, step, kind, message]")
    h, r, s, kind, msg = obj
    if not (type(h) is int and type(r) is int and h >= 1 and r >= 0 and s in STEPS
            and type(s) is int):
        raise _corrupt(path, f"bad height/round/step {h!r}/{r!r}/{s!r}")
    if kind not in ("proposal", "vote") or type(msg) is not bytes:
        raise _corrupt(path, f"bad message kind {kind!r}")
    try:
        m = Proposal.decode(msg) if kind == "proposal" else Vote.decode(msg)
    except (DecodeError, ValueError, TypeError) as e:
        raise _corrupt(path, f"its {kind} does not decode: {e}") from None
    if (m.height, m.round) != (h, r):
        raise _corrupt(path, f"its {kind} is for {m.height}/{m.round}, not {h}/{r}")
    return LastSigned(h, r, s, m)
