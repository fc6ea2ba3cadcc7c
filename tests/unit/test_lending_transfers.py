"""Transfers by a borrower (state/placement.check_after_withdrawal): an account that owes a
lending pool may move an asset out only while its equity stays at or above initial margin
(found by tests/property/test_lending_multi_props.py: a borrower without perp positions
could give its collateral away, and the suppliers paid for the bad debt)."""

from localnet.fixtures import lending_genesis
from state import lending_pools as LP, ledger
from state.errors import Code
from state.invariants import check_invariants
from tests.chain_helpers import USDC, Chain, action, key

BTC = 10**8


def test_a_borrower_cannot_transfer_away_the_collateral_of_its_borrow():
    c = Chain(lending_genesis(((key(0).pub_key, "USDC", 1_000_000 * USDC),
                               (key(1).pub_key, "BTC", BTC))))
    # key 1's 1 BTC counts 60,000 x 0.65 = 39,000: it borrows 30,000 USDC
    res = c.block([action(key(1), c.time_ms + 1, "withdraw", "USDC", 30_000 * USDC)])
    assert [r.code for r in res.tx_results] == [0]
    # giving the whole BTC away would leave -30,000 of equity: refused, nothing moves
    res = c.block([action(key(1), c.time_ms + 2, "transfer", key(2).pub_key, "BTC", BTC)])
    assert [r.code for r in res.tx_results] == [Code.INSUFFICIENT_MARGIN]
    assert res.tx_results[0].log.startswith("after the transfer equity -30000.000048 would be "
                                            "below the initial margin 0")
    assert ledger.balance(c.kv, key(1).pub_key, "BTC") == BTC
    assert ledger.balance(c.kv, key(2).pub_key, "BTC") == 0
    assert not [e for e in res.block_events if e.type.startswith("bad_debt")]
    # what the borrow does not need may go: (39,000 - 30,000.000048) / 39,000 of it
    # = 0.23076923 BTC (down), one satoshi more is refused
    res = c.block([action(key(1), c.time_ms + 3, "transfer", key(2).pub_key, "BTC", 23_076_922),
                   action(key(1), c.time_ms + 4, "transfer", key(2).pub_key, "BTC", 2)])
    assert [r.code for r in res.tx_results] == [0, Code.INSUFFICIENT_MARGIN]
    assert not [e for e in res.block_events if e.type.startswith("bad_debt")]
    assert LP.get_pool(c.kv, "USDC").supply_index > 10**12    # the suppliers only earned
    check_invariants(c.kv)


def test_an_account_without_borrows_or_positions_transfers_freely():
    c = Chain(lending_genesis(((key(1).pub_key, "BTC", BTC),)))
    res = c.block([action(key(1), c.time_ms + 1, "transfer", key(2).pub_key, "BTC", BTC)])
    assert [r.code for r in res.tx_results] == [0]
    assert ledger.balance(c.kv, key(2).pub_key, "BTC") == BTC
