"""AiWorker: the single AI lane — one worker thread (a 1-thread QtJobBridge) that runs model
inference, saliency and uncertainty off the GUI thread, never two jobs at once.

A job is ``fn(ctx: AiContext)``; ``ctx`` reports progress (which raises ``Cancelled`` once the
job is cancelled), drives the ai generators, and hands out the device and the cached model.
Results, progress, errors and cancellation come back as Qt signals on the GUI thread.
torch is imported only inside jobs (by ``medviewer.ai``), never at start-up."""
from __future__ import annotations

import threading
from typing import Callable, Optional

from PySide6.QtCore import QObject, Signal

from medviewer.jobs.progress import Cancelled, Reporter

from ..qt_jobs import Job, QtJobBridge


def _is_progress(item) -> bool:
    """A progress step from an ai generator: (done, total[, message]) or an object with
    ``done``/``total`` attributes and nothing else that looks like a result."""
    if isinstance(item, tuple) and 2 <= len(item) <= 3 and all(
            isinstance(v, (int, float)) for v in item[:2]):
        return True
    return hasattr(item, "done") and hasattr(item, "total") and not hasattr(item, "labels") \
        and not hasattr(item, "probs")


class AiContext:
    """What a job gets on the worker thread."""

    def __init__(self, worker: "AiWorker", reporter: Reporter):
        self.worker, self.reporter = worker, reporter

    @property
    def cancel_token(self):
        return self.reporter.cancel

    def cancelled(self) -> bool:
        return self.reporter.cancel.cancelled

    def check(self) -> None:
        """Raise ``Cancelled`` when the job was cancelled."""
        self.reporter.cancel.raise_if_cancelled()

    def progress(self, done: int, total: int, message: str = "") -> None:
        self.reporter(done, total, message)

    def device(self) -> str:
        return self.worker._device()

    def model(self, card):
        """The card's model on the job's device, cached until another model is used."""
        return self.worker._model(card, self.device())

    def drive(self, gen, message: str = ""):
        """Run an ai generator to its end: its progress steps go to the reporter (which
        stops it when cancelled); returns its result (``StopIteration.value`` or the last
        non-progress item it yielded)."""
        result = None
        try:
            while True:
                item = next(gen)
                if _is_progress(item):
                    if isinstance(item, tuple):
                        done, total, msg = item[0], item[1], item[2] if len(item) > 2 else ""
                    else:
                        done, total, msg = item.done, item.total, getattr(item, "message", "")
                    msg = msg or message
                    self.reporter(int(done), int(total), msg)
                else:
                    result = item
        except StopIteration as stop:
            return stop.value if stop.value is not None else result
        finally:
            gen.close()


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
        self.job: Optional[Job] = None
        self.job_name = ""
        self.device_preference = "auto"
        self.last_thread: Optional[int] = None  # thread ident of the last job (tests)
        self.gui_thread = threading.get_ident()
        self._cache = None  # medviewer.ai.inference.ModelCache, used on the worker thread only
        self._device_for: Optional[tuple] = None  # (preference, device)

    # ------------------------------------------------------------------ GUI side
    @property
    def busy(self) -> bool:
        return self.job is not None

    def submit(self, fn: Callable[[AiContext], object], name: str, *, on_done=None,
               on_error=None, on_cancelled=None, on_progress=None) -> Optional[Job]:
        """Queue ``fn(ctx)`` on the AI thread; None (nothing runs) while another job runs."""
        if self.job is not None:
            return None

        def run(reporter: Reporter):
            self.last_thread = threading.get_ident()
            return fn(AiContext(self, reporter))

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
        self.device_preference = pref

    def shutdown(self) -> None:
        self.cancel()
        self.bridge.shutdown()

    # ------------------------------------------------------------------ worker side
    def _device(self) -> str:
        from medviewer.ai.device import choose_device, configure_threads, device_label

        pref = self.device_preference
        if self._device_for is None or self._device_for[0] != pref:
            configure_threads()  # all cores but one: the GUI thread keeps a core
            dev = choose_device(pref)
            self._device_for = (pref, dev)
            self.sig_device.emit(dev, device_label(dev))  # queued to the GUI thread
        return self._device_for[1]

    def _model(self, card, device: str):
        if self._cache is None:
            from medviewer.ai.inference import ModelCache

            self._cache = ModelCache()
        return self._cache.get(card, device)


__all__ = ["AiContext", "AiWorker", "Cancelled"]
