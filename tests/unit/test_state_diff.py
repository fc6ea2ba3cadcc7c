"""node/state_diff.py: readable keys and values, and the keys two states differ in."""

from node.state_diff import KeyDiff, decode_value, diff_sorted, render_key
from state.codec import encode


def test_render_key_keeps_the_ascii_prefix_and_shows_binary_fields_as_hex():
    addr = bytes(range(32))
    assert render_key(b"acct/bal/" + addr + b"USDC") == \
        "acct/bal/0x" + addr.hex() + b"USDC".hex()
    assert render_key(b"meta/last_block") == "meta/last_block"
    assert render_key(b"\x01abc") == "0x01616263"


def test_decode_value_shows_msgpack_with_bytes_as_hex_and_other_bytes_as_hex():
    assert decode_value(encode([1, b"\xab", "x", None])) == [1, "0xab", "x", None]
    assert decode_value(b"\xc1") == "0xc1"       # 0xc1 is never valid msgpack
    assert decode_value(None) is None


def test_diff_sorted_names_changed_missing_and_extra_keys():
    stored = [(b"a", b"1"), (b"b", b"2"), (b"d", b"4")]
    replayed = [(b"a", b"1"), (b"b", b"3"), (b"c", b"9")]
    got = list(diff_sorted(stored, replayed, {b"b": 7, b"c": 0}))
    assert got == [KeyDiff(b"b", b"2", b"3", 7), KeyDiff(b"c", None, b"9", 0),
                   KeyDiff(b"d", b"4", None, None)]
    assert "last written by block 7" in got[0].describe()
    assert "never written" in got[2].describe() and "(absent)" in got[2].describe()
    assert list(diff_sorted(stored, stored, {})) == []
