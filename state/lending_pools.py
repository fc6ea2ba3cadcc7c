"""Lending pools: one per asset with a `lending` genesis section; the records, the scaled
balances and how a balance change moves a pool's totals.

What this module owns
---------------------
    params/lending/<symbol>  -> state.lending.PoolParams (genesis, governance; the two
                                maintenance weights only when one is set: L.stored)
    lend/pool/<symbol>       -> [scaled supplied, scaled borrowed, supply index, borrow index,
                                 last accrual ms (0: from the end of the block that made the
                                 first borrow), interest total, reserve total, history seq,
                                 dust]
    lend/optout/<addr32>     -> 1 (the account's positive balances are not lent)
    lend/flow/<addr32><sym>  -> the real quantums credited to the balance (signed): what the
                                balance would be without interest (interest = real - flow)

For an asset with a pool the balance record `acct/bal/<addr><sym>` (state.ledger, its only
writer, which calls `store` here) holds a *scaled* amount:
  * negative: borrowed, real = -ceil(-s * borrow index / INDEX_SCALE) (every account but the
    protocol's own, below);
  * positive: supplied, real = floor(s * supply index / INDEX_SCALE), unless the account opted
    out (`set_lending`), whose positive balance is raw: it earns nothing and is not lent.
The protocol's own accounts (the perp settlement pool, the funding pool, the insurance fund:
`RAW_ACCOUNTS`) hold raw balances of either sign; they neither earn nor pay.
An asset without a pool keeps raw balances everywhere, so a chain without pools is unchanged.

The pool's totals are exactly the sums of its accounts' scaled balances (state.invariants), so
accrual (state.lending_accrual) touches O(assets) records per block, never an account.

Dust: every rounding (a credit converted to a scaled amount against the account, the pool's
real totals floored / rounded up as a whole, the supply index floored at accrual) leaves the
protocol with quantums no account owns. The pool's `dust` collects them, so that exactly
    cash = supplied - borrowed + dust
where cash is the asset's supply less what is held outside the pool (raw balances of opted-out
and protocol accounts, isolated margins): `store` and `convert` add, to it, what moved into
the pool (the real credit less what the account holds raw) less what the pool's
supplied - borrowed moved; accrual adds the suppliers' share less what the supply index gave
them (state.lending_accrual). Dust is never negative and only grows.
"""

from typing import NamedTuple

from state import lending as L
from state.codec import encode, load
from state.derived import derived_of, load_memo, param_of
from state.errors import Code, TxError
from state.hashing import sha256
from state.kv import KVView, Overlay

P_PARAMS = b"params/lending/"
P_POOL = b"lend/pool/"
P_OPTOUT = b"lend/optout/"
P_FLOW = b"lend/flow/"
# state.settlement.POOL, state.funding_index.FUNDING_POOL, state.insurance.INSURANCE_FUND
# (their labels repeated here: those modules import the ledger, which imports this one).
RAW_ACCOUNTS = tuple(sha256(label) for label in (
    b"perpchain/perp-settlement-pool", b"perpchain/funding-pool",
    b"perpchain/insurance-fund"))
RAW, OPTED_OUT, LENDING = 0, 1, 2


class Pool(NamedTuple):
    scaled_supplied: int
    scaled_borrowed: int
    supply_index: int
    borrow_index: int
    last_ms: int
    interest_total: int     # real quantums of interest charged to borrowers, ever
    reserve_total: int      # of which went to the insurance fund
    history_seq: int        # history records written (state.lending_accrual)
    dust: int = 0           # quantums of rounding the protocol keeps (module docstring)

    @property
    def supplied(self) -> int:
        return L.supplied_real(self.scaled_supplied, self.supply_index)

    @property
    def borrowed(self) -> int:
        return L.borrowed_real(self.scaled_borrowed, self.borrow_index)

    @property
    def net(self) -> int:
        """supplied - borrowed (real quantums): the pool's cash less its dust."""
        return self.supplied - self.borrowed


def new_pool(time_ms: int) -> Pool:
    return Pool(0, 0, L.INDEX_SCALE, L.INDEX_SCALE, time_ms, 0, 0, 0, 0)


# -- parameters -------------------------------------------------------------------------------

def put_params(view: Overlay, symbol: str, p: L.PoolParams) -> None:
    view.put(P_PARAMS + symbol.encode(), encode(L.stored(p)))
    derived_of(view).params_changed()


def pool_params(view: KVView) -> dict[str, L.PoolParams]:
    """symbol -> PoolParams of every asset with a pool (empty: no lending on this chain)."""
    return param_of(view, "lending", _decode_params)


def _decode_params(view: KVView) -> dict[str, L.PoolParams]:
    n = len(P_PARAMS)
    return {k[n:].decode(): L.PoolParams(*load(v)) for k, v in view.iterate(P_PARAMS)}


# -- pool records -----------------------------------------------------------------------------

def _decode_pool(raw) -> Pool:
    return Pool(*load(raw))


def get_pool(view: KVView, symbol: str) -> Pool:
    p = load_memo(view, P_POOL + symbol.encode(), "lend_pool", _decode_pool)
    if p is None:
        raise TxError(Code.UNKNOWN_ASSET, f"{symbol} has no lending pool")
    return p


def put_pool(view: Overlay, symbol: str, p: Pool) -> None:
    view.put(P_POOL + symbol.encode(), encode(list(p)))


# -- accounts ---------------------------------------------------------------------------------

def mode(view: KVView, addr: bytes) -> int:
    if addr in RAW_ACCOUNTS:
        return RAW
    return OPTED_OUT if view.get(P_OPTOUT + addr) is not None else LENDING


def real(view: KVView, addr: bytes, symbol: str, stored: int, how: int | None = None) -> int:
    """The real quantums of a stored balance of a pooled asset (rounded against the account)."""
    if stored == 0:
        return 0
    how = mode(view, addr) if how is None else how
    if how == RAW or (stored > 0 and how == OPTED_OUT):
        return stored
    p = get_pool(view, symbol)
    if stored > 0:
        return L.supplied_real(stored, p.supply_index)
    return -L.borrowed_real(-stored, p.borrow_index)


def _scaled(p: Pool, how: int, old: int, old_real: int, delta: int) -> int:
    """The new stored amount after crediting `delta` real quantums (against the account): the
    change is converted on its own while the sign holds, the whole balance when it flips."""
    new_real = old_real + delta
    if how == RAW:
        return new_real
    if new_real > 0 and how == OPTED_OUT:
        return new_real
    if new_real > 0:
        if old > 0:
            step = L.to_scaled_supplied(delta, p.supply_index) if delta > 0 else \
                -L.to_scaled_borrowed(-delta, p.supply_index)
            return old + step
        return L.to_scaled_supplied(new_real, p.supply_index)
    if new_real < 0:
        if old < 0:
            step = L.to_scaled_supplied(delta, p.borrow_index) if delta > 0 else \
                -L.to_scaled_borrowed(-delta, p.borrow_index)
            return old + step
        return -L.to_scaled_borrowed(-new_real, p.borrow_index)
    return 0


def credited_real(view: KVView, addr: bytes, symbol: str, stored: int, delta: int) -> int:
    """The real balance that crediting `delta` to stored `stored` would leave (nothing
    written)."""
    how = mode(view, addr)
    old_real = real(view, addr, symbol, stored, how)
    if not delta:
        return old_real
    return real(view, addr, symbol, _scaled(get_pool(view, symbol), how, stored, old_real,
                                            delta), how)


def _totals(how: int, stored: int) -> tuple[int, int]:
    """(scaled supplied, scaled borrowed) a stored balance contributes to its pool."""
    if stored > 0:
        return (stored, 0) if how == LENDING else (0, 0)
    if stored < 0 and how != RAW:
        return 0, -stored
    return 0, 0


def store(view: Overlay, addr: bytes, symbol: str, old: int, delta: int) -> int:
    """Credit `delta` real quantums to a stored balance `old` of a pooled asset: the new stored
    amount (the caller writes it), with the pool's totals and dust and the account's flow
    updated."""
    how = mode(view, addr)
    p = get_pool(view, symbol)
    new = _scaled(p, how, old, real(view, addr, symbol, old, how), delta)
    if how == RAW:
        return new      # held outside the pool: its totals, cash and dust do not move
    os_, ob = _totals(how, old)
    ns, nb = _totals(how, new)
    q = p
    if (os_, ob) != (ns, nb):
        borrowed = p.scaled_borrowed - ob + nb
        # a first borrow restarts the pool's clock at the end of this block (accrual)
        last = 0 if p.scaled_borrowed == 0 and borrowed else p.last_ms
        q = p._replace(scaled_supplied=p.scaled_supplied - os_ + ns, scaled_borrowed=borrowed,
                       last_ms=last)
    into_pool = delta - _raw_part(how, new) + _raw_part(how, old)
    dust = into_pool - (q.net - p.net if q is not p else 0)
    if dust:
        q = q._replace(dust=p.dust + dust)
    if q is not p:
        put_pool(view, symbol, q)
    if delta:
        key = P_FLOW + addr + symbol.encode()
        raw = view.get(key)
        flow = delta + (0 if raw is None else raw if type(raw) is int else load(raw))
        if flow:
            view.put(key, flow)
        else:
            view.delete(key)
    return new


def _raw_part(how: int, stored: int) -> int:
    """What a non-protocol account's stored balance holds outside the pool (an opted-out
    account's positive balance)."""
    return stored if how == OPTED_OUT and stored > 0 else 0


def flow(view: KVView, addr: bytes, symbol: str) -> int:
    raw = view.get(P_FLOW + addr + symbol.encode())
    return 0 if raw is None else raw if type(raw) is int else load(raw)


def available(p: Pool) -> int:
    """Quantums the pool can pay out now: supplied less borrowed."""
    return max(p.supplied - p.borrowed, 0)


def convert(view: Overlay, symbol: str, stored: int, to_lending: bool) -> int:
    """A positive raw balance made lent (`to_lending`), or a lent one made raw: the new stored
    amount, with the pool's scaled supplied total and dust updated (rounded against the
    account)."""
    p = get_pool(view, symbol)
    if to_lending:
        new = L.to_scaled_supplied(stored, p.supply_index)
        q = p._replace(scaled_supplied=p.scaled_supplied + new)
        put_pool(view, symbol, q._replace(dust=p.dust + stored - (q.net - p.net)))
        return new
    r = L.supplied_real(stored, p.supply_index)
    if r > available(p):
        raise TxError(Code.POOL_ILLIQUID,
                      f"the {symbol} pool can pay out {available(p)} quantums now; taking "
                      f"{r} quantums out of lending needs more (it is lent to borrowers)")
    q = p._replace(scaled_supplied=p.scaled_supplied - stored)
    put_pool(view, symbol, q._replace(dust=p.dust - r - (q.net - p.net)))
    return r


def set_opted_out(view: Overlay, addr: bytes, opted_out: bool) -> None:
    if opted_out:
        view.put(P_OPTOUT + addr, encode(1))
    else:
        view.delete(P_OPTOUT + addr)
