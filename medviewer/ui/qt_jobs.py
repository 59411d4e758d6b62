"""QtJobBridge: the one place where worker threads meet Qt. It runs a :class:`JobRunner`
(``medviewer.jobs``) whose callbacks are handed to the GUI thread through a queued signal, and
re-emits the runner's events as ``sig_*`` signals there."""
from __future__ import annotations

from typing import Callable, Optional

from PySide6.QtCore import QObject, Signal

from medviewer.jobs import Job, JobRunner, Reporter

__all__ = ["Job", "QtJobBridge"]


class QtJobBridge(QObject):
    """Submit ``fn(reporter)`` off the GUI thread; callbacks and ``sig_*`` arrive on the GUI
    thread (the bridge lives there; cross-thread emission is queued by Qt)."""

    sig_started = Signal(int, str)
    sig_progress = Signal(int, object)  # job id, Progress
    sig_finished = Signal(int, object)  # job id, result
    sig_failed = Signal(int, str)  # job id, message
    sig_cancelled = Signal(int)
    sig_idle = Signal()  # no job left

    _call = Signal(object)  # a callable to run on the GUI thread

    def __init__(self, max_workers: int = 2, parent: Optional[QObject] = None,
                 thread_name_prefix: str = "medviewer-io", runner: Optional[JobRunner] = None):
        super().__init__(parent)
        self._call.connect(self._run_call)  # a bound slot: queued to this object's thread
        self.runner = runner or JobRunner(max_workers, thread_name_prefix)
        self.runner.attach(self._call.emit, self._on_event)

    def _run_call(self, fn) -> None:
        fn()

    def _on_event(self, event: str, job: Job, payload) -> None:
        if event == "started":
            self.sig_started.emit(job.id, job.name)
        elif event == "progress":
            self.sig_progress.emit(job.id, payload)
        elif event == "ok":
            self.sig_finished.emit(job.id, payload)
        elif event == "error":
            self.sig_failed.emit(job.id, payload)
        elif event == "cancelled":
            self.sig_cancelled.emit(job.id)
        elif event == "idle":
            self.sig_idle.emit()

    def submit(self, fn: Callable[[Reporter], object], name: str = "job", *,
               on_done=None, on_error=None, on_progress=None, on_cancelled=None) -> Job:
        return self.runner.submit(fn, name, on_done=on_done, on_error=on_error,
                                  on_progress=on_progress, on_cancelled=on_cancelled)

    @property
    def busy(self) -> bool:
        return self.runner.busy

    def cancel_all(self) -> None:
        self.runner.cancel_all()

    def shutdown(self) -> None:
        self.runner.shutdown()


def error_sentence(message: str, fallback: str = "the job failed") -> str:
    """A job's error message ("RegistrationError: the reason", or the first line of any
    other exception's) as one sentence for a dialog, without the exception's name;
    ``fallback`` when there is no message."""
    text = (message or "").strip()
    text = text.splitlines()[0].strip() if text else ""
    head, sep, rest = text.partition(": ")
    if sep and head.isidentifier() and head.endswith(("Error", "Exception")):
        text = rest.strip()
    text = text or fallback
    return text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")
