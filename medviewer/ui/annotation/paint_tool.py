"""PaintTool: mouse handling of brush, eraser, flood fill and polygon/lasso in one SliceView.

Every change goes through the AnnotationController (one stroke per press-drag-release or
click). Indices come from core.painting; the brush cursor is a circle of the brush radius
(in mm, the view's units) drawn around the mouse."""
from __future__ import annotations

from typing import List, Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QGraphicsEllipseItem

from medviewer.core import painting

MIN_RADIUS, MAX_RADIUS = 0.5, 100.0


class PaintOptions(QObject):
    """Settings shared by the paint tools of all views (the paint panel edits them)."""

    sig_changed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.radius_mm = 5.0
        self.sphere = False  # 3D brush / 3D flood fill
        self.use_range = False  # threshold paint
        self.lo, self.hi = -1000.0, 1000.0

    def set(self, **values) -> None:
        changed = False
        for key, value in values.items():
            if key == "radius_mm":
                value = float(np.clip(value, MIN_RADIUS, MAX_RADIUS))
            if getattr(self, key) != value:
                setattr(self, key, value)
                changed = True
        if changed:
            self.sig_changed.emit()

    def step_radius(self, direction: int) -> float:
        """``]`` (+1) / ``[`` (-1): 0.5 mm steps below 3 mm, 1 mm up to 20 mm, then 5 mm."""
        r = self.radius_mm
        up = direction > 0
        step = 0.5 if (r < 3 or (r == 3 and not up)) else 1.0 if (r < 20 or (r == 20 and not up)) else 5.0
        self.set(radius_mm=r + step if up else r - step)
        return self.radius_mm

    def set_range_from_window(self, center: float, width: float) -> None:
        self.set(lo=float(center - width / 2.0), hi=float(center + width / 2.0))


class PaintTool:
    """Turns one view's left-button phases into controller strokes."""

    def __init__(self, view, controller, options: PaintOptions):
        self.view, self.ctl, self.opt = view, controller, options
        self._last: Optional[np.ndarray] = None
        self.last_centres: List[list] = []  # dab centres (z, y, x) of the latest stroke
        self._poly: List[QPointF] = []
        self._lasso = False
        self._poly_item = None
        pen = QPen(QColor("#ffffff"))
        pen.setCosmetic(True)
        pen.setWidthF(1.2)
        self.cursor = QGraphicsEllipseItem()
        self.cursor.setPen(pen)
        self.cursor.setZValue(30)
        self.cursor.setVisible(False)
        view.vb.addItem(self.cursor, ignoreBounds=True)
        self._pen = QPen(QColor("#ffe060"))
        self._pen.setCosmetic(True)
        self._pen.setWidth(2)
        options.sig_changed.connect(self._on_options_changed)

    # ------------------------------------------------------------------ geometry helpers
    def _fixed(self) -> Optional[int]:
        return None if self.opt.sphere else self.view.reslicer.fixed_axis(self.view.plane)

    def _index(self, p: QPointF) -> np.ndarray:
        return self.view.view_to_index(p)

    def _image(self):
        vol = self.view.volume
        return None if vol is None or vol.is_rgb else vol.array

    def _filter(self, idx: np.ndarray) -> np.ndarray:
        img = self._image()
        if self.opt.use_range and img is not None:
            return painting.in_range(idx, img, self.opt.lo, self.opt.hi)
        return idx

    # ------------------------------------------------------------------ events
    def handle(self, tool: str, phase: str, p: QPointF) -> None:
        if self.view.current is None:
            return
        if tool in ("brush", "eraser"):
            self._brush(tool, phase, p)
        elif tool == "flood" and phase in ("click", "double"):
            self.flood(self._index(p))
        elif tool == "polygon":
            self._polygon(phase, p)

    def _brush(self, tool: str, phase: str, p: QPointF) -> None:
        geo = self.view.volume.geometry
        c = self._index(p)
        if phase in ("press", "click", "double"):
            if not self.ctl.begin_stroke(tool, 0 if tool == "eraser" else None):
                return
            self.last_centres = [c.tolist()]
            self._last = c
            self.ctl.stroke_add(self._filter(painting.brush_indices(geo, c, self.opt.radius_mm, self._fixed())))
            if phase != "press":
                self._end()
        elif phase in ("drag", "release") and self._last is not None and self.ctl.in_stroke:
            idx = painting.brush_segment_indices(geo, self._last, c, self.opt.radius_mm, self._fixed())
            self.last_centres.append(c.tolist())
            self._last = c
            self.ctl.stroke_add(self._filter(idx))
            if phase == "release":
                self._end()
        self.hover(tool, p)

    def _end(self) -> None:
        self._last = None
        self.ctl.end_stroke()

    def flood(self, seed_zyx) -> None:
        """Fill the region connected to the seed within [lo, hi] (2D slice, or 3D)."""
        img = self._image()
        if img is None:
            self.ctl.sig_message.emit("Flood fill needs a grey-level image")
            return
        lo, hi, fixed = self.opt.lo, self.opt.hi, self._fixed()
        seed = np.round(np.asarray(seed_zyx, dtype=float)).astype(int)
        if fixed is not None:
            idx = painting.flood_fill(img, seed, lo, hi, fixed)
            self._apply_fill(idx, "flood2d")
            return
        self.ctl.submit(lambda rep: painting.flood_fill(img, seed, lo, hi, None), "flood3d",
                        lambda idx: self._apply_fill(idx, "flood3d"), "3D flood fill…")

    def _apply_fill(self, idx: np.ndarray, tool: str) -> None:
        if idx.size == 0:
            self.ctl.sig_message.emit("Flood fill: the clicked voxel is outside the intensity range")
            return
        self.ctl.apply_voxels(idx, None, tool)

    # ------------------------------------------------------------------ polygon / lasso
    def _polygon(self, phase: str, p: QPointF) -> None:
        if phase == "click":
            self._poly.append(p)
            self._lasso = False
        elif phase == "double":
            if not self._poly or (self._poly[-1] - p).manhattanLength() > 0:
                self._poly.append(p)
            self.close_polygon()
            return
        elif phase == "press":
            if not self._poly:
                self._lasso = True
            self._poly.append(p)
        elif phase in ("drag", "release"):
            self._poly.append(p)
            if phase == "release" and self._lasso:
                self.close_polygon()
                return
        self._draw_polygon()

    def _draw_polygon(self) -> None:
        self._remove_polygon_item()
        if not self._poly:
            return
        xs = [q.x() for q in self._poly]
        ys = [q.y() for q in self._poly]
        self._poly_item = pg.PlotCurveItem(x=xs, y=ys, pen=self._pen)
        self._poly_item.setZValue(25)
        self.view.vb.addItem(self._poly_item, ignoreBounds=True)

    def _remove_polygon_item(self) -> None:
        if self._poly_item is not None:
            self.view.vb.removeItem(self._poly_item)
            self._poly_item = None

    def polygon_points_index(self, points) -> list:
        """View points -> (row, col) index pairs of the two in-plane array axes."""
        fixed = self.view.reslicer.fixed_axis(self.view.plane)
        keep = [a for a in range(3) if a != fixed]
        return [tuple(float(v) for v in self._index(q)[keep]) for q in points]

    def close_polygon(self):
        """Fill the polygon drawn so far (three points at least) with the active label."""
        pts, self._poly, self._lasso = self._poly, [], False
        self._remove_polygon_item()
        if len(pts) < 3 or self.view.current is None:
            return None
        fixed = self.view.reslicer.fixed_axis(self.view.plane)
        idx = painting.polygon_indices(self.view.volume.shape, fixed, self.view.current.index,
                                       self.polygon_points_index(pts))
        return self.ctl.apply_voxels(self._filter(idx), None, "polygon")

    def cancel(self) -> None:
        """Esc (the Navigate tool) or another tool: drop the polygon drawn so far, and a
        brush stroke still being dragged (its voxels are put back; it is never saved)."""
        self._poly, self._lasso = [], False
        self._remove_polygon_item()
        if self._last is not None:
            self._last = None
            if self.ctl.cancel_stroke():
                self.ctl.sig_message.emit("Stroke cancelled")

    def key(self, key) -> bool:
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self._poly:
            self.close_polygon()
            return True
        if key == Qt.Key.Key_Escape and self._poly:
            self.cancel()
            return True
        return False

    # ------------------------------------------------------------------ brush cursor
    def hover(self, tool: str, p: Optional[QPointF]) -> None:
        show = p is not None and tool in ("brush", "eraser") and self.view.current is not None
        self.cursor.setVisible(show)
        if show:
            r = self.opt.radius_mm
            self.cursor.setRect(QRectF(p.x() - r, p.y() - r, 2 * r, 2 * r))
            self._cursor_at = p

    def _on_options_changed(self) -> None:
        p = getattr(self, "_cursor_at", None)
        if p is not None and self.cursor.isVisible():
            self.hover(self.view.tool, p)
