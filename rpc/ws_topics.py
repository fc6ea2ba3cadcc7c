"""Websocket subscription topics: the `subscribe` params and what they name.

    {"topic": "blocks"}                               every committed block
    {"topic": "account", "address": "<64 hex>"}       an account's orders, fills, positions
    {"topic": "book",    "market": "BTC-USD" | 0}     a market's L2 book: snapshot + diffs
    {"topic": "trades",  "market": "BTC-USD" | 0}     a market's fills
    {"topic": "funding", "market": "BTC-USD" | 0}     a market's funding settlements
    {"topic": "funding"}                              ... of every market

A `Topic` is the canonical form (markets by id, addresses as lower-case hex), so the same
subscription written two ways is one topic. Every malformed param raises RPCError
INVALID_PARAMS naming what is wrong and what is allowed (docs/PROTOCOL.md, websocket).
"""

from typing import NamedTuple

from rpc import params as P
from rpc.errors import RPCCode, RPCError

BLOCKS, ACCOUNT, BOOK, TRADES, FUNDING = "blocks", "account", "book", "trades", "funding"
TOPICS = (BLOCKS, ACCOUNT, BOOK, TRADES, FUNDING)
# The keys each topic takes (besides "topic"), and whether they are required.
_KEYS = {BLOCKS: {}, ACCOUNT: {"address": True}, BOOK: {"market": True},
         TRADES: {"market": True}, FUNDING: {"market": False}}


class Topic(NamedTuple):
    kind: str
    market_id: int | None = None
    market: str | None = None       # the market's symbol (for messages)
    address: str | None = None      # lower-case hex

    def describe(self) -> str:
        return {BLOCKS: "blocks", ACCOUNT: f"account {self.address}",
                BOOK: f"book {self.market}", TRADES: f"trades {self.market}",
                FUNDING: f"funding {self.market or '(all markets)'}"}[self.kind]

    def to_json(self) -> dict:
        out = {"topic": self.kind}
        if self.address is not None:
            out["address"] = self.address
        if self.market is not None:
            out["market"] = self.market
        return out


def parse_topic(view, params: dict) -> Topic:
    """The topic of a `subscribe` call's params (read from the committed state `view`)."""
    kind = params.get("topic")
    if kind not in TOPICS:
        raise RPCError(RPCCode.INVALID_PARAMS, f"params.topic must be one of "
                       f"{', '.join(TOPICS)}; got {kind!r}")
    allowed = _KEYS[kind]
    extra = sorted(str(k) for k in params if k != "topic" and k not in allowed)
    if extra:
        raise RPCError(RPCCode.INVALID_PARAMS, f"topic {kind!r} takes "
                       f"{', '.join(allowed) or 'no other params'}; unexpected: "
                       f"{', '.join(extra)}")
    for k, required in allowed.items():
        if required and params.get(k) is None:
            raise RPCError(RPCCode.INVALID_PARAMS, f"topic {kind!r} needs params.{k}")
    if kind == ACCOUNT:
        return Topic(ACCOUNT, address=P.address_bytes(params["address"]).hex())
    if params.get("market") is None:
        return Topic(kind)
    m = P.market_value(view, params["market"])
    return Topic(kind, m.id, m.symbol)
