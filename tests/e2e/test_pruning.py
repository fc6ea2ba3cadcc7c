"""[store] keep_blocks: a node prunes old blocks as it commits; the RPC says which heights it
holds; `tx` of a tx in a pruned block names its height and the lowest kept one; replay and
export below the tip refuse clearly; an export at the tip still works."""

import re

import httpx
import pytest

from node.keys import KeyPair
from node.store import Store
from tests.e2e.conftest import Net, perpchain, wait_until

pytestmark = pytest.mark.e2e
KEEP = 3


def _rpc(url, method, **params):
    return httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
                      timeout=10).json()


def test_pruned_node_serves_recent_blocks_and_refuses_a_replay(tmp_path):
    def keep(cfg):
        cfg.store.keep_blocks = KEEP
    net = Net(tmp_path / "ln", configure=keep)
    try:
        alice = KeyPair.generate()
        paid = net.client(alice).faucet()          # a tx whose block will be pruned
        wait_until(lambda: (net.heights()[0] or 0) >= max(8, paid.height + KEEP + 1), 30,
                   "its block pruned")
        err = _rpc(net.url, "tx", hash=paid.hash)["error"]
        base_now = int(_rpc(net.url, "status")["result"]["sync_info"]["earliest_block_height"])
        assert err["code"] == -32002, err
        assert f"committed at height {paid.height} (index " in err["message"], err
        m = re.search(r"height (\d+) is not available, lowest height is (\d+)", err["message"])
        assert m and int(m[1]) == paid.height and paid.height < int(m[2]) <= base_now, err
        assert re.fullmatch(rf"height={paid.height} index=\d+ lowest_height={m[2]}",
                            err["data"]), err
        missing = _rpc(net.url, "tx", hash="00" * 32)["error"]
        assert missing["code"] == -32001 and "not found in any block" in missing["message"]
        st = _rpc(net.url, "status")["result"]["sync_info"]
        tip, base = int(st["latest_block_height"]), int(st["earliest_block_height"])
        assert tip - KEEP + 1 <= base <= tip - KEEP + 2, st   # one more may have committed
        err = _rpc(net.url, "block", height="1")["error"]
        lo, hi = map(int, re.search(r"blocks (\d+)\.\.(\d+) are stored", err["message"]).groups())
        assert hi - lo + 1 == KEEP and lo >= base, err
        assert int(_rpc(net.url, "block")["result"]["block"]["header"]["height"]) >= tip
    finally:
        net.down()
    home = net.node.home
    s = Store(home / "data" / "perpchain.db")
    tip, base = s.tip().height, s.base_height()
    assert base == tip - KEEP + 1 and s.block_bytes(base - 1) is None and s.block_bytes(base)
    s.close()
    rep = perpchain("replay", "--home", str(home))
    assert rep.returncode == 1 and f"no blocks below height {base}" in rep.stderr, rep.stderr
    low = perpchain("export", "--home", str(home), "--height", str(tip - 1))
    assert low.returncode == 1 and f"no blocks below {base}" in low.stderr, low.stderr
    out = perpchain("export", "--home", str(home), check=True)
    assert f'"height":{tip}' in out.stdout.splitlines()[0]
