"""Process-level guards for a running node (`perpchain start`).

A node must never die silently. Two things could make it:

* SIGPIPE. `cli/main.py` restores the default action (terminate, no message) so that
  `perpchain ... | head` exits quietly; for a node that default is fatal: a client or peer
  closing its socket while the node writes to it would kill the process without a log
  line. `harden()` sets SIGPIPE back to "ignore", so such a write raises an OSError
  (EPIPE) that the RPC server and p2p code handle as a lost connection.
* An exception escaping the event loop, or a crash in a C extension. `log_fatal` writes
  one CRITICAL line naming the cause (with the traceback) before the process exits, and
  `harden()` enables faulthandler so even a segfault leaves a stack on stderr (the log).
"""

import faulthandler
import logging
import signal

log = logging.getLogger("perpchain.node")


def harden() -> None:
    """Call once at node start, before any socket is opened."""
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    if not faulthandler.is_enabled():
        faulthandler.enable()


def run_guarded(run, *args) -> None:
    """`run(*args)` (the node's `trio.run`) after `harden()`, logging any fatal exit."""
    from node.config import ConfigError
    from node.genesis import GenesisError
    from node.keys import KeyFileError
    from node.store import StoreLocked

    harden()
    try:
        run(*args)
    except (KeyboardInterrupt, ConfigError, GenesisError, KeyFileError, StoreLocked):
        raise  # a stop asked for, or a start-up error `perpchain start` reports itself
    except BaseException as e:
        from node.fatal import describe
        if describe(e) is None:   # else a named fault (node/fatal.py): one line, no traceback
            log_fatal(e)
        raise


def log_fatal(e: BaseException) -> None:
    """One clear line (and the traceback) for whatever stops the node abnormally."""
    log.critical("node stopped by a fatal error: %s: %s", type(e).__name__, e,
                 exc_info=(type(e), e, e.__traceback__))
