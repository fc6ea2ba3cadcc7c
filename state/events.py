"""Events: what a tx (or a begin/end-block step) did, as typed key-value records.

An event is `[type, [[key, value], ...]]` on the wire (state/machine.TxResult); values are
strings (decimal strings for amounts). They are part of the block results, hence of
`last_results_hash`: their order and text are consensus-critical. The texts of trading events
are built in state.event_text.
"""

from dataclasses import dataclass


@dataclass(slots=True)
class Event:
    """A record with slots rather than a named tuple: a named tuple's constructor runs a
    Python `__new__`, and a busy block makes hundreds of thousands of events."""
    type: str
    attrs: tuple[tuple[str, str], ...]

    def __iter__(self):
        """`type, attrs = event`, as of the wire pair."""
        return iter((self.type, self.attrs))

    def to_wire(self) -> list:
        return [self.type, [list(a) for a in self.attrs]]
