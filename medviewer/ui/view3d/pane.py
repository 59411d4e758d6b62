"""View3DPane: the 3D view in the tri-planar layout's fourth cell.

The label surfaces (per-label colours), the volume by direct volume rendering (a CT preset)
and the crosshair planes, rendered by :class:`~.scene.Scene3D` offscreen and shown as an
image: the same picture under X11, Wayland or Qt's offscreen platform, and no native OpenGL
window to share with Qt. Left drag rotates, right drag or the wheel zooms, middle drag pans;
a left click on a surface (or the rendered volume) moves the crosshair there. VTK is imported
the first time the pane is shown, after a child process checked that OpenGL works here; when
it does not, the pane says why in one sentence and the rest of the app works as before."""
from __future__ import annotations

from typing import Optional

import numpy as np
from PySide6.QtCore import QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import (QCheckBox, QComboBox, QHBoxLayout, QLabel, QStackedLayout,
                               QToolButton, QVBoxLayout, QWidget)

from medviewer.core.session import Session

from . import probe
from .presets import PRESETS

DEG_PER_PX = 0.5  # rotation per dragged pixel
CLICK_PX = 4  # a press and release closer than this is a click (pick), not a drag
SETTLE_MS = 400  # with volume rendering: previews while things change, the full picture after


class _Canvas(QWidget):
    """Shows the last rendered picture and hands mouse gestures to the pane."""

    def __init__(self, pane: "View3DPane"):
        super().__init__(pane)
        self.setObjectName("view3dCanvas")
        self.pane = pane
        self.image: Optional[QImage] = None
        self.setMinimumSize(1, 1)
        self.setMouseTracking(False)
        self._press: Optional[QPoint] = None
        self._last: Optional[QPoint] = None
        self._button = Qt.MouseButton.NoButton
        self._dragged = False

    def paintEvent(self, ev):
        p = QPainter(self)
        p.fillRect(self.rect(), Qt.GlobalColor.black)
        if self.image is not None:
            p.drawImage(self.rect(), self.image)
        p.end()

    def resizeEvent(self, ev):
        super().resizeEvent(ev)
        self.pane.request_render()

    def mousePressEvent(self, ev):
        self._press = self._last = ev.position().toPoint()
        self._button = ev.button()
        self._dragged = False
        self.pane.set_interactive(True)

    def mouseMoveEvent(self, ev):
        if self._last is None:
            return
        pos = ev.position().toPoint()
        d = pos - self._last
        if (pos - self._press).manhattanLength() >= CLICK_PX:
            self._dragged = True
        if not self._dragged:
            return
        self._last = pos
        scene = self.pane.scene
        if scene is None:
            return
        if self._button == Qt.MouseButton.LeftButton:
            scene.rotate(d.x() * DEG_PER_PX, d.y() * DEG_PER_PX)
        elif self._button == Qt.MouseButton.RightButton:
            scene.zoom(1.01 ** (-d.y()))
        elif self._button == Qt.MouseButton.MiddleButton:
            x0, y0 = self.pane.to_scene(0, 0)
            x1, y1 = self.pane.to_scene(d.x(), d.y())
            scene.pan(x1 - x0, y1 - y0)
        self.pane.request_render()

    def mouseReleaseEvent(self, ev):
        if self._press is not None and not self._dragged \
                and self._button == Qt.MouseButton.LeftButton:
            self.pane.pick_at(ev.position().x(), ev.position().y())
        self._press = self._last = None
        self.pane.set_interactive(False)

    def wheelEvent(self, ev):
        if self.pane.scene is not None:
            self.pane.scene.zoom(1.1 ** (ev.angleDelta().y() / 120.0))
            self.pane.request_render()


class View3DPane(QWidget):
    """The 3D pane. ``mesher`` (a SurfaceMesher) keeps the surfaces; the scene starts the
    first time the pane is shown."""

    sig_rendered = Signal()  # a new picture is on the canvas
    sig_ready = Signal(str)  # "" when the scene started, else why it cannot

    def __init__(self, session: Session, bridge, mesher, parent=None):
        super().__init__(parent)
        self.setObjectName("view3dPane")
        self.session, self.bridge, self.mesher = session, bridge, mesher
        self.scene = None
        self.problem: Optional[str] = None
        self._asking = False
        self._render_queued = False
        self.interactive = False  # a drag is going on
        self._final = False  # the next picture is the settled one (volume rendering)
        self._settle = QTimer(self)  # volume rendering: the full picture once things are still
        self._settle.setSingleShot(True)
        self._settle.setInterval(SETTLE_MS)
        self._settle.timeout.connect(lambda: self.request_render(final=True))
        self.renders = 0
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setStyleSheet("QWidget#view3dPane { background: #111; } QCheckBox { color: #ddd; }")

        bar = QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 2)
        self.surfaces_box = QCheckBox("Surfaces", self)
        self.surfaces_box.setObjectName("view3dSurfaces")
        self.surfaces_box.setChecked(True)
        self.planes_box = QCheckBox("Planes", self)
        self.planes_box.setObjectName("view3dPlanes")
        self.planes_box.setChecked(True)
        self.preset_box = QComboBox(self)
        self.preset_box.setObjectName("view3dPreset")
        self.preset_box.addItem("No volume", None)
        for key, preset in PRESETS.items():
            self.preset_box.addItem(preset.name, key)
        self.preset_box.setToolTip("Direct volume rendering of the image with a CT preset")
        self.reset_button = QToolButton(self)
        self.reset_button.setObjectName("view3dReset")
        self.reset_button.setText("Reset")
        self.reset_button.setToolTip("Reset the 3D camera: front view, the whole image")
        for w in (self.surfaces_box, self.planes_box, self.preset_box):
            bar.addWidget(w)
        bar.addStretch(1)
        bar.addWidget(self.reset_button)

        self.canvas = _Canvas(self)
        self.message = QLabel("The 3D view starts when it is shown.", self)
        self.message.setObjectName("view3dMessage")
        self.message.setWordWrap(True)
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setStyleSheet("color: #ddd; padding: 12px;")
        self.stack = QStackedLayout()
        self.stack.addWidget(self.message)
        self.stack.addWidget(self.canvas)
        self.status = QLabel("", self)
        self.status.setObjectName("view3dStatus")
        self.status.setStyleSheet("color: #aaa; padding: 1px 4px;")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addLayout(bar)
        lay.addLayout(self.stack, 1)
        lay.addWidget(self.status)
        self.setMinimumSize(1, 1)

        self.surfaces_box.toggled.connect(self._on_surfaces_toggled)
        self.planes_box.toggled.connect(self._on_planes_toggled)
        self.preset_box.currentIndexChanged.connect(lambda _i: self.set_preset(self.preset_box.currentData()))
        self.reset_button.clicked.connect(self.reset_camera)
        mesher.sig_surfaces.connect(self._on_surfaces)
        mesher.sig_colours.connect(self._on_colours)
        mesher.sig_status.connect(self.status.setText)
        session.active_changed.connect(self._on_active)
        session.cursor_changed.connect(self._on_cursor)

    # ------------------------------------------------------------------ start
    def showEvent(self, ev):
        super().showEvent(ev)
        self.start()

    def hideEvent(self, ev):
        super().hideEvent(ev)
        self.mesher.set_enabled(False)

    def start(self) -> None:
        """Check that OpenGL works (once per session, in a child process), then build the
        scene; the surfaces are meshed from then on while the pane is shown."""
        if self.scene is not None:
            self.mesher.set_enabled(True)
            self.request_render()
            return
        if self.problem is not None or self._asking:
            return
        known = probe.known_answer()
        if known is not None:
            self._started(known)
            return
        self._asking = True
        self.message.setText("Starting the 3D view…")
        self.bridge.submit(lambda reporter: probe.ask(), "probe-3d",
                           on_done=self._started,
                           on_error=lambda msg: self._started(f"The 3D view could not start ({msg})."))

    def _started(self, problem: str) -> None:
        self._asking = False
        if not problem:
            try:
                from .scene import Scene3D

                self.scene = Scene3D(*self._pixel_size())
                problem = self.scene.opengl_problem() or ""
            except Exception as exc:  # VTK present but unusable: say so, keep the app going
                problem = f"The 3D view could not start ({exc})."
            if problem:
                self.scene = None
        if problem:
            self.problem = problem
            self.message.setText(problem)
            self.stack.setCurrentWidget(self.message)
            for w in (self.surfaces_box, self.planes_box, self.preset_box, self.reset_button):
                w.setEnabled(False)
            self.sig_ready.emit(problem)
            return
        self.stack.setCurrentWidget(self.canvas)
        self.scene.set_planes_visible(self.planes_box.isChecked())
        self.scene.set_surfaces_visible(self.surfaces_box.isChecked())
        self._on_active(self.session.active)
        self.set_preset(self.preset_box.currentData())
        self.sig_ready.emit("")
        if self.isVisible():
            self.mesher.set_enabled(True)

    def _pixel_size(self):
        dpr = self.canvas.devicePixelRatioF()
        return max(int(self.canvas.width() * dpr), 16), max(int(self.canvas.height() * dpr), 16)

    # ------------------------------------------------------------------ what is shown
    def _on_active(self, volume) -> None:
        if self.scene is None:
            return
        self.scene.set_volume(volume)
        self.scene.set_geometry(None if volume is None else volume.geometry)
        if volume is not None:
            self.scene.set_cursor(self.session.cursor_zyx)
        self.request_render()

    def _on_cursor(self, index_zyx) -> None:
        if self.scene is not None:
            self.scene.set_cursor(index_zyx)
            self.request_render()

    def _on_surfaces(self, surfaces: dict, replace: bool) -> None:
        if self.scene is None:
            return
        if replace:
            self.scene.clear_surfaces()
        self.scene.set_surfaces(surfaces)
        self.request_render()

    def _on_colours(self, colours: dict) -> None:
        if self.scene is not None:
            self.scene.set_colours(colours)
            self.request_render()

    def _on_surfaces_toggled(self, on: bool) -> None:
        if self.scene is not None:
            self.scene.set_surfaces_visible(on)
            self.request_render()

    def _on_planes_toggled(self, on: bool) -> None:
        if self.scene is not None:
            self.scene.set_planes_visible(on)
            self.request_render()

    def set_preset(self, key: Optional[str]) -> None:
        """Direct volume rendering with CT preset ``key`` (see presets.PRESETS), or None."""
        i = self.preset_box.findData(key)
        if i >= 0 and i != self.preset_box.currentIndex():
            self.preset_box.setCurrentIndex(i)  # comes back here
            return
        if self.scene is not None:
            self.scene.set_preset(key)
            self.request_render()

    def reset_camera(self) -> None:
        if self.scene is not None:
            self.scene.reset_camera()
            self.request_render()

    # ------------------------------------------------------------------ rendering
    def set_interactive(self, on: bool) -> None:
        """While a drag turns, zooms or pans the view (and, with volume rendering, while the
        cursor or the surfaces keep changing) pictures are previews: half the resolution and
        fewer volume samples, so that software OpenGL keeps up; the full picture follows
        once things are still."""
        if on != self.interactive:
            self.interactive = on
            if not on:
                self.request_render(final=True)

    def request_render(self, final: bool = False) -> None:
        """Render once the events queued now are handled (many requests, one render)."""
        if final:
            self._final = True
        if self.scene is not None and not self._render_queued:
            self._render_queued = True
            QTimer.singleShot(0, self._render_now)

    def _render_now(self) -> None:
        self._render_queued = False
        if self.scene is None or not self.isVisible():
            return
        volume_shown = self.scene.preset is not None and self.scene.volume_actor is not None
        preview = volume_shown and (self.interactive or not self._final)
        self._final = False
        self.scene.set_interactive(preview)
        w, h = self._pixel_size()
        if preview:
            w, h = max(w // 2, 16), max(h // 2, 16)
        if (w, h) != self.scene.size:
            self.scene.resize(w, h)
        rgb = self.scene.render()
        img = QImage(rgb.data, rgb.shape[1], rgb.shape[0], 3 * rgb.shape[1],
                     QImage.Format.Format_RGB888).copy()
        self.canvas.image = img
        self.canvas.update()
        self.renders += 1
        if preview and not self.interactive:
            self._settle.start()  # (again): the full picture once nothing changed for a while
        self.sig_rendered.emit()

    def picture(self) -> Optional[np.ndarray]:
        """The last rendered picture as (h, w, 3) uint8, or None."""
        img = self.canvas.image
        if img is None:
            return None
        img = img.convertToFormat(QImage.Format.Format_RGB888)
        arr = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())
        return arr[:, :3 * img.width()].reshape(img.height(), img.width(), 3).copy()

    # ------------------------------------------------------------------ picking
    def to_scene(self, x: float, y: float):
        """Scene (picture) pixel of canvas position (x, y): the picture fills the canvas."""
        sw, sh = self.scene.size
        return x * sw / max(self.canvas.width(), 1), y * sh / max(self.canvas.height(), 1)

    def pick_at(self, x: float, y: float) -> Optional[np.ndarray]:
        """Move the crosshair to what is under canvas position (x, y) (widget pixels);
        returns the LPS point, or None when nothing is there."""
        if self.scene is None or self.session.active is None:
            return None
        lps = self.scene.pick(*self.to_scene(x, y))
        if lps is not None:
            self.session.set_cursor_lps(lps)
        return lps
