"""The loader's one error type and the guard that turns any reader failure into it.

Readers and decoders raise many types: ValueError, OverflowError, RuntimeError (ITK),
nibabel's ImageFileError, zlib errors, MemoryError, and pyo3's ``PanicException`` from the
Rust RLE/JPEG plugins, which derives from BaseException, not Exception. ``guarded(name)``
turns every one of them into a ``LoadError`` whose message names the file (its name only)
and says what failed; KeyboardInterrupt, SystemExit and GeneratorExit pass through, and so
does anything raised by the caller's own progress callback (e.g. a job's cancellation),
when that callback is wrapped with ``passthrough``.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Optional

__all__ = ["LoadError", "MemoryBudgetError", "guarded", "passthrough", "reason", "scrub",
           "quiet_panic_reports"]

_NEVER_CAUGHT = (KeyboardInterrupt, SystemExit, GeneratorExit)


class LoadError(ValueError):
    """A series or file could not be loaded; the message says why (no patient data)."""


class MemoryBudgetError(LoadError):
    """Loading would need more memory than the budget allows (see ``budget``)."""


def reason(exc: BaseException, limit: int = 200) -> str:
    """The useful first line of a library's error (its type name when it has no text)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0] if lines else ""
    kind = type(exc).__name__
    if not text:
        return kind
    if kind in ("PanicException", "MemoryError", "OverflowError", "RecursionError"):
        text = f"{kind}: {text}"
    return text[:limit]


class passthrough:
    """Wraps a progress callback: whatever it raises (e.g. a job's Cancelled) is re-raised
    by ``guarded`` unchanged instead of becoming a LoadError."""

    def __init__(self, callback: Optional[Callable]):
        self.callback = callback
        self.raised: Optional[BaseException] = None

    def __call__(self, *args, **kwargs):
        try:
            return self.callback(*args, **kwargs)
        except BaseException as exc:
            self.raised = exc
            raise

    def __bool__(self) -> bool:
        return self.callback is not None


def scrub(message: str, secrets: Iterable[str]) -> str:
    """``message`` with every patient name/ID in ``secrets`` replaced (longest first)."""
    for s in sorted({str(s).strip() for s in secrets if s and len(str(s).strip()) >= 2},
                    key=len, reverse=True):
        message = message.replace(s, "[patient]")
    return message


@contextmanager
def guarded(name: str, what: str = "cannot read", progress: Optional[passthrough] = None,
            describe: Optional[Callable[[BaseException], LoadError]] = None,
            secrets: Iterable[str] = ()):
    """Run a reader/decoder call; any failure leaves as a LoadError naming ``name``.

    ``name`` is a file name (a path is cut to its name). ``describe(exc)`` may build a more
    specific LoadError; ``secrets`` (patient names/IDs) are removed from every message."""
    name = Path(str(name)).name or str(name)
    try:
        yield
    except _NEVER_CAUGHT:
        raise
    except BaseException as exc:  # noqa: BLE001  pyo3 panics are BaseExceptions
        if progress is not None and exc is progress.raised:
            raise
        secrets = tuple(secrets)
        if isinstance(exc, LoadError):
            if secrets:
                cleaned = scrub(str(exc), secrets)
                if cleaned != str(exc):
                    raise type(exc)(cleaned) from exc
            raise
        err = None
        if describe is not None:
            try:
                err = describe(exc)
            except Exception:  # noqa: BLE001  a failing description: the plain message
                err = None
        if err is None:
            err = LoadError(f"{name}: {what}: {reason(exc)}")
        if secrets:
            err = type(err)(scrub(str(err), secrets))
        raise err from exc


# A Rust decoder that panics first prints a report on the process's stderr (file descriptor
# 2, below Python), with a stack backtrace when RUST_BACKTRACE is set: the command line would
# show it although the error has become a one-line LoadError.
_PANIC_LINE = re.compile(r"^(thread '.*' panicked at |note: run with `RUST_BACKTRACE|"
                         r"note: Some details are omitted|stack backtrace:|\s+\d+: |\s+at )")
_capture_lock = threading.Lock()
_capture_file = None


def _drop_panic_report(text: str) -> str:
    """``text`` without Rust panic reports: the "thread ... panicked at" line (and the
    blank line before it), the message, the notes and the backtrace."""
    out, state = [], 0  # 0: other output, 1: the panic message, 2: notes and backtrace
    for line in text.splitlines(keepends=True):
        if line.startswith("thread '") and " panicked at " in line:
            if out and not out[-1].strip():
                out.pop()
            state = 1
        elif state and _PANIC_LINE.match(line):
            state = 2
        elif state == 1:
            pass
        else:
            state = 0
            out.append(line)
    return "".join(out)


@contextmanager
def quiet_panic_reports():
    """Capture file descriptor 2 while native decoders run; afterwards write back what was
    written there, except the report of a panic that the block raised (its message is in
    the exception). One thread at a time captures; the others run uncaptured."""
    global _capture_file
    if not _capture_lock.acquire(blocking=False):
        yield
        return
    saved = None
    panicked = False
    try:
        try:
            sys.stderr.flush()
            if _capture_file is None:
                _capture_file = tempfile.TemporaryFile()
            _capture_file.seek(0)
            _capture_file.truncate()
            saved = os.dup(2)
            os.dup2(_capture_file.fileno(), 2)
        except (OSError, ValueError, AttributeError):  # no fd 2 (e.g. a windowed app)
            saved = None
        try:
            yield
        except BaseException as exc:
            panicked = type(exc).__name__ == "PanicException"
            raise
    finally:
        if saved is not None:
            try:
                os.dup2(saved, 2)
                os.close(saved)
                _capture_file.seek(0)
                text = _capture_file.read().decode("utf-8", "replace")
                if panicked:
                    text = _drop_panic_report(text)
                if text:
                    sys.stderr.write(text)
                    sys.stderr.flush()
            except (OSError, ValueError):
                pass
        _capture_lock.release()
