"""A tiny pure-python signal (connect / emit / disconnect) for the core model (no Qt)."""
from __future__ import annotations

from typing import Callable, List


class Signal:
    """Synchronous observer list. Slots run in connection order in the emitting thread.

    The core model is used from the GUI thread only; a slot that raises does not stop the
    other slots (the first error is re-raised after all slots ran)."""

    def __init__(self, name: str = ""):
        self.name = name
        self._slots: List[Callable] = []

    def connect(self, slot: Callable) -> Callable:
        if slot not in self._slots:
            self._slots.append(slot)
        return slot

    def disconnect(self, slot: Callable | None = None) -> None:
        """Remove one slot (or all slots when ``slot`` is None); unknown slots are ignored."""
        if slot is None:
            self._slots.clear()
        elif slot in self._slots:
            self._slots.remove(slot)

    def emit(self, *args, **kwargs) -> None:
        error = None
        for slot in list(self._slots):
            try:
                slot(*args, **kwargs)
            except Exception as exc:  # keep notifying the other listeners
                error = error or exc
        if error is not None:
            raise error

    def __len__(self) -> int:
        return len(self._slots)
