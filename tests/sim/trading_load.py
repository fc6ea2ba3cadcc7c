"""The trading workload of the driver simulation (tests/sim/driver_harness.py).

What this module owns
---------------------
`TradingLoad` picks, from one seeded `random.Random`, the next trading action of an account:
limit orders on both sides of the BTC and ETH perps and the BTC spot market in every time in
force, market orders, stop / take-profit trigger orders, reduce-only orders, client ids,
good-til-time expiries, cancels (by id, by client id, all), modifies (in place and
requeued), leverage changes and batches; and the validators' oracle updates, a seeded random
walk that keeps prices fresh and moves the mark across the trigger prices. Cancels and
modifies name orders that are open in the committed state of the node the tx is sent to
(read from its store), so most of them hit; a few name orders that are gone.

Prices and sizes are in wire units (quote quantums per whole base unit; base quantums), on the
markets of node/genesis.py's default exchange. Nothing here is random but the given rng, so a
(n, seed) of the simulation replays the same actions.
"""

from __future__ import annotations

import random

from state import orders as O
from state.kv import KVView

USDC = 10**6
BTC_PERP, ETH_PERP, BTC_SPOT = 1, 2, 3
TICK = {BTC_PERP: 100_000, ETH_PERP: 10_000, BTC_SPOT: 100_000}   # $0.1, $0.01, $0.1
LOT = {BTC_PERP: 10_000, ETH_PERP: 100_000, BTC_SPOT: 10_000}      # 0.0001 BTC, 0.001 ETH
BASE = {BTC_PERP: "BTC", ETH_PERP: "ETH", BTC_SPOT: "BTC"}
GTC, IOC, FOK, ALO = range(4)
LIMIT, MARKET, STOP_MARKET, STOP_LIMIT, TP_MARKET, TP_LIMIT = range(6)


class TradingLoad:
    """The next trading action or oracle update, drawn from `rng`."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.prices = {"BTC": 60_000 * USDC, "ETH": 3_000 * USDC}   # the oracle's random walk

    # -- oracle -----------------------------------------------------------------------------
    def oracle_action(self) -> list:
        """Move each price by up to 0.6% (a step of 0.2%) and return the `oracle` action."""
        for asset in sorted(self.prices):
            step = self.prices[asset] // 500
            self.prices[asset] = max(step, self.prices[asset] + self.rng.randint(-3, 3) * step)
        return ["oracle", [[a, self.prices[a]] for a in sorted(self.prices)]]

    # -- trading ----------------------------------------------------------------------------
    def action(self, view: KVView, owner: bytes, now_ms: int) -> list:
        """The next action of `owner`; `view`: the committed state of the node it goes to."""
        rng = self.rng
        mine = O.account_order_ids(view, owner)
        r = rng.random()
        if r < 0.50 or not mine:
            return self.order(now_ms)
        market, oid = rng.choice(mine)
        if r < 0.65:
            return ["cancel", market, oid if rng.random() < 0.9 else oid + 100_000]
        if r < 0.80:
            return self.modify(view, market, oid)
        if r < 0.85:
            return ["cancel_cloid", market, rng.randint(1, 12)]
        if r < 0.88:
            return ["cancel_all", rng.choice((0, market))]
        if r < 0.90:
            return ["set_leverage", rng.choice((BTC_PERP, ETH_PERP)), rng.choice((1, 5, 20, 40))]
        subs = [self.order(now_ms) for _ in range(rng.randint(1, 3))]
        subs.append(["cancel", market, oid])
        rng.shuffle(subs)
        return ["batch", subs]

    def order(self, now_ms: int) -> list:
        rng = self.rng
        market = rng.choice((BTC_PERP, BTC_PERP, BTC_PERP, ETH_PERP, BTC_SPOT))
        mid = self.prices[BASE[market]] // TICK[market]
        is_buy = rng.random() < 0.5
        ticks = mid + rng.randint(-20, 20)
        kind, trigger, reduce_only = LIMIT, 0, False
        tif = rng.choice((GTC, GTC, GTC, IOC, FOK, ALO))
        r = rng.random()
        if r < 0.12:                                     # a market order: worst price 2% away
            kind, tif = MARKET, rng.choice((IOC, FOK))
            ticks = mid * (102 if is_buy else 98) // 100
        elif r < 0.27 and market != BTC_SPOT:            # stop / take-profit
            kind = rng.choice((STOP_MARKET, STOP_LIMIT, TP_MARKET, TP_LIMIT))
            trigger = (mid + rng.randint(-mid // 100, mid // 100)) * TICK[market]
            tif = IOC if kind in (STOP_MARKET, TP_MARKET) else rng.choice((GTC, IOC))
        elif r < 0.35 and market != BTC_SPOT:            # reduce-only (refused when it would grow)
            tif, reduce_only = rng.choice((IOC, FOK)), True
        lots = rng.randint(1, 5) * (rng.choice((1, 1, 1, 10, 100)))
        cloid = rng.randint(1, 12) if rng.random() < 0.3 else 0
        expiry = now_ms + rng.randint(200, 5_000) if rng.random() < 0.15 else 0
        return ["order", market, is_buy, kind, max(ticks, 1) * TICK[market],
                lots * LOT[market], tif, reduce_only, trigger, cloid, expiry]

    def modify(self, view: KVView, market: int, oid: int) -> list:
        """Same price and not larger (in place, keeps priority) or a new price (requeued)."""
        rng = self.rng
        o = O.get_open(view, market, oid)
        if o is not None and rng.random() < 0.4:
            lots = max(1, o.size_lots - rng.randint(0, o.size_lots))
            return ["modify", market, oid, o.price_ticks * TICK[market], lots * LOT[market]]
        mid = self.prices[BASE[market]] // TICK[market]
        return ["modify", market, oid, (mid + rng.randint(-20, 20)) * TICK[market],
                rng.randint(1, 5) * LOT[market]]
