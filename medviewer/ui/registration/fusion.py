"""The fused display: a registered series (resampled onto its fixed series' voxel grid) drawn
over the fixed one in every SliceView as a SliceLayer, by one of three modes:

- ``blend``: the registered series at ``blend`` opacity (0 = the fixed only, 1 = the
  registered only);
- ``checker``: squares of ``checker_mm`` (in the plane shown) alternate fixed / registered;
- ``swipe``: the registered series right of a vertical split that the user drags (a handle
  in each view; the split is a share of the image width, the same in the three views).

Both series share one voxel grid, so the crosshair (the Session's cursor, a voxel index of
the active fixed series) is the same physical point in both by construction. The registered
series keeps its own window (its modality may differ from the fixed one's)."""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor

from medviewer.core.reformat import ortho_slab
from medviewer.core.reslice import SlabCache
from medviewer.core.volume import Volume
from medviewer.core.windowing import window_to_levels

from ..slice_layer import SliceLayer

FUSION_Z = 4.5  # over the image (0), under the label overlay (5) and the crosshair (10)
MODES = {"blend": "Blend", "checker": "Checkerboard", "swipe": "Swipe"}


def fusion_alpha(shape, mode: str, blend: float, square_px=(1.0, 1.0),
                 split_col: Optional[int] = None) -> np.ndarray:
    """The opacity (uint8, rows x cols) of the registered series over the fixed one:
    ``blend`` everywhere, squares of ``square_px`` (rows, cols: pixels, may be fractional)
    alternating 0 / 255 starting with the fixed one at the top left, or 255 from column
    ``split_col`` on (swipe)."""
    rows, cols = int(shape[0]), int(shape[1])
    if mode == "blend":
        return np.full((rows, cols), int(round(255 * min(max(blend, 0.0), 1.0))), np.uint8)
    if mode == "checker":
        r = (np.arange(rows) // max(square_px[0], 1e-6)).astype(np.int64)
        c = (np.arange(cols) // max(square_px[1], 1e-6)).astype(np.int64)
        return (((r[:, None] + c[None, :]) % 2) * 255).astype(np.uint8)
    if mode == "swipe":
        out = np.zeros((rows, cols), np.uint8)
        out[:, max(0, int(split_col or 0)):] = 255
        return out
    raise ValueError(f"unknown fusion mode {mode!r}; choose from {', '.join(MODES)}")


def grey_rgba(img: np.ndarray, levels, alpha: np.ndarray) -> np.ndarray:
    """A 2D slice windowed to ``levels`` (low, high) as grey RGBA with ``alpha``."""
    lo, hi = float(levels[0]), float(levels[1])
    g = np.clip((img.astype(np.float32) - lo) * (255.0 / max(hi - lo, 1e-6)), 0, 255)
    out = np.empty(img.shape + (4,), np.uint8)
    out[..., 0] = out[..., 1] = out[..., 2] = np.rint(g).astype(np.uint8)
    out[..., 3] = alpha
    return out


class Fusion(QObject):
    """What is fused and how (shared by the three layers and the panel)."""

    sig_changed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.fixed: Optional[Volume] = None
        self.registered: Optional[Volume] = None
        self.enabled = False
        self.mode = "blend"
        self.blend = 0.5
        self.checker_mm = 20.0
        self.split = 0.5  # swipe: share of the image width shown fixed (left of the handle)
        self.levels = (0.0, 1.0)

    def set_pair(self, fixed: Optional[Volume], registered: Optional[Volume]) -> None:
        if registered is not None and tuple(registered.shape[:3]) != tuple(fixed.shape[:3]):
            raise ValueError("the registered series is not on the fixed series' grid")
        self.fixed, self.registered = fixed, registered
        if registered is not None:
            hint = registered.default_window()
            self.levels = tuple(float(v) for v in window_to_levels(hint.center, hint.width))
        self.sig_changed.emit()

    def set_enabled(self, on: bool) -> None:
        self.enabled = bool(on) and self.registered is not None
        self.sig_changed.emit()

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown fusion mode {mode!r}; choose from {', '.join(MODES)}")
        self.mode = mode
        self.sig_changed.emit()

    def set_blend(self, share: float) -> None:
        self.blend = float(min(max(share, 0.0), 1.0))
        self.sig_changed.emit()

    def set_checker_mm(self, mm: float) -> None:
        self.checker_mm = max(0.5, float(mm))
        self.sig_changed.emit()

    def set_split(self, share: float) -> None:
        share = float(min(max(share, 0.0), 1.0))
        if share != self.split:
            self.split = share
            self.sig_changed.emit()

    def shows_on(self, volume: Optional[Volume]) -> bool:
        return self.enabled and volume is not None and volume is self.fixed


class FusionLayer(SliceLayer):
    """The registered series over one SliceView's slice of the fixed series, with the swipe
    handle (a vertical line dragged with the left button)."""

    def __init__(self, view, fusion: Fusion):
        super().__init__(view, "fusionItem", FUSION_Z)
        self.fusion = fusion
        self._slabs: Optional[SlabCache] = None
        self._slabs_for = None
        self.handle = pg.InfiniteLine(angle=90, movable=True,
                                      pen=pg.mkPen(QColor("#ffd040"), width=2),
                                      hoverPen=pg.mkPen(QColor("#ffffff"), width=3))
        self.handle.setObjectName(f"fusionSwipe_{view.plane}")
        self.handle.setZValue(11)
        self.handle.setVisible(False)
        self.handle.setCursor(Qt.CursorShape.SplitHCursor)
        view.vb.addItem(self.handle, ignoreBounds=True)
        self.handle.sigDragged.connect(self._on_dragged)

    def _slice(self, array: np.ndarray, index: int) -> np.ndarray:
        r = self.view.reslicer
        if self._slabs is None or self._slabs_for is not r:
            self._slabs, self._slabs_for = SlabCache(r, self.view.plane), r
        return self._slabs.extract(array, index).image

    def update(self) -> None:
        f, v = self.fusion, self.view
        if not f.shows_on(v.volume) or v.current is None or self._oblique() \
                or (f.mode == "blend" and f.blend <= 0.0):
            self._hide()
            self.handle.setVisible(False)
            return
        cur = v.current
        rows, cols = cur.image.shape[:2]
        split_col = int(round(f.split * cols))
        slab = v.mpr.slab_of(v.plane)  # a thick slab of the fixed: the same of the registered
        key = (id(f.registered), v.plane, cur.index, f.mode, f.blend, f.checker_mm,
               split_col if f.mode == "swipe" else None, f.levels, slab)
        if f.mode == "swipe":
            self.handle.blockSignals(True)
            self.handle.setValue((split_col - 0.5) * cur.col_spacing)
            self.handle.blockSignals(False)
        self.handle.setVisible(f.mode == "swipe")
        if self._is_shown(key):
            return
        if slab[1] > 0:
            img = ortho_slab(v.reslicer, f.registered.array, v.plane, cur.index, slab[1],
                             slab[0]).image
        else:
            img = self._slice(f.registered.array, cur.index)
        square = (f.checker_mm / cur.row_spacing, f.checker_mm / cur.col_spacing)
        alpha = fusion_alpha(img.shape, f.mode, f.blend, square, split_col)
        self._show(grey_rgba(img, f.levels, alpha), key, (0, 255))

    def _on_dragged(self, line) -> None:
        cur = self.view.current
        if cur is None:
            return
        cols = cur.image.shape[1]
        self.fusion.set_split((line.value() / cur.col_spacing + 0.5) / max(cols, 1))


class FusionOverlays(QObject):
    """A FusionLayer in every view, redrawn when the fusion, the slice or the series change."""

    def __init__(self, session, views: Dict[str, object], fusion: Fusion, parent=None):
        super().__init__(parent)
        self.fusion = fusion
        self.layers = {plane: FusionLayer(view, fusion) for plane, view in views.items()}
        fusion.sig_changed.connect(self.refresh)
        session.active_changed.connect(lambda vol: self.refresh())
        session.cursor_changed.connect(lambda idx: self.refresh())

    def refresh(self) -> None:
        for layer in self.layers.values():
            layer.update()
