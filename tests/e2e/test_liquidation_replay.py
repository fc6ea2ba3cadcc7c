"""Liquidations on a 4-validator localnet that goes through crashes, then a replay from genesis.

The validators' oracle falls while one validator is down (killed with SIGKILL): three longs
are liquidated (two closed in the book, one taken over by the insurance fund). The dead
validator is restarted and catches up through those blocks, another is killed and restarted;
every node then holds the same app hash at every height, and `perpchain replay` of each
node's home re-executes every block from genesis and reproduces every app hash.
"""

import pytest

from node.keys import KeyPair, load_key
from tests.e2e.conftest import perpchain
from tests.e2e.conftest import wait_until

pytestmark = pytest.mark.e2e


def _prices(validators, btc: str) -> None:
    for v in validators:
        v.oracle_update({"BTC": btc, "ETH": "3000"})
    wait_until(lambda: validators[0].call("oracle")["assets"][0]["price"] == btc, timeout=30,
               what=f"the oracle at {btc}")


def _app_hashes(client, heights) -> list[str]:
    return [client.call("block", height=str(h))["block"]["header"]["app_hash"] for h in heights]


def test_liquidations_through_crashes_replay_from_genesis(net4):
    net = net4
    validators = [net.client(load_key(e.home / "config" / "priv_validator_key.json"), k=k)
                  for k, e in enumerate(net.entries)]
    _prices(validators, "60000")
    longs = [KeyPair.generate() for _ in range(3)]
    bob, carol = KeyPair.generate(), KeyPair.generate()
    clients = {k.address: net.client(k) for k in (*longs, bob, carol)}
    for c in clients.values():
        c.faucet()  # 10,000 USDC each
    # Three longs of 1 BTC at 60,000 (6x) against bob; carol's bids absorb two of them.
    clients[bob.address].place_order("BTC-USD", False, "60000", "3")
    for k in longs:
        clients[k.address].place_order("BTC-USD", True, "60000", "1", tif="ioc")
    clients[carol.address].place_order("BTC-USD", True, "51000", "2")
    assert all(clients[k.address].positions()["positions"][0]["size"] == "1" for k in longs)

    net.kill9(3)
    # At 50,650 each long has equity 9,973 - 9,350 = 623 < MM 633.1 (1.25%), above the backstop.
    _prices(validators[:3], "50650")
    c0 = validators[0]
    events = wait_until(lambda: [e for e in c0.call("liquidations")["events"]
                                 if e["account"] in {k.address for k in longs}],
                        timeout=30, what="the three liquidations")
    types = sorted(e["type"] for e in events)
    assert types.count("liquidation") >= 2 and "insurance_takeover" in types, types
    assert all(clients[k.address].positions()["positions"] == [] for k in longs)

    net.restart()  # node 3 catches up through the liquidation blocks
    top = c0.height()
    wait_until(lambda: net.client(k=3).height() >= top, timeout=60, what="node 3 catching up")
    net.kill9(1)
    net.restart()
    wait_until(lambda: net.client(k=1).height() >= top + 2, timeout=60, what="node 1 back")

    heights = range(1, top + 1)
    want = _app_hashes(c0, heights)
    for k in (1, 2, 3):
        assert _app_hashes(net.client(k=k), heights) == want, f"node {k} diverged"
    net.down()
    for e in net.entries:
        rep = perpchain("replay", "--home", str(e.home), timeout=300)
        assert rep.returncode == 0 and "OK:" in rep.stdout, f"node{e.index}:\n{rep.stdout}" \
                                                           f"\n{rep.stderr}"
