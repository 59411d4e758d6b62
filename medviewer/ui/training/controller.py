"""FinetuneController: one fine-tuning run at a time — manifest on the I/O pool, training in a child.

Owned by the review feature (not by the dialog), so a run keeps going when its dialog closes.
``start()`` builds the training manifest from the label store with
:func:`medviewer.services.finetune.build_training_set` on the QtJobBridge, checks that its
frozen validation set is big enough to judge the model
(:func:`~medviewer.services.finetune.validation_check`; below the minimum the run is
"rejected" with what is missing and no process starts), then runs
``python -m medviewer.ai.training --manifest M --base NAME:VER ...`` in a QProcess and turns its
stdout (read by :class:`~medviewer.services.finetune.TrainerOutput`) into signals. ``cancel()`` sends SIGTERM
(QProcess.terminate); the trainer stops, removes its staging folder and exits 130. Every event
is kept in :attr:`events` so a dialog opened later can replay the run so far."""
from __future__ import annotations

import sys
from collections import deque
from pathlib import Path
from typing import Callable, List, Optional

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from medviewer.services.finetune import (DEFAULT_MIN_PER_CLASS, DEFAULT_MIN_UNITS,
                                         TRAINER_MODULE, TrainerOutput, app_threads,
                                         build_training_set, trainer_args, validation_check)

from ..qt_jobs import QtJobBridge

IDLE, BUILDING, RUNNING = "idle", "building", "running"
KILL_AFTER_MS = 15000  # SIGKILL when the child ignores SIGTERM this long
STDERR_TAIL = 60


class FinetuneController(QObject):
    sig_state = Signal(str)  # idle / building / running
    sig_event = Signal(object)  # every parsed JSON event (dict), in order
    sig_log = Signal(str)  # human-readable lines (manifest summary, non-JSON output)
    sig_finished = Signal(str, object)  # outcome: done/cancelled/failed/rejected, last event or message

    def __init__(self, bridge: QtJobBridge, store_fn: Callable[[], object],
                 catalog_fn: Callable[[], object], parent=None):
        super().__init__(parent)
        self.bridge = bridge
        self._store_fn = store_fn
        self._catalog_fn = catalog_fn
        self.state = IDLE
        self.process: Optional[QProcess] = None
        self._job = None
        self._output = TrainerOutput()
        self._stderr: deque = deque(maxlen=STDERR_TAIL)
        self._cancel_requested = False
        self._kill_timer = QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self._kill)
        self.reset_run()

    # ------------------------------------------------------------------ state
    def reset_run(self) -> None:
        self._output = TrainerOutput()
        self.events: List[dict] = self._output.events
        self.log_lines: List[str] = []
        self.base_ref: Optional[str] = None
        self.manifest_path: Optional[Path] = None
        self.skipped: List[str] = []
        self.validation: Optional[dict] = None  # the validation-size check of the manifest
        self.outcome: Optional[str] = None  # done / cancelled / failed / rejected when finished
        self.exit_code: Optional[int] = None
        self.error: Optional[str] = None

    @property
    def result(self) -> Optional[dict]:
        """The trainer's "done" event."""
        return self._output.result

    @property
    def gate(self) -> Optional[dict]:
        """The trainer's "gate" event (promote or not, and why)."""
        return self._output.gate

    @property
    def running(self) -> bool:
        return self.state != IDLE

    def _set_state(self, state: str) -> None:
        self.state = state
        self.sig_state.emit(state)

    def _log(self, line: str) -> None:
        self.log_lines.append(line)
        self.sig_log.emit(line)

    # ------------------------------------------------------------------ start
    def start(self, base_ref: str, epochs: int = 10, margin: float = 0.01, *,
              promote: bool = True, extra_args: Optional[List[str]] = None,
              models_dir: Optional[str] = None,
              val_minimum: tuple = (DEFAULT_MIN_UNITS, DEFAULT_MIN_PER_CLASS)) -> bool:
        """Build the manifest for ``base_ref`` ("name:version"), check its validation set
        against ``val_minimum`` (units, units per class), then train. False when a run is
        already going (nothing changes then)."""
        if self.running:
            return False
        self.reset_run()
        self._cancel_requested = False
        self.base_ref = base_ref
        try:
            catalog = self._catalog_fn()
            store = self._store_fn()
            card = catalog.get(base_ref)
        except Exception as exc:  # unknown model, unreadable store: say so, start nothing
            self._finish("rejected", f"{type(exc).__name__}: {exc}")
            return False
        self.base_ref = card.ref
        args = trainer_args(card.ref, epochs, margin, models_dir or catalog.user_dir, promote,
                            extra_args, threads=app_threads())  # the GUI keeps a core
        self._log(f"Building the training manifest for {card.name} from the label store…")

        def work(reporter):
            manifest, skipped = build_training_set(store, card)
            return manifest, skipped, validation_check(manifest, card, *val_minimum)

        self._set_state(BUILDING)
        self._job = self.bridge.submit(
            work, "finetune-manifest",
            on_done=lambda res: self._on_manifest(res, args),
            on_error=lambda msg: self._finish("failed", f"Could not build the manifest: {msg}"),
            on_cancelled=lambda: self._finish("cancelled", None))
        return True

    def _on_manifest(self, res, args: List[str]) -> None:
        self._job = None
        manifest, skipped, self.validation = res
        self.skipped = list(skipped)
        path = manifest.path  # the file build_manifest wrote
        self.manifest_path = path
        n_train, n_val = len(manifest.train_entries()), len(manifest.val_entries())
        self._log(f"Manifest: {n_train} training and {n_val} validation entries "
                  f"({path.name if path else '?'})")
        for reason in self.skipped[:20]:
            self._log(f"  skipped: {reason}")
        if len(self.skipped) > 20:
            self._log(f"  … and {len(self.skipped) - 20} more skipped")
        if self._cancel_requested:
            self._finish("cancelled", None)
            return
        if path is None:
            self._finish("failed", "the manifest builder returned no manifest file")
            return
        if n_train == 0 or n_val == 0:
            prompt_set = self.validation is not None and "val_records" in self.validation
            self._finish("rejected", self.validation["message"] if prompt_set else
                         f"nothing to train on: {n_train} training and {n_val} "
                         f"validation entries (correct more cases of this model first)")
            return
        if self.validation is not None and not self.validation["ok"]:
            for line in self.validation["missing"]:
                self._log(f"  missing: {line}")
            self._finish("rejected", self.validation["message"])
            return
        self._launch(["--manifest", str(path)] + args)

    def _launch(self, args: List[str], command: Optional[List[str]] = None) -> None:
        """Run ``python <command> <args>`` (command: ``-m medviewer.ai.training``)."""
        proc = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        proc.setProcessEnvironment(env)
        proc.setProgram(sys.executable)
        command = list(command or TRAINER_MODULE)
        proc.setArguments(command + args)
        proc.readyReadStandardOutput.connect(self._read_stdout)
        proc.readyReadStandardError.connect(self._read_stderr)
        proc.finished.connect(self._on_process_finished)
        proc.errorOccurred.connect(self._on_process_error)
        self.process = proc
        self._stderr.clear()
        self._log("Starting: python " + " ".join(command + args))
        self._set_state(RUNNING)
        proc.start()

    # ------------------------------------------------------------------ child output
    def _read_stdout(self) -> None:
        if self.process is None:
            return
        self._handle(self._output.feed(bytes(self.process.readAllStandardOutput().data())))

    def _handle(self, items) -> None:
        for item in items:
            if isinstance(item, dict):
                if item.get("event") == "error":
                    self.error = self._output.error
                self.sig_event.emit(item)
            else:
                self._log(item)

    def _read_stderr(self) -> None:
        if self.process is None:
            return
        text = bytes(self.process.readAllStandardError().data()).decode("utf-8", errors="replace")
        for line in text.splitlines():
            if line.strip():
                self._stderr.append(line)

    def stderr_tail(self) -> str:
        return "\n".join(self._stderr)

    def _on_process_finished(self, exit_code: int, _status) -> None:
        self._kill_timer.stop()
        self._read_stdout()
        self._read_stderr()
        self._handle(self._output.flush())
        self.exit_code = int(exit_code)
        proc, self.process = self.process, None
        if proc is not None:
            proc.deleteLater()
        self._finish(*self._output.outcome(exit_code, self._cancel_requested, self.stderr_tail()))

    def _on_process_error(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            proc, self.process = self.process, None
            if proc is not None:
                proc.deleteLater()
            self._finish("failed", f"could not start {sys.executable}")

    def _finish(self, outcome: str, payload) -> None:
        self._job = None
        self.outcome = outcome
        if outcome == "done" and isinstance(payload, dict) and payload.get("promoted") \
                and self.base_ref:
            from medviewer.services.interactive import active_version_changed

            active_version_changed(self.base_ref)  # the Prompt tool picks up the new version
        if outcome in ("failed", "rejected"):
            self.error = str(payload)
            self._log(("Failed: " if outcome == "failed" else "Not started: ") + str(payload))
        elif outcome == "cancelled":
            self._log("Cancelled: no model version was written; the active version is unchanged.")
        self._set_state(IDLE)
        self.sig_finished.emit(outcome, payload)

    # ------------------------------------------------------------------ cancel / shutdown
    def cancel(self) -> None:
        """Stop the run: a manifest build is cancelled; the child gets SIGTERM (then SIGKILL
        after KILL_AFTER_MS if it does not stop)."""
        if self.state == BUILDING:
            self._cancel_requested = True
            if self._job is not None:
                self._job.cancel()
        elif self.state == RUNNING and self.process is not None:
            self._cancel_requested = True
            self._log("Cancelling (SIGTERM)…")
            self.process.terminate()
            self._kill_timer.start(KILL_AFTER_MS)

    def _kill(self) -> None:
        if self.process is not None:
            self._log("The training process did not stop; killing it.")
            self.process.kill()

    def shutdown(self, wait_ms: int = 10000) -> None:
        """The app is closing: stop the child and wait for it (it removes its staging folder)."""
        if self.state == BUILDING and self._job is not None:
            self._cancel_requested = True
            self._job.cancel()
        proc = self.process
        if proc is not None:
            self._cancel_requested = True
            proc.terminate()
            if not proc.waitForFinished(wait_ms):
                proc.kill()
                proc.waitForFinished(2000)
