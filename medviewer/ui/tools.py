"""Measurement tools drawn on a SliceView: distance (mm) and rectangle / ellipse ROI statistics.

Distance: left-drag from one point to the other, or click two points. ROI: left-drag a box
(rectangle or the ellipse inscribed in it). Measurements belong to the slice they were drawn
on and are hidden on other slices. Numbers come from core.measure (pure numpy)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QGraphicsEllipseItem, QGraphicsRectItem

from medviewer.core.measure import distance_mm, ellipse_mask, rect_mask, roi_stats

TOOLS = {
    "navigate": ("Navigate", "Esc", "Left click / drag moves the cursor; right drag window/level"),
    "wl": ("Window/level", "W", "Left drag changes window (horizontal) and level (vertical)"),
    "distance": ("Distance", "D", "Drag, or click two points, to measure a distance in mm"),
    "roi_rect": ("Rectangle ROI", "O", "Drag a rectangle: mean, SD, min, max, area"),
    "roi_ellipse": ("Ellipse ROI", "Shift+O", "Drag an ellipse: mean, SD, min, max, area"),
    "brush": ("Brush", "B", "Paint the active label (radius in mm; [ and ] change it)"),
    "eraser": ("Eraser", "E", "Erase labels (radius in mm; locked labels are kept)"),
    "flood": ("Flood fill", "F", "Click: fill the connected region within the intensity range"),
    "polygon": ("Polygon / lasso", "P", "Click points or drag a lasso; double-click or Enter fills"),
    "prompt": ("Prompt (interactive AI)", "I",
               "Click inside the object (A: + click, S: − click, Shift flips, right click −), "
               "X: drag a box, C: drag a scribble; G: 3D; Enter accepts, Esc rejects, "
               "Ctrl+Z undoes the last prompt"),
}
PAINT_TOOLS = ("brush", "eraser", "flood", "polygon")  # handled by the annotation PaintTool
_COLOUR = QColor("#40ff60")


@dataclass
class Measurement:
    kind: str  # "distance", "roi_rect", "roi_ellipse"
    slice_index: int
    text: str
    value: object  # distance in mm (float) or RoiStats
    items: list = field(default_factory=list)


class MeasureOverlay:
    """Draws and computes measurements for one SliceView."""

    def __init__(self, view):
        self.view = view
        self.measurements: List[Measurement] = []
        self._start: Optional[QPointF] = None
        self._pending_click: Optional[QPointF] = None
        self._preview = None
        self._pen = QPen(_COLOUR)
        self._pen.setCosmetic(True)
        self._pen.setWidth(2)

    # ------------------------------------------------------------------ events
    def handle(self, tool: str, phase: str, p: QPointF) -> None:
        if tool == "distance" and phase == "click":
            if self._pending_click is None:
                self._pending_click = p
                self._show_preview(tool, p, p)
            else:
                a, self._pending_click = self._pending_click, None
                self._finish(tool, a, p)
            return
        if phase == "press":
            self._start = p
            self._pending_click = None
        elif phase == "drag" and self._start is not None:
            self._show_preview(tool, self._start, p)
        elif phase == "release" and self._start is not None:
            a, self._start = self._start, None
            self._finish(tool, a, p)

    def _show_preview(self, tool: str, a: QPointF, b: QPointF) -> None:
        self._remove_preview()
        self._preview = self._shape_item(tool, a, b)

    def _remove_preview(self) -> None:
        if self._preview is not None:
            self.view.vb.removeItem(self._preview)
            self._preview = None

    def _shape_item(self, tool: str, a: QPointF, b: QPointF):
        if tool == "distance":
            item = pg.PlotCurveItem(x=[a.x(), b.x()], y=[a.y(), b.y()], pen=self._pen)
        else:
            cls = QGraphicsRectItem if tool == "roi_rect" else QGraphicsEllipseItem
            item = cls(QRectF(a, b).normalized())
            item.setPen(self._pen)
        item.setZValue(20)
        self.view.vb.addItem(item, ignoreBounds=True)
        return item

    # ------------------------------------------------------------------ results
    def _finish(self, tool: str, a: QPointF, b: QPointF) -> Optional[Measurement]:
        self._remove_preview()
        v = self.view
        if v.current is None:
            return None
        if tool == "distance":
            value = distance_mm(v.volume.geometry, v.view_to_index(a), v.view_to_index(b))
            text = f"{value:.1f} mm"
        else:
            if v.volume.is_rgb:
                v.sig_measured.emit("ROI statistics need a grey-level image")
                return None
            r0, c0 = v.view_to_display(a)
            r1, c1 = v.view_to_display(b)
            img = v.current.image
            make = rect_mask if tool == "roi_rect" else ellipse_mask
            value = roi_stats(img, make(img.shape, r0, c0, r1, c1), v.current.row_spacing,
                              v.current.col_spacing)
            text = value.text(v.volume.units)
        m = Measurement(tool, v.slice_index, text, value)
        m.items.append(self._shape_item(tool, a, b))
        # grow the label towards the middle of the view so that it stays on screen
        (x0, x1), (y0, y1) = v.vb.viewRange()
        anchor = (1.0 if b.x() > (x0 + x1) / 2 else 0.0, 1.0 if b.y() > (y0 + y1) / 2 else 0.0)
        label = pg.TextItem(text, color=_COLOUR, anchor=anchor, fill=pg.mkBrush(0, 0, 0, 140))
        label.setPos(b)
        label.setZValue(21)
        v.vb.addItem(label, ignoreBounds=True)
        m.items.append(label)
        self.measurements.append(m)
        v.sig_measured.emit(f"{v.plane.capitalize()} {text.replace(chr(10), '  ')}")
        return m

    def on_slice_changed(self, slice_index: int) -> None:
        for m in self.measurements:
            for item in m.items:
                item.setVisible(m.slice_index == slice_index)

    def clear(self) -> None:
        self._remove_preview()
        self._start = self._pending_click = None
        for m in self.measurements:
            for item in m.items:
                self.view.vb.removeItem(item)
        self.measurements.clear()
