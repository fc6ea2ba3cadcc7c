"""Hands memory the node freed back to the operating system, every TRIM_INTERVAL_S, and
sets glibc's malloc up for a long-running node (`tune_malloc`, once at start).

glibc's malloc keeps what a process frees for its next allocations and gives a page back
only when it lies at the top of the heap. A node frees a lot in the middle of it: LevelDB's
memtable (`[store] write_buffer_mib`) is allocated in small blocks, interleaved with
longer-lived objects, and dropped whole each time it is written to a table file; a block's
results and events go once the block is committed. Without a trim the resident size creeps
up by a memtable's worth every few flushes although nothing is kept; `malloc_trim(0)`
releases every whole free page (a few milliseconds for a heap of tens of MiB). Where the C
library has no `malloc_trim` (not glibc) this does nothing. Nothing here changes what the
node computes.

`tune_malloc` (called before the store is opened and any thread starts) sets, with
`mallopt`:
* M_ARENA_MAX = MALLOC_ARENAS: by default glibc gives each thread that allocates under
  contention its own arena (up to 8 per core: LevelDB's compaction thread, the signature
  verifier threads, trio's worker threads), each with its own free memory and fragmentation;
  two arenas are enough for a node whose work runs under the GIL;
* M_MMAP_THRESHOLD = MMAP_THRESHOLD_BYTES: allocations from that size up get their own
  mapping, unmapped when freed. glibc would otherwise raise this threshold each time such a
  block is freed (up to 32 MiB), after which large short-lived buffers (a block's bytes and
  results, msgpack buffers) are carved from the heap between long-lived objects. Fixing it
  also fixes the trim threshold (128 KiB) instead of letting it grow with it.
An operator's own setting wins: with MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_ or
GLIBC_TUNABLES in the environment, `tune_malloc` changes nothing (docs/OPERATIONS.md "Memory").
"""

import ctypes
import ctypes.util
import logging
import os

import trio

log = logging.getLogger("perpchain.node")

TRIM_INTERVAL_S = 10.0
MALLOC_ARENAS = 2
MMAP_THRESHOLD_BYTES = 128 << 10
_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8     # glibc's mallopt parameters (malloc.h)
OWN_SETTINGS = ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")


def _libc_fn(name: str, argtypes: list):
    """libc's function `name` (returning int), or None where there is none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = getattr(libc, name)
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = argtypes, ctypes.c_int
    return fn


def _malloc_trim():
    """libc's malloc_trim, or None where there is none."""
    return _libc_fn("malloc_trim", [ctypes.c_size_t])


def _mallopt():
    """libc's mallopt, or None where there is none (or it is not glibc's)."""
    return _libc_fn("mallopt", [ctypes.c_int, ctypes.c_int]) if _malloc_trim() else None


def tune_malloc(environ=os.environ) -> bool:
    """Set the arena count and the mmap threshold (module docstring); False when nothing was
    set: no glibc, or the operator set malloc up in the environment."""
    fn = _mallopt()
    if fn is None or any(k in environ for k in OWN_SETTINGS):
        return False
    return bool(fn(_M_ARENA_MAX, MALLOC_ARENAS)) & bool(fn(_M_MMAP_THRESHOLD,
                                                          MMAP_THRESHOLD_BYTES))


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
