"""Follow a market's order book over the websocket: rebuild it from the snapshot plus the
per-block updates, print the top of book as it changes, and at the end check the rebuilt
book against the node's `orderbook` query at the same height.

Run it against a localnet (`perpchain localnet up`), from the repository with the package
installed (`pip install -e .`):

    python examples/subscribe_book.py --market BTC-USD --seconds 30

Place orders meanwhile (examples/place_order.py, examples/market_maker.py or `perpchain tx
order`) to see the book move. An update whose sequence is not the next one means one was
missed: the script then resubscribes for a fresh snapshot (docs/PROTOCOL.md 8.5). Exit
status 1 if the rebuilt book differs from the query.
"""

import argparse
import sys
import time

from rpc.client import Client
from rpc.ws_client import L2Book, SequenceGap, Subscriptions

DEPTH = 100   # the node's [rpc] ws_book_depth default: the view a subscription follows


def top(book: L2Book) -> str:
    lv = book.levels(1)
    bid = f"{lv['bids'][0]['size']} @ {lv['bids'][0]['price']}" if lv["bids"] else "-"
    ask = f"{lv['asks'][0]['size']} @ {lv['asks'][0]['price']}" if lv["asks"] else "-"
    return f"best bid {bid} | best ask {ask}"


def follow(ws: Subscriptions, market: str, seconds: float) -> tuple[L2Book, int]:
    """Keep the book until `seconds` pass; returns it and the last block height seen."""
    sub = ws.subscribe("book", market=market)
    book = L2Book.from_snapshot(sub.snapshot)
    print(f"snapshot at height {book.height}, sequence {book.sequence}: {top(book)}")
    seen = book.height
    stop = time.monotonic() + seconds
    while (left := stop - time.monotonic()) > 0:
        try:
            n = ws.next(timeout=left)
        except TimeoutError:
            break
        if n.topic["topic"] == "blocks":
            seen = max(seen, int(n.result["height"]))
            continue
        try:
            book.apply(n.result)
        except SequenceGap as e:
            print(f"gap: {e}")
            ws.unsubscribe(sub)
            sub = ws.subscribe("book", market=market)
            book = L2Book.from_snapshot(sub.snapshot)
            continue
        print(f"height {book.height}, sequence {book.sequence}: {top(book)}", flush=True)
    return book, seen


def check(c: Client, ws: Subscriptions, book: L2Book, seen: int, market: str) -> bool:
    """Compare with `orderbook` once the websocket has delivered the query's height."""
    for _ in range(20):
        q = c.orderbook(market, DEPTH)
        h = int(q["height"])
        while seen < h:   # take the notifications up to the query's height
            n = ws.next(timeout=5)
            if n.topic["topic"] == "blocks":
                seen = max(seen, int(n.result["height"]))
            else:
                book.apply(n.result)
        if seen == h:
            same = book.levels(DEPTH) == {"bids": q["bids"], "asks": q["asks"]}
            print(f"rebuilt book {'matches' if same else 'DIFFERS FROM'} the orderbook query "
                  f"at height {h}")
            return same
    print("could not line up a query with the websocket's height")
    return False


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--node", default="http://127.0.0.1:26657")
    p.add_argument("--market", default="BTC-USD")
    p.add_argument("--seconds", type=float, default=30.0, help="stop after this long")
    a = p.parse_args()
    c = Client(a.node)
    with Subscriptions(a.node) as ws:
        ws.subscribe("blocks")
        book, seen = follow(ws, a.market, a.seconds)
        return 0 if check(c, ws, book, seen, a.market) else 1


if __name__ == "__main__":
    sys.exit(main())
