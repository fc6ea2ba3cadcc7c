"""Events: what a tx (or a begin/end-block step) did, as typed key-value records.

An event is `[type, [[key, value], ...]]` on the wire (state/machine.TxResult); values are
strings (decimal strings for amounts). They are part of the block results, hence of
`last_results_hash`: their order and text are consensus-critical. The texts of trading events
are built in state.event_text.
"""

from dataclasses import dataclass


@dataclass(slots=True)
class Event:
    """One event (a slotted dataclass: much cheaper to build than a named tuple, whose __new__
    is Python code; a frozen dataclass is dearer still)."""
    type: str
    attrs: tuple[tuple[str, str], ...]

    def to_wire(self) -> list:
        return [self.type, [list(a) for a in self.attrs]]
