"""The data of websocket notifications, built from a committed block and committed state.

Every builder reads a `CommittedBlock` (node/read_model.py: the block's tx results and
begin/end-block events) or the node's committed state; none keeps anything between calls.
Numbers are decimal strings as in the JSON-RPC methods (rpc/trading_methods.py); each event
becomes `{"type": ..., "tx_index": i, <its attributes>}` where `tx_index` is the tx's index
in the block, or the number of txs for an end-block event (a triggered order, a liquidation,
funding). Shapes are documented in docs/PROTOCOL.md (websocket).
"""

from node.book_feed import BookUpdate, MarketView
from node.genesis import ms_to_rfc3339
from node.read_model import CommittedBlock
from state.event_text import price_text, size_text

ORDER_EVENTS = frozenset({"order", "cancel", "cancel_all", "trigger", "trigger_rejected"})
# Attributes that name an account in an event.
ACCOUNT_ATTRS = frozenset({"owner", "taker", "maker", "account", "counterparty", "sender",
                           "recipient"})


def block_events(cb: CommittedBlock):
    """(tx_index, event) of every event the block left, in order (accepted txs only)."""
    for i, r in enumerate(cb.tx_results):
        if r.code == 0:
            for e in r.events:
                yield i, e
    n = len(cb.tx_results)
    for e in cb.block_events:
        yield n, e


def event_json(index: int, e) -> dict:
    d = {"type": e.type, "tx_index": index}
    d.update(e.attrs)
    return d


def block_json(cb: CommittedBlock) -> dict:
    failed = sum(1 for r in cb.tx_results if r.code != 0)
    return {"height": str(cb.height), "hash": cb.block_hash.hex().upper(),
            "time": ms_to_rfc3339(cb.time_ms), "time_ms": str(cb.time_ms),
            "num_txs": len(cb.tx_results), "num_txs_failed": failed,
            "app_hash": cb.app_hash.hex().upper()}


def by_account(cb: CommittedBlock, addresses) -> dict[str, dict]:
    """For each of `addresses` (lower-case hex) that the block touched: its `orders`
    (order, cancel and trigger events it owns), `fills` (as taker or maker) and `events`
    (everything else naming it: liquidations, ADL, funding payments, transfers, leverage)."""
    out: dict[str, dict] = {}
    for i, e in block_events(cb):
        who = {v for k, v in e.attrs if k in ACCOUNT_ATTRS and v in addresses}
        for a in who:
            slot = out.get(a)
            if slot is None:
                slot = out[a] = {"orders": [], "fills": [], "events": []}
            kind = "orders" if e.type in ORDER_EVENTS else "fills" if e.type == "fill" \
                else "events"
            slot[kind].append(event_json(i, e))
    return out


def by_market(cb: CommittedBlock, event_type: str, markets) -> dict[str, list[dict]]:
    """Events of `event_type` ("fill", "funding") per market symbol in `markets` (None:
    every market)."""
    out: dict[str, list[dict]] = {}
    for i, e in block_events(cb):
        if e.type != event_type:
            continue
        sym = dict(e.attrs).get("market")
        if markets is None or sym in markets:
            out.setdefault(sym, []).append(event_json(i, e))
    return out


def _levels_json(m, levels) -> list[dict]:
    return [{"price": price_text(m, p), "size": size_text(m, s), "orders": n}
            for p, s, n in levels]


def book_snapshot_json(m, v: MarketView) -> dict:
    """A `book` subscription's snapshot: the view's levels, best first."""
    bids = sorted(((p, s, n) for p, (s, n) in v.bids.items()), reverse=True)
    asks = sorted((p, s, n) for p, (s, n) in v.asks.items())
    return {"market": m.symbol, "id": m.id, "height": str(v.height), "sequence": v.sequence,
            "bids": _levels_json(m, bids), "asks": _levels_json(m, asks)}


def book_update_json(m, u: BookUpdate) -> dict:
    """A `book` update: the levels that changed since sequence - 1 (size "0": removed)."""
    return {"market": m.symbol, "id": m.id, "height": str(u.height), "sequence": u.sequence,
            "bids": _levels_json(m, u.bids), "asks": _levels_json(m, u.asks)}
