"""Ed25519 signature checks off the event loop: in worker processes or threads.

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
"""

import os
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
import multiprocessing

import trio
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from state.tx import Tx, signature_ok

MIN_CHUNK = 32


def _verify_chunk(txs: list[Tx]) -> list[bool]:
    return [signature_ok(t) for t in txs]


@lru_cache(maxsize=65536)
def _key(raw: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(raw)


def _verify_raw(items: list[tuple[bytes, bytes, bytes]]) -> list[bool]:
    """In a worker process: (public key, signature, signed bytes) -> ok."""
    out = []
    for pub, sig, msg in items:
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
        if processes > 0 and not self.inline:
            self.pool = ProcessPoolExecutor(self.workers,
                                            mp_context=multiprocessing.get_context("spawn"))

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
            fut = self.pool.submit(_verify_raw, [(t.signer, t.signature, t.sign_bytes())
                                                 for t in chunks[i]])
            results[i] = await trio.to_thread.run_sync(fut.result, limiter=self.limiter)

        async with trio.open_nursery() as nursery:
            for i in range(len(chunks)):
                nursery.start_soon(run, i)
        return [ok for chunk in results for ok in chunk]
