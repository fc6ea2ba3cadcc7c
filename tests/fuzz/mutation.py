"""The one byte mutator of the fuzz tests: flip, cut, insert or splice bytes of a valid
encoding (or keep it), or, with `fresh`, replace it with random bytes."""

from hypothesis import strategies as st


def mutate(draw, data: bytes, fresh: bool = False) -> bytes:
    kinds = ("flip", "cut", "insert", "splice", "same") + (("random",) if fresh else ())
    kind = draw(st.sampled_from(kinds))
    if kind == "random" or (fresh and not data):
        return draw(st.binary(max_size=300))
    if kind == "same" or not data:
        return data
    i = draw(st.integers(0, len(data) - 1))
    if kind == "flip":
        return data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1:]
    if kind == "cut":
        return data[:i]
    if kind == "insert":
        return data[:i] + draw(st.binary(min_size=1, max_size=12)) + data[i:]
    return data[:i] + draw(st.binary(max_size=60)) + data[i + draw(st.integers(0, 20)):]
