"""Hyperliquid-signed actions run by the state machine (state/hl_actions.py): per-order
statuses, nonces, refusals, and replay from genesis (warm = cold, verified inside)."""

from localnet.fixtures import BTC_PERP, BTC_TICK, GENESIS_MS, PRICE, key
from state import hl_universe as U, ledger, orders as O, schedule_cancel
from state.errors import Code
from state.machine import BlockInput, apply_block
from tests.chain_helpers import Chain, order
from tests.hl_helpers import (WALLETS, account32, hl_genesis, l1_tx, limit, order_action,
                              statuses, usd_send_tx, withdraw3_tx)

N0 = GENESIS_MS + 500
BTC = 0   # asset id of BTC-USD (the first perp market)
CLOID = "0x" + "00" * 8 + "00000000000000aa"


def chain(warm: bool = False) -> Chain:
    return Chain(hl_genesis(), warm=warm)


def test_resting_then_crossing_order_statuses():
    c = chain()
    w0, w1 = WALLETS[0], WALLETS[1]
    r = c.block([l1_tx(w0, order_action(limit(BTC, True, "60000", "0.01", cloid=CLOID)), N0)])
    assert r.tx_results[0].code == 0, r.tx_results[0].log
    [st] = statuses(r.tx_results[0])
    assert st["status"] == "resting" and st["cloid"] == CLOID
    oid = int(st["oid"])
    o = O.get_resting(c.kv, BTC_PERP, oid)
    assert o.owner == account32(w0) and o.cloid == 0xAA and o.size_lots * 10_000 == 10**6
    r = c.block([l1_tx(w1, order_action(limit(BTC, False, "59000", "0.004", tif="Ioc")), N0 + 1)])
    [st] = statuses(r.tx_results[0])
    assert st["status"] == "filled" and st["total_sz"] == "0.004" and st["avg_px"] == "60000"
    assert U.eth_address_of(account32(w1)) == bytes.fromhex(w1.address[2:])


def test_bulk_orders_each_get_their_own_status():
    c = chain()
    wires = [limit(BTC, True, "59000", "0.01"), limit(BTC, True, "59000.05", "0.01"),
             limit(BTC, False, "70000", "0.002", tif="Alo"), limit(BTC, True, "1", "0.01",
                                                                    tif="Ioc")]
    r = c.block([l1_tx(WALLETS[0], order_action(*wires), N0)])
    st = statuses(r.tx_results[0])
    assert [s["status"] for s in st] == ["resting", "error", "resting", "error"]
    assert "not a multiple" in st[1]["error"]
    assert "could not immediately match" in st[3]["error"] and st[3]["error"].endswith("asset=0")


def test_cancel_modify_and_cancel_by_cloid():
    c = chain()
    w = WALLETS[0]
    r = c.block([l1_tx(w, order_action(limit(BTC, True, "59000", "0.01"),
                                       limit(BTC, True, "58000", "0.01", cloid=CLOID)), N0)])
    oid1, oid2 = (int(s["oid"]) for s in statuses(r.tx_results[0]))
    mod = {"type": "batchModify", "modifies": [
        {"oid": oid1, "order": limit(BTC, True, "59500", "0.02")},
        {"oid": 999_999, "order": limit(BTC, True, "59500", "0.02")}]}
    r = c.block([l1_tx(w, mod, N0 + 1)])
    st = statuses(r.tx_results[0])
    assert st[0]["status"] == "resting" and st[1]["status"] == "error"
    new = int(st[0]["oid"])
    assert O.get_resting(c.kv, BTC_PERP, oid1) is None
    assert O.get_resting(c.kv, BTC_PERP, new).price_ticks * BTC_TICK == 59_500 * PRICE
    r = c.block([l1_tx(w, {"type": "cancel", "cancels": [{"a": BTC, "o": new},
                                                          {"a": BTC, "o": new}]}, N0 + 2),
                 l1_tx(w, {"type": "cancelByCloid", "cancels": [{"asset": BTC, "cloid": CLOID}]},
                       N0 + 3)])
    assert [s["status"] for s in statuses(r.tx_results[0])] == ["success", "error"]
    assert "never placed, already canceled, or filled" in statuses(r.tx_results[0])[1]["error"]
    assert [s["status"] for s in statuses(r.tx_results[1])] == ["success"]
    assert O.get_resting(c.kv, BTC_PERP, oid2) is None


def test_update_leverage_and_unsupported_actions():
    c = chain()
    w = WALLETS[0]
    r = c.block([l1_tx(w, {"type": "updateLeverage", "asset": BTC, "isCross": False,
                           "leverage": 7}, N0),
                 l1_tx(w, {"type": "scheduleCancel", "time": N0 + 10_000}, N0 + 1),
                 l1_tx(w, order_action(limit(BTC, True, "59000", "0.01"), grouping={"p": 1}),
                       N0 + 2),
                 l1_tx(w, order_action(limit(BTC, True, "59000", "0.01",
                                             cloid="0x" + "ff" * 16)), N0 + 3)])
    assert r.tx_results[0].code == 0, r.tx_results[0].log
    assert any(e.type == "margin_mode" and ("mode", "isolated") in e.attrs
               for e in r.tx_results[0].events)
    assert r.tx_results[1].code == 0, r.tx_results[1].log     # the native schedule_cancel
    assert schedule_cancel.scheduled(c.kv, account32(w)) == N0 + 10_000
    assert r.tx_results[2].code == Code.HL_UNSUPPORTED and "grouping" in r.tx_results[2].log
    assert "first 8 bytes must be zero" in statuses(r.tx_results[3])[0]["error"]


def test_usd_send_moves_quote_to_the_0x_account():
    c = chain()
    dest = "0x" + "33" * 20
    before = ledger.balance(c.kv, account32(WALLETS[0]), "USDC")
    r = c.block([usd_send_tx(WALLETS[0], dest, "12.5", N0)])
    assert r.tx_results[0].code == 0, r.tx_results[0].log
    assert ledger.balance(c.kv, bytes(12) + bytes.fromhex("33" * 20), "USDC") == 12_500_000
    assert ledger.balance(c.kv, account32(WALLETS[0]), "USDC") == before - 12_500_000


def test_replayed_nonce_and_mainnet_and_wrong_signer_are_refused():
    c = chain()
    w = WALLETS[0]
    tx = l1_tx(w, order_action(limit(BTC, True, "59000", "0.01")), N0)
    assert c.block([tx]).tx_results[0].code == 0
    r = c.block([tx,
                 l1_tx(w, order_action(limit(BTC, True, "59000", "0.01")), N0 + 1, mainnet=True),
                 l1_tx(w, order_action(limit(BTC, True, "59000", "0.01")), N0 + 2,
                       signer=WALLETS[1])])
    codes = [x.code for x in r.tx_results]
    assert codes == [Code.NONCE_DUPLICATE, Code.BAD_SIGNATURE, Code.BAD_SIGNATURE]
    assert "mainnet" in r.tx_results[1].log and "recovers to" in r.tx_results[2].log


def test_expired_and_vault_envelopes_are_refused():
    c = chain()
    w = WALLETS[0]
    r = c.block([l1_tx(w, order_action(limit(BTC, True, "59000", "0.01")), N0,
                       expires_after=N0 - 1),
                 l1_tx(w, order_action(limit(BTC, True, "59000", "0.01")), N0 + 1,
                       vault="0x" + "44" * 20)])
    assert [x.code for x in r.tx_results] == [Code.ACTION_EXPIRED, Code.HL_UNSUPPORTED]
    assert "vault" in r.tx_results[1].log


def test_replay_from_genesis_reverifies_and_matches_warm():
    """The same blocks, applied warm with pre-verified txs (as a node) and cold with every
    signature checked inside apply_block (as a replay), give the same app hashes."""
    from state.tx import decode_tx
    w0, w1 = WALLETS[0], WALLETS[1]
    blocks = [
        [l1_tx(w0, order_action(limit(BTC, True, "60000", "0.01")), N0),
         order(key(0), N0, BTC_PERP, True, 59_000 * PRICE, 10**6)],
        [l1_tx(w1, order_action(limit(BTC, False, "59000", "0.02", tif="Ioc")), N0 + 1),
         usd_send_tx(w0, w1.address, "3", N0 + 2)],
        [l1_tx(w1, {"type": "updateLeverage", "asset": BTC, "isCross": True, "leverage": 5},
               N0 + 3)],
    ]
    warm, cold = chain(warm=True), chain()
    for txs in blocks:
        known = {t.hash: t for t in map(decode_tx, txs)}
        a, b = warm.block(txs, known=known), cold.block(txs)
        assert a.app_hash == b.app_hash
        assert [r.to_wire() for r in a.tx_results] == [r.to_wire() for r in b.tx_results]
        assert all(r.code == 0 for r in a.tx_results), [r.log for r in a.tx_results]
    # a tampered secp256k1 tx in a replayed block is refused there too
    bad = bytearray(blocks[0][0])
    bad[bad.index(b"60000")] = ord("7")
    fresh = chain()
    res = apply_block(fresh.kv, BlockInput(1, N0, (bytes(bad),)), fresh.app_hash)
    assert res.tx_results[0].code == Code.BAD_SIGNATURE


def test_withdraw3_burns_the_quote_and_names_the_destination_for_a_bridge():
    c = chain()
    dest = "0x" + "44" * 20
    before = ledger.balance(c.kv, account32(WALLETS[0]), "USDC")
    r = c.block([withdraw3_tx(WALLETS[0], dest, "7.25", N0),
                 withdraw3_tx(WALLETS[0], dest, "10000000", N0 + 1)])
    assert r.tx_results[0].code == 0, r.tx_results[0].log
    assert ledger.balance(c.kv, account32(WALLETS[0]), "USDC") == before - 7_250_000
    ev = [e for e in r.tx_results[0].events if e.type == "withdrawal"]
    assert len(ev) == 1 and ("destination", dest) in ev[0].attrs
    assert ("amount", "7.25") in ev[0].attrs and ("asset", "USDC") in ev[0].attrs
    assert r.tx_results[1].code == Code.INSUFFICIENT_BALANCE, r.tx_results[1].log
