"""`status` reports catching_up and the sync progress truthfully (rpc/methods.py `status` over
node/app.py `catching_up` / `sync_progress`): on a real one-validator chain whose consensus
driver and p2p layer are replaced by a stub peer view (peer heights, the peer being synced
from, the connected peers). tests/e2e/test_store_faults.py checks the same on a restarted
node of a 4-node localnet."""

from types import SimpleNamespace

import pytest
import trio

from rpc.methods import METHODS
from tests.protocol_chain import RPCChain


@pytest.fixture
def chain(tmp_path):
    c = RPCChain(tmp_path)
    c.block([])
    yield c
    c.close()


def sync_info(chain) -> dict:
    return trio.run(METHODS["status"], chain.app, {})["sync_info"]


def peers(chain, heights: dict[str, int], connected=None, syncing_from=None) -> None:
    """What the driver and p2p layer would say: each peer's reported committed height."""
    chain.app.driver = SimpleNamespace(peer_heights=dict(heights), syncing_from=syncing_from)
    chain.app.p2p = SimpleNamespace(peers=dict.fromkeys(heights if connected is None
                                                        else connected))


def test_status_says_catching_up_while_a_peer_is_ahead_and_not_once_level(chain):
    tip = chain.app.tip.height
    peers(chain, {"a": tip + 4, "b": tip})
    s = sync_info(chain)
    assert s["catching_up"] is True
    assert (s["best_peer_height"], s["heights_behind"]) == (str(tip + 4), "4")
    for _ in range(3):            # the blocks arrive (here: committed by this chain)
        chain.block([])
    s = sync_info(chain)          # one block behind is normal: the peer committed first
    assert s["catching_up"] is False and s["heights_behind"] == "1"
    chain.block([])
    peers(chain, {"a": tip + 4, "b": tip + 4})
    s = sync_info(chain)
    assert s["catching_up"] is False
    assert (s["latest_block_height"], s["heights_behind"]) == (str(tip + 4), "0")


def test_status_says_catching_up_while_blocks_are_fetched_even_from_a_level_peer(chain):
    tip = chain.app.tip.height
    peers(chain, {"a": tip}, syncing_from="a")
    assert sync_info(chain)["catching_up"] is True
    peers(chain, {"a": tip})
    assert sync_info(chain)["catching_up"] is False


def test_a_disconnected_peers_old_claim_does_not_make_status_catch_up(chain):
    tip = chain.app.tip.height
    peers(chain, {"gone": tip + 100, "here": tip}, connected=["here"])
    s = sync_info(chain)
    assert s["catching_up"] is False
    assert (s["best_peer_height"], s["heights_behind"]) == (str(tip), "0")
