"""The websocket L2 book sequences that outlive the node process (node/book_feed.py).

For each market some subscriber followed, the last sequence this node published (a snapshot
or an update), in the store's LevelDB beside the tables:

    w/bookseq/<market id:8>     the last sequence, as 8 big-endian bytes

Not state and not consensus data: written after each publishing pass in its own small batch,
without fsync. A restarted node starts a market's view at the stored sequence + 1, so a
(market, sequence) pair names one view of this node's book for as long as its store lives,
and sequences never go back across restarts (docs/PROTOCOL.md, "Books, sequences and gaps").
Only a machine crash (power loss) can lose the last unsynced writes; the node then starts
from an older stored value, and a client that kept a sequence from before the crash may see
it again, on a new snapshot.
"""

P_BOOKSEQ = b"w/bookseq/"


class BookSequences:
    """Load and save the last published sequence per market in a plyvel DB."""

    def __init__(self, db):
        self._db = db

    def last(self, market_id: int) -> int | None:
        raw = self._db.get(P_BOOKSEQ + market_id.to_bytes(8, "big"))
        return None if raw is None else int.from_bytes(raw, "big")

    def save(self, sequences: dict[int, int]) -> None:
        if not sequences:
            return
        with self._db.write_batch() as wb:
            for mid, seq in sequences.items():
                wb.put(P_BOOKSEQ + mid.to_bytes(8, "big"), seq.to_bytes(8, "big"))
