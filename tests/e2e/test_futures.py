"""A dated future on a real localnet (`localnet up --future-minutes 1`): two accounts trade it,
it expires a minute after genesis, settles at the window's average oracle price, and the RPC
shows the settlement, the balances and the refusal of a late order. Slow: it waits for the
expiry (about a minute)."""

import pytest

from localnet import cluster
from node.keys import KeyPair, load_key
from rpc.client import Client, TxRejected
from tests.e2e.conftest import fast_timeouts, free_base_port
from tests.e2e.conftest import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def fut_net(tmp_path):
    d = tmp_path / "net"
    entries = cluster.up(d, 1, free_base_port(1), timeout_commit="100ms",
                         configure=fast_timeouts, feeders=False, future_minutes=1)
    yield entries[0]
    cluster.down(d)


def test_a_future_expires_and_settles_at_the_window_average(fut_net):
    url = fut_net.rpc_url
    validator = Client(url, load_key(fut_net.home / "config" / "priv_validator_key.json"))
    # one price for the whole window: it stays fresh (60 s) past the expiry
    validator.oracle_update({"BTC": "61000", "ETH": "3000"}, wait=True)
    long_, short = KeyPair.generate(), KeyPair.generate()
    cl, cs = Client(url, long_), Client(url, short)
    cl.faucet()
    cs.faucet()                                     # 10,000 USDC each
    cs.place_order("BTC-FUT", False, "60000", "0.01")
    cl.place_order("BTC-FUT", True, "60000", "0.01", tif="ioc")
    assert cl.positions()["positions"][0]["status"] == "trading"
    fut = wait_until(lambda: [m for m in cl.markets()["markets"] if m["symbol"] == "BTC-FUT"
                              and m["status"] == "settled"], timeout=90, what="settlement")[0]
    assert fut["settlement_price"] == "61000" and fut["kind"] == "future"
    # long: +0.01 x 1,000 = 10, taker fee 0.27; short: -10, maker fee 0.09
    assert cl.account()["balances"]["USDC"] == "10009.73"
    assert cs.account()["balances"]["USDC"] == "9989.91"
    assert cl.positions()["positions"] == [] and cs.positions()["positions"] == []
    with pytest.raises(TxRejected, match="code 37"):
        cl.place_order("BTC-FUT", True, "61000", "0.01")
