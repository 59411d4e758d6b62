"""PaintPanel: brush radius (mm), 2D/3D, threshold range, fill between slices, undo/redo."""
from __future__ import annotations

from PySide6.QtWidgets import (QCheckBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QPushButton,
                               QWidget)

from .paint_tool import MAX_RADIUS, MIN_RADIUS, PaintOptions


class PaintPanel(QWidget):
    def __init__(self, options: PaintOptions, controller, session, parent=None):
        super().__init__(parent)
        self.setObjectName("paintPanel")
        self.opt, self.ctl, self.session = options, controller, session
        self.radius = QDoubleSpinBox(self)
        self.radius.setObjectName("brushRadius")
        self.radius.setRange(MIN_RADIUS, MAX_RADIUS)
        self.radius.setDecimals(1)
        self.radius.setSingleStep(0.5)
        self.radius.setSuffix(" mm")
        self.radius.setToolTip("Brush radius in mm ([ smaller, ] larger)")
        self.sphere = QCheckBox("3D (sphere brush, 3D flood fill)", self)
        self.sphere.setObjectName("brush3d")
        self.use_range = QCheckBox("Paint only within the range", self)
        self.use_range.setObjectName("useRange")
        self.use_range.setToolTip("Threshold paint: brush and polygon change only voxels whose "
                                  "value lies in the range; flood fill always uses the range")
        self.lo, self.hi = QDoubleSpinBox(self), QDoubleSpinBox(self)
        for box, name in ((self.lo, "rangeLow"), (self.hi, "rangeHigh")):
            box.setObjectName(name)
            box.setRange(-1e6, 1e6)
            box.setDecimals(1)
            box.setSingleStep(10)
        self.from_window = QPushButton("From window", self)
        self.from_window.setObjectName("rangeFromWindow")
        self.from_window.setToolTip("Set the range to the current window (centre ± width/2)")
        rng = QHBoxLayout()
        rng.addWidget(self.lo)
        rng.addWidget(self.hi)
        rng.addWidget(self.from_window)
        self.interpolate = QPushButton("Fill between slices", self)
        self.interpolate.setObjectName("fillBetweenSlices")
        self.interpolate.setToolTip("Interpolate the active label between the annotated slices "
                                    "along the normal of the view painted last")
        self.undo_button = QPushButton("Undo", self)
        self.undo_button.setObjectName("undoButton")
        self.redo_button = QPushButton("Redo", self)
        self.redo_button.setObjectName("redoButton")
        buttons = QHBoxLayout()
        for b in (self.interpolate, self.undo_button, self.redo_button):
            buttons.addWidget(b)
        form = QFormLayout(self)
        form.setContentsMargins(4, 4, 4, 4)
        form.addRow("Brush radius", self.radius)
        form.addRow(self.sphere)
        form.addRow(self.use_range)
        form.addRow("Range", rng)
        form.addRow(buttons)

        self.radius.valueChanged.connect(lambda v: self.opt.set(radius_mm=float(v)))
        self.sphere.toggled.connect(lambda on: self.opt.set(sphere=bool(on)))
        self.use_range.toggled.connect(lambda on: self.opt.set(use_range=bool(on)))
        self.lo.valueChanged.connect(lambda v: self.opt.set(lo=float(v)))
        self.hi.valueChanged.connect(lambda v: self.opt.set(hi=float(v)))
        self.from_window.clicked.connect(lambda: self.opt.set_range_from_window(*session.window))
        self.undo_button.clicked.connect(controller.undo)
        self.redo_button.clicked.connect(controller.redo)
        options.sig_changed.connect(self.refresh)
        controller.sig_undo_changed.connect(self._on_undo_changed)
        session.active_changed.connect(self._on_active_changed)
        self.refresh()
        self._on_undo_changed()

    def _on_active_changed(self, volume) -> None:
        if volume is not None and not volume.is_rgb:
            self.opt.set_range_from_window(*self.session.window)

    def refresh(self) -> None:
        o = self.opt
        for w, setter, value in ((self.radius, "setValue", o.radius_mm), (self.sphere, "setChecked", o.sphere),
                                 (self.use_range, "setChecked", o.use_range), (self.lo, "setValue", o.lo),
                                 (self.hi, "setValue", o.hi)):
            w.blockSignals(True)
            getattr(w, setter)(value)
            w.blockSignals(False)

    def _on_undo_changed(self) -> None:
        stack = self.ctl.undo_stack
        self.undo_button.setEnabled(bool(stack is not None and stack.can_undo))
        self.redo_button.setEnabled(bool(stack is not None and stack.can_redo))
