"""The before/after view of the enhancement dialog: the current slice as it is and as the
filter leaves it, at the slice views' window/level, shown side by side (two linked panes),
one at a time (the before/after toggle) or split by a swipe (before left of the split)."""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtWidgets import (QButtonGroup, QHBoxLayout, QRadioButton, QSlider, QVBoxLayout,
                               QWidget)

MODES = {"side": "Side by side", "before": "Before", "after": "After", "swipe": "Swipe"}


def swiped(before: np.ndarray, after: np.ndarray, split: float) -> np.ndarray:
    """``before`` left of column ``split`` x width, ``after`` from there on."""
    col = int(round(min(max(split, 0.0), 1.0) * before.shape[1]))
    out = np.array(after, copy=True)
    out[:, :col] = before[:, :col]
    return out


class BeforeAfterView(QWidget):
    """``set_images(before, after, levels)``; ``set_mode`` one of :data:`MODES`;
    ``toggle()`` flips between the before and the after image."""

    sig_mode_changed = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("enhanceBeforeAfter")
        self.before: Optional[np.ndarray] = None
        self.after: Optional[np.ndarray] = None
        self.levels: Tuple[float, float] = (0.0, 1.0)
        self.mode = "side"
        self.split = 0.5
        self.panes, self.boxes, self.items, self.titles = [], [], [], []
        panes = QHBoxLayout()
        panes.setSpacing(2)
        for col in range(2):
            pane = pg.GraphicsLayoutWidget(self)
            pane.setObjectName(f"enhancePane{col}")
            pane.setBackground("k")
            title = pane.addLabel("", row=0, col=0)
            vb = pane.addViewBox(row=1, col=0, lockAspect=True, invertY=True, enableMenu=False)
            vb.setDefaultPadding(0.0)
            vb.enableAutoRange()  # fits the slice until the user zooms or pans
            item = pg.ImageItem(axisOrder="row-major")
            vb.addItem(item)
            panes.addWidget(pane, 1)
            self.panes.append(pane)
            self.boxes.append(vb)
            self.items.append(item)
            self.titles.append(title)
        self.spacing = (1.0, 1.0)  # column, row size (mm): the slice drawn at its true aspect
        self.handle = pg.InfiniteLine(angle=90, movable=True, pen=pg.mkPen("#ffd700", width=2),
                                      hoverPen=pg.mkPen("#fff3a0", width=3))
        self.handle.setZValue(10)
        self.handle.setToolTip("Drag: the original left of the line, the filtered image right")
        self.boxes[0].addItem(self.handle, ignoreBounds=True)
        self.handle.sigPositionChanged.connect(self._handle_moved)
        self.boxes[1].setXLink(self.boxes[0])
        self.boxes[1].setYLink(self.boxes[0])
        self.buttons = QButtonGroup(self)
        row = QHBoxLayout()
        for key, text in MODES.items():
            b = QRadioButton(text, self)
            b.setObjectName(f"enhanceMode_{key}")
            self.buttons.addButton(b)
            b.toggled.connect(lambda on, k=key: on and self.set_mode(k))
            row.addWidget(b)
        row.addStretch(1)
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setObjectName("enhanceSwipe")
        self.slider.setRange(0, 100)
        self.slider.setValue(50)
        self.slider.setToolTip("Swipe: the original left of the split, the filtered image right")
        self.slider.valueChanged.connect(lambda v: self.set_split(v / 100.0))
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(panes, 1)
        lay.addWidget(self.slider)
        lay.addLayout(row)
        self._radio("side").setChecked(True)
        self._render()

    def _radio(self, key: str) -> QRadioButton:
        return self.findChild(QRadioButton, f"enhanceMode_{key}")

    # ------------------------------------------------------------------ state
    def set_images(self, before: Optional[np.ndarray], after: Optional[np.ndarray],
                   levels, spacing=(1.0, 1.0)) -> None:
        fit = before is not None and (self.before is None or before.shape != self.before.shape)
        self.before, self.after = before, after
        self.levels = (float(levels[0]), float(levels[1]))
        self.spacing = (float(spacing[0]), float(spacing[1]))
        self._render()
        if fit:  # another slice size: fit it again
            for vb in self.boxes:
                vb.enableAutoRange()

    def set_levels(self, levels) -> None:
        self.levels = (float(levels[0]), float(levels[1]))
        for item in self.items:
            item.setLevels(self.levels)

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown view {mode!r}; one of {', '.join(MODES)}")
        if mode != self.mode:
            self.mode = mode
            self._radio(mode).setChecked(True)
            self._render()
            self.sig_mode_changed.emit(mode)

    def toggle(self) -> None:
        """Before <-> after (from side by side or swipe: the after image)."""
        self.set_mode("before" if self.mode == "after" else "after")

    def set_split(self, split: float) -> None:
        self.split = min(max(float(split), 0.0), 1.0)
        if self.slider.value() != round(self.split * 100):
            self.slider.setValue(round(self.split * 100))
        if self.mode == "swipe":
            self._render()

    def _width_mm(self) -> float:
        return 0.0 if self.before is None else self.before.shape[1] * self.spacing[0]

    def _handle_moved(self) -> None:
        width = self._width_mm()
        if width > 0 and self.mode == "swipe":
            split = min(max(self.handle.value() / width, 0.0), 1.0)
            if abs(split - self.split) > 1e-9:
                self.set_split(split)

    def shown(self) -> List[Tuple[str, np.ndarray]]:
        """What each visible pane shows: (title, image)."""
        return [(t.text, item.image) for t, item, pane in zip(self.titles, self.items, self.panes)
                if not pane.isHidden() and item.image is not None]

    # ------------------------------------------------------------------ drawing
    def _panes(self):
        b, a = self.before, self.after
        if self.mode == "side":
            return [("Before", b), ("After" if a is not None else "After: press Preview", a)]
        if self.mode == "before":
            return [("Before", b)]
        if a is None:
            return [("Before (Preview makes the after image)", b)]
        if self.mode == "after":
            return [("After", a)]
        return [(f"Swipe: before | after at {int(round(self.split * 100))} %",
                 swiped(b, a, self.split))]

    def _render(self) -> None:
        panes = self._panes()
        self.slider.setVisible(self.mode == "swipe")
        self.handle.setVisible(self.mode == "swipe" and self.before is not None)
        if self.before is not None and abs(self.handle.value() - self.split * self._width_mm()) > 1e-6:
            self.handle.blockSignals(True)
            self.handle.setValue(self.split * self._width_mm())
            self.handle.blockSignals(False)
        for i, (pane, item, title) in enumerate(zip(self.panes, self.items, self.titles)):
            if i < len(panes):
                text, img = panes[i]
                title.setText(text)
                pane.setVisible(True)
                if img is None:
                    item.clear()
                else:
                    item.setImage(img, autoLevels=False, levels=self.levels)
                    item.setRect(QRectF(0.0, 0.0, img.shape[1] * self.spacing[0],
                                        img.shape[0] * self.spacing[1]))
            else:
                title.setText("")
                pane.setVisible(False)
                item.clear()
