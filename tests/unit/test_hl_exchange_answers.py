"""rpc/hl_exchange.py's answers in Hyperliquid's shapes: a reused nonce (the same signed body
twice, however it is caught) is Hyperliquid's "Invalid nonce: duplicate nonce N"; tp/sl
statuses are the bare strings "waitingForFill" / "waitingForTrigger"."""

from rpc.hl_exchange import answer, refused, status_json
from state.errors import Code
from state.events import Event
from state.machine import TxResult


def test_a_reused_nonce_is_hyperliquids_duplicate_nonce_error():
    want = (200, {"status": "err", "response": "Invalid nonce: duplicate nonce 1700000000123"})
    for code in (Code.TX_ALREADY_COMMITTED, Code.TX_IN_MEMPOOL, Code.NONCE_DUPLICATE):
        assert refused(code, "whatever the node says", 1_700_000_000_123) == want
        assert answer("order", TxResult(int(code), "x"), 1_700_000_000_123) == want
    assert refused(Code.NONCE_TOO_LOW, "nonce 5 is below 9", 5) == \
        (200, {"status": "err", "response": "nonce 5 is below 9"})


def test_tpsl_statuses_are_bare_strings():
    def ev(*attrs):
        return Event("hl_status", attrs)
    result = TxResult(0, "", (
        ev(("index", "0"), ("status", "resting"), ("oid", "12"), ("cloid", "")),
        ev(("index", "1"), ("status", "waitingForFill"), ("parent", "12")),
        ev(("index", "2"), ("status", "waitingForTrigger"), ("oid", "13"))))
    assert answer("order", result, 1) == (200, {"status": "ok", "response": {
        "type": "order", "data": {"statuses": [{"resting": {"oid": 12}}, "waitingForFill",
                                               "waitingForTrigger"]}}})
    assert status_json({"status": "success"}) == "success"
