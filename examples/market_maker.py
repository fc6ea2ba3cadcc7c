"""A small market maker: quote a bid and an ask around the mark price, requote every few
seconds, stop after a bounded time and cancel its quotes.

Run it against a localnet (`perpchain localnet up`, whose feeders move the oracle price),
from the repository with the package installed (`pip install -e .`):

    python examples/market_maker.py --key mm.json --market BTC-USD --seconds 60

Without --key it makes a new account and funds it from the localnet faucet. Each requote is
ONE signed `batch` tx: cancel_all on the market, then `--levels` post-only (ALO) bids and asks
of `--size`, the first `--spread-ticks` ticks from the mark and each next one a tick further.
Post-only quotes never take: one that would cross the book is cancelled by the chain, and the
batch reports it in its `batch_item` events. Trade against it with, e.g.,
`perpchain tx order --key bob.json --market BTC-USD --side buy --size 0.001`.
"""

import argparse
import sys
import time

from node.keys import KeyPair, load_key
from rpc.client import Client, RPCClientError, TxRejected
from state.amounts import format_amount, parse_amount


def quotes(mark_units: int, tick_units: int, spread_ticks: int, levels: int) -> list[tuple]:
    """[(is_buy, price units)] around the mark: bids below, asks above, best first."""
    mid = mark_units // tick_units * tick_units
    out = []
    for k in range(levels):
        off = (spread_ticks + k) * tick_units
        out += [(True, max(mid - off, tick_units)), (False, mid + off)]
    return out


def requote(c: Client, market: dict, qd: int, size: str, spread_ticks: int, levels: int):
    marks = {m["id"]: m for m in c.mark_prices()["marks"]}
    mark = parse_amount(marks[market["id"]]["mark_price"], qd)
    actions = [["cancel_all", market["id"]]]
    for is_buy, px in quotes(mark, int(market["tick_size_units"]), spread_ticks, levels):
        actions.append(c.order_action(market["id"], is_buy, format_amount(px, qd), size,
                                      tif="alo"))
    out = c.batch(actions)
    bid, ask = format_amount(actions[1][4], qd), format_amount(actions[2][4], qd)
    print(f"height {out.height}: mark {format_amount(mark, qd)}, quoting {size} @ {bid} / "
          f"{size} @ {ask} ({levels} level(s) a side)", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--node", default="http://127.0.0.1:26657")
    p.add_argument("--key", help="key file; default: a new key funded from the faucet")
    p.add_argument("--market", default="BTC-USD")
    p.add_argument("--size", default="0.001", help="size of each quote, in base units")
    p.add_argument("--spread-ticks", type=int, default=5, help="ticks from the mark")
    p.add_argument("--levels", type=int, default=1, help="quotes a side (1..24)")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between requotes")
    p.add_argument("--seconds", type=float, default=30.0, help="stop after this long")
    a = p.parse_args()
    if not 1 <= a.levels <= 24 or a.spread_ticks < 1:
        p.error("--levels must be 1..24 (a batch holds 50 actions), --spread-ticks at least 1")

    key = load_key(a.key) if a.key else KeyPair.generate()
    c = Client(a.node, key)
    try:
        if not a.key:
            c.faucet()
            print(f"new account {key.address}, funded from the faucet")
        market = c.market(a.market)
        qd = c.decimals(market["quote"])
        stop = time.monotonic() + a.seconds
        try:
            while time.monotonic() < stop:
                requote(c, market, qd, a.size, a.spread_ticks, a.levels)
                time.sleep(max(0.0, min(a.interval, stop - time.monotonic())))
        except KeyboardInterrupt:
            print("interrupted")
        c.cancel_all(market["id"])
    except (TxRejected, RPCClientError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    fills = c.fills(key.address, market["id"])["total"]
    print(f"done: quotes cancelled; {fills} fill(s) in all for {key.address}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
