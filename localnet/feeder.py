"""Price feeder: the process a validator runs to publish oracle prices.

    python -m localnet.feeder --home NODE_HOME --node http://127.0.0.1:26657 \\
        [--csv prices.csv] [--interval 1.0] [--vol-ppm 2000]

It signs `oracle` txs with the validator key (HOME/config/priv_validator_key.json) and submits
them over JSON-RPC (rpc/client.py), once per interval, for every oracle asset of the genesis
(HOME/config/genesis.json, `app_state.oracle.prices`, which also give the anchor prices).

Prices, in one of two modes:
* random walk (default): a deterministic, mean-reverting walk around the genesis price. The
  price at step k (k = wall time // interval) is a pure function of (asset, k): the sum of the
  last 64 seeded shocks, each decayed by 0.95 per step. Every validator therefore publishes the
  same price at the same moment, as real feeders that read the same exchanges would.
* CSV: a file whose header is `step,ASSET1,ASSET2,...` (the step column is ignored) and whose
  rows are decimal prices; one row per interval, cycling.

`start_feeder(home, node_url)` starts it as a background process (for `perpchain localnet`).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import random
import subprocess
import sys
import time
from pathlib import Path

from node.keys import load_key
from rpc.client import Client, RPCClientError, TxRejected
from state.amounts import format_amount, parse_amount

log = logging.getLogger("perpchain.feeder")

WALK_MEMORY = 64
DECAY_PPM = 950_000


def genesis_prices(home: Path) -> tuple[dict[str, int], int]:
    """({asset: anchor price in quote quantums}, quote decimals) from the node's genesis."""
    doc = json.loads((Path(home) / "config" / "genesis.json").read_text())
    app = doc["app_state"]
    qdec = {a["symbol"]: a["decimals"] for a in app["assets"]}[app["quote_asset"]]
    prices = {p["asset"]: parse_amount(p["price"], qdec)
              for p in (app.get("oracle") or {}).get("prices", [])}
    return prices, qdec


def walk_price(asset: str, anchor: int, step: int, vol_ppm: int) -> int:
    """Deterministic mean-reverting walk: anchor * (1 + x_k), x_k = sum_j 0.95^j * shock_{k-j}."""
    x_ppm = 0
    decay = 1_000_000
    for j in range(WALK_MEMORY):
        shock = random.Random(f"{asset}:{step - j}").randint(-vol_ppm, vol_ppm)
        x_ppm += shock * decay // 1_000_000
        decay = decay * DECAY_PPM // 1_000_000
    return max(anchor * (1_000_000 + x_ppm) // 1_000_000, 1)


def csv_rows(path: Path, qdec: int) -> list[dict[str, int]]:
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        assets = [h.strip() for h in header[1:]]
        return [{a: parse_amount(v.strip(), qdec) for a, v in zip(assets, row[1:]) if v.strip()}
                for row in reader if row]


def prices_at(step: int, anchors: dict[str, int], rows: list[dict[str, int]] | None,
              vol_ppm: int) -> dict[str, int]:
    if rows:
        return rows[step % len(rows)]
    return {a: walk_price(a, p, step, vol_ppm) for a, p in sorted(anchors.items())}


def run(home: Path, node_url: str, interval_s: float = 1.0, csv_path: Path | None = None,
        vol_ppm: int = 2_000, max_updates: int | None = None) -> int:
    """Publish prices until killed (or `max_updates` sent). Returns the number sent."""
    key = load_key(Path(home) / "config" / "priv_validator_key.json")
    anchors, qdec = genesis_prices(home)
    rows = csv_rows(csv_path, qdec) if csv_path else None
    if not anchors and not rows:
        raise SystemExit("genesis has no oracle prices and no --csv was given")
    client = Client(node_url, key, timeout=5.0)
    sent = 0
    while max_updates is None or sent < max_updates:
        step = int(time.time() // interval_s)
        prices = prices_at(step, anchors, rows, vol_ppm)
        try:
            client.oracle_update({a: format_amount(p, qdec) for a, p in prices.items()})
            sent += 1
        except (RPCClientError, TxRejected, OSError, ValueError) as e:
            log.warning("oracle update not sent: %s", e)
        except Exception as e:  # httpx errors while the node starts or restarts
            log.warning("node not reachable: %s", e)
        time.sleep(max(interval_s - time.time() % interval_s, 0.01))
    return sent


def start_feeder(home: Path, node_url: str, log_path: Path | None = None,
                 interval_s: float = 1.0, csv_path: Path | None = None) -> subprocess.Popen:
    """Start the feeder for the validator in `home` as a background process."""
    out = open(log_path or Path(home) / "feeder.log", "ab")
    args = [sys.executable, "-m", "localnet.feeder", "--home", str(home), "--node", node_url,
            "--interval", str(interval_s)]
    if csv_path is not None:
        args += ["--csv", str(csv_path)]
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, cwd=str(Path(__file__).resolve().parents[1]))
    out.close()
    return proc


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="perpchain validator price feeder")
    ap.add_argument("--home", required=True, type=Path, help="the validator node's home")
    ap.add_argument("--node", default="http://127.0.0.1:26657", help="JSON-RPC URL")
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between updates")
    ap.add_argument("--csv", type=Path, default=None, help="prices file (see module doc)")
    ap.add_argument("--vol-ppm", type=int, default=2_000, help="random-walk shock size")
    ap.add_argument("--count", type=int, default=None, help="stop after this many updates")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    run(a.home, a.node, a.interval, a.csv, a.vol_ppm, a.count)


if __name__ == "__main__":
    main()
