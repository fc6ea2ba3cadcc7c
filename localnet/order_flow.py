"""The order flow of `perpchain bench`: signed txs from many accounts that place, cross and
cancel orders in one perp market.

Tx k of the stream (round-robin over the accounts) is, by k mod 10:
* 0-3 place: a GTC limit order of 1-3 lots resting 1-20 ticks from the mid, bids and asks
  alternating, with a fresh client order id that the account remembers, expiring after
  `ORDER_LIFETIME_S` (the chain cancels it then, so the book stays bounded whatever fills);
* 4-6 cross: an IOC limit of 1-3 lots 30 ticks through the mid, which takes resting orders
  (a taker that meets its own order cancels it: the chain's self-trade rule);
* 7-9 cancel: the account's oldest remembered order, by client id, once it was signed at
  least `CANCEL_AFTER_S` ago (so it has had time to commit; else the tx is a place). It may
  have filled meanwhile: then the node refuses the cancel, and the bench counts that.
So the book stays near a fixed depth and positions stay small. Nonces are a base (now in
ms) plus a per-account counter, so they are unique and increase per account.
"""

from collections import deque
from dataclasses import dataclass

from node.keys import KeyPair
from state.tx import build_tx

KINDS = ("place", "place", "place", "place", "cross", "cross", "cross", "cancel", "cancel",
         "cancel")
RESTING_TICKS = 20
CROSS_TICKS = 30
MAX_REMEMBERED = 50   # per account: older client ids are forgotten (they filled or rest on)
CANCEL_AFTER_S = 2.0
ORDER_LIFETIME_S = 60


@dataclass(frozen=True)
class MarketSpec:
    """A market's id and wire units (from the `markets` and `mark_prices` methods)."""

    id: int
    symbol: str
    tick_units: int
    lot_units: int
    mid_units: int


def market_spec(client, symbol: str) -> MarketSpec:
    """The market's units and a mid (its mark price rounded to a tick) from the node."""
    from state.amounts import parse_amount

    m = client.market(symbol)
    if m["kind"] == "spot":
        raise ValueError(f"{symbol} is a spot market: the bench trades a perp")
    marks = {x["id"]: x for x in client.mark_prices()["marks"]}
    mark = parse_amount(marks[m["id"]]["mark_price"], client.decimals(m["quote"]))
    tick = int(m["tick_size_units"])
    return MarketSpec(m["id"], m["symbol"], tick, int(m["lot_size_units"]), mark // tick * tick)


class OrderFlow:
    """Signs the stream of txs described above, on demand (`take(n)`)."""

    def __init__(self, chain_id: str, keys: list[KeyPair], market: MarketSpec, nonce_base_ms: int):
        self.chain_id, self.keys, self.m = chain_id, keys, market
        self.nonce_base_ms = nonce_base_ms
        self.k = 0
        self.sent = [0] * len(keys)         # txs signed per account (its nonce offset)
        self.cloids = [0] * len(keys)
        self.resting: list[deque] = [deque(maxlen=MAX_REMEMBERED) for _ in keys]
        self.mix = {"place": 0, "cross": 0, "cancel": 0}

    def action(self, acct: int, k: int, now_s: float, wall_ms: int) -> tuple[str, list]:
        kind = KINDS[k % 10]
        rest = self.resting[acct]
        if kind == "cancel" and (not rest or rest[0][1] > now_s - CANCEL_AFTER_S):
            kind = "place"
        m, lots = self.m, 1 + (k // 10) % 3
        is_buy = (k // 10 + k) % 2 == 0
        if kind == "cancel":
            return kind, ["cancel_cloid", m.id, rest.popleft()[0]]
        if kind == "cross":
            px = m.mid_units + (CROSS_TICKS if is_buy else -CROSS_TICKS) * m.tick_units
            return kind, ["order", m.id, is_buy, 0, px, lots * m.lot_units, 1, False, 0, 0, 0]
        ticks = 1 + (k * 7) % RESTING_TICKS
        px = m.mid_units + (-ticks if is_buy else ticks) * m.tick_units
        self.cloids[acct] += 1
        rest.append((self.cloids[acct], now_s))
        return kind, ["order", m.id, is_buy, 0, px, lots * m.lot_units, 0, False, 0,
                      self.cloids[acct], wall_ms + ORDER_LIFETIME_S * 1000]

    def take(self, n: int, now_s: float, wall_ms: int) -> list[bytes]:
        """The next n signed txs; `now_s` is a monotonic clock reading (cancel ages),
        `wall_ms` the time in ms (expiries)."""
        out = []
        for _ in range(n):
            k = self.k
            acct = k % len(self.keys)
            kind, act = self.action(acct, k // len(self.keys) + acct, now_s, wall_ms)
            self.mix[kind] += 1
            out.append(build_tx(self.chain_id, self.keys[acct].private,
                                self.nonce_base_ms + self.sent[acct], act))
            self.sent[acct] += 1
            self.k += 1
        return out
