"""Four real validator processes on 127.0.0.1: BFT through crashes, a stall and a partition.

After every test all nodes must agree on the block (hence the app hash) at every common
height: the `agree` check fetches every header from every node.
"""

import os
import signal
import time

import httpx
import pytest

from node.keys import KeyPair
from tests.e2e.conftest import wait_until

pytestmark = pytest.mark.e2e




def headers(url: str, upto: int) -> dict[int, tuple[str, str]]:
    """height -> (block hash, app hash in the header) for 1..upto, via `blockchain`."""
    out = {}
    http = httpx.Client(timeout=10)
    hi = upto
    while hi >= 1:
        r = http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "blockchain",
                                 "params": {"minHeight": "1", "maxHeight": str(hi)}}).json()
        metas = r["result"]["block_metas"]
        for m in metas:
            out[int(m["header"]["height"])] = (m["block_id"]["hash"], m["header"]["app_hash"])
        hi = min(out) - 1
    return out


def agree(net) -> int:
    """Every running node has the same block at every height they share; returns that height."""
    heights = [h for h in net.heights() if h is not None]
    common = min(heights)
    chains = [headers(e.rpc_url, common) for e, h in zip(net.entries, net.heights()) if h is not None]
    for h in range(1, common + 1):
        assert len({c[h] for c in chains}) == 1, f"nodes disagree at height {h}: {[c[h] for c in chains]}"
    return common


def height(net, k: int) -> int:
    return net.client(k=k).height()


def test_four_validators_commit_txs_and_agree(net4):
    alice, bob = KeyPair.generate(), KeyPair.generate()
    net4.client(alice, k=1).faucet()
    out = net4.client(alice, k=2).transfer(bob.address, "7.5")
    for k in range(4):  # the tx reached every node's state
        c = net4.client(k=k)
        wait_until(lambda: c.height() >= out.height, 10, f"node{k} at {out.height}")
        assert c.account(bob.address)["balances"] == {"USDC": "7.5"}
    st = [net4.client(k=k).status()["sync_info"] for k in range(4)]
    # every node answers status with a height at or past the tx's block
    assert [int(s["latest_block_height"]) >= out.height for s in st] == [True] * 4, st
    peers = httpx.get(net4.url + "/net_info", timeout=5).json()["result"]["n_peers"]
    assert peers == "3"
    vals = httpx.get(net4.url + "/validators", timeout=5).json()["result"]
    assert vals["count"] == "4"
    assert agree(net4) >= out.height


def test_one_node_killed_the_rest_go_on_and_it_catches_up(net4):
    wait_until(lambda: height(net4, 0) >= 3, 20, "first blocks")
    net4.kill9(3)
    h0 = height(net4, 0)
    wait_until(lambda: height(net4, 0) >= h0 + 10, 30, "3 of 4 validators to keep committing")
    net4.restart()
    target = height(net4, 0)
    wait_until(lambda: height(net4, 3) >= target, 30, "the restarted node to catch up")
    wait_until(lambda: height(net4, 3) >= target + 3, 30, "the restarted node to follow")
    agree(net4)


def test_two_nodes_down_stalls_then_resumes_without_fork(net4):
    wait_until(lambda: height(net4, 0) >= 3, 20, "first blocks")
    net4.kill9(2)
    net4.kill9(3)
    time.sleep(1.0)  # a height in flight may still finish
    stalled = height(net4, 0)
    time.sleep(3.0)
    assert height(net4, 0) <= stalled + 1, "2 of 4 validators must not commit"
    assert height(net4, 1) <= stalled + 1
    net4.restart()
    wait_until(lambda: min(height(net4, k) for k in range(4)) >= stalled + 5, 40,
               "commits to resume on all four")
    agree(net4)


def test_partitioned_node_catches_up_after_50_heights(net4):
    wait_until(lambda: height(net4, 0) >= 3, 20, "first blocks")
    pid = net4.entries[3].pid()
    os.kill(pid, signal.SIGSTOP)  # cut off: it neither sends nor reads
    try:
        h0 = height(net4, 0)
        wait_until(lambda: height(net4, 0) >= h0 + 50, 120, "50 heights without node3", poll=0.5)
    finally:
        os.kill(pid, signal.SIGCONT)
    target = height(net4, 0)
    wait_until(lambda: height(net4, 3) >= target, 60, "the partitioned node to catch up")
    agree(net4)


def test_double_sign_evidence_is_committed_and_recorded_on_every_node(net4):
    import base64

    from consensus.messages import PREVOTE, Vote, sign_vote
    from node.home import Home
    from node.keys import load_key

    wait_until(lambda: height(net4, 0) >= 3, 20, "first blocks")
    liar = load_key(Home(net4.entries[3].home).validator_key_file)
    chain_id = net4.client().chain_id
    votes = [sign_vote(liar.private, Vote(PREVOTE, 2, 0, bytes([i]) * 32, liar.pub_key, 1, b""),
                       chain_id).encode() for i in (1, 2)]
    ev = {"vote_a": base64.b64encode(votes[0]).decode(), "vote_b": base64.b64encode(votes[1]).decode()}
    c = net4.client(k=1)
    assert "hash" in c.call("broadcast_evidence", evidence=ev)
    bad = dict(ev, vote_b=ev["vote_a"])
    with pytest.raises(Exception, match="not valid evidence"):
        c.call("broadcast_evidence", evidence=bad)
    for k in range(4):
        rows = wait_until(lambda: net4.client(k=k).evidence()["evidence"], 20,
                          f"node{k} to record the evidence")
        assert rows[0]["validator"] == liar.address and rows[0]["height"] == "2"
    blk = net4.client().call("block", height=rows[0]["block_height"])["block"]
    assert len(blk["evidence"]["evidence"]) == 1
    agree(net4)


def test_validator_power_change_takes_effect_two_heights_later(net4):
    from node.home import Home
    from node.keys import load_key

    wait_until(lambda: height(net4, 0) >= 2, 20, "first blocks")
    authority = load_key(Home(net4.entries[0].home).validator_key_file)  # genesis gov authority
    c = net4.client(authority)
    out = c.set_validator(authority.address, 100)
    assert any(e["type"] == "validator_update_scheduled" for e in out.events)
    vals = c.call("validators", height=str(out.height + 2))
    assert {v["address"]: v["voting_power"] for v in vals["validators"]}[authority.address] == "100"
    assert c.call("validators", height=str(out.height + 1))["validators"][0]["voting_power"] == "10"
    wait_until(lambda: height(net4, 0) >= out.height + 3, 20, "the new set to sign blocks")
    # node0 now holds 100 of 130 power: more than 2/3 on its own
    for k in (1, 2, 3):
        net4.kill9(k)
    h = height(net4, 0)
    wait_until(lambda: height(net4, 0) >= h + 5, 30, "node0 alone to keep committing")
    net4.restart()
    wait_until(lambda: min(height(net4, k) for k in range(4)) >= h + 5, 40, "all to catch up")
    agree(net4)


def test_no_empty_blocks_when_configured(tmp_path):
    from tests.e2e.conftest import Net

    def quiet(cfg):
        cfg.consensus.create_empty_blocks = False

    net = Net(tmp_path / "quiet", 4, configure=quiet)
    try:
        alice = KeyPair.generate()
        wait_until(lambda: min(net.heights()) >= 1, 20, "the first block")
        time.sleep(1.5)
        idle = net.heights()
        time.sleep(1.5)
        assert net.heights() == idle, "no tx, no block"
        out = net.client(alice, k=2).faucet()
        assert out.height > max(idle)
        wait_until(lambda: min(net.heights()) >= out.height, 20, "all nodes to commit the tx")
        agree(net)
    finally:
        net.down()
