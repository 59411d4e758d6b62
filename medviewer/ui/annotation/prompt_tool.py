"""PromptTool: the "Prompt" tool's mouse handling in one SliceView, the prompt markers drawn
over it (green + / red − dots, box rectangles, scribble lines) and the cursors that show the
prompt kind.

Left click: a click of the chosen sign (Shift flips it); right click: a negative click; left
drag: a scribble (click modes, scribble mode) or a box (box mode). Points are turned into
voxel (z, y, x) indices of the volume here; the PromptController does the rest."""
from __future__ import annotations

from typing import List, Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QCursor, QGuiApplication, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QGraphicsRectItem

from medviewer.services.prompt_session import PromptEntry

POSITIVE, NEGATIVE, BOX = QColor("#30e060"), QColor("#ff4040"), QColor("#ffd040")
MARKER_Z = 26


def _pen(colour: QColor, width: float = 2.0, dashed: bool = False) -> QPen:
    pen = QPen(colour)
    pen.setCosmetic(True)
    pen.setWidthF(width)
    if dashed:
        pen.setStyle(Qt.PenStyle.DashLine)
    return pen


def prompt_cursor(mode: str) -> QCursor:
    """A 32×32 painted cursor: crosshair with a green + / red −, a box, or a scribble."""
    pix = QPixmap(32, 32)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    for colour, width in ((QColor(0, 0, 0, 200), 3.0), (QColor("#ffffff"), 1.0)):
        p.setPen(QPen(colour, width))
        p.drawLine(15, 4, 15, 12)
        p.drawLine(15, 18, 15, 26)
        p.drawLine(4, 15, 12, 15)
        p.drawLine(18, 15, 26, 15)
    if mode in ("positive", "negative", "scribble"):
        colour = NEGATIVE if mode == "negative" else POSITIVE
        p.setPen(QPen(QColor(0, 0, 0), 4.0))
        p.drawLine(22, 26, 30, 26)
        if mode == "positive":
            p.drawLine(26, 22, 26, 30)
        p.setPen(QPen(colour, 2.0))
        p.drawLine(22, 26, 30, 26)
        if mode == "positive":
            p.drawLine(26, 22, 26, 30)
        if mode == "scribble":
            p.setPen(QPen(POSITIVE, 2.0))
            p.drawPolyline([QPointF(19, 6), QPointF(22, 2), QPointF(25, 8), QPointF(29, 3)])
    else:  # box
        p.setPen(QPen(BOX, 1.5, Qt.PenStyle.DashLine))
        p.drawRect(20, 20, 10, 9)
    p.end()
    return QCursor(pix, 15, 15)


class PromptTool:
    """One view's prompt input and markers."""

    def __init__(self, view, prompts):
        self.view, self.pc = view, prompts
        self._drag: List[QPointF] = []
        self._preview = None
        self._items: list = []
        view.prompt = self
        view.vb.sig_right.connect(self._right_click)
        prompts.sig_prompts_changed.connect(self.refresh)
        view.session.cursor_changed.connect(lambda idx: self.refresh())

    # ------------------------------------------------------------------ input
    def _voxel(self, p: QPointF) -> Optional[tuple]:
        v = self.view
        if v.current is None:
            return None
        zyx = np.round(v.view_to_index(p)).astype(int)
        if not v.volume.geometry.contains_index_zyx(zyx):
            return None
        return tuple(int(c) for c in zyx)

    def _axis(self) -> int:
        return self.view.reslicer.fixed_axis(self.view.plane)

    def _sign(self) -> bool:
        positive = self.pc.mode != "negative"
        if QGuiApplication.keyboardModifiers() & Qt.KeyboardModifier.ShiftModifier:
            positive = not positive
        return positive

    def click(self, p: QPointF, positive: Optional[bool] = None) -> bool:
        vox = self._voxel(p)
        if vox is None:
            return False
        sign = self._sign() if positive is None else positive
        return self.pc.add(PromptEntry("point", (vox,), sign, self._axis()))

    def _right_click(self, p: QPointF) -> None:
        if self.view.tool == "prompt":
            self.click(p, positive=False)

    def handle(self, phase: str, p: QPointF) -> None:
        if self.view.current is None:
            return
        if phase in ("click", "double"):
            if self.pc.mode == "box":
                self.pc.ctl.sig_message.emit("Box: drag from one corner to the other")
                return
            self.click(p)
        elif phase == "press":
            self._drag = [p]
        elif phase in ("drag", "release") and self._drag:
            self._drag.append(p)
            if phase == "release":
                pts, self._drag = self._drag, []
                self._remove_preview()
                self.finish_drag(pts)
            else:
                self._show_preview()

    def finish_drag(self, points: List[QPointF]) -> bool:
        """A box (box mode) or a scribble (the other modes) from a drag through ``points``."""
        if self.pc.mode == "box":
            a, b = self._voxel(points[0]), self._voxel(points[-1])
            if a is None or b is None:
                return False
            return self.pc.add(PromptEntry("box", (a, b), True, self._axis()))
        vox = self._stroke_voxels(points)
        if not vox:
            return False
        kind = "point" if len(vox) == 1 else "scribble"
        return self.pc.add(PromptEntry(kind, tuple(vox), self._sign(), self._axis()))

    def _stroke_voxels(self, points: List[QPointF]) -> list:
        """The voxels along the stroke (consecutive points joined, no gaps, no repeats)."""
        out, seen = [], set()
        v = self.view
        for a, b in zip(points, points[1:] + points[-1:]):
            ia, ib = v.view_to_index(a), v.view_to_index(b)
            n = int(np.ceil(np.abs(ib - ia).max())) + 1
            for t in np.linspace(0.0, 1.0, n):
                zyx = np.round(ia + t * (ib - ia)).astype(int)
                key = tuple(int(c) for c in zyx)
                if key not in seen and v.volume.geometry.contains_index_zyx(zyx):
                    seen.add(key)
                    out.append(key)
        return out

    def _show_preview(self) -> None:
        self._remove_preview()
        pts = self._drag
        if self.pc.mode == "box":
            item = QGraphicsRectItem(QRectF(pts[0], pts[-1]).normalized())
            item.setPen(_pen(BOX, dashed=True))
        else:
            colour = POSITIVE if self._sign() else NEGATIVE
            item = pg.PlotCurveItem(x=[q.x() for q in pts], y=[q.y() for q in pts],
                                    pen=_pen(colour))
        item.setZValue(MARKER_Z + 1)
        self.view.vb.addItem(item, ignoreBounds=True)
        self._preview = item

    def _remove_preview(self) -> None:
        if self._preview is not None:
            self.view.vb.removeItem(self._preview)
            self._preview = None

    def cancel(self) -> None:
        self._drag = []
        self._remove_preview()

    # ------------------------------------------------------------------ markers
    def _to_view(self, zyx) -> QPointF:
        v = self.view
        row, col = v.reslicer.to_display(v.plane, zyx)
        return v.display_to_view(row, col)

    def refresh(self) -> None:
        """Draw the prompts that lie on this view's slice (points on any plane; boxes and
        scribbles on the plane they were given on)."""
        for item in self._items:
            self.view.vb.removeItem(item)
        self._items = []
        v = self.view
        if v.current is None or v.reslicer is None:
            return
        fixed, k = self._axis(), v.current.index
        dots = {True: [], False: []}
        for e in self.pc.entries:
            if e.kind == "point":
                if e.voxels[0][fixed] == k:
                    dots[e.positive].append(self._to_view(e.voxels[0]))
            elif e.axis == fixed and e.slice_index == k:
                if e.kind == "box":
                    item = QGraphicsRectItem(QRectF(self._to_view(e.voxels[0]),
                                                    self._to_view(e.voxels[-1])).normalized())
                    item.setPen(_pen(BOX, dashed=True))
                else:
                    pts = [self._to_view(z) for z in e.voxels]
                    item = pg.PlotCurveItem(x=[q.x() for q in pts], y=[q.y() for q in pts],
                                            pen=_pen(POSITIVE if e.positive else NEGATIVE))
                self._add(item)
        for positive, pts in dots.items():
            if pts:
                colour = POSITIVE if positive else NEGATIVE
                item = pg.ScatterPlotItem(x=[q.x() for q in pts], y=[q.y() for q in pts],
                                          size=12, symbol="o", brush=pg.mkBrush(colour),
                                          pen=pg.mkPen("w", width=1.5))
                self._add(item)
                sym = pg.ScatterPlotItem(x=[q.x() for q in pts], y=[q.y() for q in pts],
                                         size=8, symbol="+" if positive else "_",
                                         brush=pg.mkBrush("w"), pen=pg.mkPen("w", width=1.5))
                self._add(sym)

    def _add(self, item) -> None:
        item.setZValue(MARKER_Z)
        self.view.vb.addItem(item, ignoreBounds=True)
        self._items.append(item)

    @property
    def marker_count(self) -> int:
        return len(self._items)
