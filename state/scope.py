"""Sub-transactions: the one way the state machine runs a unit of work that may be rejected.

What this module owns
---------------------
`SubTransaction(view, ctx)` opens a `Scope`, a context manager over a child overlay of `view`
and the root's book journal (state.books). Inside it, work goes through the scope: the child
overlay, the block context, the ledger (state.ledger), the books and the events so far. On a
normal exit the ledger is flushed, the book changes are kept and the child's writes are
merged into `view`; on a TxError the book changes are undone and the child's writes are
dropped, so a rejected unit leaves no trace. Any other exception is a bug:
it propagates and the node halts. A tx action, each item of a batch, each expiry and each
trigger of the block steps, and each governance change run in one.

    with SubTransaction(view, ctx) as scope:
        placement.place(scope, signer, fields)
    events = scope.events
"""

from state import constants as C, params
from state.derived import Derived, derived_of
from state.errors import TxError
from state.fees import tier_for
from state.kv import Overlay
from state.ledger import Ledger
from state.lending_pools import pool_params
from state.markets import Market, fee_params, funding_params, get as get_market


class Scope:
    """The working set of one sub-transaction, and the sub-transaction itself (a context
    manager: see the module docstring). Opened by `SubTransaction`."""

    __slots__ = ("view", "ctx", "derived", "books", "ledger", "events", "today", "quote",
                 "quote_decimals", "fee_account", "_params_version")

    def __init__(self, view: Overlay, ctx) -> None:
        """`view`: the sub-transaction's own (child) overlay."""
        self.view = view
        self.ctx = ctx
        derived: Derived = derived_of(view)
        self.derived = derived
        self.books = derived.books
        self.events: list = []
        p = derived.params.get("scope")  # (Derived.param, inline: one per sub-transaction)
        if p is None:
            p = derived.param("scope", _scope_params, view)
        self.quote, self.quote_decimals, self.fee_account, funded, pools = p
        self.ledger = Ledger(view, derived.published, self.events, funded, pools)
        self.today = ctx.time_ms // C.DAY_MS
        self._params_version = derived.params_version

    def __enter__(self) -> "Scope":
        self.books.begin()
        return self

    def _rollback(self) -> None:
        self.books.rollback()
        derived = self.derived
        if derived.params_version != self._params_version:
            derived.params_changed()  # parameters decoded from the dropped writes

    def __exit__(self, kind, exc, tb) -> bool:
        if exc is None:
            try:
                self.ledger.flush()  # may raise BALANCE_OVERFLOW: then rolled back
            except TxError:
                self._rollback()
                raise
            self.books.commit()
            self.view.commit()
        elif isinstance(exc, TxError):
            self._rollback()
        return False

    def market(self, market_id: int) -> Market:
        m = self.derived.markets.get(market_id)
        return m if m is not None else get_market(self.view, market_id)

    def book(self, market_id: int):
        b = self.books.books.get(market_id)  # (Books.book, inline: the book exists)
        return b if b is not None else self.books.book(self.view, market_id)

    def fee_tier(self, addr: bytes):
        """The account's fee tier for today: by its 30-day volume, which cannot change within
        a day (Account.volume_30d). The account is loaded either way (so written back)."""
        acct = self.ledger.account(addr)
        tiers = self.derived.fee_tiers
        key = (self.today, addr)
        t = tiers.get(key)
        if t is None:
            t = tier_for(fee_params(self.view), acct.volume_30d(self.today))
            if len(tiers) >= _MAX_TIERS:
                tiers.clear()
            tiers[key] = t
        return t


_MAX_TIERS = 200_000


def _scope_params(view) -> tuple[str, int, bytes, dict, dict]:
    """(quote asset, its decimals, the fee account, funding parameters, lending pool
    parameters): the parameters every sub-transaction needs, decoded together (rule 2 of
    state.derived)."""
    quote = params.quote_asset(view)
    return quote, params.asset_decimals(view, quote), fee_params(view).fee_account, \
        funding_params(view), pool_params(view)


def SubTransaction(view: Overlay, ctx) -> Scope:
    """`with SubTransaction(view, ctx) as scope:` (see the module docstring): a Scope over a
    child overlay of `view`."""
    return Scope(view.child(), ctx)
