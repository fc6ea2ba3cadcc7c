"""Hands memory the node freed back to the operating system, every TRIM_INTERVAL_S.

glibc's malloc keeps what a process frees for its next allocations and gives a page back
only when it lies at the top of the heap. A node frees a lot in the middle of it: LevelDB's
memtable (`[store] write_buffer_mib`) is allocated in small blocks, interleaved with
longer-lived objects, and dropped whole each time it is written to a table file; a block's
results and events go once the block is committed. Without a trim the resident size creeps
up by a memtable's worth every few flushes although nothing is kept; `malloc_trim(0)`
releases every whole free page (a few milliseconds for a heap of tens of MiB). Where the C
library has no `malloc_trim` (not glibc) this does nothing. Nothing here changes what the
node computes.
"""

import ctypes
import ctypes.util
import logging

import trio

log = logging.getLogger("perpchain.node")

TRIM_INTERVAL_S = 30.0


def _malloc_trim():
    """libc's malloc_trim, or None where there is none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return fn


def trim_now() -> bool:
    """Release the free pages of the C heap now; False where that is not possible."""
    fn = _malloc_trim()
    if fn is None:
        return False
    fn(0)
    return True


async def trim_loop(interval_s: float = TRIM_INTERVAL_S) -> None:
    """Trim the C heap every `interval_s` seconds, for as long as the node runs."""
    fn = _malloc_trim()
    if fn is None:
        log.info("no malloc_trim in this C library: freed memory stays with the process")
        return
    while True:
        await trio.sleep(interval_s)
        fn(0)
