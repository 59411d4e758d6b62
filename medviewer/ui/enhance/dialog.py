"""The "Enhance image" dialog: the filters (each with its description; one that cannot run
here, such as the learned denoiser without a trained model, is listed disabled with the
reason), a form of the chosen filter's settings (spin boxes with their units, ranges and
help), Preview of the current slice of the active series (on the job bridge) in a
before/after view at the slice views' window/level, and Apply to the whole series with a
progress bar and Cancel. The result is a new derived series; the original is never changed."""
from __future__ import annotations

import math
from typing import Dict, Optional

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QDialog, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel,
                               QListWidget, QListWidgetItem, QProgressBar, QPushButton,
                               QSplitter, QVBoxLayout, QWidget)

from medviewer.core.slice_numbers import slice_numbering
from medviewer.core.volume import Volume
from medviewer.core.windowing import window_to_levels
from medviewer.services import enhance as E

from ..qt_jobs import error_sentence as job_error_sentence
from .before_after import BeforeAfterView

SPIN_MARGIN = 10.0  # a spin box takes up to this many times its range, so a value out of the
# range is refused in words (and stays visible) rather than silently clamped


def sentence(message: str) -> str:
    """A job's error ("EnhanceError: the reason", "ModelError: …") as one sentence."""
    return job_error_sentence(message, "the filter failed")


def _decimals(p: E.Param) -> int:
    values = (p.default, p.low, p.high)
    if all(float(v).is_integer() for v in values):
        return 0
    return min(4, max(1, 1 - int(math.floor(math.log10(min(abs(v) for v in values if v))))))


class EnhanceDialog(QDialog):
    """``sig_applied(result Volume, source Volume)`` once Apply ran to the end."""

    sig_applied = Signal(object, object)

    def __init__(self, session, bridge, describe, parent=None):
        super().__init__(parent)
        self.setObjectName("enhanceDialog")
        self.setWindowTitle("Enhance image")
        self.session, self.bridge, self.describe = session, bridge, describe
        self.volume: Optional[Volume] = None
        self.z = 0
        self.preview_job = None
        self.apply_job = None
        self._preview_serial = 0
        self.preview_key = None  # (volume id, z, filter, settings) of the after image shown
        self.spins: Dict[str, QDoubleSpinBox] = {}

        self.filters = QListWidget(self)
        self.filters.setObjectName("enhanceFilters")
        for name, spec in E.FILTERS.items():
            item = QListWidgetItem(spec.label)
            item.setData(Qt.ItemDataRole.UserRole, name)
            why = E.unavailable(name)
            item.setToolTip(why or spec.help)
            if why:
                item.setText(f"{spec.label} (not available)")
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled
                              & ~Qt.ItemFlag.ItemIsSelectable)
                item.setData(Qt.ItemDataRole.UserRole + 1, why)
            self.filters.addItem(item)
        self.about = QLabel(self)
        self.about.setObjectName("enhanceAbout")
        self.about.setWordWrap(True)
        self.form_box = QWidget(self)
        self.form = QFormLayout(self.form_box)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.view = BeforeAfterView(self)
        self.source = QLabel(self)
        self.source.setObjectName("enhanceSource")
        self.source.setWordWrap(True)
        self.bar = QProgressBar(self)
        self.bar.setObjectName("enhanceProgress")
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.status = QLabel(self)
        self.status.setObjectName("enhanceStatus")
        self.status.setWordWrap(True)
        self.preview_button = QPushButton("&Preview", self)
        self.preview_button.setObjectName("enhancePreview")
        self.preview_button.setToolTip("Filter the current slice and show it beside the original")
        self.toggle_button = QPushButton("&Before/after", self)
        self.toggle_button.setObjectName("enhanceToggle")
        self.toggle_button.setToolTip("Show the original or the filtered slice (Alt+B)")
        self.apply_button = QPushButton("&Apply to series", self)
        self.apply_button.setObjectName("enhanceApply")
        self.apply_button.setToolTip("Filter every slice into a new derived series (the "
                                     "original is kept)")
        self.close_button = QPushButton("Close", self)
        self.close_button.setObjectName("enhanceCancel")

        left = QWidget(self)
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(QLabel("Filter:", self))
        ll.addWidget(self.filters, 1)
        ll.addWidget(self.about)
        ll.addWidget(self.form_box)
        split = QSplitter(Qt.Orientation.Horizontal, self)
        split.addWidget(left)
        split.addWidget(self.view)
        split.setStretchFactor(1, 1)
        split.setSizes([260, 700])
        buttons = QHBoxLayout()
        buttons.addWidget(self.preview_button)
        buttons.addWidget(self.toggle_button)
        buttons.addStretch(1)
        buttons.addWidget(self.apply_button)
        buttons.addWidget(self.close_button)
        lay = QVBoxLayout(self)
        lay.addWidget(self.source)
        lay.addWidget(split, 1)
        lay.addWidget(self.bar)
        lay.addWidget(self.status)
        lay.addLayout(buttons)

        self.filters.currentItemChanged.connect(lambda *_: self._filter_changed())
        self.preview_button.clicked.connect(self.preview)
        self.toggle_button.clicked.connect(self.view.toggle)
        self.apply_button.clicked.connect(self.apply)
        self.close_button.clicked.connect(self._cancel_or_close)
        self.session.window_changed.connect(self._on_window)
        self.session.active_changed.connect(self._on_moved)
        self.session.cursor_changed.connect(self._on_moved)
        self.filters.setCurrentRow(0)
        self.resize(1000, 620)
        self.follow_active()

    # ------------------------------------------------------------------ state
    @property
    def filter_name(self) -> str:
        item = self.filters.currentItem()
        return "" if item is None else str(item.data(Qt.ItemDataRole.UserRole))

    @property
    def params(self) -> dict:
        return {k: float(s.value()) for k, s in self.spins.items()}

    @property
    def running(self) -> bool:
        return self.apply_job is not None

    def select(self, name: str) -> bool:
        """Choose filter ``name`` (False when it is listed but cannot run here)."""
        for i in range(self.filters.count()):
            item = self.filters.item(i)
            if item.data(Qt.ItemDataRole.UserRole) == name:
                if not item.flags() & Qt.ItemFlag.ItemIsEnabled:
                    self._error(item.data(Qt.ItemDataRole.UserRole + 1))
                    return False
                self.filters.setCurrentItem(item)
                return True
        self._error(E.unavailable(name))
        return False

    def set_param(self, key: str, value: float) -> None:
        self.spins[key].setValue(value)

    def _levels(self):
        return window_to_levels(*self.session.window)

    def _error(self, text: str) -> None:
        self.status.setText(f"<span style='color:#d33'>{text}</span>")
        self.status.setProperty("error", text)

    def _say(self, text: str) -> None:
        self.status.setText(text)
        self.status.setProperty("error", None)

    def follow_active(self) -> None:
        """Take the active series and its current axial slice (the crosshair's)."""
        vol = self.session.active
        self.volume = vol
        self.z = 0 if vol is None else int(self.session.cursor_zyx[0])
        if vol is None:
            self.source.setText("No series is shown.")
            self.view.set_images(None, None, (0, 1))
        else:
            name = self.describe(vol) or vol.modality or "series"
            number = slice_numbering(vol.geometry, vol.meta, "axial", 0).label(self.z)
            self.source.setText(f"{name}: axial {number} (the slice views' current image)")
            self.view.set_images(None if vol.is_rgb else np.asarray(vol.array[self.z]), None,
                                 self._levels(), vol.geometry.spacing[:2])
        self.preview_key = None
        self._check()

    def _on_moved(self, *_):
        vol = self.session.active
        if vol is not self.volume or (vol is not None and int(self.session.cursor_zyx[0]) != self.z):
            self.follow_active()

    def _on_window(self, *_):
        self.view.set_levels(self._levels())

    def _filter_changed(self) -> None:
        while self.form.rowCount():
            self.form.removeRow(0)
        self.spins = {}
        name = self.filter_name
        spec = E.FILTERS.get(name)
        if spec is None:
            return
        self.about.setText(spec.help)
        for key, p in spec.params.items():
            spin = QDoubleSpinBox(self.form_box)
            spin.setObjectName(f"enhanceParam_{key}")
            dec = _decimals(p)
            spin.setDecimals(dec)
            spin.setRange(0.0 if p.low >= 0 else p.low * SPIN_MARGIN, p.high * SPIN_MARGIN)
            spin.setSingleStep(1.0 if dec == 0 else 10.0 ** -(dec - 1) if dec > 1 else 0.1)
            spin.setValue(p.default)
            if p.unit:
                spin.setSuffix(f" {p.unit}")
            spin.setToolTip(f"{p.help}; {p.low:g} to {p.high:g}{' ' + p.unit if p.unit else ''} "
                            f"(default {p.default:g})")
            spin.setKeyboardTracking(False)
            spin.valueChanged.connect(lambda _v: self._check())
            label = QLabel(key.replace("_mm", "").replace("_", " ").capitalize() + ":", self)
            label.setToolTip(spin.toolTip())
            self.form.addRow(label, spin)
            self.spins[key] = spin
        if not spec.params:
            self.form.addRow(QLabel("No settings.", self.form_box))
        self._check()

    def _check(self) -> bool:
        """Enable Preview/Apply when the series, the filter and its settings can be used;
        otherwise say why in one sentence."""
        ok, why = True, ""
        vol, name = self.volume, self.filter_name
        if vol is None:
            ok, why = False, "Open a series first: the filter is previewed on its current slice."
        elif vol.is_rgb:
            ok, why = False, "Colour images are not enhanced; choose a greyscale series."
        elif not name:
            ok, why = False, "Choose a filter."
        else:
            try:
                E.check_settings(name, self.params)
            except E.EnhanceError as exc:
                ok, why = False, sentence(str(exc))
        for key, spin in self.spins.items():
            p = E.FILTERS[name].params[key]
            bad = not (p.low <= spin.value() <= p.high)
            spin.setStyleSheet("background:#5a1e1e" if bad else "")
        busy = self.running
        self.preview_button.setEnabled(ok and not busy)
        self.apply_button.setEnabled(ok and not busy)
        self.filters.setEnabled(not busy)
        self.form_box.setEnabled(not busy)
        if why:
            self._error(why)
        elif self.status.property("error"):
            self._say("")
        return ok

    # ------------------------------------------------------------------ preview
    def preview(self):
        """Filter the current slice on a worker; the after image appears when it is done."""
        if not self._check():
            return None
        vol, z, name, params = self.volume, self.z, self.filter_name, self.params
        self._preview_serial += 1
        serial = self._preview_serial
        key = (id(vol), z, name, tuple(sorted(params.items())))
        self._say(f"Previewing {E.describe(name, params)}…")

        def done(img):
            if serial != self._preview_serial or vol is not self.volume:
                return  # a newer preview was asked for, or another series is shown
            self.preview_job = None
            self.preview_key = key
            self.view.set_images(np.asarray(vol.array[z]), img, self._levels(),
                                 vol.geometry.spacing[:2])
            if self.view.mode == "before":
                self.view.set_mode("after")
            self._say(f"Preview: {E.describe(name, params)}.")

        def failed(message):
            if serial == self._preview_serial:
                self.preview_job = None
                self._error(sentence(message))

        self.preview_job = self.bridge.submit(
            lambda reporter: E.preview(vol, z, name, params), "enhance-preview",
            on_done=done, on_error=failed)
        return self.preview_job

    # ------------------------------------------------------------------ apply
    def apply(self):
        """Filter the whole series on a worker (progress, Cancel); ``sig_applied`` at the end."""
        if self.running or not self._check():
            return None
        vol, name, params = self.volume, self.filter_name, self.params
        self.bar.setRange(0, max(1, vol.shape[0]))
        self.bar.setValue(0)
        self.apply_job = self.bridge.submit(
            lambda reporter: E.enhance_volume(vol, name, params, reporter), "enhance-series",
            on_progress=self._progress, on_done=lambda out: self._applied(out, vol),
            on_error=self._failed, on_cancelled=self._cancelled)
        self._busy(True)
        self._say(f"Applying {E.describe(name, params)} to every slice…")
        return self.apply_job

    def _busy(self, on: bool) -> None:
        self.close_button.setText("Cancel" if on else "Close")
        self._check()

    def _progress(self, p) -> None:
        if p.total > 0:
            self.bar.setRange(0, p.total)
            self.bar.setValue(min(p.done, p.total))
        if p.message:
            self.status.setText(p.message)

    def _applied(self, out: Volume, source: Volume) -> None:
        self.apply_job = None
        self._busy(False)
        self.bar.setValue(self.bar.maximum())
        self._say(f"Added the series {out.description}.")
        self.sig_applied.emit(out, source)

    def _failed(self, message: str) -> None:
        self.apply_job = None
        self._busy(False)
        self.bar.setValue(0)
        self._error(sentence(message))

    def _cancelled(self) -> None:
        self.apply_job = None
        self._busy(False)
        self.bar.setValue(0)
        self._say("Cancelled: nothing was added.")

    def _cancel_or_close(self) -> None:
        if self.apply_job is not None:
            self._say("Cancelling…")
            self.apply_job.cancel()
        else:
            self.reject()

    def reject(self) -> None:
        if self.apply_job is not None:  # Esc or the title bar's close while it runs
            self.apply_job.cancel()
        super().reject()

    def done(self, result: int) -> None:
        self._preview_serial += 1  # a preview still running is dropped when it ends
        self.session.window_changed.disconnect(self._on_window)
        self.session.active_changed.disconnect(self._on_moved)
        self.session.cursor_changed.disconnect(self._on_moved)
        super().done(result)
