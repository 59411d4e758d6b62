"""SliceView: one plane of the active volume (image, crosshair, edge letters, readout, tools).

Mouse and keys (documented in ui/shortcuts.py):
- left click / left drag: move the cursor (all views follow the Session); in a tool mode the
  left button measures instead (distance, ROI) or changes window/level (W/L mode); in a
  paint mode (brush, eraser, flood fill, polygon) it goes to the view's annotation PaintTool,
  in the Prompt tool to its PromptTool (right click: a negative prompt)
- right drag: window/level (horizontal = width, vertical = centre)
- middle drag: pan; Ctrl+wheel: zoom; R: reset zoom and pan
- wheel, PageUp/PageDown, Up/Down: previous / next image; "next" follows InstanceNumber on
  the stored images, else head to feet / front to back / right to left
  (core/slice_numbers.py); wheel towards the user = next image unless ``wheel_reversed``;
  on oblique planes the next image is one voxel step along the plane's normal
- Ctrl + left drag: rotate the MPR planes together about the cursor (the turn of the mouse
  around the crosshair centre); this view's picture keeps still and its crosshair lines turn,
  the other views show the rotated planes, thin while the drag lasts and as the slab after
  (TriPlanarView.reset_obliques goes back)

What the view shows (thin or slab, orthogonal or oblique) comes from ``mpr``, the
core.reformat.MprSettings that a TriPlanarView shares between its three views. Paint and
prompt tools work on the orthogonal thin planes only.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel

from medviewer.core.overlay import label_boundaries
from medviewer.core.projection import projection_edges
from medviewer.core.reformat import (H_LINE, SLAB_NAMES, V_LINE, MprSettings, ObliqueFrame, ortho_slab,
                                     view_turn_sign)
from medviewer.core.reslice import Edges, PlaneSlice, Reslicer, SlabCache, direction_letters
from medviewer.core.session import Session
from medviewer.core.slab_planes import SYNC_SLAB_PLANES, SlabPlanes, SlabRequest
from medviewer.core.slice_numbers import SliceNumbering, slice_numbering
from medviewer.core.volume import Volume
from medviewer.core.windowing import window_to_levels

from . import corner_text
from .scale_bar import ScaleBar
from .tools import PAINT_TOOLS, MeasureOverlay
from .windowed_image import WindowedImageItem

PLANE_COLOURS = {"axial": "#e0c040", "coronal": "#40c0e0", "sagittal": "#e060a0"}
_GREY_LUT = np.arange(256, dtype=np.uint8)
_INVERTED_LUT = _GREY_LUT[::-1].copy()
_SLICE_KEYS = {Qt.Key.Key_PageUp: -1, Qt.Key.Key_PageDown: +1, Qt.Key.Key_Up: -1, Qt.Key.Key_Down: +1}


def orientation_known(volume: Volume) -> bool:
    """False for a lone 2D image with the default geometry (no patient orientation stored):
    edge letters would be invented. ``volume.meta['orientation_known']`` overrides this."""
    if "orientation_known" in volume.meta:
        return bool(volume.meta["orientation_known"])
    g = volume.geometry
    default = np.allclose(g.direction_matrix, np.eye(3)) and not np.any(g.origin)
    return not (volume.shape[0] == 1 and default)


class SliceViewBox(pg.ViewBox):
    """ViewBox that turns mouse gestures into view-level signals (see module docstring)."""

    sig_wheel = Signal(int)  # slice steps
    sig_left = Signal(str, QPointF)  # phase ("click", "press", "drag", "release"), view point
    sig_wl_drag = Signal(float, float)  # screen dx, dy
    sig_right = Signal(QPointF)  # a right click (no drag), view point
    sig_rotate = Signal(str, QPointF)  # phase ("press", "drag", "release"), view point

    def __init__(self):
        super().__init__(enableMenu=False, invertY=True, lockAspect=True)
        self._wheel_rest = 0.0
        self.left_is_wl = False  # the W/L tool: left drag changes window/level

    def wheelEvent(self, ev, axis=None):
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
            return
        delta = ev.delta() if hasattr(ev, "delta") else ev.angleDelta().y()
        self._wheel_rest += delta / 120.0
        steps = int(self._wheel_rest)
        self._wheel_rest -= steps
        if steps:
            self.sig_wheel.emit(-steps)  # wheel towards the user (delta < 0) = next image
        ev.accept()

    def mouseClickEvent(self, ev):
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self.sig_left.emit("double" if ev.double() else "click", self.mapSceneToView(ev.scenePos()))
        elif ev.button() == Qt.MouseButton.RightButton and not ev.double():
            ev.accept()
            self.sig_right.emit(self.mapSceneToView(ev.scenePos()))
        else:
            ev.ignore()

    def mouseDragEvent(self, ev, axis=None):
        button = ev.button()
        if button == Qt.MouseButton.MiddleButton:
            super().mouseDragEvent(ev, axis)  # pyqtgraph pans with the middle button
            return
        ev.accept()
        if button == Qt.MouseButton.RightButton or (button == Qt.MouseButton.LeftButton and self.left_is_wl):
            d = ev.screenPos() - ev.lastScreenPos()
            self.sig_wl_drag.emit(float(d.x()), float(d.y()))
        elif button == Qt.MouseButton.LeftButton and ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            if ev.isStart():
                self.sig_rotate.emit("press", self.mapSceneToView(ev.buttonDownScenePos()))
            self.sig_rotate.emit("release" if ev.isFinish() else "drag", self.mapSceneToView(ev.scenePos()))
        elif button == Qt.MouseButton.LeftButton:
            if ev.isStart():
                self.sig_left.emit("press", self.mapSceneToView(ev.buttonDownScenePos()))
            self.sig_left.emit("release" if ev.isFinish() else "drag", self.mapSceneToView(ev.scenePos()))


class SliceView(pg.GraphicsView):
    """One plane (``axial``, ``coronal`` or ``sagittal``) following a Session."""

    sig_readout = Signal(str)
    sig_wl_drag = Signal(float, float)
    sig_measured = Signal(str)
    sig_rotate = Signal(str, str, float)  # plane, phase ("press", "turn", "release"), radians

    def __init__(self, session: Session, plane: str, parent=None):
        super().__init__(parent, background="k")
        self.setObjectName(f"sliceView_{plane}")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setToolTip(f"{plane.capitalize()} view: wheel/PgUp/PgDn change slice, left click "
                        "moves the cursor, right drag window/level, middle drag pan, Ctrl+wheel zoom."
                        "\nIm n/N: the image's DICOM InstanceNumber; Sl n/N: the slice position "
                        "counted head to feet (axial), front to back (coronal), right to left "
                        "(sagittal)")
        self.session, self.plane = session, plane
        self.volume: Optional[Volume] = None
        self.reslicer: Optional[Reslicer] = None
        # blocks of contiguous slices for a strided plane (sagittal): image and label map
        self._image_slabs: Optional[SlabCache] = None
        self._label_slabs: Optional[SlabCache] = None
        self.current: Optional[PlaneSlice] = None
        self._tool = "navigate"
        self._shape = None
        self._rect = self._overlay_rect = None
        self._oriented = True
        self.mpr = MprSettings()  # a TriPlanarView shares one between its views
        self._shown_key = None
        self._depth = 0.0  # on an oblique plane: its distance along the normal (frame mm)
        self._fill: Optional[float] = None  # outside the volume on oblique planes
        self._slab_planes = SlabPlanes()  # the planes of the last oblique slab
        self.slab_bridge = None  # a QtJobBridge for oblique slabs (a TriPlanarView's); None: here
        self._slab_wanted: Optional[SlabRequest] = None  # the newest slab on the worker
        self._slab_job = None
        # (cursor it set, frame state, depth): the exact depth the last step along an oblique
        # normal went to; the slab follows it while the cursor stays on the voxel it rounded to
        self._stepped: Optional[tuple] = None
        self._rot_last: Optional[QPointF] = None
        self.numbering: Optional[SliceNumbering] = None
        self.wheel_reversed = False  # the user's "reverse mouse wheel" setting
        self.overlay_fields = set(corner_text.FIELDS)  # the corner texts shown
        self.hide_patient = False  # "hide patient details": no name, ID or date in the corners
        self.vb = SliceViewBox()
        self.setCentralItem(self.vb)
        self.image_item = WindowedImageItem(axisOrder="row-major")
        self.vb.addItem(self.image_item)
        self.overlay_item = WindowedImageItem(axisOrder="row-major")
        self.overlay_item.setZValue(5)
        self.vb.addItem(self.overlay_item)
        pen = pg.mkPen(QColor(PLANE_COLOURS[plane]), width=1)
        self.vline = pg.InfiniteLine(angle=90, movable=False, pen=pen)
        self.hline = pg.InfiniteLine(angle=0, movable=False, pen=pen)
        for line in (self.vline, self.hline):
            line.setZValue(10)
            self.vb.addItem(line, ignoreBounds=True)
        self.overlay = MeasureOverlay(self)
        self.paint = None  # the annotation PaintTool of this view (set by the annotation UI)
        self.prompt = None  # the annotation PromptTool of this view (interactive segmentation)
        self.heat = None  # the AI heat-map layer of this view (ui/ai/overlays.HeatLayer)
        self.layers = []  # its SliceLayers (heat maps, proposals), shown on orthogonal planes only
        self._labels = {}
        for key in ("top", "bottom", "left", "right", "title", "readout"):
            lab = QLabel(self)
            lab.setObjectName(f"{plane}_{key}Label")
            lab.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
            colour = PLANE_COLOURS[plane] if key == "title" else "#f0f0f0"
            lab.setStyleSheet(f"color: {colour}; background: rgba(0, 0, 0, 110); font-weight: bold;"
                              " padding: 0px 2px;")
            self._labels[key] = lab
        for key in ("info_tl", "info_tr", "info_br"):  # corner overlays (ui/corner_text.py)
            lab = QLabel(self)
            lab.setObjectName(f"{plane}_{key}Label")
            lab.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
            if key != "info_tl":
                lab.setAlignment(Qt.AlignmentFlag.AlignRight)
            lab.setStyleSheet("color: #e8e8e8; background: rgba(0, 0, 0, 90); padding: 0px 2px;")
            self._labels[key] = lab
        self.ruler = ScaleBar(self)
        self.ruler.hide()
        self._mouse_scene: Optional[QPointF] = None
        self.vb.sigRangeChanged.connect(lambda *_: (self._refresh_corners(), self._refresh_readout()))
        self.vb.sig_wheel.connect(self._on_wheel)
        self.vb.sig_left.connect(self._on_left)
        self.vb.sig_rotate.connect(self._on_rotate_drag)
        self.vb.sig_wl_drag.connect(self.sig_wl_drag)
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)
        session.active_changed.connect(self._on_active_changed)
        session.cursor_changed.connect(self._on_cursor_changed)
        session.window_changed.connect(self._on_window_changed)
        session.overlay_changed.connect(self._on_overlay_changed)
        if session.active is not None:
            self._on_active_changed(session.active)

    # ------------------------------------------------------------------ session -> view
    def _on_active_changed(self, volume: Optional[Volume]) -> None:
        self.volume = volume
        self.overlay.clear()
        self.current = None
        self._shown_key = None
        self._fill = None
        self._drop_slab_work()
        self._slab_planes.clear()
        self._stepped = None
        frame = self.mpr.frame
        if frame is not None and (volume is None or frame.geometry != volume.geometry):
            self.mpr.frame = None  # a frame belongs to one voxel grid
        if volume is None:
            self.reslicer = self._image_slabs = self._label_slabs = None
            self.image_item.clear()
            for lab in self._labels.values():
                lab.setText("")
            return
        self.reslicer = Reslicer(volume.geometry)
        self._image_slabs = SlabCache(self.reslicer, self.plane)
        self._label_slabs = SlabCache(self.reslicer, self.plane, phase=4)  # not the same step
        self.numbering = slice_numbering(volume.geometry, volume.meta, self.plane,
                                         self.reslicer.fixed_axis(self.plane))
        e = self.reslicer.edges(self.plane)
        known = self._oriented = orientation_known(volume)
        if not known:  # a radiograph: its PatientOrientation letters, on its own plane only
            e = self._projection_edges(volume)
        self._set_edges(e)
        self.image_item.setLookupTable(None if volume.is_rgb else (_INVERTED_LUT if volume.invert else _GREY_LUT))
        self._shape = None
        self._update_slice(force=True)
        self.reset_view()
        self._refresh_corners()

    def _set_edges(self, e: Optional[Edges]) -> None:
        for key in ("top", "bottom", "left", "right"):
            self._labels[key].setText(getattr(e, key) if e is not None else "")

    def oblique_frame(self) -> Optional[ObliqueFrame]:
        """The oblique frame this view shows, or None (orthogonal; or an image without
        patient axes, or colour)."""
        v = self.volume
        if self.mpr.frame is None or v is None or v.is_rgb or not self._oriented:
            return None
        return self.mpr.frame

    def refresh_reformat(self) -> None:
        """Redraw after the shared MprSettings changed (slab, rotation, reset)."""
        if self.reslicer is None:
            return
        frame = self.oblique_frame()
        if frame is None and self._oriented:
            self._set_edges(self.reslicer.edges(self.plane))
        self._update_slice()
        for layer in self.layers:
            layer.update()

    def _fill_value(self) -> float:
        if self._fill is None:
            self._fill = float(self.volume.array.min())
        return self._fill

    def _projection_edges(self, volume: Volume):
        """Edge letters from PatientOrientation for the stored images of a volume without
        patient geometry (shown as stored: default geometry, their own plane), else None."""
        g = volume.geometry
        if self.reslicer.fixed_axis(self.plane) != 0 or not np.allclose(g.direction_matrix, np.eye(3)):
            return None
        return projection_edges(volume.meta.get("PatientOrientation"))

    def _on_overlay_changed(self, overlay) -> None:
        if overlay is None or not overlay.visible or self.current is None:
            self.overlay_item.clear()
            return
        lut = overlay.lut()
        if len(lut) < 2:  # an empty label table: keep the levels valid
            lut = np.zeros((2, 4), dtype=np.uint8)
        if getattr(overlay, "outline", False):  # thin lines: drawn at least 80 % opaque
            lut = lut.copy()
            lut[:, 3] = np.where(lut[:, 3] > 0, np.maximum(lut[:, 3], 204), 0)
        self.overlay_item.setLookupTable(lut)
        self._label_slabs.invalidate()  # new labels, or the same array edited
        self._update_overlay()

    def _update_overlay(self) -> None:
        ov = self.session.overlay
        if ov is None or not ov.visible:
            return
        frame = self.oblique_frame()
        if frame is not None:
            cur = self.volume.geometry.index_zyx_to_lps(self.session.cursor_zyx)
            img = frame.image(ov.labels, self.plane, cur, order=0, fill=0)
        else:
            img = self._label_slabs.extract(ov.labels, self.current.index,
                                            getattr(ov, "version", None)).image
        if getattr(ov, "outline", False):
            img = label_boundaries(img)
        self.overlay_item.setImage(img, autoLevels=False, levels=(0, max(ov.n_labels, 1)))
        if self._overlay_rect != self._rect:
            self._overlay_rect = self._rect
            self.overlay_item.setRect(self._rect)

    def refresh_overlay(self, flat_indices=None) -> bool:
        """Re-extract the overlay slice after an edit, only if the edit touched this view's
        slice (``flat_indices`` into the (z, y, x) labels; None = always). True if redrawn."""
        ov = self.session.overlay
        if ov is None or not ov.visible or self.current is None:
            return False
        self._label_slabs.invalidate()  # edited in place: cached blocks of other slices too
        if flat_indices is not None and self.oblique_frame() is None:
            idx = np.asarray(flat_indices)
            if idx.size == 0:
                return False
            shape = ov.labels.shape
            fixed = self.reslicer.fixed_axis(self.plane)
            stride = int(np.prod(shape[fixed + 1:]))
            k = self.current.index
            if fixed == 0 and idx.size > 64 and np.all(idx[1:] >= idx[:-1]):  # sorted: bisect
                a, b = np.searchsorted(idx, [k * stride, (k + 1) * stride])
                if a == b:
                    return False
            elif idx.size > np.prod(shape) // shape[fixed]:
                pass  # more voxels than the slice has: redrawing costs less than looking
            elif not np.any((idx // stride) % shape[fixed] == k):
                return False
        self._update_overlay()
        return True

    def _on_cursor_changed(self, index_zyx) -> None:
        if self.reslicer is not None:
            self._update_slice()

    def _on_window_changed(self, center: float, width: float) -> None:
        if self.volume is not None and not self.volume.is_rgb:
            self.image_item.setLevels(window_to_levels(center, width))
            self._refresh_corners()

    def _update_slice(self, force: bool = False) -> None:
        r, cur = self.reslicer, self.session.cursor_zyx
        s = r.slice_index(self.plane, cur)
        frame = self.oblique_frame()
        mpr = self.mpr
        slab = mpr.slab_of(self.plane) if self._oriented and not self.volume.is_rgb else ("", 0.0)
        if frame is not None:
            cur_lps = self.volume.geometry.index_zyx_to_lps(cur)
            y, x, depth = frame.view_of(self.plane, cur_lps)
            slab_depth = self.slab_depth
            key = ("oblique", id(frame), round(depth, 4), round(slab_depth, 4),
                   np.round(frame.axes(self.plane), 9).tobytes(), frame.anchor[self.plane], slab)
        else:
            key = ("ortho", s, slab)
        if force or self.current is None or key != self._shown_key:
            self._shown_key = key
            if force:
                self._image_slabs.invalidate()
            if frame is not None:
                self._depth = depth
                a = frame.axes(self.plane)
                edges = Edges(top=direction_letters(-a[:, 0]), bottom=direction_letters(a[:, 0]),
                              left=direction_letters(-a[:, 1]), right=direction_letters(a[:, 1]))
                self._set_edges(edges)
                img = self._oblique_image(frame, cur_lps, slab_depth, slab)
                if img is None and self.current is not None and self.current.image.shape == frame.shape(self.plane):
                    img = self.current.image  # the slab comes from the worker: the last picture till then
                elif img is None:
                    img = frame.image(self.volume.array, self.plane, cur_lps, fill=self._fill_value())
                self.current = PlaneSlice(self.plane, s, img, frame.spacing, frame.spacing, edges)
            elif slab[1] > 0:
                self._drop_slab_work()
                self.current = ortho_slab(r, self.volume.array, self.plane, s, slab[1], slab[0])
            else:
                self._drop_slab_work()
                self.current = self._image_slabs.extract(self.volume.array, s)
            img = self.current.image
            levels = (0, 255) if self.volume.is_rgb else window_to_levels(*self.session.window)
            self.image_item.setImage(img, autoLevels=False, levels=levels)
            shape = (img.shape[0], img.shape[1], self.current.row_spacing, self.current.col_spacing)
            if shape != self._shape:
                self._shape = shape
                rs, cs = self.current.row_spacing, self.current.col_spacing
                self._rect = QRectF(-0.5 * cs, -0.5 * rs, img.shape[1] * cs, img.shape[0] * rs)
                self.image_item.setRect(self._rect)
            self._update_overlay()
            self.overlay.on_slice_changed(s)
            if self._oriented:
                self._labels["title"].setText(f"{self.plane.capitalize()}  {self.numbering.label(s)}")
            else:  # no patient axes to count along
                self._labels["title"].setText(f"Image  {s + 1}/{r.n_slices(self.plane)}")
            self._refresh_corners()
            self._labels["title"].adjustSize()
            self._refresh_readout()
        if frame is not None:
            self.hline.setAngle(frame.line_angle(self.plane, H_LINE[self.plane]))
            self.vline.setAngle(frame.line_angle(self.plane, V_LINE[self.plane]))
            self.hline.setPos(QPointF(x, y))
            self.vline.setPos(QPointF(x, y))
            return
        if self.hline.angle != 0 or self.vline.angle != 90:
            self.hline.setAngle(0)
            self.vline.setAngle(90)
        row, col = r.to_display(self.plane, cur)
        self.vline.setValue(col * self.current.col_spacing)
        self.hline.setValue(row * self.current.row_spacing)

    # ------------------------------------------------------------------ oblique slabs
    def _oblique_image(self, frame: ObliqueFrame, cur_lps, depth: float, slab) -> Optional[np.ndarray]:
        """The oblique picture through the cursor now, or None when its slab needs more than
        SYNC_SLAB_PLANES new planes: those go to the worker (the newest request only; an
        older one still running is cancelled) and :meth:`_on_slab_done` shows the result."""
        fill = self._fill_value()
        depths = frame.slab_depths(self.plane, depth, slab[1]) if slab[1] > 0 else [depth]
        if len(depths) < 2:
            self._drop_slab_work()
            return frame.image(self.volume.array, self.plane, cur_lps, fill=fill)
        cache = self._slab_planes
        req = cache.request(frame.planes(self.plane), self.volume.array, depths, slab[0], fill)
        streams = cache.streams(req)  # too many planes to keep: the whole slab on the worker
        todo = req.ks if streams else cache.missing(req)
        if len(todo) <= SYNC_SLAB_PLANES or self.slab_bridge is None:
            self._drop_slab_work()
            return cache.image(req)
        want = self._slab_wanted
        if want is not None and not streams and (want.key, want.ks) == (req.key, req.ks):
            self._slab_wanted = req  # the same planes already on their way (another mode?)
            return None
        self._drop_slab_work()
        self._slab_wanted = req
        if streams:
            def work(reporter):
                return req.reduced(reporter.cancel.raise_if_cancelled)
        else:
            def work(reporter):
                return req.compute(todo, reporter.cancel.raise_if_cancelled)
        self._slab_job = self.slab_bridge.submit(work, f"slab-{self.plane}",
                                                 on_done=lambda res: self._on_slab_done(req, res))
        return None

    def _frame_state(self, frame: ObliqueFrame) -> bytes:
        return np.concatenate([frame.center, frame.axes(self.plane).ravel()]).tobytes()

    @property
    def slab_depth(self) -> float:
        """Where (mm along the oblique normal) this view's slab is centred: the depth the
        last wheel / key step went to while the cursor stays on the voxel that step rounded
        to (so each step moves the slab by exactly one plane), else the cursor's depth."""
        frame = self.oblique_frame()
        if frame is None:
            return 0.0
        st = self._stepped
        if st is not None and st[0] == tuple(self.session.cursor_zyx) and st[1] == self._frame_state(frame):
            return st[2]
        return frame.view_of(self.plane, self.volume.geometry.index_zyx_to_lps(self.session.cursor_zyx))[2]

    def _drop_slab_work(self) -> None:
        if self._slab_job is not None:
            self._slab_job.cancel()
        self._slab_job = self._slab_wanted = None

    @property
    def slab_pending(self) -> bool:
        """True while the worker computes the slab this view is to show."""
        return self._slab_wanted is not None

    def _on_slab_done(self, req: SlabRequest, result) -> None:
        """A worker's planes (kept, then reduced) or whole slab (streamed): shown if it is
        still what the view wants, else dropped (planes are kept all the same)."""
        whole = isinstance(result, np.ndarray)
        want = self._slab_wanted
        if not whole and (self._slab_planes.holds(req) or (want is not None and want.key == req.key)):
            self._slab_planes.store(req, result)  # (not over the planes of a newer grid)
        if want is None or (want.key, want.ks) != (req.key, req.ks) or self.current is None \
                or (whole and want is not req) or self.oblique_frame() is None:
            return  # a newer request has its own job
        self._slab_job = self._slab_wanted = None
        img = result if whole else self._slab_planes.image(want)
        c = self.current
        self.current = PlaneSlice(c.plane, c.index, img, c.row_spacing, c.col_spacing, c.edges)
        self.image_item.setImage(img, autoLevels=False, levels=window_to_levels(*self.session.window))
        self._refresh_readout()

    # ------------------------------------------------------------------ view -> session
    @property
    def tool(self) -> str:
        return self._tool

    @tool.setter
    def tool(self, name: str) -> None:
        self._tool = name
        self.vb.left_is_wl = name == "wl"

    @property
    def slice_index(self) -> int:
        return -1 if self.current is None else self.current.index

    def _on_wheel(self, steps: int) -> None:
        self.step_slice(-steps if self.wheel_reversed else steps)

    def step_slice(self, steps: int) -> None:
        """Move ``steps`` images on in image order (negative: back; see the module doc)."""
        if self.reslicer is None:
            return
        frame = self.oblique_frame()
        if frame is not None:  # one voxel step along the plane's normal per image
            g = self.volume.geometry
            lps = g.index_zyx_to_lps(self.session.cursor_zyx)
            normal = frame.axes(self.plane)[:, 2]
            # "next" as on the orthogonal plane: the way the stored index runs, turned with it
            along = g.direction_matrix[:, 2 - self.reslicer.fixed_axis(self.plane)]
            base_normal = frame.rotation.T @ normal
            sign = float(np.sign(self.numbering.step)) * (1.0 if along @ base_normal >= 0 else -1.0)
            # from the depth the last step went to, not the voxel it rounded to: no drift, and a
            # slab moves by exactly one plane per step (one new plane to sample)
            start = self.slab_depth
            depth = start + steps * sign * frame.normal_step(self.plane)
            target = lps + (depth - frame.view_of(self.plane, lps)[2]) * normal
            raw = np.round(g.lps_to_index_zyx(target))
            idx = tuple(int(v) for v in np.clip(raw, 0, np.asarray(self.volume.shape) - 1))
            inside = tuple(int(v) for v in raw) == idx  # at the volume's end the cursor stops
            self._stepped = (idx, self._frame_state(frame), depth) if inside else None
            if idx == tuple(self.session.cursor_zyx):
                self._update_slice()  # the same voxel: the slab moves all the same
            else:
                self.session.set_cursor_index(idx)
            return
        idx = list(self.session.cursor_zyx)
        fixed = self.reslicer.fixed_axis(self.plane)
        idx[fixed] = int(np.clip(idx[fixed] + steps * self.numbering.step, 0,
                                 self.volume.shape[fixed] - 1))
        self.session.set_cursor_index(idx)

    def view_to_display(self, p: QPointF):
        """View point (mm in the displayed plane) -> continuous display (row, col)."""
        return p.y() / self.current.row_spacing, p.x() / self.current.col_spacing

    def display_to_view(self, row: float, col: float) -> QPointF:
        return QPointF(col * self.current.col_spacing, row * self.current.row_spacing)

    def view_to_index(self, p: QPointF) -> np.ndarray:
        frame = self.oblique_frame()
        if frame is not None:
            return frame.index_of(self.plane, p.y(), p.x(), self._depth)
        row, col = self.view_to_display(p)
        return self.reslicer.to_index(self.plane, self.current.index, row, col)

    def _on_left(self, phase: str, p: QPointF) -> None:
        if self.current is None:
            return
        if self.tool == "navigate":
            self.session.set_cursor_index(self.view_to_index(p))
        elif self.tool in ("distance", "roi_rect", "roi_ellipse"):
            self.overlay.handle(self.tool, phase, p)
        elif self.oblique_frame() is not None and self.tool in PAINT_TOOLS + ("prompt",):
            return  # labels are painted on the stored voxel grid: orthogonal planes only
        elif self.tool in PAINT_TOOLS and self.paint is not None:
            self.paint.handle(self.tool, phase, p)
        elif self.tool == "prompt" and self.prompt is not None:
            self.prompt.handle(phase, p)

    def crosshair_centre(self) -> QPointF:
        """Where the cursor is in this view (view coordinates, mm)."""
        frame = self.oblique_frame()
        if frame is not None:
            y, x, _ = frame.view_of(self.plane, self.volume.geometry.index_zyx_to_lps(self.session.cursor_zyx))
            return QPointF(x, y)
        row, col = self.reslicer.to_display(self.plane, self.session.cursor_zyx)
        return QPointF(col * self.current.col_spacing, row * self.current.row_spacing)

    def _on_rotate_drag(self, phase: str, p: QPointF) -> None:
        """Ctrl + left drag: the turn of the mouse about the crosshair centre, as
        ``sig_rotate`` (the TriPlanarView turns the shared frame)."""
        if self.current is None or not self._oriented or self.volume.is_rgb:
            return
        if phase == "press":
            self._rot_last = p
            self.sig_rotate.emit(self.plane, "press", 0.0)
            return
        if self._rot_last is None:
            return
        c = self.crosshair_centre()
        a0 = np.arctan2(self._rot_last.y() - c.y(), self._rot_last.x() - c.x())
        a1 = np.arctan2(p.y() - c.y(), p.x() - c.x())
        turn = float((a1 - a0 + np.pi) % (2 * np.pi) - np.pi)
        self._rot_last = None if phase == "release" else p
        if turn:
            self.sig_rotate.emit(self.plane, "turn", turn * view_turn_sign(self.plane))
        if phase == "release":
            self.sig_rotate.emit(self.plane, "release", 0.0)

    def reset_view(self) -> None:
        if self.current is not None:
            self.vb.autoRange(items=[self.image_item], padding=0.02)

    def keyPressEvent(self, ev):
        key = ev.key()
        if key in _SLICE_KEYS and not ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.step_slice(_SLICE_KEYS[key] * (10 if ev.modifiers() & Qt.KeyboardModifier.ShiftModifier else 1))
            ev.accept()
        elif key == Qt.Key.Key_R and not ev.modifiers():
            self.reset_view()
            ev.accept()
        elif self.paint is not None and self.tool in PAINT_TOOLS and self.paint.key(key):
            ev.accept()
        else:
            super().keyPressEvent(ev)

    # ------------------------------------------------------------------ readout
    def readout_at(self, p: QPointF) -> str:
        """Voxel index (x, y, z), LPS position (mm) and value under a view point, or ''. For
        an image without patient geometry (a radiograph): the pixel, its position in mm from
        the first pixel when the pixel spacing is known, and the value."""
        if self.current is None:
            return ""
        zyx = np.round(self.view_to_index(p)).astype(int)
        v = self.volume
        if not v.geometry.contains_index_zyx(zyx):
            return ""
        lps = v.geometry.index_zyx_to_lps(zyx)
        value = v.value_at(zyx)
        if v.is_rgb:
            vtxt = "RGB (" + ", ".join(str(int(c)) for c in value) + ")"
        else:
            vtxt = f"{value:.6g}{' ' + v.units if v.units else ''}"
        z, y, x = (int(i) for i in zyx)
        if not self._oriented:  # a projection: pixels, and mm only when the spacing is known
            where = f"pixel (x {x}, y {y}{f', image {z + 1}' if v.shape[0] > 1 else ''})"
            if not v.meta.get("spacing_unknown"):
                sx, sy, _ = v.geometry.spacing
                where += f"   ({x * sx:.1f}, {y * sy:.1f}) mm"
            return f"{where}   value {vtxt}"
        return (f"voxel (x {x}, y {y}, z {z})   LPS ({lps[0]:.1f}, {lps[1]:.1f}, {lps[2]:.1f}) mm"
                f"   value {vtxt}")

    def _on_mouse_moved(self, scene_pos) -> None:
        if self.current is None:
            return
        self._mouse_scene = QPointF(scene_pos)
        if self.paint is not None:
            self.paint.hover(self.tool, self.vb.mapSceneToView(scene_pos))
        self._refresh_readout(emit=True)

    def _refresh_readout(self, emit: bool = False) -> None:
        """The readout under the (last) mouse position; re-run after slice, zoom or volume
        changes so it never shows a stale voxel. Shortened when the view is narrow."""
        text = ""
        if self.current is not None and self._mouse_scene is not None:
            text = self.readout_at(self.vb.mapSceneToView(self._mouse_scene))
        lab = self._labels["readout"]
        shown = text
        if text and lab.fontMetrics().horizontalAdvance(text) > self.width() - 8:
            parts = text.split("   ")  # where, position in mm, value: drop the mm
            shown = parts[0] + "   " + parts[-1]
        lab.setText(shown)
        lab.adjustSize()
        self._place_labels()
        if emit and text:
            self.sig_readout.emit(text)  # the status bar has room for the full readout

    # ------------------------------------------------------------------ corner overlays
    def set_overlay_fields(self, fields) -> None:
        """Which corner texts show (keys of ``corner_text.FIELDS``)."""
        self.overlay_fields = set(fields)
        self._refresh_corners()

    def show_patient_details(self, show: bool) -> None:
        self.hide_patient = not show
        self._refresh_corners()

    def zoom(self) -> float:
        """Screen pixels per image pixel (columns)."""
        if self.current is None:
            return 0.0
        (x0, x1), _ = self.vb.viewRange()  # the range shown (viewPixelSize can be stale)
        return self.current.col_spacing * self.vb.width() / (x1 - x0) if x1 > x0 else 0.0

    def _refresh_corners(self) -> None:
        L = self._labels
        v = self.volume
        if v is None or self.current is None:
            for key in ("info_tl", "info_tr", "info_br"):
                L[key].setText("")
            self.ruler.hide()
            return
        fields = self.overlay_fields
        L["info_tl"].setText(corner_text.top_left(v, fields, self.hide_patient))
        window = None if v.is_rgb else self.session.window
        L["info_tr"].setText(corner_text.top_right(fields, window, self.zoom()))
        if self._oriented:
            fixed = self.reslicer.fixed_axis(self.plane)
            mpr = self.mpr
            slab = f"{SLAB_NAMES[mpr.slab_mode]} {mpr.slab_mm:g} mm" if mpr.slab_mm > 0 and not v.is_rgb else ""
            L["info_br"].setText(corner_text.bottom_right(
                v, fields, self.plane, self.session.cursor_lps, fixed == 0,
                float(v.geometry.spacing[2 - fixed]), slab, self.oblique_frame() is not None))
        else:  # a projection image: no patient position to give
            L["info_br"].setText("")
        calibrated = "ruler" in fields and not v.meta.get("spacing_unknown")
        zoom = self.zoom()
        if calibrated and zoom > 0:  # about a fifth of the view's width
            self.ruler.set_scale(self.current.col_spacing / zoom, max(self.width() // 5, 20))
        self.ruler.setVisible(calibrated and zoom > 0 and self.ruler.pixels > 0)
        self._place_labels()

    # ------------------------------------------------------------------ layout of overlays
    def label(self, key: str) -> QLabel:
        return self._labels[key]

    def _place_labels(self) -> None:
        w, h, m = self.width(), self.height(), 4
        for lab in self._labels.values():
            lab.adjustSize()
        L = self._labels
        L["top"].move((w - L["top"].width()) // 2, m)
        L["bottom"].move((w - L["bottom"].width()) // 2, h - L["bottom"].height() - m - 16)
        L["left"].move(m, (h - L["left"].height()) // 2)
        L["right"].move(w - L["right"].width() - m, (h - L["right"].height()) // 2)
        L["title"].move(m, m)
        L["readout"].move(m, h - L["readout"].height() - m)
        L["info_tl"].move(m, m + L["title"].height() + 2)
        L["info_tr"].move(w - L["info_tr"].width() - m, m)
        # above the readout's line: a long readout never hides it
        L["info_br"].move(w - L["info_br"].width() - m,
                          h - L["info_br"].height() - L["readout"].height() - m - 2)
        for key in ("info_tl", "info_tr", "info_br"):
            L[key].setVisible(bool(L[key].text()))
        ruler_h = self.ruler.height() if self.ruler.isVisible() else 0
        L["info_br"].move(L["info_br"].x(), L["info_br"].y() - ruler_h)
        self.ruler.move(w - self.ruler.width() - m, h - L["readout"].height() - m - 2 - ruler_h)

    def leaveEvent(self, ev):
        if self.paint is not None:
            self.paint.hover(self.tool, None)
        self._mouse_scene = None  # the readout describes what is under the mouse, or nothing
        self._refresh_readout()
        super().leaveEvent(ev)

    def resizeEvent(self, ev):
        super().resizeEvent(ev)
        if hasattr(self, "_labels"):  # pyqtgraph resizes during its own __init__
            self._place_labels()
