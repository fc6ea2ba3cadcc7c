"""Which accounts' risk could have changed in a block: the candidates of the liquidation step.

What this module owns
---------------------
`HolderIndex`: for each perp market, the accounts with a non-zero position and its size in
lots. It is derived state (state.derived): it equals a function of the `clr/` records, is kept
on the root overlay's `Derived` (`risk_holders`, state.derived rule 4) tagged with the height of
the state it equals, and is rebuilt by a sorted scan of the `clr/` records whenever the tag is not the
previous block's (a cold start, a block built on another state). Each block brings it up to
date from the accounts whose records the block wrote, then the liquidation step keeps it so.

`candidates` are, as a sorted list of addresses (a stable key, never hash order):
* accounts whose clearing record or a balance the block wrote (they traded, were filled,
  transferred, paid or received funding);
* the holders of every perp market whose mark price moved or whose funding index a settlement
  moved (all markets when the oracle price of a collateral asset moved: it moves every
  holder's equity);
* `extra`: accounts whose liquidation is in progress (state.liquidation), and on a chain with
  lending pools every account holding a negative balance (`HolderIndex.borrowers`): interest
  lowers a borrower's equity every block with no write and no price move.

`HolderIndex.borrowers` (None on a chain without pools): the accounts, other than the
protocol's own (state.lending_pools.RAW_ACCOUNTS), with a negative balance record; built by a
sorted scan of the balance records when first needed (or rebuilt with the index), then kept up
to date from the balances each block and each liquidation writes. A warm node and a cold one
hold the same set: it is a function of the records.

The safety band (speed only; it never changes which accounts are liquidated)
-----------------------------------------------------------------------------
A candidate whose last full check found it healthy may skip the check while the marks cannot
have moved enough to bring it under maintenance margin. Per block, R = max over perp markets
and collateral oracle prices of ceil(|price - previous| * PPM / previous) (for a market, plus
what a funding settlement charged one lot in ppm of its notional at the mark: funding moves
equity as a mark move of that size would); the index keeps the
running product G = ceil(G * (PPM + R) / PPM). An account's equity - MM can fall by at most
2 * N0 * (G / G0 - 1) since a check at G0 where N0 was its gross notional at mark plus the
weighted value of its non-quote collateral (equity moves by at most their move, MM by at most
half of the notional's as mmr <= 1/2; both grow by at most (1 + R) per block). So a check that
finds slack = equity - MM (less one quantum per position and collateral asset and two for
rounding) > 0 stores safe_until = ceil(G0 * (slack + 2 N0) / (2 N0)), and the account is safe
while G < safe_until. A write to the account's balances, a change to what its equity or MM
depends on in its record (`risk_inputs`: a position's size, basis, funding index, margin mode
or isolated margin; not its leverage or open orders, which move only initial margin), a new
price or a parameter change drops the band (a full check next time). An account that borrows from a
lending pool (a negative balance) is banded too, with interest counted as a move: R also
takes the block's largest growth of a pool's borrow index in ppm (`index_moves`; G grows by
both, one after the other), and N0 then counts the weighted value of every balance that prices
or interest move (every non-quote balance and a quote borrow: state.lending_margin
`moving_value`) plus, per borrowed asset, the weighted value of one quantum of it (the
rounding of a borrow up to a quantum, which the band subtracts from the slack too). A supply
index that falls (bad debt written off against suppliers: state.bad_debt) drops every band. An account with isolated positions
(state.isolated) gets the smallest of the bands of its cross summary (if it has cross positions)
and of each isolated position's own summary (N0 its notional). A cold node has no bands and checks every candidate: both liquidate the same
accounts, because a skipped account is provably above maintenance margin.
"""

from state import constants as C
from state.codec import load
from state.derived import derived_of
from state.funding_index import INDEX_SCALE, P_FINDEX
from state.kv import KVView, Overlay
from state.ledger import P_BAL, read_account
from state.lending_pools import P_POOL, RAW_ACCOUNTS, pool_params
from state.margin import P_MARK
from state.markets import collateral, list_markets
from state.oracle import P_PRICE
from state.positions import P_CLEARING, account_from_stored

_ADDR = 32
_G0 = 1 << 64
_G_MAX = 1 << 256  # then G and every band start again


class HolderIndex:
    """Per perp market, holder address -> position size in lots (see the module docstring)."""

    __slots__ = ("height", "markets", "by_account", "growth", "safe_until", "params_version",
                 "checked_inputs", "borrowers")

    def __init__(self) -> None:
        self.height = -1
        self.markets: dict[int, dict[bytes, int]] = {}
        self.by_account: dict[bytes, tuple[int, ...]] = {}
        self.growth = _G0                       # G (see the module docstring)
        self.safe_until: dict[bytes, int] = {}  # addr -> the G below which it is safe
        self.params_version = -1
        self.checked_inputs: dict[bytes, tuple] = {}  # addr -> risk_inputs at its band's check
        self.borrowers: dict[bytes, None] | None = None  # (see the module docstring)

    def build(self, view: KVView) -> None:
        """Rebuild from every clearing record (ascending by address)."""
        self.borrowers = None
        self.markets = {}
        self.by_account = {}
        self.safe_until = {}
        self.checked_inputs = {}
        n = len(P_CLEARING)
        for k, raw in view.iterate(P_CLEARING):
            self.set_account(account_from_stored(k[n:], raw))

    def set_account(self, acct) -> None:
        """Bring the account's entries up to date from its record (state.positions.Account);
        its band goes if the record's risk inputs changed since the band's check."""
        addr = acct.addr
        if addr in self.safe_until and self.checked_inputs.get(addr) != risk_inputs(acct):
            del self.safe_until[addr]
        for mid in self.by_account.pop(addr, ()):
            self.markets[mid].pop(addr, None)
        held = tuple(mid for mid in sorted(acct.entries) if acct.entries[mid].size)
        for mid in held:
            self.markets.setdefault(mid, {})[addr] = acct.entries[mid].size
        if held:
            self.by_account[addr] = held

    def sync(self, view: Overlay, addrs) -> None:
        for addr in addrs:
            self.set_account(read_account(view, addr))

    def build_borrowers(self, view: KVView) -> None:
        """The accounts with a negative balance record, by a scan of them all."""
        start = len(P_BAL)
        self.borrowers = {}
        for k, raw in view.iterate(P_BAL):
            if (raw if type(raw) is int else load(raw)) < 0:
                self._note_borrower(k[start:start + _ADDR], True)

    def sync_borrowers(self, view: KVView, addrs) -> None:
        """Bring `borrowers` up to date for accounts whose balances were written."""
        if self.borrowers is None:
            return
        for addr in addrs:
            prefix = P_BAL + addr
            self.borrowers.pop(addr, None)
            self._note_borrower(addr, any((raw if type(raw) is int else load(raw)) < 0
                                          for _, raw in view.iterate(prefix)))

    def _note_borrower(self, addr: bytes, borrows: bool) -> None:
        if borrows and addr not in RAW_ACCOUNTS:
            self.borrowers[addr] = None

    def advance(self, max_move_ppm: int | None, params_version: int,
                interest_ppm: int | None = 0) -> None:
        """The block's marks moved by at most `max_move_ppm`, the lending pools' borrow indices
        by at most `interest_ppm` (None: an unbounded move)."""
        if max_move_ppm is None or interest_ppm is None or \
                params_version != self.params_version or self.growth > _G_MAX:
            self.drop_bands()
            self.params_version = params_version
            return
        for move in (max_move_ppm, interest_ppm):
            if move:
                self.growth = -(-self.growth * (C.PPM + move) // C.PPM)

    def drop_bands(self) -> None:
        """Every account gets a full check next time (e.g. suppliers' balances were cut)."""
        self.safe_until = {}
        self.checked_inputs = {}
        self.growth = _G0

    def is_safe(self, addr: bytes) -> bool:
        t = self.safe_until.get(addr)
        return t is not None and self.growth < t

    def note_checked(self, addr: bytes, s, n_terms: int, other_collateral: int,
                     isolated=(), inputs: tuple = (), borrower: bool = False) -> None:
        """A full check found margin standing `s` (state.margin.Standing); `other_collateral`:
        the weighted value of its non-quote collateral; `n_terms`: its positions and
        collateral assets (one quantum of rounding each); `isolated`: the summaries of its
        isolated positions (state.isolated), each banded on its own: the account is safe
        while all of them are (a cross account without positions then sets no bound);
        `inputs`: the `risk_inputs` of the account record it checked; `borrower`: it has a
        negative balance (`other_collateral` then counts every balance that prices and interest
        move, state.lending_margin.moving_value, and its cross summary is always banded)."""
        if addr not in self.by_account and not borrower:
            return
        bands = [self._band(x, 4, 0) for x in isolated]
        if s.notional or borrower or not bands:
            bands.append(self._band(s, n_terms, other_collateral))
        if None not in bands:
            self.safe_until[addr] = min(bands)
            self.checked_inputs[addr] = inputs

    def _band(self, s, n_terms: int, other_collateral: int) -> int | None:
        slack = s.equity - s.maintenance_margin - n_terms - 2
        two_n = 2 * (s.notional + abs(other_collateral))
        if slack > 0 and two_n > 0:
            return -(-self.growth * (slack + two_n) // two_n)
        return None

    def holders(self, market_id: int) -> list[tuple[bytes, int]]:
        """(address, size lots) of the market's holders, ascending by address."""
        h = self.markets.get(market_id, {})
        return [(a, h[a]) for a in sorted(h)]


def risk_inputs(acct) -> tuple:
    """What of an account's record (state.positions.Account) its equity and maintenance
    margin depend on, besides its balances, prices and parameters: per entry the record holds
    (not an empty one), its market, size, basis, funding index (0 when flat: the record keeps
    none), margin mode and isolated margin (not its leverage nor its open orders: they move
    only initial margin). The same for a decoded record and a ledger's published Account
    (state.ledger.read_account)."""
    es = acct.entries
    out = []
    for mid in sorted(es):
        e = es[mid]
        if not e.empty():
            out.append((mid, e.size, e.entry_tl, e.funding_index if e.size else 0, e.isolated,
                        e.iso_margin))
    return tuple(out)


def holder_index(view: Overlay, height: int, clearing: list[bytes],
                 paid: list[bytes]) -> HolderIndex:
    """The index equal to the state of `view` at the end-block of block `height` (the block's
    own writes applied: `clearing`, `paid`, the accounts whose clearing records and balances
    the block wrote, `written_accounts`)."""
    derived = derived_of(view)
    idx = derived.risk_holders
    if idx is None:
        idx = derived.risk_holders = HolderIndex()
    if idx.height != height - 1:
        idx.build(view)
    else:
        idx.sync(view, clearing)
        if idx.borrowers is not None:
            idx.sync_borrowers(view, paid)
    if idx.borrowers is None and pool_params(view):
        idx.build_borrowers(view)
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
        for p in prefixes:
            n = len(p)
            for k in o.written_keys(p):
                found[k[n:n + _ADDR]] = None
        o = o.parent
    return sorted(found)


def _committed(view: Overlay):
    """The store under the block's overlays (the state of the previous block)."""
    o = view
    while type(o) is Overlay:
        o = o.parent
    return o


def price_moves(view: Overlay) -> tuple[list[int], int | None]:
    """(perp markets whose holders' equity may have moved, the largest relative move of a mark
    or a collateral asset's oracle price in ppm of the previous one, rounded up; None when a
    price is new). A collateral price move counts for every perp market. A funding settlement
    (state.funding_index) counts as a further move of its market's mark by what one lot paid,
    in ppm of a lot's notional at the mark."""
    base = _committed(view)
    perps = [m for m in list_markets(view) if m.perp_like]
    moved: list[int] = []
    worst: int | None = 0
    keys = [(P_MARK + m.id.to_bytes(4, "big"), (m.id,), _funding_move(view, base, m))
            for m in perps]
    keys += [(P_PRICE + sym.encode(), tuple(m.id for m in perps), 0)
             for sym, _ in collateral(view)]
    for k, markets, funded in keys:
        now, before = _price_of(view.get(k)), _price_of(base.get(k))
        if now == before and not funded:
            continue
        moved.extend(markets)
        move = 0 if now == before else None if before is None or now is None else \
            -(-abs(now - before) * C.PPM // before)
        move = None if move is None or funded is None else move + funded
        worst = None if worst is None or move is None else max(worst, move)
    return sorted(dict.fromkeys(moved)), worst


def index_moves(view: Overlay) -> int | None:
    """The largest growth of a lending pool's borrow index in the block, in ppm of the
    previous one, rounded up (0: none, or no pools); None if a supply index fell."""
    pools = pool_params(view)
    if not pools:
        return 0
    base = _committed(view)
    worst = 0
    for sym in sorted(pools):
        k = P_POOL + sym.encode()
        now, before = view.get(k), base.get(k)
        if now == before or now is None or before is None:
            continue
        n, b = load(now), load(before)
        if n[2] < b[2]:   # [scaled supplied, scaled borrowed, supply index, borrow index, ...]
            return None
        worst = max(worst, -(-(n[3] - b[3]) * C.PPM // b[3]))
    return worst


def _funding_move(view: Overlay, base, m) -> int | None:
    """The block's funding settlement on market `m` as a move of its mark in ppm, rounded up
    (0: none; None: no mark to measure it by)."""
    k = P_FINDEX + m.id.to_bytes(4, "big")
    now, before = view.get(k), base.get(k)
    if now == before:
        return 0
    delta = abs(_index_of(now) - _index_of(before))
    mark = _price_of(view.get(P_MARK + m.id.to_bytes(4, "big")))
    if not delta:
        return 0
    if not mark:
        return None
    # |dI| / INDEX_SCALE quantums per lot, over a lot's notional lot * mark / base_scale
    return -(-delta * C.PPM * m.base_scale // (INDEX_SCALE * m.lot_size * mark))


def _index_of(raw) -> int:
    return 0 if raw is None else raw if type(raw) is int else load(raw)


def _price_of(raw) -> int | None:
    return None if raw is None else load(raw)[0]


def candidates(idx: HolderIndex, moved: list[int], extra: list[bytes], clearing: list[bytes],
               paid: list[bytes]) -> list[bytes]:
    """The accounts whose risk could have changed this block (see the module docstring;
    `clearing`, `paid`: as for `holder_index`); drops the safety band of every account whose
    balances the block wrote (`idx` is synced with the block's clearing records)."""
    for addr in paid:
        idx.safe_until.pop(addr, None)
    found: dict[bytes, None] = dict.fromkeys(clearing)
    found.update(dict.fromkeys(paid))
    if len(moved) == len(idx.markets) and all(mid in idx.markets for mid in moved):
        found.update(dict.fromkeys(idx.by_account))
    else:
        for mid in moved:
            found.update(dict.fromkeys(idx.markets.get(mid, ())))
    found.update(dict.fromkeys(extra))
    return sorted(found)
