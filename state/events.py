"""Events: what a tx (or a begin/end-block step) did, as typed key-value records.

An event is `[type, [[key, value], ...]]` on the wire (state/machine.TxResult); values are
strings (decimal strings for amounts). They are part of the block results, hence of
`last_results_hash`: their order and text are consensus-critical.
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    attrs: tuple[tuple[str, str], ...]

    def to_wire(self) -> list:
        return [self.type, [list(a) for a in self.attrs]]


_new = object.__new__
_set_type = Event.__dict__["type"].__set__
_set_attrs = Event.__dict__["attrs"].__set__


def event(type: str, attrs: tuple[tuple[str, str], ...]) -> Event:
    """`Event(type, attrs)`, built without the frozen dataclass's `__init__` (which sets each
    field through `object.__setattr__`): the same object, for the state machine's hot paths."""
    e = _new(Event)
    _set_type(e, type)
    _set_attrs(e, attrs)
    return e
