"""GUI responsiveness instruments: a timer probe for event-loop stalls, and a wait that keeps a
real event loop running (used by the responsiveness benchmark and the UI tests).

``QTest.qWait`` / ``qtbot.waitUntil`` hold the GIL while they sleep and starve worker
threads (an AI job ran 5-15x slower under them); :func:`run_until` runs a ``QEventLoop``,
which releases the GIL while idle, as the app's own ``exec()`` does.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional

from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer


class StallProbe:
    """A 10 ms QTimer on the GUI thread: counts ticks and the longest gap between them (s)."""

    def __init__(self, interval_ms: int = 10):
        self.ticks, self.longest, self._last = 0, 0.0, None
        self.thread: Optional[int] = None  # the thread the ticks ran on
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.longest = max(self.longest, now - self._last)
        self._last = now
        self.ticks += 1
        self.thread = threading.get_ident()

    def start(self) -> None:
        self.ticks, self.longest, self._last = 0, 0.0, time.perf_counter()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()


def run_until(condition: Callable[[], bool], timeout_ms: Optional[int] = None,
              poll_ms: int = 20) -> bool:
    """Run a real QEventLoop until ``condition()`` (polled every ``poll_ms``) or the timeout;
    returns ``condition()`` at the end."""
    if condition():
        return True
    loop, timer, clock = QEventLoop(), QTimer(), QElapsedTimer()
    clock.start()

    def poll():
        if condition() or (timeout_ms is not None and clock.elapsed() > timeout_ms):
            loop.quit()

    timer.timeout.connect(poll)
    timer.start(poll_ms)
    loop.exec()
    timer.stop()
    return bool(condition())
