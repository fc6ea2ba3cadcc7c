"""JSON-RPC methods the dashboard (rpc/dashboard/) needs and no other method answers in one call.

    validator_votes   each validator of the tip's set: did it sign the last commit (or did its
                      precommit for that height reach this node after the commit), the
                      last stored commit (of the last VOTE_WINDOW) that carries its
                      signature, and the newest vote this node's consensus received from it
    market_stats      per market, one row: best bid / ask, mark and oracle price, open
                      interest, last and predicted 8h funding rate, next funding time

Both read committed data only (the store's commits, the committed state and the read model's
books and open interest, node/read_model.py), like the exchange's methods
(rpc/trading_methods.py), with the same conventions: decimal strings for heights, prices and
sizes, lower-case hex addresses, `null` for what is not set (docs/PROTOCOL.md 8.3).
"""

from consensus.messages import PRECOMMIT
from consensus.types import Commit
from node.genesis import ms_to_rfc3339
from state import funding as F
from state import margin as MG
from state import markets as MS
from state import oracle as OR
from state import params
from state.amounts import format_amount
from state.codec import decode
from state.machine import last_block

VOTE_WINDOW = 100   # commits read back, at most, to find each validator's last signature


def _last_signatures(app, tip: int, wanted: set) -> dict[bytes, tuple[int, int]]:
    """validator -> (height, time_ms) of its signature in the newest stored commit that holds
    one, reading back from `tip` at most VOTE_WINDOW commits (stops once all are found)."""
    found: dict[bytes, tuple[int, int]] = {}
    for h in range(tip, max(tip - VOTE_WINDOW, 0), -1):
        raw = app.store.commit_bytes(h)
        if raw is None:
            break
        for s in Commit.from_wire(decode(raw)).sigs:
            if s.validator in wanted and s.validator not in found:
                found[s.validator] = (h, s.time_ms)
        if len(found) == len(wanted):
            break
    return found


def _consensus_votes(app, tip: int) -> tuple[dict, dict]:
    """(validator -> the newest vote this node's consensus verified from it, validator ->
    its precommit for `tip`), copied from the driver (consensus/driver.py `last_votes`,
    `precommits`); empty without a driver (no consensus running). Thread-safe: dict
    copies only."""
    d = getattr(app, "driver", None)
    if d is None:
        return {}, {}
    return dict(getattr(d, "last_votes", {})), dict(getattr(d, "precommits", {}).get(tip, {}))


def _vote_json(v) -> dict | None:
    if v is None:
        return None
    return {"height": str(v.height), "round": v.round,
            "type": "precommit" if v.type == PRECOMMIT else "prevote",
            "block_hash": v.block_hash.hex().upper() if v.block_hash else None,
            "time": ms_to_rfc3339(v.time_ms)}


async def validator_votes(app, p: dict) -> dict:
    """No parameters. The validators of the last committed height and their last votes."""
    tip = app.tip.height
    if tip == 0:
        return {"height": "0", "round": None, "window": str(VOTE_WINDOW), "validators": []}
    sel = app.selector(tip)
    found = _last_signatures(app, tip, set(sel.powers))
    last = Commit.from_wire(decode(app.store.commit_bytes(tip)))
    signed = {s.validator for s in last.sigs}
    seen, late = _consensus_votes(app, tip)
    rows = []
    for pk, power in sel.powers.items():
        h_t = found.get(pk)
        pc = late.get(pk)
        rows.append({"address": pk.hex(), "voting_power": str(power),
                     "signed_last_commit": pk in signed,
                     "precommitted_last_height": pk in signed or (
                         pc is not None and pc.block_hash == last.block_hash),
                     "last_signed_height": None if h_t is None else str(h_t[0]),
                     "last_signed_time": None if h_t is None else ms_to_rfc3339(h_t[1]),
                     "last_vote": _vote_json(seen.get(pk))})
    return {"height": str(tip), "round": last.round, "window": str(VOTE_WINDOW),
            "validators": rows}


def _rate(ppb: int) -> str:
    return format_amount(ppb, F.RATE_DECIMALS)


def _funding_json(view, m: MS.Market, fp: MS.FundingParams | None) -> dict:
    """The last settled and the predicted 8h rate and the next settlement time (nulls when
    the market pays no funding or has no window or settlement yet)."""
    last = F.history(view, m.id)[-1:] if fp is not None else []
    acc = F.read_accumulator(view, m.id) if fp is not None else None
    predicted = next_ms = None
    if acc is not None:
        w = F.Window(acc.window_start_ms, acc.window_start_ms + fp.interval_ms,
                     acc.weighted_sum, acc.weight_ms)
        predicted, next_ms = _rate(F.rate_8h(F.average_premium(w), fp)), str(w.end_ms)
    return {"funding_rate_8h": _rate(last[0].rate_8h) if last else None,
            "predicted_funding_rate_8h": predicted, "next_funding_ms": next_ms}


async def market_stats(app, p: dict) -> dict:
    """No parameters. One row per market (see the module docstring)."""
    view = app.store.state
    qdec = params.asset_decimals(view, params.quote_asset(view))

    def price(units: int | None) -> str | None:
        return None if units is None else format_amount(units, qdec)

    _, oi = app.read_model.open_interest.by_market()
    fps = MS.funding_params(view)
    rows = []
    for m in MS.list_markets(view):
        bids, asks = app.read_model.books.book(m.id).l2_snapshot(1)
        o = OR.price(view, m.base)
        rows.append({
            "market": m.symbol, "id": m.id, "kind": MS.KIND_NAMES[m.kind],
            "best_bid": price(bids[0].price_ticks * m.tick_size) if bids else None,
            "best_ask": price(asks[0].price_ticks * m.tick_size) if asks else None,
            "mark_price": price(MG.mark_price(view, m)) if m.perp_like else None,
            "oracle_price": price(o[0]) if o else None,
            "open_interest": format_amount(oi.get(m.id, 0) * m.lot_size, m.base_decimals)
            if m.perp_like else None,
            **_funding_json(view, m, fps.get(m.id) if m.perp_like else None)})
    return {"height": str(last_block(view)[0]), "markets": rows}


DASHBOARD_METHODS = {fn.__name__: fn for fn in (validator_votes, market_stats)}
