"""The Registration dock: which pair is fused and how (mode, blend, checker size, swipe),
switching between the fixed and the registered series, and what to do with the result
(carry labels over, save the transform, export the registered series)."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout,
                               QLabel, QPushButton, QSlider, QVBoxLayout, QWidget)

from .fusion import MODES, Fusion


class FusionPanel(QWidget):
    sig_show = Signal(str)  # "fixed" or "registered": make it the active series

    def __init__(self, fusion: Fusion, parent=None):
        super().__init__(parent)
        self.setObjectName("fusionPanel")
        self.fusion = fusion
        self.pair_label = QLabel("No registered series yet: Registration > Register series…", self)
        self.pair_label.setObjectName("fusionPair")
        self.pair_label.setWordWrap(True)
        self.enabled_box = QCheckBox("Show fused over the fixed series", self)
        self.enabled_box.setObjectName("fusionEnabled")
        self.mode_box = QComboBox(self)
        self.mode_box.setObjectName("fusionMode")
        for key, text in MODES.items():
            self.mode_box.addItem(text, key)
        self.blend = QSlider(Qt.Orientation.Horizontal, self)
        self.blend.setObjectName("fusionBlend")
        self.blend.setRange(0, 100)
        self.blend.setToolTip("0 %: the fixed series only; 100 %: the registered series only")
        self.blend_label = QLabel(self)
        self.checker = QDoubleSpinBox(self)
        self.checker.setObjectName("fusionChecker")
        self.checker.setRange(1.0, 200.0)
        self.checker.setSuffix(" mm")
        self.checker.setToolTip("Side of the checkerboard's squares in the plane shown")
        self.swipe = QSlider(Qt.Orientation.Horizontal, self)
        self.swipe.setObjectName("fusionSwipe")
        self.swipe.setRange(0, 100)
        self.swipe.setToolTip("Where the split is (or drag the yellow line in a view): the "
                              "fixed series left of it, the registered series right of it")
        self.show_fixed = QPushButton("Show fixed", self)
        self.show_fixed.setObjectName("fusionShowFixed")
        self.show_registered = QPushButton("Show registered", self)
        self.show_registered.setObjectName("fusionShowRegistered")
        self.carry = QPushButton("Carry labels over", self)
        self.carry.setObjectName("fusionCarryLabels")
        self.carry.setToolTip("The moving series' label map, moved by the transform (nearest "
                              "neighbour) onto the fixed series as a proposal to accept or reject")
        self.save_transform = QPushButton("Save transform…", self)
        self.save_transform.setObjectName("fusionSaveTransform")
        self.export = QPushButton("Export registered…", self)
        self.export.setObjectName("fusionExport")
        self.provenance = QLabel("", self)
        self.provenance.setObjectName("fusionProvenance")
        self.provenance.setWordWrap(True)
        self.provenance.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form = QFormLayout()
        form.addRow("Mode:", self.mode_box)
        blend_row = QHBoxLayout()
        blend_row.addWidget(self.blend, 1)
        blend_row.addWidget(self.blend_label)
        form.addRow("Blend:", blend_row)
        form.addRow("Checker:", self.checker)
        form.addRow("Swipe:", self.swipe)
        show_row, act_row = QHBoxLayout(), QHBoxLayout()
        show_row.addWidget(self.show_fixed)
        show_row.addWidget(self.show_registered)
        for b in (self.carry, self.save_transform, self.export):
            act_row.addWidget(b)
        lay = QVBoxLayout(self)
        lay.addWidget(self.pair_label)
        lay.addWidget(self.enabled_box)
        lay.addLayout(form)
        lay.addLayout(show_row)
        lay.addLayout(act_row)
        lay.addWidget(self.provenance)
        lay.addStretch(1)
        self.enabled_box.toggled.connect(fusion.set_enabled)
        self.mode_box.currentIndexChanged.connect(
            lambda i: fusion.set_mode(str(self.mode_box.itemData(i))))
        self.blend.valueChanged.connect(lambda v: fusion.set_blend(v / 100.0))
        self.checker.valueChanged.connect(fusion.set_checker_mm)
        self.swipe.valueChanged.connect(lambda v: fusion.set_split(v / 100.0))
        self.show_fixed.clicked.connect(lambda: self.sig_show.emit("fixed"))
        self.show_registered.clicked.connect(lambda: self.sig_show.emit("registered"))
        fusion.sig_changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        """Follow the fusion state (changed here, by a shortcut or by dragging the handle)."""
        f = self.fusion
        have = f.registered is not None
        widgets = (self.enabled_box, self.mode_box, self.blend, self.checker, self.swipe,
                   self.show_fixed, self.show_registered, self.carry, self.save_transform,
                   self.export)
        for w in widgets:
            w.blockSignals(True)
        self.enabled_box.setChecked(f.enabled)
        self.mode_box.setCurrentIndex(list(MODES).index(f.mode))
        self.blend.setValue(int(round(f.blend * 100)))
        self.blend_label.setText(f"{int(round(f.blend * 100))} %")
        self.checker.setValue(f.checker_mm)
        self.swipe.setValue(int(round(f.split * 100)))
        for w in widgets:
            w.setEnabled(have)
            w.blockSignals(False)
        self.blend.setEnabled(have and f.mode == "blend")
        self.checker.setEnabled(have and f.mode == "checker")
        self.swipe.setEnabled(have and f.mode == "swipe")
