"""The hand-off of committed blocks from consensus to publishers (websocket fan-out).

`CommitFeed` is a read-model projection (node/read_model.py): `on_commit` runs inside
Application.commit, on the consensus path, so it only appends the block to a bounded deque
and wakes the waiting publisher; every formatting and sending happens in the publisher's own
task. If the publisher falls more than `max_pending` blocks behind (it never should: it
drains everything each time it runs), the oldest blocks are dropped and `lost` counts them,
so the publisher can tell its subscribers they missed something instead of lying.
"""

from collections import deque

import trio

from node.read_model import CommittedBlock

DEFAULT_MAX_PENDING = 1000


class CommitFeed:
    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING):
        self.pending: deque[CommittedBlock] = deque()
        self.max_pending = max_pending
        self.lost = 0
        self._wakeup = trio.Event()

    def on_commit(self, block: CommittedBlock) -> None:
        """Consensus path: O(1), never blocks."""
        if len(self.pending) >= self.max_pending:
            self.pending.popleft()
            self.lost += 1
        self.pending.append(block)
        self._wakeup.set()

    async def wait(self) -> None:
        """Return once at least one block is pending."""
        while not self.pending:
            self._wakeup = trio.Event()
            await self._wakeup.wait()

    def drain(self) -> tuple[list[CommittedBlock], int]:
        """The pending blocks, oldest first, and how many were dropped before them."""
        blocks, lost = list(self.pending), self.lost
        self.pending.clear()
        self.lost = 0
        return blocks, lost
