"""The dashboard in a real browser: headless Chromium (the distribution's `chromium`, which
.ci/run installs) opens a 4-node localnet's page and shows the height advancing, every
validator, and a market's best bid once an order rests on the book."""

import pytest

from localnet import cluster
from node.keys import KeyPair
from rpc.client import Client
from tests.e2e.chromium import Browser, find_chromium
from tests.e2e.conftest import fast_timeouts, free_base_port, wait_until

pytestmark = pytest.mark.e2e

HEIGHT = "Number(document.getElementById('height').dataset.height || 0)"
BEST_BID = ("(document.querySelector('#markets tr[data-market=\"BTC-USD\"] td.bid') || {})"
            ".textContent")


@pytest.fixture
def chromium():
    path = find_chromium()
    if path is None:
        pytest.skip("no chromium binary (/usr/bin/chromium): .ci/run installs Debian's "
                    "`chromium` package when it runs as root or with sudo; install it with "
                    "`apt-get install -y chromium` to run the dashboard test")
    return path


@pytest.fixture
def localnet4(tmp_path):
    """A 4-validator localnet with its price feeders (oracle prices need 2/3 of the power)."""
    d = tmp_path / "localnet"
    entries = cluster.up(d, 4, free_base_port(4), timeout_commit="100ms",
                         configure=fast_timeouts)
    try:
        yield entries
    finally:
        cluster.down(d)


def _page_wait(page, pred, what: str, timeout: float = 60.0):
    """wait_until, and on a timeout say what the page shows (generous: CI machines are busy)."""
    try:
        return wait_until(pred, timeout=timeout, what=what)
    except AssertionError as e:
        shown = page.evaluate("({conn: document.getElementById('conn').textContent, "
                              "height: document.getElementById('height').textContent, "
                              "error: document.getElementById('error').textContent, "
                              "markets: document.querySelector('#markets tbody').innerText})")
        raise AssertionError(f"{e}; the page shows {shown}; page errors: {page.problems}") \
            from None


def test_dashboard_shows_the_height_advancing_and_a_best_bid(chromium, localnet4):
    url = localnet4[0].rpc_url
    with Browser(chromium) as page:
        page.open(url + "/")
        first = _page_wait(page, lambda: page.evaluate(HEIGHT), "a height on the page")
        _page_wait(page, lambda: page.evaluate(BEST_BID), "the markets table")
        # advancing: live from the websocket's `blocks` notifications
        _page_wait(page, lambda: page.evaluate(HEIGHT) >= first + 3, "the height to advance")
        assert page.evaluate("document.getElementById('conn').textContent") == "connected"
        assert page.evaluate("document.getElementById('chain-id').textContent") == \
            Client(url).status()["node_info"]["network"]
        assert page.evaluate("document.querySelectorAll('#validators tbody tr').length") == 4
        assert page.evaluate("document.querySelectorAll('#blocks tbody tr').length") > 0
        assert page.evaluate(BEST_BID) == "—"   # nobody has bid yet

        key = KeyPair.generate()
        c = Client(url, key)
        c.faucet()
        wait_until(lambda: all(not a["stale"] for a in c.oracle()["assets"]), timeout=60,
                   what="oracle prices")
        out = c.place_order("BTC-USD", True, "51234.5", "0.01")   # rests: far below the mark
        assert c.orderbook("BTC-USD")["bids"][0]["price"] == "51234.5"
        _page_wait(page, lambda: page.evaluate(BEST_BID) == "51234.5",
                   f"the best bid of the order placed at height {out.height}")
        # the rest of the row came from market_stats, refreshed by the same blocks
        _page_wait(page, lambda: page.evaluate(
            "document.querySelector('#markets tr[data-market=\"BTC-USD\"] td.mark')"
            ".textContent") not in ("", "—"), "the BTC-USD mark price")
        assert page.problems == [], page.problems
