"""Place one limit order on a perpchain node, then show it among the account's open orders.

Run it against a localnet (`perpchain localnet up`) from the repository, with the package
installed (`pip install -e .`):

    python examples/place_order.py --key alice.json --market BTC-USD --side buy \
        --size 0.01 --price 60000

Without --key it makes a new account and funds it from the localnet faucet first. The order
is a GTC limit (add --tif alo for post-only); the script waits for the block that holds it and
prints the `order` event (its id and status) and any fills. Exit status 1 if the chain refuses.
"""

import argparse
import sys

from node.keys import KeyPair, load_key
from rpc.client import Client, RPCClientError, TxRejected


def attrs(event: dict) -> dict:
    return {a["key"]: a["value"] for a in event["attributes"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--node", default="http://127.0.0.1:26657")
    p.add_argument("--key", help="key file (perpchain keys new --out FILE); default: a new key")
    p.add_argument("--market", default="BTC-USD")
    p.add_argument("--side", choices=("buy", "sell"), default="buy")
    p.add_argument("--size", default="0.001", help="base units, e.g. 0.001 BTC")
    p.add_argument("--price", required=True, help="quote units per base unit, e.g. 60000")
    p.add_argument("--tif", choices=("gtc", "ioc", "fok", "alo"), default="gtc")
    a = p.parse_args()

    key = load_key(a.key) if a.key else KeyPair.generate()
    c = Client(a.node, key)
    try:
        if not a.key:
            c.faucet()
            print(f"new account {key.address}, funded from the faucet")
        out = c.place_order(a.market, a.side == "buy", a.price, a.size, tif=a.tif)
    except (TxRejected, RPCClientError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"committed at height {out.height}, tx {out.hash}")
    for ev in out.events:
        x = attrs(ev)
        if ev["type"] == "fill":
            print(f"  fill: {x['size']} @ {x['price']} against maker {x['maker'][:12]}..., "
                  f"fee {x['taker_fee'] if x['taker'] == key.address else x['maker_fee']}")
        elif ev["type"] == "order":
            print(f"  order #{x['order_id']}: {x['status']}, filled {x['filled']}, "
                  f"remaining {x['remaining']}")
        elif ev["type"] == "cancel":
            print(f"  cancelled: {x.get('reason')}")
    for o in c.open_orders(market=a.market)["orders"]:
        print(f"open: #{o['order_id']} {o['side']} {o['size']} {o['market']} @ {o['price']} "
              f"({o['status']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
