"""The "Register series…" dialog: the fixed and the moving series among the open ones, the
kind, Run with a progress bar and Cancel (the job's cancel token). The registration and the
resampling run on the job bridge; the dialog only shows how far it got and what came out."""
from __future__ import annotations

from typing import Callable, List, Optional

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QComboBox, QDialog, QFormLayout, QHBoxLayout, QLabel,
                               QProgressBar, QPushButton, QVBoxLayout)

from medviewer.core.volume import Volume
from medviewer.services import registration as reg

from ..qt_jobs import error_sentence as job_error_sentence

KIND_TEXT = {"rigid": "Rigid (rotation + translation)",
             "affine": "Affine (+ scaling and shear)",
             "deformable": "Deformable (B-spline on top of the affine)"}


def error_sentence(message: str) -> str:
    """A job's error message as one sentence, without the exception's name."""
    return job_error_sentence(message, "the registration failed")


def derived_name(moving: Volume, fixed: Volume, kind: str, describe: Callable) -> str:
    return f"{describe(moving) or moving.modality or 'moving'} \u2192 " \
           f"{describe(fixed) or fixed.modality or 'fixed'} ({kind})"


class RegisterDialog(QDialog):
    """``sig_done(fixed, moving, RegistrationResult, registered Volume)`` once a run ended
    well; the feature adds the series and shows it fused."""

    sig_done = Signal(object, object, object, object)

    def __init__(self, volumes: List[Volume], bridge, describe: Callable[[Volume], str],
                 active: Optional[Volume] = None, parent=None):
        super().__init__(parent)
        self.setObjectName("registerDialog")
        self.setWindowTitle("Register series")
        self.volumes, self.bridge, self.describe = list(volumes), bridge, describe
        self.job = None
        self.fixed_box, self.moving_box = QComboBox(self), QComboBox(self)
        self.fixed_box.setObjectName("registerFixed")
        self.moving_box.setObjectName("registerMoving")
        for i, v in enumerate(self.volumes):
            text = " ".join(x for x in (f"{i + 1}.", v.modality, describe(v) or "(no description)",
                                        f"({' x '.join(str(n) for n in v.shape[:3][::-1])})") if x)
            self.fixed_box.addItem(text)
            self.moving_box.addItem(text)
        if self.volumes:  # the active one as fixed, another as moving
            a = next((i for i, v in enumerate(self.volumes) if v is active), 0)  # Volume == compares pixels
            self.fixed_box.setCurrentIndex(a)
            self.moving_box.setCurrentIndex(next((i for i in range(len(self.volumes)) if i != a), a))
        self.kind_box = QComboBox(self)
        self.kind_box.setObjectName("registerKind")
        for kind in reg.KINDS:
            self.kind_box.addItem(KIND_TEXT[kind], kind)
        self.bar = QProgressBar(self)
        self.bar.setObjectName("registerProgress")
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.status = QLabel("Choose the fixed series (the grid the result is on) and the "
                             "moving series (resampled onto it).", self)
        self.status.setObjectName("registerStatus")
        self.status.setWordWrap(True)
        self.run_button = QPushButton("Run", self)
        self.run_button.setObjectName("registerRun")
        self.run_button.setDefault(True)
        self.cancel_button = QPushButton("Close", self)
        self.cancel_button.setObjectName("registerCancel")
        form = QFormLayout()
        form.addRow("Fixed series:", self.fixed_box)
        form.addRow("Moving series:", self.moving_box)
        form.addRow("Kind:", self.kind_box)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.bar)
        lay.addWidget(self.status)
        lay.addLayout(buttons)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self._cancel_or_close)
        self.resize(560, 220)

    # ------------------------------------------------------------------ choices
    @property
    def fixed(self) -> Optional[Volume]:
        i = self.fixed_box.currentIndex()
        return self.volumes[i] if 0 <= i < len(self.volumes) else None

    @property
    def moving(self) -> Optional[Volume]:
        i = self.moving_box.currentIndex()
        return self.volumes[i] if 0 <= i < len(self.volumes) else None

    @property
    def kind(self) -> str:
        return str(self.kind_box.currentData())

    @property
    def running(self) -> bool:
        return self.job is not None

    def _error(self, text: str) -> None:
        self.status.setText(f"<span style='color:#d33'>{text}</span>")
        self.status.setProperty("error", text)

    # ------------------------------------------------------------------ run
    def run(self) -> None:
        if self.running:
            return
        fixed, moving, kind = self.fixed, self.moving, self.kind
        if fixed is None or moving is None:
            self._error("Open two series first: registration aligns one series to another.")
            return
        try:
            reg.check_pair(fixed, moving)
        except reg.RegistrationError as exc:
            self._error(error_sentence(str(exc)))
            return
        name = derived_name(moving, fixed, kind, self.describe)

        def work(reporter):
            result = reg.register(fixed, moving, kind, reporter)
            reporter(0, 0, "Resampling the moving series onto the fixed grid")
            return result, reg.resample_volume(moving, fixed.geometry, result.transform,
                                               description=name)

        self.status.setProperty("error", None)
        self.status.setText("Registering…")
        self.bar.setRange(0, 0)
        self._busy(True)
        self.job = self.bridge.submit(work, "register", on_progress=self._progress,
                                      on_done=lambda res: self._done(fixed, moving, *res),
                                      on_error=self._failed, on_cancelled=self._cancelled)

    def _busy(self, on: bool) -> None:
        for w in (self.run_button, self.fixed_box, self.moving_box, self.kind_box):
            w.setEnabled(not on)
        self.cancel_button.setText("Cancel" if on else "Close")

    def _progress(self, p) -> None:
        if p.total > 0:
            self.bar.setRange(0, p.total)
            self.bar.setValue(min(p.done, p.total))
        else:
            self.bar.setRange(0, 0)
        if p.message:
            self.status.setText(p.message)

    def _done(self, fixed, moving, result, registered) -> None:
        self.job = None
        self._busy(False)
        self.bar.setRange(0, 1)
        self.bar.setValue(1)
        self.status.setText(provenance_text(result))
        self.sig_done.emit(fixed, moving, result, registered)

    def _failed(self, message: str) -> None:
        self.job = None
        self._busy(False)
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self._error(error_sentence(message))

    def _cancelled(self) -> None:
        self.job = None
        self._busy(False)
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.status.setText("Cancelled: nothing was added.")

    def _cancel_or_close(self) -> None:
        if self.job is not None:
            self.status.setText("Cancelling…")
            self.job.cancel()
        else:
            self.reject()

    def reject(self) -> None:
        if self.job is not None:  # Esc or the window's close button while it runs
            self.job.cancel()
        super().reject()


def provenance_text(result) -> str:
    """One line of what a registration did: kind, final metric, iterations, time."""
    return (f"{result.kind.capitalize()} registration: Mattes MI {result.metric_value:.4f} "
            f"after {result.iterations} iterations in {result.seconds:.1f} s.")
