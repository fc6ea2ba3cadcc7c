"""The funding index of a perp market, and what a position owes by it (dYdX v4's scheme).

What this module owns
---------------------
Funding (state.funding) does not pay each position at each settlement: that would cost one
balance write per position per interval. Instead each funded market keeps a cumulative index

    findex/<market id:4> -> I    (quote quantums per lot, times INDEX_SCALE, signed)

and each settlement adds to it what one long lot pays in that window,

    dI = lot_size x oracle x rate x INDEX_SCALE / (10^base_decimals x RATE_SCALE)
         (rounded toward zero; the same dI for every position, so it moves no money by itself)

Each position stores the index it last settled at (`Entry.funding_index`). A position of s lots
(long > 0) owes

    owed = ceil(s x (I - I_entry) / INDEX_SCALE)   quote quantums

(negative: it is owed that much). The rounding is for the protocol: a payer pays the ceiling, a
receiver receives the floor. What a position owes counts in its account's equity at once
(state.margin) and is settled into the quote balance, against the funding pool (FUNDING_POOL,
an account no key signs for), the next time the ledger loads the account (state.ledger): a
trade, a fill, a cancel, a liquidation. So no position can change size without first paying
what it owes, and equity never jumps when the settlement happens. Open interest long = short,
so the pool's balance plus what every position owes is never negative: it is the rounding
kept by the protocol (state.invariants checks it).
"""

from state.codec import load
from state.derived import load_memo
from state.hashing import sha256
from state.kv import KVView, Overlay
from state.markets import RATE_SCALE, Market

P_FINDEX = b"findex/"
INDEX_SCALE = 10**6
FUNDING_POOL = sha256(b"perpchain/funding-pool")


def _key(market_id: int) -> bytes:
    return P_FINDEX + market_id.to_bytes(4, "big")


def _decode(raw) -> int:
    return raw if type(raw) is int else load(raw)


def current(view: KVView, market_id: int) -> int:
    """The market's funding index now (0 before its first settlement)."""
    v = load_memo(view, _key(market_id), "findex", _decode)
    return 0 if v is None else v


def put(view: Overlay, market_id: int, index: int) -> None:
    view.put(_key(market_id), index)


def step(m: Market, oracle_px: int, rate: int) -> int:
    """What one long lot pays in a window at `rate` (ppb) and oracle price `oracle_px`, in
    quote quantums x INDEX_SCALE, rounded toward zero."""
    num = m.lot_size * oracle_px * rate * INDEX_SCALE
    den = m.base_scale * RATE_SCALE
    return num // den if num >= 0 else -((-num) // den)


def owed(size_lots: int, index_delta: int) -> int:
    """What a position of `size_lots` owes for an index move of `index_delta` (negative: is
    owed), rounded up: payers pay the ceiling, receivers receive the floor."""
    return -((-size_lots * index_delta) // INDEX_SCALE)
