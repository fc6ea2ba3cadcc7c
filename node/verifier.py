"""Signature checks off the event loop: in worker processes or threads.

Ed25519 (state.tx.Tx) and secp256k1 (Hyperliquid envelopes, state.tx.HlTx) alike.

Each tx is verified once per node: the Tx objects that pass are kept by the mempool and
handed to block execution as already verified (state.machine.apply_block's `known`).

Modes ([verifier] in config.toml):
- processes (default, one per CPU): a pool of worker processes. The event loop only builds
  the signed bytes; the checks run beside it on every core, never waiting for the GIL.
- threads (processes = 0): `cryptography` releases the GIL while it verifies, but each
  check must take the GIL back when it returns, and a busy event loop holds it for up to
  the interpreter's switch interval, so under load the threads mostly wait (measured: about
  a third fewer committed txs/s than processes on this 2-core machine).
- inline (threads = -1): verify on the calling task, for deterministic simulations.

A worker process that dies (killed, out of memory) breaks its pool: the pool is rebuilt
and the checks it was running are retried, then done in a thread if the new pool breaks
too; callers never see BrokenProcessPool. Workers ask the kernel to kill them when the
node dies (PR_SET_PDEATHSIG), so none outlives a node killed with -9, and then neither
does multiprocessing's resource tracker (it exits when the last of them is gone).
"""

import ctypes
import logging
import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import lru_cache

import trio
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from state.tx import HlTx, Tx, decode_tx, signature_ok

MIN_CHUNK = 32
PR_SET_PDEATHSIG = 1
log = logging.getLogger("perpchain.verifier")


def _die_with_parent(parent_pid: int) -> None:
    """Worker initializer: SIGKILL this process when the node that started it dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):   # not Linux: the pool's own checks remain
        pass
    if os.getppid() != parent_pid:      # the node died before the request took effect
        os._exit(0)


def _verify_chunk(txs: list[Tx]) -> list[bool]:
    return [signature_ok(t) for t in txs]


@lru_cache(maxsize=65536)
def _key(raw: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(raw)


def _item(t: "Tx | HlTx") -> tuple:
    """What a worker process needs to check `t`: (public key, signature, signed bytes) for
    Ed25519; (None, None, wire bytes) for a Hyperliquid envelope, decoded and checked
    (hashing, EIP-712, secp256k1 recovery) wholly in the worker."""
    if type(t) is HlTx:
        return (None, None, t.raw)
    return (t.signer, t.signature, t.sign_bytes())


def _verify_raw(items: list[tuple]) -> list[bool]:
    """In a worker process: `_item` tuples -> ok."""
    out = []
    for pub, sig, msg in items:
        if pub is None:
            out.append(signature_ok(decode_tx(msg)))
            continue
        try:
            _key(pub).verify(sig, msg)
            out.append(True)
        except (InvalidSignature, ValueError):
            out.append(False)
    return out


class Verifier:
    def __init__(self, threads: int = 0, processes: int = 0):
        """`threads` = -1: verify inline on the calling task. Else `processes` > 0: a pool of
        that many worker processes; otherwise `threads` worker threads (0 = one per CPU)."""
        self.inline = threads < 0
        n = processes if processes > 0 else threads
        self.workers = max(1, n if n > 0 else (os.cpu_count() or 1))
        self.limiter = trio.CapacityLimiter(self.workers)
        self.pool = None
        self.rebuilds = 0
        if processes > 0 and not self.inline:
            self.pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_die_with_parent, initargs=(os.getpid(),))

    def _rebuild(self, broken: ProcessPoolExecutor) -> None:
        """Replace `broken` (once, however many checks saw it break)."""
        if self.pool is not broken:
            return
        self.rebuilds += 1
        log.warning("a signature worker process died: restarting the pool (%d so far)",
                    self.rebuilds)
        broken.shutdown(wait=False, cancel_futures=True)
        self.pool = self._new_pool()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)

    async def verify(self, txs: list[Tx]) -> list[bool]:
        """One bool per tx, in order; the work is split over the workers."""
        if not txs:
            return []
        if self.inline:
            return _verify_chunk(txs)
        n = max(MIN_CHUNK, -(-len(txs) // self.workers))
        chunks = [txs[i:i + n] for i in range(0, len(txs), n)]
        results: list[list[bool]] = [[] for _ in chunks]

        async def run(i: int) -> None:
            if self.pool is None:
                results[i] = await trio.to_thread.run_sync(_verify_chunk, chunks[i],
                                                           limiter=self.limiter)
                return
            items = [_item(t) for t in chunks[i]]
            for _ in range(2):
                pool = self.pool
                try:
                    fut = pool.submit(_verify_raw, items)
                    results[i] = await trio.to_thread.run_sync(fut.result, limiter=self.limiter)
                    return
                except BrokenProcessPool:
                    self._rebuild(pool)
            results[i] = await trio.to_thread.run_sync(_verify_chunk, chunks[i],
                                                       limiter=self.limiter)

        async with trio.open_nursery() as nursery:
            for i in range(len(chunks)):
                nursery.start_soon(run, i)
        return [ok for chunk in results for ok in chunk]
