"""GuiThreadCollector: Python's cyclic garbage collector runs on the GUI thread only.

A collection runs on whichever thread happens to allocate when a threshold is crossed: with
the automatic collector on, that is often a worker (an inference, a save). When the garbage
holds the wrapper of a QObject (a closed dialog in a reference cycle, a window), PySide hands
its deletion to the GUI thread, where it may run inside a signal emission and wait for a Qt
mutex that a worker holds while it waits for the GIL: the application hangs (seen in CI,
gdb trace in the notes of issue 14). With automatic collection off and the same generational
thresholds checked on a GUI-thread timer, every collection (and so every QObject deletion)
happens on the GUI thread, outside any emission. Reference counting, which frees almost
everything, is untouched."""
from __future__ import annotations

import gc
from typing import Optional

from PySide6.QtCore import QObject, QTimer


class GuiThreadCollector(QObject):
    """Between :meth:`start` and :meth:`stop`, the automatic collector is off and a GUI-thread
    timer collects each generation when its threshold is crossed (as the automatic one
    would). Create it on the GUI thread; the event loop must run for the timer."""

    def __init__(self, interval_ms: int = 1000, parent: Optional[QObject] = None):
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.setInterval(int(interval_ms))
        self._timer.timeout.connect(self.check)
        self._was_enabled: Optional[bool] = None

    @property
    def active(self) -> bool:
        return self._was_enabled is not None

    def start(self) -> "GuiThreadCollector":
        if not self.active:
            self._was_enabled = gc.isenabled()
            gc.disable()
            self._timer.start()
        return self

    def stop(self, collect: bool = True) -> None:
        """Give collection back to Python (after a full collection here when ``collect``:
        what the GUI left behind goes now, on this thread, not later on a worker)."""
        if not self.active:
            return
        self._timer.stop()
        if collect:
            gc.collect()
        if self._was_enabled:
            gc.enable()
        self._was_enabled = None

    def check(self) -> int:
        """Collect the generations whose thresholds are crossed; returns the oldest one
        collected (-1: none)."""
        t0, t1, t2 = gc.get_threshold()
        c0, c1, c2 = gc.get_count()
        gen = -1
        if t0 and c0 > t0:
            gen = 0
            if c1 > t1:
                gen = 1
                if c2 > t2:
                    gen = 2
            gc.collect(gen)
        return gen
