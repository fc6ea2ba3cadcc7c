"""`localnet up --fund ADDRESS=AMOUNT` (localnet/fund.py): parsing and the genesis edit."""

import pytest

from localnet.fund import FundError, fund_genesis, parse_fund
from node.genesis import make_genesis_doc, parse_genesis
from tests.chain_helpers import key

ETH = "0x19E7E376E7C213B7E7e7e46cc70A5dD086DAff2A"


def test_parse_both_address_kinds():
    assert parse_fund(f"{ETH}=10000") == ("00" * 12 + ETH[2:].lower(), "10000")
    pk = key(3).pub_key.hex()
    assert parse_fund(f"{pk}=2.5") == (pk, "2.5")
    for bad in ("nope", f"{ETH}=", "0x1234=5", f"{ETH[:-1]}z=5"):
        with pytest.raises(FundError):
            parse_fund(bad)


def test_genesis_edit_credits_and_sums():
    v = key(40).pub_key
    doc = make_genesis_doc("c", 1_700_000_000_000, [(v, 10, "n0")], [(key(0).pub_key, "5")])
    acct = "00" * 12 + ETH[2:].lower()
    fund_genesis([(acct, "100"), (acct, "0.5"), (key(0).pub_key.hex(), "1")])(doc, 0)
    bals = {b["address"]: b["amount"] for b in doc["app_state"]["balances"]}
    assert bals[acct] == "100.5" and bals[key(0).pub_key.hex()] == "6"
    g = parse_genesis(doc)
    assert (bytes.fromhex(acct), "USDC", 100_500_000) in g.state.balances
    with pytest.raises(FundError, match="positive"):
        fund_genesis([(acct, "0")])(doc, 0)
    with pytest.raises(FundError, match="decimal|fraction|digits"):
        fund_genesis([(acct, "1.1234567")])(doc, 0)
