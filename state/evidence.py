"""Double-sign evidence: consensus proves it, the state records it for good.

    evidence/<validator:32><height:8><round:4><type:1> -> [block height, vote_a, vote_b]

Consensus checks each piece of evidence (two votes by one validator, same height, round
and type, different blocks, both signatures valid) before a block can carry it; the state
records it once (a repeat is ignored) and emits a `double_sign` block event. Penalties
(slashing, jailing) will read these records.
"""

from dataclasses import dataclass

from state.codec import encode, load
from state.events import Event
from state.kv import KVView, Overlay

P_EVIDENCE = b"evidence/"


@dataclass(frozen=True, slots=True)
class DoubleSign:
    validator: bytes
    height: int
    round: int
    vote_type: int
    vote_a: bytes
    vote_b: bytes


def evidence_key(validator: bytes, height: int, round_: int, vote_type: int) -> bytes:
    return (P_EVIDENCE + validator + height.to_bytes(8, "big") + round_.to_bytes(4, "big")
            + vote_type.to_bytes(1, "big"))


def record(view: Overlay, block_height: int, evidence: tuple[DoubleSign, ...]) -> list[Event]:
    events = []
    for e in evidence:
        key = evidence_key(e.validator, e.height, e.round, e.vote_type)
        if view.get(key) is not None:
            continue
        view.put(key, encode([block_height, e.vote_a, e.vote_b]))
        events.append(Event("double_sign", (("validator", e.validator.hex()),
                                            ("height", str(e.height)), ("round", str(e.round)),
                                            ("vote_type", str(e.vote_type)))))
    return events


def recorded(view: KVView, validator: bytes | None = None) -> list[dict]:
    """Every recorded double sign (of one validator if given), ascending by key."""
    out = []
    n = len(P_EVIDENCE)
    for k, raw in view.iterate(P_EVIDENCE + (validator or b"")):
        block_height, a, b = load(raw)
        out.append({"validator": k[n:n + 32], "height": int.from_bytes(k[n + 32:n + 40], "big"),
                    "round": int.from_bytes(k[n + 40:n + 44], "big"), "vote_type": k[n + 44],
                    "block_height": block_height, "vote_a": a, "vote_b": b})
    return out
