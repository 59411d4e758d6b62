"""EffortClock: active annotation time (idle gaps capped) plus stroke and voxel counters."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

IDLE_CAP_S = 60.0  # a pause longer than this counts as this much work


@dataclass
class EffortDelta:
    seconds: float = 0.0
    strokes: int = 0
    voxels: int = 0


class EffortClock:
    """Counts the time between successive edits, each gap counted at most ``idle_cap`` s.

    ``touch()`` marks activity (a stroke starts or ends, a case label is set); ``stroke(n)``
    counts a finished stroke that changed ``n`` voxels. ``take()`` returns what accumulated
    since the last ``take()`` (what a journal record carries); ``total`` is everything since
    the last ``reset()`` (what a saved record carries)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, idle_cap: float = IDLE_CAP_S):
        self._clock = clock
        self.idle_cap = float(idle_cap)
        self._last: Optional[float] = None
        self.total = EffortDelta()
        self._pending = EffortDelta()

    def touch(self) -> None:
        now = self._clock()
        if self._last is not None:
            gap = min(max(now - self._last, 0.0), self.idle_cap)
            self.total.seconds += gap
            self._pending.seconds += gap
        self._last = now

    def stroke(self, voxels: int) -> None:
        self.touch()
        for acc in (self.total, self._pending):
            acc.strokes += 1
            acc.voxels += int(voxels)

    def add(self, seconds: float = 0.0, strokes: int = 0, voxels: int = 0) -> None:
        """Add effort recovered from a journal (it counts towards the next saved record)."""
        self.total.seconds += float(seconds)
        self.total.strokes += int(strokes)
        self.total.voxels += int(voxels)

    def saved(self, seconds: float = 0.0, strokes: int = 0, voxels: int = 0) -> None:
        """A record now carries this much of ``total`` (taken when its save began): only
        what came after it counts towards the next one."""
        t = self.total
        t.seconds = max(0.0, t.seconds - float(seconds))
        t.strokes = max(0, t.strokes - int(strokes))
        t.voxels = max(0, t.voxels - int(voxels))

    def take(self) -> EffortDelta:
        out, self._pending = self._pending, EffortDelta()
        return out

    def reset(self) -> None:
        self.total = EffortDelta()
        self._pending = EffortDelta()
        self._last = None
