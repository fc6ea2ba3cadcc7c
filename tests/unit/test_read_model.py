"""The node's read model (node/read_model.py): fed block by block as a node commits, its books
equal a rebuild from the store at every height, its fills equal a catch-up from the stored
results (a restarted node), and the fill history stays within its bound."""

import itertools

import pytest

from consensus.types import Block, Header
from node.fill_log import P_FILL, P_FILL_BY_ACCOUNT, pack_fill, unpack_fill
from node.read_model import CommittedBlock, Fill, ReadModel
from node.store import Store, Tip
from state.book import Side
from state.books import Books
from state.derived import DerivedCache
from state.genesis import genesis_writes
from state.machine import BlockInput, apply_block
from tests.chain_helpers import (BTC_LOT, BTC_PERP, ETH_LOT, ETH_PERP, PRICE, key, oracle_tx,
                                 order, trading_genesis)

MARKETS = (BTC_PERP, ETH_PERP)
LOTS = {BTC_PERP: 10 * BTC_LOT, ETH_PERP: 10 * ETH_LOT}   # minimum order sizes
STOP_MARKET, IOC = 2, 1


class Node:
    """What Application does with a block, without consensus: execute into a DerivedCache,
    commit to a LevelDB Store, feed the read model."""

    def __init__(self, path, max_fills: int = 1_000):
        g = trading_genesis(6)
        self.store = Store(path)
        writes, self.app_hash = genesis_writes(g)
        self.store.commit_genesis(writes, self.app_hash, g.chain_id, g.genesis_time_ms, {})
        self.chain_id, self.height, self.time_ms = g.chain_id, 0, g.genesis_time_ms
        self.cache = DerivedCache()
        self.model = ReadModel(self.store, self.cache, 0, self.app_hash, max_fills)
        self.nonces = itertools.count(self.time_ms)

    def order(self, i: int, market: int, is_buy: bool, usd: int, lots: int, **kw) -> bytes:
        return order(key(i), next(self.nonces), market, is_buy, usd * PRICE,
                     lots * LOTS[market], **kw)

    def execute(self, txs: list[bytes]):
        """Apply the next block (the execution books move on; the store does not yet)."""
        self.height += 1
        self.time_ms += 1_000
        return apply_block(self.store.state, BlockInput(self.height, self.time_ms, tuple(txs)),
                           self.app_hash, None, self.cache)

    def commit(self, txs: list[bytes], res, feed: bool = True) -> None:
        h = self.height
        header = Header(self.chain_id, h, self.time_ms, b"", b"", b"", b"", res.app_hash, b"",
                        b"", b"")
        block = Block(header, tuple(txs), None)
        tip = Tip(h, block.hash(), self.time_ms, res.app_hash, b"")
        self.store.commit_block(h, block.encode(), b"", res.results_bytes(), list(block.tx_hashes),
                                res.writes, tip)
        self.app_hash = res.app_hash
        if feed:   # False: as a node that crashed after the commit, before the read model
            self.model.on_commit(CommittedBlock(h, self.time_ms, res.app_hash, res.tx_results,
                                            res.block_events))

    def block(self, txs: list[bytes]):
        res = self.execute(txs)
        self.commit(txs, res)
        return res


def orders_of(book) -> list[tuple]:
    return [(side, o.order_id, o.owner, o.price_ticks, o.size_lots)
            for side in (Side.BUY, Side.SELL) for o in book.orders(side)]


def rebuilt(store, market: int) -> list[tuple]:
    return orders_of(Books().build(store.state, market))


def fill_keys(fills) -> list[tuple]:
    return [(f.height, f.index, f.time_ms, f.attrs) for f in fills]


def trading_blocks(n: Node) -> list[list[bytes]]:
    """Makers rest orders on two markets, takers cross them, makers cancel, and a stop order
    triggers at the end of a block (its fill is in the block-events entry)."""
    blocks = [[n.order(i, m, i % 2 == 0, (60_000 if m == BTC_PERP else 3_000) + (i - 2) * 10, 3)
               for i in range(4) for m in MARKETS]]
    blocks.append([n.order(4, BTC_PERP, True, 60_100, 2), n.order(5, ETH_PERP, False, 2_900, 4)])
    blocks.append([n.order(0, BTC_PERP, True, 59_000, 5)])
    blocks.append([n.order(4, BTC_PERP, True, 63_000, 1, kind=STOP_MARKET, tif=IOC,
                           trigger=61_000 * PRICE),
                   n.order(3, BTC_PERP, False, 61_500, 4)])
    blocks.append(oracle_tx(next(n.nonces), [("BTC", 62_000 * PRICE), ("ETH", 3_000 * PRICE)]))
    blocks.append([n.order(5, BTC_PERP, True, 61_500, 1), n.order(1, ETH_PERP, True, 3_050, 9)])
    return blocks


def test_books_at_every_height_equal_a_rebuild_from_the_store(tmp_path):
    n = Node(tmp_path / "db")
    copied = 0
    for txs in trading_blocks(n):
        res = n.block(txs)
        assert all(r.code == 0 for r in res.tx_results), res.tx_results
        assert n.model.books.height == n.height
        for m in MARKETS:
            copied += n.cache.holds(res.app_hash)  # the copy path, not a build
            assert orders_of(n.model.books.book(m)) == rebuilt(n.store, m)
    assert copied and any(rebuilt(n.store, m) for m in MARKETS)


def test_books_read_after_the_next_block_executed_are_still_the_committed_ones(tmp_path):
    """Between execute and commit the execution books hold a newer state than the store:
    a first read of the committed height then builds from the store instead of copying."""
    n = Node(tmp_path / "db")
    blocks = trading_blocks(n)
    n.block(blocks[0])
    before = rebuilt(n.store, BTC_PERP)
    res = n.execute(blocks[1])     # crosses resting BTC orders in the execution books
    assert orders_of(n.model.books.book(BTC_PERP)) == before
    n.commit(blocks[1], res)
    after = orders_of(n.model.books.book(BTC_PERP))
    assert after == rebuilt(n.store, BTC_PERP) and after != before


def test_fills_fed_by_commits_equal_a_catch_up_from_the_store(tmp_path):
    n, ref = Node(tmp_path / "db"), Node(tmp_path / "ref")
    blocks = trading_blocks(n)
    trading_blocks(ref)
    for txs in blocks:
        n.block(txs)
        ref.commit(txs, ref.execute(txs), feed=False)
    live = n.model.fills
    assert live.height == n.height and ref.model.fills.height == 0 and not ref.model.fills.fills
    ref.model.fills.catch_up(ref.height)
    assert fill_keys(ref.model.fills.fills) == fill_keys(live.fills)
    assert len(live.fills) >= 4
    # a triggered order's fill sits in the block-events entry: index == number of txs
    assert any(f.index == len(blocks[f.height - 1]) for f in live.fills), fill_keys(live.fills)
    newest = live.newest_first()
    assert [f.height for f in newest] == sorted((f.height for f in newest), reverse=True)
    assert fill_keys(newest) == fill_keys(reversed(live.fills)) == fill_keys(live.fills)[::-1]
    restarted = ReadModel(n.store, DerivedCache(), n.height, n.app_hash).fills   # kept on disk
    assert restarted.height == n.height and fill_keys(restarted.fills) == fill_keys(live.fills)


def test_a_fill_is_stored_compactly_and_read_back_exactly():
    acct = key(1).pub_key.hex()
    f = Fill(7, 2, 1_700_000_000_123, (("market", "BTC-USD"), ("taker", acct), ("maker", "AB" * 32),
                                        ("odd", "a" * 63), ("price", "60000.5"), ("empty", "")))
    raw = pack_fill(f)
    assert unpack_fill(raw) == f and type(unpack_fill(raw).attrs[2][1]) is str
    assert acct.encode() not in raw and bytes.fromhex(acct) in raw   # 32 bytes, not 64 digits


def test_fill_filters_by_account_and_market(tmp_path):
    n = Node(tmp_path / "db")
    for txs in trading_blocks(n):
        n.block(txs)
    everything = n.model.fills.newest_first()
    eth = n.model.fills.newest_first(market_symbol="ETH-USD")
    taker5 = key(5).pub_key.hex()
    mine = n.model.fills.newest_first(taker5)
    assert eth and all(f.attr("market") == "ETH-USD" for f in eth) and len(eth) < len(everything)
    assert mine and all(taker5 in (f.attr("taker"), f.attr("maker")) for f in mine)
    assert len(mine) < len(everything)
    assert mine == [f for f in everything if f.involves(taker5, None)]   # the index finds all
    assert n.model.fills.newest_first(taker5.upper()) == []   # the text compares, as before
    assert n.model.fills.newest_first("not hex") == [] == n.model.fills.newest_first("ab" * 300)


def stored_keys(store, prefix: bytes) -> int:
    return sum(1 for _ in store.db.iterator(prefix=prefix, include_value=False))


def test_the_fill_history_keeps_only_the_newest_max_fills(tmp_path):
    n, ref = Node(tmp_path / "db", max_fills=3), Node(tmp_path / "ref")
    trading_blocks(ref)
    for txs in trading_blocks(n):
        n.block(txs)
        ref.block(txs)
    assert len(ref.model.fills.fills) > 3
    assert fill_keys(n.model.fills.fills) == fill_keys(ref.model.fills.fills)[-3:]
    assert len(n.model.fills.fills) == 3
    # the older fills and their account entries are deleted from disk, not only hidden
    assert stored_keys(n.store, P_FILL) == 3
    accounts = sum(len({f.attr("taker"), f.attr("maker")}) for f in n.model.fills.fills)
    assert stored_keys(n.store, P_FILL_BY_ACCOUNT) == accounts
    taker = ref.model.fills.newest_first()[-1].attr("taker")   # in the oldest fill only?
    assert n.model.fills.newest_first(taker) == [f for f in reversed(n.model.fills.fills)
                                                 if f.involves(taker, None)]
    smaller = ReadModel(n.store, DerivedCache(), n.height, n.app_hash, max_fills=2).fills
    assert fill_keys(smaller.fills) == fill_keys(ref.model.fills.fills)[-2:]   # at once


def test_a_fill_history_trims_what_one_catch_up_brings_beyond_its_bound(tmp_path):
    n = Node(tmp_path / "db", max_fills=2)
    for txs in trading_blocks(n):
        n.commit(txs, n.execute(txs), feed=False)
    n.model.fills.catch_up(n.height)
    assert len(n.model.fills.fills) == 2 and stored_keys(n.store, P_FILL) == 2


def test_a_model_behind_the_chain_catches_up_then_follows_commits(tmp_path):
    n, ref = Node(tmp_path / "db"), Node(tmp_path / "ref")
    blocks = trading_blocks(n)
    trading_blocks(ref)
    for txs in blocks:
        ref.block(txs)
    for txs in blocks[:2]:
        n.block(txs)
    n.commit(blocks[2], n.execute(blocks[2]), feed=False)   # crashed before its fills
    n.block(blocks[3])
    assert n.model.fills.height == 2          # behind: the commit was not indexed alone
    n.model.fills.catch_up(n.height)
    for txs in blocks[4:]:
        n.block(txs)
    assert n.model.fills.height == n.height
    assert fill_keys(n.model.fills.fills) == fill_keys(ref.model.fills.fills)


def test_an_attached_projection_sees_every_committed_block(tmp_path):
    n = Node(tmp_path / "db")
    seen = []

    class Heights:
        def on_commit(self, block):
            seen.append((block.height, len(block.tx_results)))

    n.model.attach(Heights())
    blocks = trading_blocks(n)[:3]
    for txs in blocks:
        n.block(txs)
    assert seen == [(h + 1, len(txs)) for h, txs in enumerate(blocks)]


@pytest.fixture(autouse=True)
def _close_stores(monkeypatch):
    opened = []
    real_init = Store.__init__

    def init(self, *a, **kw):
        real_init(self, *a, **kw)
        opened.append(self)
    monkeypatch.setattr(Store, "__init__", init)
    yield
    for s in opened:
        s.close()
