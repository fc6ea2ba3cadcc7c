"""Lending in the Hyperliquid façade (rpc/hl_lending.py), on a real one-validator chain that
liquidates a borrower: USER holds 1 BTC and borrows 30,000 USDC against it; BTC gaps from
60,000 to 30,000, its BTC is sold in the BTC/USDC book to MAKER's bid at 29,000, and the
deficit left is paid first by the insurance fund (500 USDC) and the rest written off against
the USDC suppliers. Every answer is checked against the native JSON-RPC answers of the same
committed state (`liquidations`, `lending_account`, `lending_pools`), and the websocket
messages against `/info`'s and the official SDK's routing."""

from decimal import Decimal

import pytest

from state.insurance import INSURANCE_FUND
from tests.protocol_chain import MAKER, PX, USER, VALIDATOR, order_action
from tests.unit.test_hl_ws import Chain, drain, sdk_identifier, subscribe

U = "0x" + USER.pub_key.hex()
M = "0x" + MAKER.pub_key.hex()
BTC = 10**8
USDC = 10**6


def _oracle(usd: int) -> tuple:
    return VALIDATOR, ["oracle", [["BTC", usd * PX], ["ETH", 3_000 * PX]]]


def borrow_then_bid(c) -> None:
    c.commit((USER, ["deposit", "BTC", BTC]), (MAKER, ["deposit", "USDC", 200_000 * USDC]))
    c.commit((USER, ["withdraw", "USDC", 30_000 * USDC]),
             (MAKER, ["transfer", INSURANCE_FUND, "USDC", 500 * USDC]),
             (MAKER, order_action(3, True, 29_000, 1)))


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """The chain after the liquidation block, with a websocket connection `c.conn` that
    followed USER's userEvents and ledger updates and `c.msgs` what the block sent it."""
    c = Chain(tmp_path_factory.mktemp("hlend"))
    c.commit(_oracle(60_000))
    borrow_then_bid(c)
    c.conn = c.hub.open("10.0.0.9")
    assert subscribe(c, c.conn, {"type": "userEvents", "user": U}) == []
    (snap,) = subscribe(c, c.conn, {"type": "userNonFundingLedgerUpdates", "user": U})
    assert snap == {"channel": "userNonFundingLedgerUpdates",
                    "data": {"isSnapshot": True, "user": U, "nonFundingLedgerUpdates": []}}
    c.commit(_oracle(30_000))
    c.msgs = drain(c.conn)
    yield c
    c.close()


def native_events(c, address: str) -> list[dict]:
    return list(reversed(c.native("liquidations", {"address": address})["events"]))


def test_a_collateral_liquidation_and_its_bad_debt_are_ledger_updates(chain):
    native = native_events(chain, USER.pub_key.hex())
    assert [e["type"] for e in native] == ["collateral_liquidation", "bad_debt_covered",
                                           "bad_debt_socialised"]
    liq, covered, socialised = native
    assert (liq["filled"], liq["oracle"]) == ("1", "30000")
    rows = chain.hl({"type": "userNonFundingLedgerUpdates", "user": U, "startTime": 0})
    assert [r["time"] for r in rows] == [chain.time_ms] * 3
    assert {r["hash"] for r in rows} == {"0x" + "00" * 32}
    assert rows[0]["delta"] == {
        "type": "liquidation", "liquidatedNtlPos": "30000.0",     # 1 BTC at the oracle
        "accountValue": liq["equity"], "leverageType": "Cross",
        "liquidatedPositions": [{"coin": "BTC", "szi": "1.0"}]}
    assert Decimal(liq["equity"]) < 0                              # bankrupt
    # the fund paid all it had (500 and a few quanta of interest reserve); the rest of the
    # deficit went to the suppliers
    assert rows[1]["delta"] == {"type": "badDebtCovered", "token": "USDC",
                                "amount": covered["amount"], "fundBalance": "0.0"}
    assert 500 <= Decimal(covered["amount"]) < 501
    assert rows[2]["delta"] == {"type": "badDebtSocialised", "token": "USDC",
                                "amount": socialised["amount"],
                                "supplyIndex": str(Decimal(socialised["supply_index"])
                                                   / 10**12)}
    assert Decimal(socialised["amount"]) > 0
    # the window is honoured; another account has no rows
    assert chain.hl({"type": "userNonFundingLedgerUpdates", "user": U,
                     "startTime": chain.time_ms + 1}) == []
    assert chain.hl({"type": "userNonFundingLedgerUpdates", "user": U, "startTime": 0,
                     "endTime": chain.time_ms - 1}) == []
    assert chain.hl({"type": "userNonFundingLedgerUpdates", "user": M, "startTime": 0}) == []


def test_the_websocket_sends_the_liquidation_and_the_ledger_rows(chain):
    by_channel = {}
    for m in chain.msgs:
        by_channel.setdefault(m["channel"], []).append(m)
    (user,) = [m for m in by_channel["user"] if "liquidation" in m["data"]]
    liq = native_events(chain, USER.pub_key.hex())[0]
    assert user["data"] == {"liquidation": {
        "lid": int(liq["order_id"]), "liquidator": "0x" + "00" * 20, "liquidated_user": U,
        "liquidated_ntl_pos": "30000.0", "liquidated_account_value": liq["equity"]}}
    (ledger,) = by_channel["userNonFundingLedgerUpdates"]
    assert ledger["data"] == {"user": U, "nonFundingLedgerUpdates": chain.hl(
        {"type": "userNonFundingLedgerUpdates", "user": U, "startTime": 0})}
    assert sdk_identifier(user) == "userEvents"
    assert sdk_identifier(ledger) == f"userNonFundingLedgerUpdates:{U.lower()}"
    # a new subscriber gets the rows as a snapshot
    conn = chain.hub.open("10.0.0.10")
    (snap,) = subscribe(chain, conn, {"type": "userNonFundingLedgerUpdates", "user": U})
    assert snap["data"] == {"isSnapshot": True, **ledger["data"]}


def test_borrow_lend_user_state_shows_interest_as_value_minus_basis(chain):
    # MAKER supplied 10,000 (faucet) + 200,000 - 500 - what its bid paid: its value is
    # what the socialised deficit and interest made of it
    native = chain.native("lending_account", {"address": MAKER.pub_key.hex()})["lending"]
    state = chain.hl({"type": "borrowLendUserState", "user": M})
    usdc = next(a for a in native["assets"] if a["asset"] == "USDC")
    btc = next(a for a in native["assets"] if a["asset"] == "BTC")
    [(i0, s0), (i1, s1)] = state["tokenToState"]
    assert (i0, i1) == (0, 1)                       # USDC and BTC: spotMeta token indices
    assert s0["borrow"] == s1["borrow"] == {"basis": "0.0", "value": "0.0"}
    assert Decimal(s0["supply"]["value"]) == Decimal(usdc["balance"])
    assert Decimal(s0["supply"]["value"]) - Decimal(s0["supply"]["basis"]) == \
        Decimal(usdc["interest"])
    assert s1["supply"] == {"basis": "1.0", "value": "1.0"}
    assert btc["balance"] == "1"
    assert Decimal(usdc["interest"]) < 0            # the write-off cut its balance
    assert state["health"] == "healthy" and state["healthFactor"] is None


def test_a_borrower_shows_its_borrow_and_health_factor(tmp_path):
    c = Chain(tmp_path)
    c.commit(_oracle(60_000))
    borrow_then_bid(c)
    state = c.hl({"type": "borrowLendUserState", "user": U})
    native = c.native("lending_account", {"address": USER.pub_key.hex()})["lending"]
    usdc = next(a for a in native["assets"] if a["asset"] == "USDC")
    assert state["tokenToState"][0] == [0, {
        "borrow": {"basis": "30000.0", "value": "30000.0"},
        "supply": {"basis": "0.0", "value": "0.0"}}]
    assert usdc["balance"] == "-30000"               # no interest yet: borrowed this block
    # its 1 BTC counts 39,000 against a borrow of 30,000 and its interest
    assert Decimal(native["borrow_limit"]) == 39_000
    assert native["borrowed_value"] == "30000"
    assert state["healthFactor"] == "1.3"           # 39,000 / 30,000
    assert state["health"] == "healthy"
    c.close()


def test_reserve_states_are_the_native_pools(chain):
    pools = {p["asset"]: p for p in chain.native("lending_pools", {})["pools"]}
    states = chain.hl({"type": "allBorrowLendReserveStates"})
    assert [i for i, _ in states] == [0, 1, 2]            # USDC, BTC, ETH: spotMeta's tokens
    usdc = dict(states)[0]
    p = pools["USDC"]
    assert usdc == {"borrowYearlyRate": p["borrow_apr"] if "." in p["borrow_apr"]
                    else p["borrow_apr"] + ".0",
                    "supplyYearlyRate": usdc["supplyYearlyRate"],
                    "balance": usdc["balance"], "utilization": usdc["utilization"],
                    "oraclePx": "1.0", "ltv": "1.0", "totalSupplied": usdc["totalSupplied"],
                    "totalBorrowed": usdc["totalBorrowed"]}
    for k, n in (("supplyYearlyRate", "supply_apr"), ("balance", "available"),
                 ("utilization", "utilisation"), ("totalSupplied", "supplied"),
                 ("totalBorrowed", "borrowed")):
        assert Decimal(usdc[k]) == Decimal(p[n]), k
    btc = chain.hl({"type": "borrowLendReserveState", "token": 1})
    assert (btc["oraclePx"], btc["ltv"]) == ("30000.0", "0.65")
    assert btc == dict(states)[1]
    with pytest.raises(Exception, match="lending pool: 0 \\(USDC\\), 1 \\(BTC\\), 2 \\(ETH\\)"):
        chain.hl({"type": "borrowLendReserveState", "token": 7})



def test_a_perp_liquidation_is_a_liquidation_delta_with_its_position():
    """tests/unit/test_liquidation.py's worked example: A's 0.5 BTC long is sold at the 58,500
    oracle with 236.5 of equity left."""
    from rpc import hl_lending
    from rpc.hl_format import Universe
    from tests.unit.test_liquidation import A, B, BYSTANDER, C, L, open_long
    t = L({A: 1_000, B: 100_000, C: 100_000, BYSTANDER: 5_000})
    open_long(t)
    res = t.oracle(58_500)
    [liq] = [e for e in res.block_events if e.type == "liquidation"]
    uni = Universe(t.c.kv)
    row = hl_lending.ledger_row(uni, t.c.time_ms, liq.type, dict(liq.attrs))
    assert row == {"time": t.c.time_ms, "hash": "0x" + "00" * 32, "delta": {
        "type": "liquidation", "liquidatedNtlPos": "29250.0", "accountValue": "236.5",
        "leverageType": "Cross", "liquidatedPositions": [{"coin": "BTC", "szi": "0.5"}]}}
    assert hl_lending.user_event_liquidation(A.pub_key, dict(liq.attrs))["liquidation"][
        "liquidated_ntl_pos"] == "29250.0"
