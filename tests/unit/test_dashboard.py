"""The dashboard's server side: its files over HTTP (who gets the page, who the method list,
the security headers), the script's text-only rule, and the two methods it reads
(`validator_votes`, `market_stats`) against the methods they summarise."""

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio

from consensus.proposer import ProposerSelector
from consensus.types import Commit, CommitSig
from node.open_interest import count_open_interest
from rpc.dashboard_methods import VOTE_WINDOW, validator_votes
from state.codec import encode
from state.positions import iter_accounts

DASHBOARD = Path(__file__).resolve().parents[2] / "rpc" / "dashboard"


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    from tests.protocol_chain import example_chain
    c, _ = example_chain(tmp_path_factory.mktemp("chain"))
    yield c
    c.close()


def _get(chain, path: str, accept: str | None = None) -> tuple[int, dict, bytes]:
    """(status, headers, body) of `GET path` with an Accept header, as the node answers it."""
    headers = [(b"accept", accept.encode())] if accept else []
    scope = {"type": "http", "method": "GET", "path": path, "query_string": b"",
             "headers": headers, "client": ("127.0.0.1", 1)}
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(msg):
        sent.append(msg)

    trio.run(chain.server, scope, receive, send)
    return (sent[0]["status"], {k.decode(): v.decode() for k, v in sent[0]["headers"]},
            b"".join(m.get("body", b"") for m in sent[1:]))


# -- files over HTTP -------------------------------------------------------------------------

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def test_a_browser_gets_the_page_and_a_script_the_method_list(chain):
    status, headers, body = _get(chain, "/", BROWSER_ACCEPT)
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b'<script src="/dashboard/app.js"' in body
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "connect-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert headers["x-content-type-options"] == "nosniff"
    for accept in (None, "*/*", "application/json"):
        status, headers, body = _get(chain, "/", accept)
        assert headers["content-type"] == "application/json"
        assert "validator_votes" in json.loads(body)["result"]["methods"]


def test_the_page_its_script_and_style_sheet_by_path(chain):
    for path, kind, start in (("/dashboard", "text/html", b"<!doctype html>"),
                              ("/dashboard/", "text/html", b"<!doctype html>"),
                              ("/dashboard/app.js", "text/javascript", b"// perpchain"),
                              ("/dashboard/style.css", "text/css", b"/* perpchain")):
        status, headers, body = _get(chain, path, "*/*")
        assert (status, headers["content-type"].split(";")[0]) == (200, kind), path
        assert body.startswith(start) and "content-security-policy" in headers
    # anything else under the prefix is a (missing) URI-form method, not a file
    status, headers, body = _get(chain, "/dashboard/../server.py", BROWSER_ACCEPT)
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] == -32601


def test_the_page_inserts_text_only_and_loads_nothing_inline():
    js = (DASHBOARD / "app.js").read_text()
    for banned in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                   "new Function", "setInterval"):
        assert banned not in js, f"app.js uses {banned}"
    html = (DASHBOARD / "index.html").read_text()
    # the CSP blocks inline code and styles, and the machine may have no internet: no CDN
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline script"
    assert not re.search(r"\sstyle=|<style|\son[a-z]+=", html), "inline style or handler"
    assert not re.search(r"(src|href)=\"(https?:)?//", html + js), "a file from elsewhere"


# -- validator_votes -------------------------------------------------------------------------

def _fake_app(commits: dict[int, Commit], powers: dict[bytes, int]):
    store = SimpleNamespace(commit_bytes=lambda h: encode(commits[h].to_wire())
                            if h in commits else None)
    return SimpleNamespace(tip=SimpleNamespace(height=max(commits)), store=store,
                           selector=lambda h: ProposerSelector(powers))


def _commit(h: int, signers) -> Commit:
    return Commit(h, 1, bytes(32), tuple(CommitSig(v, 1000 * h, b"s" * 64) for v in signers))


def _votes(app) -> dict:
    coro = validator_votes(app, {})
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("validator_votes suspended")


def test_validator_votes_finds_each_validators_last_signature():
    a, b, c = bytes([1]) * 32, bytes([2]) * 32, bytes([3]) * 32
    commits = {10: _commit(10, [a, b]), 9: _commit(9, [a]), 8: _commit(8, [a, b]),
               7: _commit(7, [a, c])}
    out = _votes(_fake_app(commits, {a: 5, b: 5, c: 5}))
    assert (out["height"], out["round"]) == ("10", 1)
    rows = {r["address"]: r for r in out["validators"]}
    assert [(rows[v.hex()]["signed_last_commit"], rows[v.hex()]["last_signed_height"])
            for v in (a, b, c)] == [(True, "10"), (True, "10"), (False, "7")]
    assert rows[c.hex()]["last_signed_time"] == "1970-01-01T00:00:07.000Z"


def test_validator_votes_reads_back_only_its_window():
    a, b = bytes([1]) * 32, bytes([2]) * 32
    tip = VOTE_WINDOW + 5
    commits = {h: _commit(h, [a]) for h in range(1, tip + 1)}
    commits[3] = _commit(3, [a, b])        # b's last signature: outside the window
    rows = {r["address"]: r for r in _votes(_fake_app(commits, {a: 1, b: 1}))["validators"]}
    assert rows[b.hex()]["last_signed_height"] is None
    assert rows[b.hex()]["signed_last_commit"] is False
    commits[tip - VOTE_WINDOW + 1] = _commit(tip - VOTE_WINDOW + 1, [a, b])   # just inside
    rows = {r["address"]: r for r in _votes(_fake_app(commits, {a: 1, b: 1}))["validators"]}
    assert rows[b.hex()]["last_signed_height"] == str(tip - VOTE_WINDOW + 1)


def test_validator_votes_on_the_chain_names_the_set_and_the_stored_commit(chain):
    out = chain.call("validator_votes")
    vals = chain.call("validators", {"height": out["height"]})["validators"]
    assert [r["address"] for r in out["validators"]] == [v["address"] for v in vals]
    sig = chain.call("commit", {"height": out["height"]})["signed_header"]["commit"]
    (row,) = out["validators"]
    assert row["signed_last_commit"] and row["last_signed_height"] == out["height"]
    assert row["last_signed_time"] == sig["signatures"][0]["timestamp"]


# -- market_stats ----------------------------------------------------------------------------

def test_market_stats_agrees_with_the_methods_it_summarises(chain):
    stats = chain.call("market_stats")
    marks = {m["market"]: m for m in chain.call("mark_prices")["marks"]}
    assert [r["market"] for r in stats["markets"]] == \
        [m["symbol"] for m in chain.call("markets")["markets"]]
    for row in stats["markets"]:
        book = chain.call("orderbook", {"market": row["market"], "depth": 1})
        assert row["best_bid"] == (book["bids"][0]["price"] if book["bids"] else None)
        assert row["best_ask"] == (book["asks"][0]["price"] if book["asks"] else None)
        if row["kind"] == "spot":
            assert row["mark_price"] is row["open_interest"] is row["next_funding_ms"] is None
            continue
        assert row["mark_price"] == marks[row["market"]]["mark_price"]
        fh = chain.call("funding_history", {"market": row["market"], "limit": 1})
        assert row["next_funding_ms"] == fh["current"]["next_funding_ms"]
        assert row["funding_rate_8h"] == (fh["history"][0]["rate_8h"] if fh["history"]
                                          else None)
    # the example chain's one fill: the user is long 0.0005 BTC, so is the open interest
    btc = next(r for r in stats["markets"] if r["market"] == "BTC-USD")
    assert btc["best_ask"] == "61500" and btc["open_interest"] == "0.0005"


def test_open_interest_counts_the_longs_which_equal_the_shorts(chain):
    view = chain.app.store.state
    longs = count_open_interest(view)
    shorts: dict[int, int] = {}
    for _, acct in iter_accounts(view):
        for mid, e in acct.entries.items():
            if e.size < 0:
                shorts[mid] = shorts.get(mid, 0) - e.size
    assert longs == shorts and longs    # every fill has two sides; one fill happened
    height, lots = chain.app.read_model.open_interest.by_market()
    assert (height, lots) == (chain.app.tip.height, longs)
