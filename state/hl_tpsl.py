"""Hyperliquid tp/sl links: the records of order grouping (state.hl_grouping) and the hooks
through which the order life cycle keeps them.

Keys (market 4 bytes, order ids 8 bytes, big-endian):

    hltp/g/<m><parent>   [owner, [child fields, ...]]: a `normalTpsl` group waiting for its
                         parent order (resting) to fill; child fields are the native order
                         fields of each tp/sl, their size set when they are placed
    hltp/d/<m><parent>   filled lots: the parent left the book (filled, or cancelled after
                         filling that much, or 0); end-block places the children
                         (state.hl_grouping.end_block) and deletes both records
    hltp/w/<m><oid>      b"": a waiting trigger order that closes the whole position when it
                         fires (a `positionTpsl` order of size 0)
    hltp/s/<m><oid>      the id of its sibling: the tp and the sl of one group, one cancelled
                         when the other fires (Hyperliquid's siblingFilledCanceled)

Only a Hyperliquid (0x) account can have any of these (only state.hl_grouping writes them),
so each hook returns at once for an Ed25519 owner. Nothing is written unless an account uses
grouping: a chain that never does has none of these keys.
"""

from state.codec import encode, load
from state.hl_universe import ETH_ACCOUNT_PREFIX
from state.kv import KVView, Overlay

P_GROUP = b"hltp/g/"
P_DUE = b"hltp/d/"
P_WHOLE = b"hltp/w/"
P_SIBLING = b"hltp/s/"


def _mid(market: int, order_id: int) -> bytes:
    return market.to_bytes(4, "big") + order_id.to_bytes(8, "big")


def split_mid(key_tail: bytes) -> tuple[int, int]:
    return int.from_bytes(key_tail[:4], "big"), int.from_bytes(key_tail[4:12], "big")


def _val(raw):
    return raw if type(raw) in (list, int) else load(raw)


# -- normalTpsl groups -------------------------------------------------------------------

def put_group(view: Overlay, market: int, parent: int, owner: bytes, children: list) -> None:
    view.put(P_GROUP + _mid(market, parent), encode([owner, children]))


def group(view: KVView, market: int, parent: int) -> tuple[bytes, list] | None:
    """(owner, child fields) of the group waiting for this parent, or None."""
    raw = view.get(P_GROUP + _mid(market, parent))
    if raw is None:
        return None
    owner, children = _val(raw)
    return owner, children


def parent_left(view: Overlay, market: int, order_id: int, owner: bytes,
                filled_lots: int) -> None:
    """Hook: a resting order left the book (filled, or cancelled after filling
    `filled_lots`). If it is the parent of a waiting group, the group becomes due."""
    if not owner.startswith(ETH_ACCOUNT_PREFIX):
        return
    mid = _mid(market, order_id)
    if view.get(P_GROUP + mid) is not None:
        view.put(P_DUE + mid, encode(filled_lots))


def due(view: KVView) -> list[tuple[int, int, int]]:
    """(market, parent id, filled lots) of the groups whose parent left, in key order."""
    n = len(P_DUE)
    return [split_mid(k[n:]) + (_val(raw),) for k, raw in view.iterate(P_DUE)]


def take_group(view: Overlay, market: int, parent: int) -> tuple[bytes, list]:
    """The due group's (owner, child fields); both records are deleted."""
    mid = _mid(market, parent)
    owner, children = _val(view.get(P_GROUP + mid))
    view.delete(P_GROUP + mid)
    view.delete(P_DUE + mid)
    return owner, children


def all_keys(view: KVView, prefix: bytes) -> list[tuple[int, int]]:
    """(market, order id) of every record under one of the prefixes above (audits)."""
    n = len(prefix)
    return [split_mid(k[n:]) for k, _ in view.iterate(prefix)]


# -- waiting tp/sl orders: whole-position marks and siblings --------------------------------

def mark_whole_position(view: Overlay, market: int, order_id: int) -> None:
    view.put(P_WHOLE + _mid(market, order_id), b"")


def link_siblings(view: Overlay, market: int, a: int, b: int) -> None:
    view.put(P_SIBLING + _mid(market, a), encode(b))
    view.put(P_SIBLING + _mid(market, b), encode(a))


def whole_position(view: KVView, market: int, order_id: int) -> bool:
    return view.get(P_WHOLE + _mid(market, order_id)) is not None


def take_links(view: Overlay, market: int, order_id: int,
               owner: bytes) -> tuple[bool, int | None]:
    """Hook: a waiting trigger order leaves (fires or is cancelled). Returns (closes the whole
    position, its sibling's id or None) and deletes both marks."""
    if not owner.startswith(ETH_ACCOUNT_PREFIX):
        return False, None
    mid = _mid(market, order_id)
    whole = view.get(P_WHOLE + mid) is not None
    if whole:
        view.delete(P_WHOLE + mid)
    raw = view.get(P_SIBLING + mid)
    if raw is not None:
        view.delete(P_SIBLING + mid)
    return whole, None if raw is None else _val(raw)
