"""JSON-lines progress events on stdout (rank 0 only) and the cancel switch (SIGTERM / SIGINT).

One JSON object per line, flushed at once, so a parent process (the UI's QProcess) can plot a
run live. ``progress`` events are throttled to about five per second. NaN/inf become null (the
output is strict JSON). A vanished reader (broken pipe) never stops training.

:class:`CancelSwitch` installs handlers for SIGTERM and SIGINT that raise :class:`Cancelled` in
the main thread at the next Python bytecode (torch ops are short, so a run stops well within a
second). Inside :meth:`CancelSwitch.critical` (committing a finished version) a signal is only
remembered and raised when the block ends, so a version is either fully there or not at all.
"""
from __future__ import annotations

import contextlib
import json
import math
import signal
import sys
import time
from typing import Any, Iterator, Optional, TextIO

__all__ = ["Cancelled", "CancelSwitch", "Emitter", "EXIT_OK", "EXIT_CRASH", "EXIT_BAD_INPUT",
           "EXIT_CANCELLED"]

EXIT_OK, EXIT_CRASH, EXIT_BAD_INPUT, EXIT_CANCELLED = 0, 1, 2, 130


class Cancelled(Exception):
    """The run was asked to stop (SIGTERM / SIGINT)."""


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _clean(value.item())
    return value


class Emitter:
    """Writes events as JSON lines; silent on ranks other than 0."""

    def __init__(self, stream: Optional[TextIO] = None, enabled: bool = True,
                 min_interval_s: float = 0.2):
        self.stream = stream if stream is not None else sys.stdout
        self.enabled = enabled
        self.min_interval_s = min_interval_s
        self._last_progress = 0.0
        self.sent: list[dict] = []  # every event written (tests and the final report use it)

    def emit(self, event: str, **fields: Any) -> None:
        if not self.enabled:
            return
        obj = _clean({"event": event, **fields})
        self.sent.append(obj)
        try:
            self.stream.write(json.dumps(obj, allow_nan=False) + "\n")
            self.stream.flush()
        except (BrokenPipeError, ValueError, OSError):  # reader gone: keep training
            self.enabled = False

    def progress(self, epoch: int, epochs: int, step: int, steps: int, loss: float) -> None:
        """A throttled progress event (the last step of an epoch always goes out)."""
        now = time.monotonic()
        if step < steps and now - self._last_progress < self.min_interval_s:
            return
        self._last_progress = now
        self.emit("progress", epoch=epoch, epochs=epochs, step=step, steps=steps,
                  loss=round(float(loss), 6))


class CancelSwitch:
    """SIGTERM/SIGINT -> :class:`Cancelled` raised in the main thread (deferred in critical)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.requested = False
        self._critical = 0
        self._previous: dict = {}

    def _handler(self, signum, frame) -> None:  # noqa: ARG002 - signal API
        self.requested = True
        if self._critical == 0:
            raise Cancelled(f"signal {signum}")

    def install(self) -> "CancelSwitch":
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def uninstall(self) -> None:
        for sig, old in self._previous.items():
            signal.signal(sig, old)
        self._previous.clear()

    def check(self) -> None:
        if self.requested and self._critical == 0:
            raise Cancelled("cancel requested")

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        """Signals inside this block are remembered, not raised (commit + promote)."""
        self._critical += 1
        try:
            yield
        finally:
            self._critical -= 1
