"""The fast paths of the apply path equal the plain code they replace (the golden workloads in
test_trading_golden.py check the whole; these check each piece on inputs those may not reach).
"""

import bisect
import dataclasses
import random

import msgpack
import pytest

from state import nonces
from state import constants as C
from state.amounts import format_amount
from state.book import Side
from state.books import Books
from state.codec import encode, load
from state.errors import TxError
from state.derived import derived_of, load_memo
from state import event_text
from state.kv import MemoryKV, Overlay
from state.ledger import Ledger
from state.markets import PERP, Market
from state.positions import Account, Entry, load_account


def test_shared_packer_gives_packb_bytes_and_survives_errors():
    rng = random.Random(1)

    def obj(depth=0):
        r = rng.random()
        if depth > 3 or r < 0.5:
            return rng.choice([rng.randint(-2**63, 2**64 - 1), rng.randint(-40, 300), "",
                               "perp", b"\x00" * rng.randint(0, 40), True, False, None])
        return [obj(depth + 1) for _ in range(rng.randint(0, 20))]

    for _ in range(3000):
        o = obj()
        assert encode(o) == msgpack.packb(o, use_bin_type=True)
    with pytest.raises(TypeError):
        encode([1, object()])
    assert encode([1, 2]) == msgpack.packb([1, 2], use_bin_type=True)  # no leftover bytes


@pytest.mark.parametrize("base", [0, 2**32 - 60, 1_700_000_000_000])
def test_nonces_kept_as_lists_encode_as_before(base):
    rng = random.Random(base)
    root = Overlay(MemoryKV())
    addr = b"\x07" * 32
    ref: list[int] = []
    for _ in range(400):
        nonce = base + rng.randint(0, 400)
        now = base + 1000
        view = root.child()
        try:
            nonces.use_nonce(view, addr, nonce, now)
            ok = True
        except TxError:
            ok = False
        want = list(ref)
        try:
            nonces.check_nonce(want, nonce, now)
            bisect.insort(want, nonce)
            del want[:max(0, len(want) - C.NONCE_SET_SIZE)]
            want_ok = True
        except TxError:
            want_ok = False
        assert ok == want_ok
        if ok:
            assert view.get(nonces.P_NONCE + addr) == encode(want)
            if rng.random() < 0.8:
                view.commit()
                ref = want
            # else: dropped; the cached list of the dropped bytes must not be reused


def _model_iterate(layers, base, prefix):
    merged = dict(base)
    for w in layers:
        merged.update(w)
    return sorted((k, v) for k, v in merged.items() if k.startswith(prefix) and v is not None)


def test_overlay_reads_iterate_and_write_set_match_a_plain_model():
    """Random puts, deletes and int values over three levels, below and above the size at
    which an overlay keeps a sorted index, with commits and iteration while writes grow."""
    rng = random.Random(7)
    keys = [bytes([rng.choice(b"abc")]) + b"/" + rng.randbytes(rng.randint(1, 4))
            for _ in range(3000)]
    base_data = {k: rng.randbytes(3) for k in rng.sample(keys, 800)}
    root = Overlay(MemoryKV(base_data))
    model_root: dict = {}
    for round_ in range(30):
        child = root.child()
        model_child: dict = {}
        for _ in range(rng.randint(1, 120)):
            k = rng.choice(keys)
            r = rng.random()
            v = None if r < 0.2 else rng.randint(-2**40, 2**40) if r < 0.4 else rng.randbytes(2)
            child.writes[k] = v
            model_child[k] = None if v is None else encode(v) if type(v) is int else v
        for k in rng.sample(keys, 20):
            want = model_child.get(k, model_root.get(k, base_data.get(k)))
            assert child.get(k) == want
        for prefix in (b"a/", b"b", b"c/", b""):
            want = _model_iterate([model_root, model_child], base_data, prefix)
            assert list(child.iterate(prefix)) == want
        if rng.random() < 0.7:
            child.commit()
            model_root.update(model_child)
    want = sorted((k, v) for k, v in model_root.items())
    assert root.sorted_writes() == want
    assert len(root.writes) > 512  # the indexed path was used


def test_load_memo_follows_writes_and_dropped_overlays():
    root = Overlay(MemoryKV({b"k": encode([1, 2])}))
    assert load_memo(root, b"k", "s", load) == [1, 2]
    child = root.child()
    child.put(b"k", encode([3, 4]))
    assert load_memo(child, b"k", "s", load) == [3, 4]
    assert load_memo(root, b"k", "s", load) == [1, 2]  # the child was dropped
    assert derived_of(root).memos["s"][b"k"][1] == [1, 2]


def _market(quote_decimals: int, base_decimals: int, tick: int, lot: int) -> Market:
    return Market(7, "X-USD", PERP, "X", base_decimals, tick, lot, 1, (), 0, 0, 1, 1,
                  quote_decimals, 10**base_decimals, 1)


@pytest.mark.parametrize("decimals", [0, 1, 6, 8, 18])
def test_memoised_event_texts_equal_format_amount(decimals, monkeypatch):
    monkeypatch.setattr(event_text, "_MAX_PAIRS", 64)  # the bound is reached and starts afresh
    rng = random.Random(decimals)
    m = _market(decimals, 18 - decimals, 10**(decimals // 2), 3)
    t = event_text.market_text(m)
    for x in [0, 1, -1, 10**decimals, -10**decimals] + \
            [rng.randint(-10**20, 10**20) for _ in range(500)] + \
            [rng.randint(-100, 100) for _ in range(500)]:
        price, size = format_amount(x * m.tick_size, decimals), format_amount(x * 3, 18 - decimals)
        assert t.price[x] == ("price", price) and t.price_text(x) == price
        assert t.remaining[x] == ("remaining", size) and t.size_text(x) == size
        assert t.maker_fee[x] == ("maker_fee", format_amount(x, decimals)) == \
            ("maker_fee", t.quote_text(x))
        assert len(t.price) <= 64
    addr = rng.randbytes(32)
    assert event_text._MAKERS[addr] == ("maker", addr.hex())


def test_market_texts_follow_the_market_fields_they_depend_on():
    m = _market(6, 8, 10, 100)
    t = event_text.market_text(m)
    assert event_text.market_text(m) is t
    # Another object with the same fields (the mempool's decode of the market) shares them.
    assert event_text.market_text(dataclasses.replace(m)) is t
    changed = dataclasses.replace(m, tick_size=100)  # as governance would decode it
    assert event_text.market_text(changed) is not t
    assert event_text.market_text(changed).price[7] == ("price", format_amount(700, 6))
    assert event_text.market_text(m).price[7] == ("price", format_amount(70, 6))


def test_fee_tier_volume_is_constant_within_a_day():
    """Why trading keeps one fee tier table per day: adding today's volume never changes
    volume_30d(today), whatever the buckets."""
    rng = random.Random(3)
    for _ in range(2000):
        today = 20_000
        days = sorted(rng.sample(range(today - 40, today + 1), rng.randint(0, 12)))
        acct = Account(b"\x01" * 32, {}, [[d, rng.randint(1, 10**9)] for d in days])
        before = acct.volume_30d(today)
        for _ in range(rng.randint(1, 4)):
            acct.add_volume(today, rng.randint(1, 10**9))
        assert acct.volume_30d(today) == before


def test_account_load_and_save_round_trip():
    rng = random.Random(9)
    for _ in range(500):
        entries = {m: Entry(m, *(rng.randint(-5, 5) for _ in range(8)))
                   for m in rng.sample(range(1, 6), rng.randint(0, 4))}
        acct = Account(b"\x02" * 32, entries, [[d, rng.randint(1, 99)]
                                               for d in range(rng.randint(0, 3))])
        view = Overlay(MemoryKV())
        ledger = Ledger(view)
        ledger.accounts[acct.addr] = acct
        ledger.flush()
        for v in (view, MemoryKV(dict(view.sorted_writes()))):  # decoded, and as bytes
            got = load_account(v, acct.addr)
            kept = {m: e.to_stored() for m, e in entries.items() if not e.empty()}
            assert {m: e.to_stored() for m, e in got.entries.items()} == kept
            assert got.volume == acct.volume


def test_book_rollback_restores_order_info():
    books = Books()
    book = books.book(Overlay(MemoryKV()), 1)
    books.begin()
    book.add(1, b"a" * 32, Side.SELL, 100, 5, ("info", 1))
    books.commit()
    books.begin()
    book.cancel(1)
    books.rollback()
    assert book.get(1).info == ("info", 1) and book.get(1).size_lots == 5
