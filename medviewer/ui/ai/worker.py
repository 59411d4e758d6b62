"""AiWorker: the single AI lane — one worker thread (a 1-thread QtJobBridge) that runs model
inference, saliency and uncertainty off the GUI thread, never two jobs at once.

A job is ``fn(ctx)`` with a :class:`~medviewer.services.ai_runs.InferenceContext` (progress
that raises ``Cancelled`` once the job is cancelled, the device and the cached model of the
lane). Results, progress, errors and cancellation come back as Qt signals on the GUI thread.
torch is imported only inside jobs (by ``medviewer.ai``), never at start-up."""
from __future__ import annotations

import threading
from typing import Callable, Optional

from PySide6.QtCore import QObject, Signal

from medviewer.jobs import Cancelled, Job, Reporter
from medviewer.services.ai_runs import InferenceContext, ModelLane

from ..qt_jobs import QtJobBridge

__all__ = ["AiWorker", "Cancelled", "InferenceContext"]


class AiWorker(QObject):
    """The one AI job lane of the app (see module docstring)."""

    sig_started = Signal(str)  # job name
    sig_progress = Signal(str, object)  # job name, Progress
    sig_finished = Signal(str, object)  # job name, result
    sig_failed = Signal(str, str)  # job name, message
    sig_cancelled = Signal(str)  # job name
    sig_busy_changed = Signal(bool)
    sig_device = Signal(str, str)  # device ("cpu", "cuda", ...), label ("CPU (1 thread)")

    def __init__(self, parent: Optional[QObject] = None):
        super().__init__(parent)
        self.bridge = QtJobBridge(max_workers=1, parent=self, thread_name_prefix="medviewer-ai")
        from medviewer.services import ai_process

        # whole-volume segmentations run in the app's inference process (the GUI never waits
        # for the GIL there); MEDVIEWER_AI_PROCESS=0: on this worker's thread
        self.lane = ModelLane(on_device=self.sig_device.emit,  # emitted on the AI thread: queued
                              process=ai_process.shared() if ai_process.enabled() else None)
        self.job: Optional[Job] = None
        self.job_name = ""
        self.last_thread: Optional[int] = None  # thread ident of the last job (tests)
        self.gui_thread = threading.get_ident()

    @property
    def device_preference(self) -> str:
        return self.lane.preference

    # ------------------------------------------------------------------ GUI side
    @property
    def busy(self) -> bool:
        return self.job is not None

    def submit(self, fn: Callable[[InferenceContext], object], name: str, *, on_done=None,
               on_error=None, on_cancelled=None, on_progress=None) -> Optional[Job]:
        """Queue ``fn(ctx)`` on the AI thread; None (nothing runs) while another job runs."""
        if self.job is not None:
            return None

        def run(reporter: Reporter):
            self.last_thread = threading.get_ident()
            return fn(InferenceContext(self.lane, reporter))

        def end(callback, *args):
            self.job, self.job_name = None, ""
            self.sig_busy_changed.emit(False)
            if callback is not None:
                callback(*args)

        def done(result):
            end(on_done, result)
            self.sig_finished.emit(name, result)

        def failed(msg):
            end(on_error, msg)
            self.sig_failed.emit(name, msg)

        def cancelled():
            end(on_cancelled)
            self.sig_cancelled.emit(name)

        def progress(p):
            if on_progress is not None:
                on_progress(p)
            self.sig_progress.emit(name, p)

        self.job_name = name
        self.job = self.bridge.submit(run, name, on_done=done, on_error=failed,
                                      on_progress=progress, on_cancelled=cancelled)
        self.sig_busy_changed.emit(True)
        self.sig_started.emit(name)
        return self.job

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def set_device_preference(self, pref: str) -> None:
        """'auto' | 'cpu' | 'cuda' | 'mps'; applies from the next job (the model moves then)."""
        self.lane.preference = pref

    def set_precision_preference(self, pref: str) -> None:
        """'auto' (bf16/fp16 where checked per model and machine) | 'fp32'; next job on."""
        self.lane.precision_preference = pref

    def shutdown(self) -> None:
        self.cancel()
        self.bridge.shutdown()
