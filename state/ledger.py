"""The ledger: the only writer of balances, supplies and clearing records.

Keys:
    acct/bal/<addr32><symbol>   -> int quantums (signed: lending will allow negatives)
    supply/<symbol>             -> int quantums of the asset in existence
    clr/<addr32>                -> the account's clearing record (state.positions), which also
                                   holds the margins of isolated positions (state.isolated)
Invariant (state.invariants): for each asset, the sum of balances equals its supply (for the
quote asset: balances plus isolated margins).

Two ways in:
* single changes (`mint`, `move`): genesis, the faucet, transfers;
* a `Ledger`: the working set of one sub-transaction of trading. Accounts are loaded once
  (`account`) and written back by `flush`; balance changes (`credit`) are summed per
  (account, asset) and written by `flush`, so a maker hit ten times costs one write.
Every account a Ledger loads is written back by `flush`, changed or not (an account without a
record is deleted again): which keys a block writes is part of its app hash, so what a rule
loads is part of the rule. A zero credit is no credit.

Loading an account into a Ledger first settles what its positions owe in funding
(state.funding_index) into its quote balance, against the funding pool, with one
`funding_payment` event per position that paid or received; `flush` stamps every entry of a
funded market with the market's current index, so a position opened meanwhile starts there.

For an asset with a lending pool the stored balance is a scaled amount (state.lending_pools):
`balance` returns the real one, and every write goes through `lending_pools.store`.

Values stay decoded in overlays (state.kv: an int or a list stands for its encoding), and an
Account written by `flush` is handed back to the next `Ledger.account` of the same root
without decoding while the record it was written as is still the one the view holds
(state.derived rule 3: a stored list is never mutated, every write is a new object).
"""

from state import constants as C, funding_index as FI, lending_pools as LP, params
from state.amounts import format_amount
from state.codec import load
from state.derived import derived_of
from state.errors import Code, TxError
from state.events import Event
from state.kv import KVView, Overlay
from state.markets import funding_params, get as get_market
from state.positions import P_CLEARING, Account, account_from_stored, get_stored

P_BAL = b"acct/bal/"
P_SUPPLY = b"supply/"
_MAX_PUBLISHED = 100_000


def balance(view: KVView, addr: bytes, asset: str) -> int:
    """The real balance: the stored record, unscaled for an asset with a lending pool."""
    v = stored_balance(view, addr, asset)
    return LP.real(view, addr, asset, v) if v and asset in LP.pool_params(view) else v


def balances(view: KVView, addr: bytes) -> dict[str, int]:
    prefix = P_BAL + addr
    pools = LP.pool_params(view)
    out = {k[len(prefix):].decode(): load(v) for k, v in view.iterate(prefix)}
    for asset in sorted(pools):
        if asset in out:
            out[asset] = LP.real(view, addr, asset, out[asset])
    return out


def stored_balance(view: KVView, addr: bytes, asset: str) -> int:
    """The balance record as stored (scaled for an asset with a lending pool; without a pool,
    the balance)."""
    key = P_BAL + addr + asset.encode()
    raw = view.get_stored(key) if type(view) is Overlay else view.get(key)
    return 0 if raw is None else raw if type(raw) is int else load(raw)


def read_account(view: KVView, addr: bytes) -> Account:
    """The account's clearing record for reading only (the caller must not change it): the
    Account a Ledger published when it wrote that very record (state.derived rule 3), else a
    decode. It may also hold entries that are empty or flat with a funding index, which the
    record leaves out (state.positions `to_stored`)."""
    stored = get_stored(view, addr)
    hit = derived_of(view).published.get(addr)
    return hit[1] if hit is not None and hit[0] is stored else account_from_stored(addr, stored)


def supply(view: KVView, asset: str) -> int:
    raw = view.get(P_SUPPLY + asset.encode())
    return 0 if raw is None else load(raw)


def _add_balance(view: Overlay, addr: bytes, asset: str, delta: int) -> None:
    old = stored_balance(view, addr, asset)
    new = LP.store(view, addr, asset, old, delta) if asset in LP.pool_params(view) else \
        old + delta
    _put_balance(view, P_BAL + addr + asset.encode(), new)


def _put_balance(view: Overlay, key: bytes, amount: int) -> None:
    if not -C.MAX_INT64 <= amount <= C.MAX_INT64:
        raise TxError(Code.BALANCE_OVERFLOW, "balance would leave the int64 range")
    if amount == 0:
        view.delete(key)
    else:
        view.put(key, amount)


def mint(view: Overlay, addr: bytes, asset: str, amount: int) -> None:
    """Create `amount` of `asset` in `addr` (genesis and faucet only)."""
    total = supply(view, asset) + amount
    if total > C.MAX_INT64:
        raise TxError(Code.BALANCE_OVERFLOW, f"total supply of {asset} would leave the int64 range")
    _add_balance(view, addr, asset, amount)
    view.put(P_SUPPLY + asset.encode(), total)


def move(view: Overlay, src: bytes, dst: bytes, asset: str, amount: int, decimals: int) -> None:
    """Move `amount` quantums; the source must hold them (a transfer never borrows). Out of
    a lending pool (state.lending_limits.check_transfer) it needs the pool's cash."""
    have = balance(view, src, asset)
    if have < amount:
        raise TxError(Code.INSUFFICIENT_BALANCE,
                      f"balance {format_amount(have, decimals)} {asset} is less than "
                      f"{format_amount(amount, decimals)} {asset}")
    if asset in LP.pool_params(view):
        from state import lending_limits  # (it imports this module)
        lending_limits.check_transfer(view, src, dst, asset, amount)
    _add_balance(view, src, asset, -amount)
    _add_balance(view, dst, asset, amount)


def pay_reserve(view: Overlay, addr: bytes, asset: str, amount: int) -> None:
    """Credit a lending pool's reserve: interest the borrowers now owe, so no new supply
    (state.lending_accrual)."""
    _add_balance(view, addr, asset, amount)


def set_stored(view: Overlay, addr: bytes, asset: str, stored: int) -> None:
    """Rewrite a balance record as stored (state.lending_actions, converting a balance between
    lent and not lent; it keeps the pool's totals)."""
    _put_balance(view, P_BAL + addr + asset.encode(), stored)


def burn(view: Overlay, addr: bytes, asset: str, amount: int) -> None:
    """Destroy `amount` of `asset` from `addr` (a withdrawal; the balance may go negative:
    a borrow, which the caller has checked)."""
    _add_balance(view, addr, asset, -amount)
    view.put(P_SUPPLY + asset.encode(), supply(view, asset) - amount)


class Ledger:
    """One sub-transaction's accounts and pending balance changes (see the module docstring)."""

    __slots__ = ("view", "published", "accounts", "deltas", "events", "funded", "pools")

    def __init__(self, view: Overlay, published: dict | None = None,
                 events: list | None = None, funded: dict | None = None,
                 pools: dict | None = None):
        """`funded`, `pools`: funding_params(view) and lending_pools.pool_params(view), if
        the caller has them (state.scope)."""
        self.view = view
        self.published = derived_of(view).published if published is None else published
        self.accounts: dict[bytes, Account] = {}
        self.deltas: dict[tuple[bytes, str], int] = {}
        self.events = [] if events is None else events
        # market id -> FundingParams; symbol -> lending PoolParams (decoded once)
        self.funded = funding_params(view) if funded is None else funded
        self.pools = LP.pool_params(view) if pools is None else pools

    def account(self, addr: bytes) -> Account:
        """The account's clearing record, loaded once (written back by `flush`), with what
        its positions owed in funding settled."""
        a = self.accounts.get(addr)
        if a is None:
            stored = get_stored(self.view, addr)
            hit = self.published.pop(addr, None)
            a = hit[1] if hit is not None and hit[0] is stored else \
                account_from_stored(addr, stored)
            if self.funded and addr != FI.FUNDING_POOL:
                self._settle_funding(a)
            self.accounts[addr] = a
        return a

    def _settle_funding(self, acct: Account) -> None:
        """Move what each funded position owes (state.funding_index) between the account's
        quote balance (an isolated position's margin: state.isolated) and the funding pool;
        each entry then starts from the current index."""
        view, quote = self.view, None
        for mid in sorted(acct.entries):
            if mid not in self.funded:
                continue
            e = acct.entries[mid]
            now = FI.current(view, mid)
            if e.size and e.funding_index != now:
                owed = FI.owed(e.size, now - e.funding_index)
                if owed:
                    quote = quote or params.quote_asset(view)
                    if e.isolated:  # an isolated position pays from its margin
                        e.iso_margin -= owed
                    else:
                        self.credit(acct.addr, quote, -owed)
                    self.credit(FI.FUNDING_POOL, quote, owed)
                    self.events.append(_payment_event(view, acct.addr, mid, e.size, -owed,
                                                      quote))
            e.funding_index = now

    def credit(self, addr: bytes, asset: str, amount: int) -> None:
        """Add `amount` (signed) to the account's balance at `flush`."""
        if amount:
            k = (addr, asset)
            d = self.deltas
            d[k] = d.get(k, 0) + amount

    def credit_sum(self, addr: bytes, asset: str, total: int) -> None:
        """Add `total`, the sum of several credits of which at least one was non-zero (so the
        balance is written at `flush` even if they cancel out, as those credits would)."""
        k = (addr, asset)
        d = self.deltas
        d[k] = d.get(k, 0) + total

    def flush(self) -> None:
        """Write back every loaded account and the summed balance changes, then forget them.
        (Their order decides only which of several overflowing balances raises first; they
        all raise the same error.)"""
        if not self.accounts and not self.deltas:
            return
        view = self.view
        published = self.published
        for addr, acct in self.accounts.items():
            if self.funded:
                for mid, e in acct.entries.items():
                    if mid in self.funded:
                        e.funding_index = FI.current(view, mid)
            stored = acct.to_stored()
            if stored is None:
                view.delete(P_CLEARING + addr)
            else:
                view.put(P_CLEARING + addr, stored)
                published[addr] = (stored, acct)
        if len(published) > _MAX_PUBLISHED:
            published.clear()  # (only speed is lost)
        self.accounts = {}
        pools = self.pools
        for (addr, asset), delta in self.deltas.items():
            key = P_BAL + addr + asset.encode()
            raw = view.get_stored(key)
            old = 0 if raw is None else raw if type(raw) is int else load(raw)
            _put_balance(view, key, LP.store(view, addr, asset, old, delta)
                         if pools and asset in pools else delta + old)
        self.deltas = {}


def _payment_event(view: KVView, addr: bytes, market_id: int, size_lots: int, amount: int,
                   quote: str) -> Event:
    m = get_market(view, market_id)
    return Event("funding_payment", (
        ("account", addr.hex()), ("market", m.symbol),
        ("size", format_amount(size_lots * m.lot_size, m.base_decimals)),
        ("amount", format_amount(amount, params.asset_decimals(view, quote)))))
