"""Validator-set changes by governance (effective at h+2) and double-sign evidence in state."""

from dataclasses import replace

from consensus.messages import PREVOTE, Vote, sign_vote
from consensus.proposer import ProposerSelector
from state import params
from state.errors import Code
from state.evidence import DoubleSign, recorded
from state.tx import build_tx
from tests.chain_helpers import CHAIN_ID, Chain, genesis, key

GOV, V1, V2, NEWV = key(20), key(21), key(22), key(23)


def chain() -> Chain:
    g = replace(genesis(), validators=((V1.pub_key, 10), (V2.pub_key, 10)),
                gov_authority=GOV.pub_key)
    return Chain(g)


def gov(c: Chain, signer, pub_key: bytes, power: int, dn: int = 1) -> bytes:
    return build_tx(CHAIN_ID, signer.private, c.time_ms + dn, ["gov_set_validator", pub_key, power])


def test_change_is_handed_to_consensus_and_applied_by_state_two_heights_later():
    c = chain()
    r = c.block([gov(c, GOV, NEWV.pub_key, 5), gov(c, GOV, V2.pub_key, 0, 2)])
    assert [x.code for x in r.tx_results] == [0, 0]
    assert dict(r.validator_updates) == {NEWV.pub_key: 5, V2.pub_key: 0}
    h = c.height
    assert dict(params.validators(c.kv)) == {V1.pub_key: 10, V2.pub_key: 10}
    r1 = c.block([])
    assert r1.validator_updates == () and dict(params.validators(c.kv))[V2.pub_key] == 10
    r2 = c.block([])                           # height h + 2: the state follows
    assert c.height == h + 2
    assert dict(params.validators(c.kv)) == {V1.pub_key: 10, NEWV.pub_key: 5}
    assert any(e.type == "validator_updated" for e in r2.block_events)


def test_rejections():
    c = chain()
    r = c.block([gov(c, V1, NEWV.pub_key, 5),                 # not the authority
                 gov(c, GOV, NEWV.pub_key, 0, 2),             # removing a non-validator
                 gov(c, GOV, V1.pub_key, 0, 3),               # leaves V2 ...
                 gov(c, GOV, V2.pub_key, 0, 4)])              # ... and then nobody
    assert [x.code for x in r.tx_results] == [Code.NOT_GOVERNANCE, Code.INVALID_GOVERNANCE, 0,
                                              Code.INVALID_GOVERNANCE]
    assert "last validator" in r.tx_results[3].log


def test_consensus_selector_follows_the_same_rule():
    sel1 = ProposerSelector.genesis({V1.pub_key: 10, V2.pub_key: 10})
    sel3 = sel1.next_height().two_heights_on({NEWV.pub_key: 5, V2.pub_key: 0})
    assert sel3.powers == {V1.pub_key: 10, NEWV.pub_key: 5}
    assert sel1.next_height().two_heights_on({}).powers == sel1.powers


def _votes(k, h=3, r=0):
    a = sign_vote(k.private, Vote(PREVOTE, h, r, b"\x01" * 32, k.pub_key, 1, b""), CHAIN_ID)
    b = sign_vote(k.private, Vote(PREVOTE, h, r, b"\x02" * 32, k.pub_key, 2, b""), CHAIN_ID)
    return a.encode(), b.encode()


def test_evidence_is_recorded_once():
    from state.machine import BlockInput, apply_block
    c = chain()
    a, b = _votes(V2)
    ev = (DoubleSign(V2.pub_key, 3, 0, PREVOTE, a, b),)
    res = apply_block(c.kv, BlockInput(1, c.time_ms + 1, (), ev), c.app_hash)
    assert [e.type for e in res.block_events][:1] == ["double_sign"]
    c.kv.apply(res.writes)
    rows = recorded(c.kv)
    assert len(rows) == 1 and rows[0]["validator"] == V2.pub_key and rows[0]["height"] == 3
    assert rows[0]["vote_a"] == a and rows[0]["block_height"] == 1
    again = apply_block(c.kv, BlockInput(2, c.time_ms + 2, (), ev), res.app_hash)
    assert not any(e.type == "double_sign" for e in again.block_events)
    assert recorded(c.kv, V1.pub_key) == []
