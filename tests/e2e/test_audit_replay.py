"""`perpchain replay` names the first diverging height and the state keys that differ when a
stopped node's LevelDB holds a damaged state value."""

import re

import plyvel
import pytest

from node.store import P_STATE
from state.codec import encode
from state.ledger import P_BAL
from tests.e2e.conftest import perpchain

pytestmark = pytest.mark.e2e


def _poke(net, key: bytes, value: bytes) -> None:
    db = plyvel.DB(str(net.node.home / "data" / "perpchain.db"))
    try:
        assert db.get(P_STATE + key) is not None, "the key to damage must exist"
        db.put(P_STATE + key, value)
    finally:
        db.close()


def test_replay_names_a_value_damaged_on_disk(net, funded):
    """Every app hash still matches (the block wrote the right value); the state compare at
    the tip names the key, both values, and the block that last wrote it."""
    alice, bob = funded
    out = net.client(alice).transfer(bob.address, "12.5")
    assert out.code == 0
    net.down()
    key = P_BAL + bob.pub_key + b"USDC"
    _poke(net, key, encode(12_500_001))
    rep = perpchain("replay", "--home", str(net.node.home))
    assert rep.returncode == 1, rep.stdout + rep.stderr
    tip = int(re.search(r"replayed (\d+) heights", rep.stdout).group(1))
    assert f"first diverging height: {tip}" in rep.stdout
    assert f"acct/bal/0x{bob.pub_key.hex()}{b'USDC'.hex()} (last written by block " \
           f"{out.height})" in rep.stdout, rep.stdout
    assert "stored:     12500001" in rep.stdout and "recomputed: 12500000" in rep.stdout
    assert rep.stdout.count("  key ") == 1


def test_replay_names_the_first_block_executed_on_a_damaged_value(net, funded):
    """The node restarts on the damaged value and executes a block that reads it: that
    block's app hash is the first to differ, and the key differs at the tip."""
    alice, bob = funded
    c = net.client(alice)
    assert c.transfer(bob.address, "1").code == 0
    net.down()
    key = P_BAL + alice.pub_key + b"USDC"
    _poke(net, key, encode(5_000_000_000))            # 5000 USDC instead of 9999
    net.restart()
    out = net.client(alice).transfer(bob.address, "2")
    assert out.code == 0
    net.down()
    rep = perpchain("replay", "--home", str(net.node.home))
    assert rep.returncode == 1, rep.stdout + rep.stderr
    assert f"MISMATCH: height {out.height}: app hash" in rep.stdout, rep.stdout
    assert f"first diverging height: {out.height}" in rep.stdout
    assert f"acct/bal/0x{alice.pub_key.hex()}{b'USDC'.hex()} (last written by block " \
           f"{out.height})" in rep.stdout, rep.stdout
    assert "stored:     4998000000" in rep.stdout and "recomputed: 9997000000" in rep.stdout
