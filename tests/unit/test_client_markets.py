"""rpc/client.py `Client.market`: its cached market records are read again after
`market_cache_s`, on `fresh=True` and after `refresh_markets()`, so a governance change to a
market's fee is seen by a long-running client; answered by a real node's RPC in process."""

import pytest

from rpc import client as C
from tests.protocol_chain import PX, VALIDATOR, RPCChain


class _Http:
    """Client.http over the in-process node (tests/protocol_chain.py)."""

    def __init__(self, chain: RPCChain):
        self.chain, self.posts = chain, 0

    def post(self, url, json):
        self.posts += 1
        body = self.chain.request(json)
        return type("R", (), {"json": lambda self_: body})()


@pytest.fixture
def setup(tmp_path, monkeypatch):
    chain = RPCChain(tmp_path)
    clock = [1000.0]
    monkeypatch.setattr(C.time, "monotonic", lambda: clock[0])
    chain.block([chain.tx(VALIDATOR, chain.time_ms + 1,
                          ["oracle", [["BTC", 60_000 * PX], ["ETH", 3_000 * PX]]])])
    yield chain, clock
    chain.close()


def _client(chain, **kw) -> tuple[C.Client, _Http]:
    c = C.Client("http://node", **kw)
    c.http = _Http(chain)
    return c, c.http


def _gov_fee(chain, fee_ppm: int) -> None:
    h = chain.app.tip.height
    res = chain.block([chain.tx(VALIDATOR, chain.time_ms + 2,
                                ["gov_set_param", 1, "maker_fee_ppm", fee_ppm, h + 2])])
    assert not [r.log for r in res.tx_results if r.code]
    chain.block([])
    chain.block([])


def test_a_governance_change_is_seen_after_the_cache_time(setup):
    chain, clock = setup
    c, http = _client(chain)
    old = c.market("BTC-USD")["maker_fee_ppm"]
    assert c.market(1) is c.market("BTC-USD") and http.posts == 1   # cached
    start = c.markets_height
    _gov_fee(chain, old + 7)
    clock[0] += C.MARKET_CACHE_S - 1
    assert c.market("BTC-USD")["maker_fee_ppm"] == old              # still cached
    clock[0] += 1
    assert c.market("BTC-USD")["maker_fee_ppm"] == old + 7          # read again
    assert http.posts == 2 and c.markets_height > start


def test_fresh_refresh_and_no_cache(setup):
    chain, clock = setup
    c, http = _client(chain)
    old = c.market(1)["maker_fee_ppm"]
    _gov_fee(chain, old + 3)
    assert c.market(1)["maker_fee_ppm"] == old
    assert c.market(1, fresh=True)["maker_fee_ppm"] == old + 3
    _gov_fee(chain, old + 4)
    c.refresh_markets()
    assert c.market(1)["maker_fee_ppm"] == old + 4
    nc, nhttp = _client(chain, market_cache_s=0)
    nc.market(1)
    nc.market(1)
    assert nhttp.posts == 2                                          # every call reads
    with pytest.raises(ValueError, match="unknown market 'NOPE'"):
        c.market("NOPE")
