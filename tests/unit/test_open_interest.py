"""node/open_interest.py: the running open-interest totals, carried by each committed block's
writes to clearing records, equal a full scan of every account after every block of random
trading chains (fills, closes, flips, reduce-only, cancels), through the node's own
Application.commit, and again after a restart of the node on the same store."""

import random

import pytest

from node.keys import KeyPair
from node.open_interest import count_open_interest
from tests.protocol_chain import PX, VALIDATOR, RPCChain, order_action

TRADERS = [KeyPair.from_seed(bytes([40 + i]) * 32) for i in range(5)]
MARKETS = {1: 60_000, 2: 3_000}          # perp id -> mid price (USD)


class _Driver:
    def __init__(self, c: RPCChain, rng: random.Random):
        self.c, self.rng, self.n = c, rng, c.time_ms

    def nonce(self) -> int:
        self.n = max(self.n + 1, self.c.time_ms)
        return self.n

    def block(self, actions) -> None:
        self.c.block([self.c.tx(k, self.nonce(), a) for k, a in actions])

    def random_block(self) -> None:
        rng, acts = self.rng, []
        for _ in range(rng.randrange(1, 8)):
            k, mid = rng.choice(TRADERS), rng.choice(list(MARKETS))
            if rng.random() < 0.1:
                acts.append((k, ["cancel_all", 0]))
                continue
            price = MARKETS[mid] + rng.randrange(-3, 4)
            acts.append((k, order_action(mid, rng.random() < 0.5, price,
                                         rng.choice((0.001, 0.002, 0.005)),
                                         tif=rng.choice((0, 1)),
                                         reduce_only=rng.random() < 0.15)))
        self.block(acts)


def _check(c: RPCChain, full_counts: int) -> dict[int, int]:
    oi = c.app.read_model.open_interest
    height, lots = oi.by_market()
    assert height == c.app.tip.height
    assert lots == count_open_interest(c.app.store.state)
    assert oi.full_counts == full_counts      # carried, not counted again
    return lots


@pytest.mark.parametrize("seed", range(3))
def test_running_totals_equal_the_full_scan_on_random_chains_and_after_a_restart(
        tmp_path, seed):
    rng = random.Random(seed)
    c = RPCChain(tmp_path)
    d = _Driver(c, rng)
    d.block([(k, ["faucet"]) for k in TRADERS])
    d.block([(VALIDATOR, ["oracle", [["BTC", 60_000 * PX], ["ETH", 3_000 * PX]]])])
    _check(c, 1)
    seen_nonzero = False
    for _ in range(12):
        d.random_block()
        seen_nonzero |= bool(_check(c, 1))
    assert seen_nonzero, "the random chain never opened a position"
    c.close()
    c = RPCChain(tmp_path)                     # a restart: the totals start from a count
    d.c = c
    _check(c, 1)
    for _ in range(4):
        d.random_block()
        _check(c, 1)
    c.close()


def test_a_block_not_staged_makes_the_next_read_count_again(tmp_path):
    c = RPCChain(tmp_path)
    d = _Driver(c, random.Random(7))
    d.block([(k, ["faucet"]) for k in TRADERS])
    _check(c, 1)
    oi = c.app.read_model.open_interest
    oi.stage = lambda height, writes: None     # as if a commit path skipped it
    d.block([])
    _check(c, 2)
    c.close()

