import msgpack
import pytest

from state.amounts import AmountError, format_amount, parse_amount
from state.codec import CodecError, decode, encode


def test_roundtrip_and_same_bytes():
    obj = ["a", 1, -5, 2**63, b"\x00\x01", [True, None, []]]
    assert decode(encode(obj)) == obj
    assert encode(obj) == encode(list(obj))


@pytest.mark.parametrize("data,why", [
    (encode([1]) + b"\x00", "trailing"),
    (msgpack.packb(1.5), "float"),
    (msgpack.packb({"a": 1}), "dict"),
    (b"\xcd\x00\x01", "canonical"),          # uint16 encoding of 1
    (b"\x92\x01", "msgpack"),                # array of 2 with only 1 element
    (msgpack.packb(msgpack.ExtType(1, b"x")), "ExtType"),
])
def test_rejects_non_canonical(data, why):
    with pytest.raises(CodecError) as e:
        decode(data)
    assert why in str(e.value) or why.lower() in str(e.value).lower()


def test_size_limit():
    with pytest.raises(CodecError, match="exceeds"):
        decode(encode(b"x" * 100), max_bytes=10)


@pytest.mark.parametrize("text,dec,q", [("12.5", 6, 12_500_000), ("0", 6, 0), ("1", 0, 1),
                                         ("0.000001", 6, 1), ("100", 8, 10**10)])
def test_parse_amount(text, dec, q):
    assert parse_amount(text, dec) == q
    assert parse_amount(format_amount(q, dec), dec) == q


@pytest.mark.parametrize("text", ["1.0000001", "-1", "1e5", "abc", "", "1.", ".5", "1,5"])
def test_parse_amount_rejects(text):
    with pytest.raises(AmountError):
        parse_amount(text, 6)


def test_format_amount():
    assert format_amount(12_500_000, 6) == "12.5"
    assert format_amount(-1, 6) == "-0.000001"
    assert format_amount(7, 0) == "7"


def test_deep_nesting_is_a_codec_error_not_a_crash():
    data = b"\x91" * 5000 + b"\x00"
    with pytest.raises(CodecError, match="deep"):
        decode(data)
    with pytest.raises(CodecError, match="deep"):
        decode(encode([[[[[[[[[[1]]]]]]]]]]))


def test_amount_rejects_non_ascii_digits():
    with pytest.raises(AmountError):
        parse_amount("\uff11\uff12", 6)
