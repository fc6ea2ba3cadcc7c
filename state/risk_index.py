"""Which accounts' risk could have changed in a block: the candidates of the liquidation step.

What this module owns
---------------------
`HolderIndex`: for each perp market, the accounts with a non-zero position and its size in
lots. It is derived state (state.derived): it equals a function of the `clr/` records, is kept
on the root overlay's `Derived` (memo table "risk_holders") tagged with the height of the state
it equals, and is rebuilt by a sorted scan of the `clr/` records whenever the tag is not the
previous block's (a cold start, a block built on another state). Each block brings it up to
date from the accounts whose records the block wrote, then the liquidation step keeps it so.

`candidates` are, as a sorted list of addresses (a stable key, never hash order):
* accounts whose clearing record or a balance the block wrote (they traded, were filled,
  transferred, paid or received funding);
* the holders of every perp market whose mark price moved (all markets when the oracle price of
  a collateral asset moved: it moves every holder's equity);
* `extra`: accounts whose liquidation is in progress (state.liquidation).
"""

from state.codec import load
from state.derived import derived_of
from state.kv import KVView, Overlay
from state.ledger import P_BAL
from state.margin import P_MARK
from state.markets import PERP, collateral, list_markets
from state.oracle import P_PRICE
from state.positions import P_CLEARING, account_from_stored, get_stored

_ADDR = 32


class HolderIndex:
    """Per perp market, holder address -> position size in lots (see the module docstring)."""

    __slots__ = ("height", "markets", "by_account")

    def __init__(self) -> None:
        self.height = -1
        self.markets: dict[int, dict[bytes, int]] = {}
        self.by_account: dict[bytes, tuple[int, ...]] = {}

    def build(self, view: KVView) -> None:
        """Rebuild from every clearing record (ascending by address)."""
        self.markets = {}
        self.by_account = {}
        n = len(P_CLEARING)
        for k, raw in view.iterate(P_CLEARING):
            self.set_account(k[n:], raw)

    def set_account(self, addr: bytes, stored) -> None:
        """Bring the account's entries up to date from its stored record (None: no record)."""
        for mid in self.by_account.pop(addr, ()):
            self.markets[mid].pop(addr, None)
        acct = account_from_stored(addr, stored)
        held = tuple(mid for mid in sorted(acct.entries) if acct.entries[mid].size)
        for mid in held:
            self.markets.setdefault(mid, {})[addr] = acct.entries[mid].size
        if held:
            self.by_account[addr] = held

    def sync(self, view: Overlay, addrs) -> None:
        for addr in addrs:
            self.set_account(addr, get_stored(view, addr))

    def holders(self, market_id: int) -> list[tuple[bytes, int]]:
        """(address, size lots) of the market's holders, ascending by address."""
        h = self.markets.get(market_id, {})
        return [(a, h[a]) for a in sorted(h)]


def holder_index(view: Overlay, height: int) -> HolderIndex:
    """The index equal to the state of `view` at the end-block of block `height` (the block's
    own writes applied)."""
    idx = derived_of(view).memo("risk_holders", b"", None, lambda _: HolderIndex())
    if idx.height != height - 1:
        idx.build(view)
    else:
        idx.sync(view, written_accounts(view, (P_CLEARING,)))
    idx.height = height
    return idx


def index_for_reads(view: KVView) -> HolderIndex:
    """A fresh index of a committed state (queries)."""
    idx = HolderIndex()
    idx.build(view)
    return idx


def written_accounts(view: Overlay, prefixes: tuple[bytes, ...], up_to=None) -> list[bytes]:
    """Sorted addresses of the records under `prefixes` written by `view` and its ancestor
    overlays (the block's writes so far), stopping below `up_to` if given."""
    found: dict[bytes, None] = {}
    o = view
    while type(o) is Overlay and o is not up_to:
        for k in o.writes:
            for p in prefixes:
                if k.startswith(p):
                    found[k[len(p):len(p) + _ADDR]] = None
        o = o.parent
    return sorted(found)


def _committed(view: Overlay):
    """The store under the block's overlays (the state of the previous block)."""
    o = view
    while type(o) is Overlay:
        o = o.parent
    return o


def moved_markets(view: Overlay) -> list[int]:
    """Perp markets whose mark price differs from the previous block's (every perp market if
    the oracle price of a collateral asset moved)."""
    base = _committed(view)
    perps = [m for m in list_markets(view) if m.kind == PERP]
    for sym, _ in collateral(view):
        k = P_PRICE + sym.encode()
        if _price_of(view.get(k)) != _price_of(base.get(k)):
            return [m.id for m in perps]
    out = []
    for m in perps:
        k = P_MARK + m.id.to_bytes(4, "big")
        if _price_of(view.get(k)) != _price_of(base.get(k)):
            out.append(m.id)
    return out


def _price_of(raw) -> int | None:
    return None if raw is None else load(raw)[0]


def candidates(view: Overlay, idx: HolderIndex, extra: list[bytes]) -> list[bytes]:
    """The accounts whose risk could have changed this block (see the module docstring)."""
    found: dict[bytes, None] = dict.fromkeys(written_accounts(view, (P_CLEARING, P_BAL)))
    for mid in moved_markets(view):
        found.update(dict.fromkeys(idx.markets.get(mid, ())))
    found.update(dict.fromkeys(extra))
    return sorted(found)
