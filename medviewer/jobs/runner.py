"""JobRunner: runs ``fn(reporter)`` jobs on a thread pool with progress (throttled),
cooperative cancellation and callbacks. Qt-free: ``dispatch`` decides on which thread the
callbacks run (directly on the worker by default; the UI's bridge hands them to the GUI
thread)."""
from __future__ import annotations

import itertools
import logging
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

from .progress import CancelToken, Cancelled, Progress, Reporter

log = logging.getLogger(__name__)

OK, ERROR, CANCELLED = "ok", "error", "cancelled"


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

    @property
    def cancelled(self) -> bool:
        return self.cancel_token.cancelled


def _direct(fn: Callable[[], None]) -> None:
    fn()


class JobRunner:
    """Submit work off the calling thread; ``on_*`` callbacks run through ``dispatch``.

    ``on_progress(Progress)`` is throttled to one call per ``progress_interval`` seconds
    (the last step always arrives); exactly one of ``on_done(result)``, ``on_error(message)``
    or ``on_cancelled()`` follows. ``listener(event, job, payload)`` (optional) sees every
    event ("started", "progress", "ok", "error", "cancelled", "idle") after the job's own
    callback, through the same dispatch."""

    def __init__(self, max_workers: int = 2, thread_name_prefix: str = "medviewer-io",
                 dispatch: Callable[[Callable[[], None]], None] = _direct,
                 listener: Optional[Callable[[str, Job, object], None]] = None,
                 progress_interval: float = 0.05):
        self._pool = ThreadPoolExecutor(max_workers=max_workers,
                                        thread_name_prefix=thread_name_prefix)
        self._dispatch = dispatch
        self._listener = listener
        self.progress_interval = float(progress_interval)
        self._ids = itertools.count(1)
        self._jobs: Dict[int, Job] = {}
        self._lock = threading.Lock()
        self._closed = False

    def attach(self, dispatch: Callable[[Callable[[], None]], None],
               listener: Optional[Callable[[str, Job, object], None]] = None) -> None:
        """Route callbacks through ``dispatch`` (e.g. onto a GUI thread) from now on."""
        self._dispatch, self._listener = dispatch, listener

    # ------------------------------------------------------------------ API
    def submit(self, fn: Callable[[Reporter], object], name: str = "job", *, on_done=None,
               on_error=None, on_progress=None, on_cancelled=None) -> Job:
        job = Job(next(self._ids), name, on_done=on_done, on_error=on_error,
                  on_progress=on_progress, on_cancelled=on_cancelled)
        if self._closed:  # after shutdown: nothing runs, nothing is delivered
            job.cancel()
            return job
        with self._lock:
            self._jobs[job.id] = job
        self._notify("started", job, name)
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

    def shutdown(self, wait: bool = True) -> None:
        self._closed = True
        self.cancel_all()
        self._pool.shutdown(wait=wait, cancel_futures=True)

    # ------------------------------------------------------------------ worker side
    def _run(self, job: Job, fn) -> None:
        def progress(p: Progress) -> None:
            now = time.monotonic()
            if now - job.last_emit >= self.progress_interval or p.done >= p.total:
                job.last_emit = now
                self._dispatch(lambda: self._deliver_progress(job, p))

        stop = None
        try:
            result = fn(Reporter(progress, job.cancel_token))
        except Cancelled:
            outcome, payload = CANCELLED, None
        except BaseException as exc:  # delivered as a message, never lost (pyo3 panics too)
            # where it failed, not the message: messages may quote file contents (patient
            # names and IDs never reach logs)
            log.error("job %s failed: %s\n%s", job.name, type(exc).__name__,
                      "".join(traceback.format_tb(exc.__traceback__)).rstrip())
            outcome, payload = ERROR, f"{type(exc).__name__}: {exc}"
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                stop = exc  # reported, then not swallowed
        else:
            outcome, payload = (CANCELLED, None) if job.cancelled else (OK, result)
        self._dispatch(lambda: self._deliver_end(job, outcome, payload))
        if stop is not None:
            raise stop

    # ------------------------------------------------------------------ callbacks
    def _notify(self, event: str, job: Job, payload) -> None:
        if self._listener is not None:
            self._listener(event, job, payload)

    def _deliver_progress(self, job: Job, p: Progress) -> None:
        with self._lock:
            if job.id not in self._jobs:
                return
        if job.on_progress:
            job.on_progress(p)
        self._notify("progress", job, p)

    def _deliver_end(self, job: Job, outcome: str, payload) -> None:
        with self._lock:
            if self._jobs.pop(job.id, None) is None:
                return
        try:
            if outcome == OK:
                if job.on_done:
                    job.on_done(payload)
            elif outcome == ERROR:
                if job.on_error:
                    job.on_error(payload)
            elif job.on_cancelled:
                job.on_cancelled()
            self._notify(outcome, job, payload)
        finally:
            if not self.busy:
                self._notify("idle", job, None)
