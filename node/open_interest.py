"""Open interest per perp market at the last committed height: a read-model projection.

Open interest of a market = the total size of its long positions (= that of its short ones,
every fill having two sides), in lots. The state keeps no total, so it is counted from every
account's clearing record (`state.positions.iter_accounts`): at most once per committed
height, and only when asked (`by_market`), so a node nobody asks pays nothing, and one that is
asked every block pays one scan of the clearing records per block.
"""

from state.machine import last_block
from state.positions import iter_accounts


def count_open_interest(view) -> dict[int, int]:
    """market id -> the total long size in lots, of the state `view` (markets with no
    position are absent)."""
    out: dict[int, int] = {}
    for _addr, acct in iter_accounts(view):
        for mid, e in acct.entries.items():
            if e.size > 0:
                out[mid] = out.get(mid, 0) + e.size
    return out


class OpenInterest:
    """Open interest of the committed state, counted once per height (see the module)."""

    def __init__(self, store):
        """`store`: node.store.Store (its committed `state` view)."""
        self._store = store
        self._height = -1
        self._lots: dict[int, int] = {}

    def by_market(self) -> tuple[int, dict[int, int]]:
        """(the committed height, market id -> open interest in lots)."""
        view = self._store.state
        height = last_block(view)[0]
        if height != self._height:
            self._lots, self._height = count_open_interest(view), height
        return height, self._lots
