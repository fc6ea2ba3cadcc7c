"""One clear line for each fault a node cannot run through, instead of a traceback.

`perpchain start` (cli/main.py) calls `describe` on whatever stopped the node. Faults with
their own typed errors (config, genesis, keys, store, WAL, signer state) already carry a
message naming the file; raw OS and LevelDB errors that escape are named here (disk full,
read-only file system, permission denied, a corrupt store). Anything else is a bug and
keeps its traceback.
"""

import errno

import plyvel

from consensus.signer_state import SignerStateError
from consensus.wal import WALError
from node.config import ConfigError
from node.genesis import GenesisError
from node.keys import KeyFileError
from node.store import StoreError, recovery_hint

TYPED = (ConfigError, GenesisError, KeyFileError, StoreError, WALError, SignerStateError)
_OS_WHY = {errno.ENOSPC: "the disk is full; free space and start the node again",
           errno.EROFS: "the file system is read-only",
           errno.EACCES: "permission denied (the node's files must be writable by its user)",
           errno.EDQUOT: "the disk quota is exceeded"}


def leaves(exc: BaseException):
    """The exceptions inside (nested) exception groups, depth first."""
    if isinstance(exc, BaseExceptionGroup):
        for e in exc.exceptions:
            yield from leaves(e)
    else:
        yield exc


def describe(exc: BaseException, db_path=None) -> str | None:
    """An operator's message for the fault that stopped the node, or None (a bug)."""
    db_path = db_path or "of this node"
    for e in leaves(exc):
        if isinstance(e, TYPED):
            return str(e)
        if isinstance(e, plyvel.CorruptionError):
            return f"the store {db_path} is corrupt ({_text(e)}). " + recovery_hint(db_path)
        if isinstance(e, plyvel.IOError) and "no space left" in _text(e).lower():
            return f"cannot write the store {db_path}: the disk is full ({_text(e)})"
        if isinstance(e, OSError) and e.errno in _OS_WHY:
            where = f" {e.filename}" if e.filename else ""
            return f"cannot write{where}: {_OS_WHY[e.errno]}"
    return None


def _text(e: Exception) -> str:
    a = e.args[0] if e.args else ""
    return a.decode(errors="replace") if isinstance(a, bytes) else str(a)
