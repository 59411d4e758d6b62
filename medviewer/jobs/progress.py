"""Progress reporting and cooperative cancellation for long work (stdlib only)."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Optional


class Cancelled(Exception):
    """Raised inside a job when its CancelToken was set."""


class CancelToken:
    """Thread-safe flag a job checks between steps (Python threads cannot be killed)."""

    def __init__(self):
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    message: str = ""

    @property
    def fraction(self) -> float:
        return 0.0 if self.total <= 0 else min(1.0, self.done / self.total)


ProgressFn = Callable[[Progress], None]


class Reporter:
    """Convenience wrapper: report progress and check cancellation in one call."""

    def __init__(self, progress: Optional[ProgressFn] = None, cancel: Optional[CancelToken] = None):
        self._progress = progress
        self.cancel = cancel or CancelToken()

    def __call__(self, done: int, total: int, message: str = "") -> None:
        self.cancel.raise_if_cancelled()
        if self._progress is not None:
            self._progress(Progress(done, total, message))
