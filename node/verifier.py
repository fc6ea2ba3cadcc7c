"""Ed25519 signature checks on worker threads.

`cryptography` releases the GIL while it verifies, so a few threads use every core without
the cost of shipping txs to other processes. Each tx is verified once per node: the Tx
objects that pass are kept by the mempool and handed to block execution as already
verified (state.machine.apply_block's `known`).
"""

import os

import trio

from state.tx import Tx, signature_ok

MIN_CHUNK = 32


def _verify_chunk(txs: list[Tx]) -> list[bool]:
    return [signature_ok(t) for t in txs]


class Verifier:
    def __init__(self, threads: int = 0):
        """`threads`: worker threads (0 = one per CPU; -1 = verify inline on the calling
        task, for deterministic simulations)."""
        self.inline = threads < 0
        self.threads = max(1, threads if threads > 0 else (os.cpu_count() or 1))
        self.limiter = trio.CapacityLimiter(self.threads)

    async def verify(self, txs: list[Tx]) -> list[bool]:
        """One bool per tx, in order; the work is split over the worker threads."""
        if not txs:
            return []
        if self.inline:
            return _verify_chunk(txs)
        n = max(MIN_CHUNK, -(-len(txs) // self.threads))
        chunks = [txs[i:i + n] for i in range(0, len(txs), n)]
        results: list[list[bool]] = [[] for _ in chunks]

        async def run(i: int) -> None:
            results[i] = await trio.to_thread.run_sync(_verify_chunk, chunks[i],
                                                       limiter=self.limiter)

        async with trio.open_nursery() as nursery:
            for i in range(len(chunks)):
                nursery.start_soon(run, i)
        return [ok for chunk in results for ok in chunk]
