"""QtJobBridge: runs callables on a thread pool and delivers progress/results/errors as Qt signals.

The only place where worker threads meet Qt. A job is ``fn(reporter)``; it reports progress
through the ``Reporter`` (throttled) and is cancelled cooperatively with its CancelToken.
All callbacks run on the GUI thread (the bridge lives there; cross-thread signal emission
is queued by Qt)."""
from __future__ import annotations

import itertools
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

from PySide6.QtCore import QObject, Signal

from medviewer.jobs.progress import CancelToken, Cancelled, Progress, Reporter


@dataclass
class Job:
    id: int
    name: str
    cancel_token: CancelToken = field(default_factory=CancelToken)
    on_done: Optional[Callable] = None
    on_error: Optional[Callable] = None
    on_progress: Optional[Callable] = None
    on_cancelled: Optional[Callable] = None
    last_emit: float = 0.0

    def cancel(self) -> None:
        self.cancel_token.cancel()


class QtJobBridge(QObject):
    """Submit work off the GUI thread; get ``sig_*`` signals back on the GUI thread."""

    sig_started = Signal(int, str)
    sig_progress = Signal(int, object)  # job id, Progress
    sig_finished = Signal(int, object)  # job id, result
    sig_failed = Signal(int, str)  # job id, message
    sig_cancelled = Signal(int)
    sig_idle = Signal()  # no job left

    PROGRESS_INTERVAL_S = 0.05

    def __init__(self, max_workers: int = 2, parent: Optional[QObject] = None,
                 thread_name_prefix: str = "medviewer-io"):
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self._ids = itertools.count(1)
        self._jobs: Dict[int, Job] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._internal_done.connect(self._on_internal_done)
        self._internal_progress.connect(self._on_internal_progress)

    _internal_done = Signal(int, str, object)  # id, outcome ("ok"/"error"/"cancelled"), payload
    _internal_progress = Signal(int, object)

    # ------------------------------------------------------------------ API
    def submit(self, fn: Callable[[Reporter], object], name: str = "job", *,
               on_done=None, on_error=None, on_progress=None, on_cancelled=None) -> Job:
        job = Job(next(self._ids), name, on_done=on_done, on_error=on_error,
                  on_progress=on_progress, on_cancelled=on_cancelled)
        if self._closed:  # after shutdown (window closing): nothing runs, nothing is delivered
            job.cancel()
            return job
        with self._lock:
            self._jobs[job.id] = job
        self.sig_started.emit(job.id, name)
        self._pool.submit(self._run, job, fn)
        return job

    @property
    def busy(self) -> bool:
        with self._lock:
            return bool(self._jobs)

    def cancel_all(self) -> None:
        with self._lock:
            jobs = list(self._jobs.values())
        for j in jobs:
            j.cancel()

    def shutdown(self) -> None:
        self._closed = True
        self.cancel_all()
        self._pool.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------------ worker side
    def _run(self, job: Job, fn) -> None:
        def progress(p: Progress) -> None:
            now = time.monotonic()
            if now - job.last_emit >= self.PROGRESS_INTERVAL_S or p.done >= p.total:
                job.last_emit = now
                self._internal_progress.emit(job.id, p)

        try:
            result = fn(Reporter(progress, job.cancel_token))
        except Cancelled:
            self._internal_done.emit(job.id, "cancelled", None)
        except Exception as exc:  # delivered to the GUI as a message, never lost
            msg = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
            self._internal_done.emit(job.id, "error", msg)
        else:
            if job.cancel_token.cancelled:
                self._internal_done.emit(job.id, "cancelled", None)
            else:
                self._internal_done.emit(job.id, "ok", result)

    # ------------------------------------------------------------------ GUI side
    def _on_internal_progress(self, job_id: int, p: Progress) -> None:
        job = self._jobs.get(job_id)
        if job is None:
            return
        self.sig_progress.emit(job_id, p)
        if job.on_progress:
            job.on_progress(p)

    def _on_internal_done(self, job_id: int, outcome: str, payload) -> None:
        with self._lock:
            job = self._jobs.pop(job_id, None)
        if job is None:
            return
        try:
            if outcome == "ok":
                self.sig_finished.emit(job_id, payload)
                if job.on_done:
                    job.on_done(payload)
            elif outcome == "error":
                self.sig_failed.emit(job_id, payload)
                if job.on_error:
                    job.on_error(payload)
            else:
                self.sig_cancelled.emit(job_id)
                if job.on_cancelled:
                    job.on_cancelled()
        finally:
            if not self.busy:
                self.sig_idle.emit()
