"""TriPlanarView: axial, coronal and sagittal SliceViews plus an info cell; or one plane alone."""
from __future__ import annotations

import html
from typing import Dict, Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QApplication, QGridLayout, QLabel, QSizePolicy, QStackedWidget,
                               QWidget)

from medviewer.core.deid import identity_values, redact
from medviewer.core.reformat import MprSettings, ObliqueFrame
from medviewer.core.reslice import PLANES
from medviewer.core.session import Session
from medviewer.core.volume import Volume

from .qt_jobs import QtJobBridge
from .slice_view import SliceView

LAYOUTS = ("tri",) + PLANES  # "tri" or a single plane


def shown_description(volume: Volume, hide_patient: bool) -> str:
    """A volume's description as the viewer shows it: with patient details hidden, a name or
    ID that it repeats (free text sometimes does) reads "(hidden)"."""
    text = volume.description or ""
    return redact(text, identity_values(volume.meta or {})) if hide_patient else text


class InfoPanel(QLabel):
    """The fourth cell: what the active volume is and where the cursor is (never who the
    patient is)."""

    def __init__(self, session: Session, parent=None):
        super().__init__(parent)
        self.setObjectName("infoPanel")
        self.session = session
        self.hide_patient = False
        self.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setStyleSheet("background: #111; color: #ddd; padding: 8px;")
        session.active_changed.connect(lambda v: self.refresh())
        session.cursor_changed.connect(lambda i: self.refresh())
        session.window_changed.connect(lambda c, w: self.refresh())
        self.refresh()

    def show_patient_details(self, show: bool) -> None:
        self.hide_patient = not show
        self.refresh()

    def refresh(self) -> None:
        v: Optional[Volume] = self.session.active
        if v is None:
            self.setText("No image open.\n\nFile > Open, or drop files or folders here.")
            return
        g = v.geometry
        nz, ny, nx = v.shape
        sx, sy, sz = g.spacing
        z, y, x = self.session.cursor_zyx
        lps = self.session.cursor_lps
        value = self.session.cursor_value()
        vtxt = value if v.is_rgb else f"{value:.6g} {v.units}".strip()
        c, w = self.session.window
        desc = html.escape(shown_description(v, self.hide_patient))
        lines = [f"<b>{desc or '(no description)'}</b>", f"Modality: {v.modality or '?'}",
                 f"Size: {nx} × {ny} × {nz}", f"Spacing: {sx:.3g} × {sy:.3g} × {sz:.3g} mm"
                 + (" (uneven)" if g.is_uneven else ""),
                 f"Orientation: {g.orientation_code()}",
                 f"Window: C {c:.0f} / W {w:.0f} ({self.session.window_name})",
                 f"Cursor: (x {x}, y {y}, z {z})",
                 f"LPS: ({lps[0]:.1f}, {lps[1]:.1f}, {lps[2]:.1f}) mm", f"Value: {vtxt}"]
        if v.invert:
            lines.append("MONOCHROME1: shown inverted")
        for warn in v.warnings:
            lines.append(f"<span style='color:#fc6'>⚠ {warn}</span>")
        self.setText("<br>".join(lines))


class TriPlanarView(QWidget):
    """Three linked SliceViews (they all follow ``session.cursor``) and a fourth cell: the
    info panel, or a pane a feature added (:meth:`add_fourth`, e.g. the 3D view). The views
    share one MprSettings: thin or slab, orthogonal or oblique planes."""

    sig_layout_changed = Signal(str)
    sig_fourth_changed = Signal(str)  # the name of the pane now in the fourth cell
    sig_reformat_changed = Signal(str)  # MprSettings.describe()

    def __init__(self, session: Session, parent=None):
        super().__init__(parent)
        self.setObjectName("triPlanarView")
        self.session = session
        self.views: Dict[str, SliceView] = {p: SliceView(session, p, self) for p in PLANES}
        self.mpr = MprSettings()
        # oblique slabs that need many new planes: one worker, the newest request wins
        self.slab_bridge = QtJobBridge(1, self, "medviewer-slab")
        for view in self.views.values():
            view.mpr = self.mpr
            view.slab_bridge = self.slab_bridge
            view.sig_rotate.connect(self._on_rotate)
        self.info = InfoPanel(session, self)
        self.fourth = QStackedWidget(self)
        self.fourth.setObjectName("fourthPane")
        self.fourth.addWidget(self.info)
        self.fourth_panes: Dict[str, QWidget] = {"info": self.info}
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(2)
        grid.addWidget(self.views["axial"], 0, 0)
        grid.addWidget(self.views["sagittal"], 0, 1)
        grid.addWidget(self.views["coronal"], 1, 0)
        grid.addWidget(self.fourth, 1, 1)
        for i in (0, 1):  # four equal cells, whatever the info text or the views' contents
            grid.setColumnStretch(i, 1)
            grid.setRowStretch(i, 1)
        for w in (self.info, self.fourth):
            w.setMinimumSize(1, 1)
            w.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.layout_name = "tri"

    # ------------------------------------------------------------------ the fourth cell
    def add_fourth(self, name: str, widget: QWidget) -> None:
        """Offer ``widget`` for the fourth cell under ``name`` (shown by :meth:`show_fourth`)."""
        if name in self.fourth_panes:
            raise ValueError(f"a fourth pane called {name!r} exists already")
        widget.setMinimumSize(1, 1)
        widget.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.fourth_panes[name] = widget
        self.fourth.addWidget(widget)

    def show_fourth(self, name: str) -> None:
        """Put pane ``name`` ("info" or one added with :meth:`add_fourth`) in the fourth cell."""
        if name not in self.fourth_panes:
            raise ValueError(f"unknown fourth pane {name!r}; choose from {sorted(self.fourth_panes)}")
        if self.fourth.currentWidget() is not self.fourth_panes[name]:
            self.fourth.setCurrentWidget(self.fourth_panes[name])
            self.sig_fourth_changed.emit(name)

    @property
    def fourth_name(self) -> str:
        current = self.fourth.currentWidget()
        return next(k for k, w in self.fourth_panes.items() if w is current)

    def set_layout(self, name: str) -> None:
        if name not in LAYOUTS:
            raise ValueError(f"unknown layout {name!r}; choose from {LAYOUTS}")
        self.layout_name = name
        for plane, view in self.views.items():
            view.setVisible(name == "tri" or name == plane)
        self.fourth.setVisible(name == "tri")
        grid = self.layout()
        cell = {"axial": (0, 0), "sagittal": (0, 1), "coronal": (1, 0)}.get(name)
        for i in (0, 1):  # equal cells in tri-planar; the single view takes the whole area
            grid.setRowStretch(i, 1 if cell is None or cell[0] == i else 0)
            grid.setColumnStretch(i, 1 if cell is None or cell[1] == i else 0)
        focus_was_here = self.isAncestorOf(QApplication.focusWidget())
        for view in self.views.values():
            if view.isVisible():
                view.reset_view()
        if focus_was_here or name != "tri":  # keep slice keys working: focus a visible view
            (self.views[name] if name != "tri" else self.views["axial"]).setFocus()
        self.sig_layout_changed.emit(name)

    def set_tool(self, tool: str) -> None:
        for view in self.views.values():
            view.tool = tool
            view.setCursor(Qt.CursorShape.ArrowCursor if tool == "navigate" else Qt.CursorShape.CrossCursor)

    def reset_views(self) -> None:
        for view in self.views.values():
            view.reset_view()

    def clear_measurements(self) -> None:
        for view in self.views.values():
            view.overlay.clear()

    # ------------------------------------------------------------------ slab / oblique
    def set_slab(self, mode: str, thickness_mm: float) -> None:
        """Thick slab (``mode`` 'mip', 'minip' or 'average') of ``thickness_mm`` in every
        plane; 0 mm = thin slices."""
        self.mpr.set_slab(mode, thickness_mm)
        self._refresh_reformat()

    def rotate(self, plane: str, angle: float) -> None:
        """Turn the three planes together by ``angle`` radians about ``plane``'s normal through
        the cursor (right hand); ``plane``'s picture keeps still, its crosshair lines turn."""
        frame = self._frame_at_cursor()
        if frame is not None:
            frame.rotate(plane, angle)
            self._refresh_reformat()

    def reset_obliques(self) -> None:
        """Back to the orthogonal axial / coronal / sagittal planes."""
        if self.mpr.frame is not None:
            self.mpr.frame = None
            self._refresh_reformat()

    def _frame_at_cursor(self) -> Optional[ObliqueFrame]:
        view = self.views["axial"]
        if view.reslicer is None or view.volume.is_rgb or not view._oriented:
            return None
        if self.mpr.frame is None:
            self.mpr.frame = ObliqueFrame.identity(view.reslicer, self.session.cursor_zyx)
        else:
            self.mpr.frame.recentre(self.session.cursor_lps)
        return self.mpr.frame

    def _on_rotate(self, plane: str, phase: str, angle: float) -> None:
        if phase == "press":
            self._frame_at_cursor()
            self.mpr.turning = plane
        elif phase == "release":
            self.mpr.turning = None
            self._refresh_reformat()  # the slab again, if there is one
        elif self.mpr.frame is not None:
            self.mpr.frame.rotate(plane, angle)
            self._refresh_reformat()

    def _refresh_reformat(self) -> None:
        for view in self.views.values():
            view.refresh_reformat()
        self.sig_reformat_changed.emit(self.mpr.describe())
