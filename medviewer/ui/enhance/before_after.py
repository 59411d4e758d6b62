"""The before/after view of the enhancement dialog: the current slice as it is and as the
filter leaves it, at the slice views' window/level, shown side by side (two linked panes),
one at a time (the before/after toggle) or split by a swipe (before left of the split)."""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
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
            item = pg.ImageItem(axisOrder="row-major")
            vb.addItem(item)
            panes.addWidget(pane, 1)
            self.panes.append(pane)
            self.boxes.append(vb)
            self.items.append(item)
            self.titles.append(title)
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
                   levels) -> None:
        first = self.before is None or (before is not None and before.shape != self.before.shape)
        self.before, self.after = before, after
        self.levels = (float(levels[0]), float(levels[1]))
        self._render()
        if first and before is not None:
            for vb in self.boxes:
                vb.autoRange(padding=0)

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
        for i, (pane, item, title) in enumerate(zip(self.panes, self.items, self.titles)):
            if i < len(panes):
                text, img = panes[i]
                title.setText(text)
                pane.setVisible(True)
                if img is None:
                    item.clear()
                else:
                    item.setImage(img, autoLevels=False, levels=self.levels)
            else:
                title.setText("")
                pane.setVisible(False)
                item.clear()
