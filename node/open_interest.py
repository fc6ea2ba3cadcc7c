"""Open interest per perp market at the last committed height: a read-model projection.

Open interest of a market = the total size of its long positions (= that of its short ones,
every fill having two sides), in lots. The state keeps no total, so the node keeps a running
one: counted once from every account's clearing record (`state.positions.iter_accounts`,
`count_open_interest`) on the first read after the node starts, then carried from block to
block by the block's own writes to clearing records (fills, liquidations, deleveraging,
settlement: whatever changes a position writes its record). Application.commit calls `stage`
with the block's write set before the store write (it reads each written record's previous
value from the committed state) and the read model's `on_commit` adopts the staged totals
once the block is committed; a block missed (not staged) drops the totals and the next read
counts again. A node nobody asks pays nothing; one that is asked pays one scan per start.
RPC worker threads read `by_market` while commits run: the totals are one (height, dict)
tuple swapped whole, never mutated after publication.
"""

from state.machine import last_block
from state.positions import P_CLEARING, account_from_stored, iter_accounts


def count_open_interest(view) -> dict[int, int]:
    """market id -> the total long size in lots, of the state `view` (markets with no
    position are absent)."""
    out: dict[int, int] = {}
    for _addr, acct in iter_accounts(view):
        _add_longs(out, acct, 1)
    return out


def _add_longs(lots: dict[int, int], acct, sign: int) -> None:
    for mid, e in acct.entries.items():
        if e.size > 0:
            lots[mid] = lots.get(mid, 0) + sign * e.size


def apply_writes(lots: dict[int, int], view, writes) -> dict[int, int]:
    """The totals after `writes` (a block's write set over the committed state `view`,
    whose totals are `lots`), as a new dict."""
    out = dict(lots)
    n = len(P_CLEARING)
    for k, new in writes:
        if not k.startswith(P_CLEARING):
            continue
        addr, old = k[n:], view.get(k)
        if old == new:
            continue
        if old is not None:
            _add_longs(out, account_from_stored(addr, old), -1)
        if new is not None:
            _add_longs(out, account_from_stored(addr, new), 1)
    return {m: v for m, v in out.items() if v}


class OpenInterest:
    """Open interest of the committed state, kept as a running total (see the module)."""

    def __init__(self, store):
        """`store`: node.store.Store (its committed `state` view)."""
        self._store = store
        self._totals: tuple[int, dict[int, int]] | None = None   # (height, lots)
        self._staged: tuple[int, dict[int, int]] | None = None
        self.full_counts = 0          # scans of every clearing record (tests, metrics)

    def stage(self, height: int, writes) -> None:
        """Before `height` is written to the store: its totals from its write set."""
        t = self._totals
        if t is None or t[0] != height - 1:
            self._staged = None       # no totals to carry: the next read counts
            return
        self._staged = (height, apply_writes(t[1], self._store.state, writes))

    def on_commit(self, block) -> None:
        s, self._staged = self._staged, None
        self._totals = s if s is not None and s[0] == block.height else None

    def by_market(self) -> tuple[int, dict[int, int]]:
        """(the committed height, market id -> open interest in lots)."""
        view = self._store.state
        height = last_block(view)[0]
        t = self._totals
        if t is None or t[0] != height:
            t = (height, count_open_interest(view))
            self.full_counts += 1
            if last_block(view)[0] == height:   # no commit ran meanwhile
                self._totals = t
        return t
