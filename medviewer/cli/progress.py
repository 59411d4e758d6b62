"""The command line's progress and messages: one terminal progress line on stderr (only when
stderr is a terminal) and the ``medviewer: ...`` error lines."""
from __future__ import annotations

import sys

__all__ = ["TtyProgress", "reporter", "err", "reason"]


class TtyProgress:
    """A one-line progress display on stderr, only when stderr is a terminal. Called with a
    jobs ``Progress`` or with ``(done, total, message)`` (the AI generators' steps)."""

    def __init__(self):
        self.enabled = sys.stderr.isatty()
        self._shown = False

    def __call__(self, done, total=None, message: str = "") -> None:
        if total is None:  # a Progress
            done, total, message = done.done, done.total, done.message
        if not self.enabled:
            return
        pct = int(100 * done / total) if total else 0
        sys.stderr.write(f"\r{message[:60]:<60} {pct:3d}%")
        sys.stderr.flush()
        self._shown = True

    def done(self) -> None:
        if self._shown:
            sys.stderr.write("\r" + " " * 66 + "\r")
            sys.stderr.flush()
            self._shown = False


def reporter(tty: TtyProgress):
    """A jobs Reporter that draws on ``tty`` (None when stderr is no terminal)."""
    if not tty.enabled:
        return None
    from medviewer.jobs import Reporter

    return Reporter(tty)


def err(message: str) -> None:
    print(f"medviewer: {message}", file=sys.stderr)


def reason(exc: BaseException) -> str:
    """The first line of an exception's message (its type when it has none)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
