"""DiameterLines: a finding's long and short axis drawn over the view that shows the stored
slice plane (its slices are the array's z), visible while that view shows the slice they were
measured on (and not on an oblique plane)."""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QColor, QPen

LONG_COLOUR = "#ffd21f"
SHORT_COLOUR = "#3fd0ff"


def slice_plane_view(views: dict):
    """The view whose slices are the array's z (the axial view of an axial series)."""
    for view in views.values():
        r = getattr(view, "reslicer", None)
        if r is not None and r.fixed_axis(view.plane) == 0:
            return view
    return views.get("axial")


class DiameterLines:
    def __init__(self, views: dict, session):
        self.views = views
        self.session = session
        self.finding = None
        self.view = None
        self.items = []
        session.cursor_changed.connect(lambda *_: self.update())
        session.active_changed.connect(lambda *_: self.show(None))

    def _pen(self, colour: str) -> QPen:
        pen = QPen(QColor(colour))
        pen.setCosmetic(True)
        pen.setWidth(2)
        return pen

    def _clear(self) -> None:
        for view, item in self.items:
            view.vb.removeItem(item)
        self.items = []

    def show(self, finding) -> None:
        """Draw ``finding``'s diameters (None: remove them)."""
        self._clear()
        self.finding = finding
        self.view = slice_plane_view(self.views) if finding is not None else None
        if finding is None or self.view is None:
            return
        v = self.view
        for d, colour, name in ((finding.long_axis, LONG_COLOUR, "long"),
                                (finding.short_axis, SHORT_COLOUR, "short")):
            if d is None:
                continue
            pts = [v.display_to_view(*v.reslicer.to_display(v.plane, p)) if v.current is not None
                   else None for p in (d.a_zyx, d.b_zyx)]
            if pts[0] is None:
                continue
            item = pg.PlotCurveItem(x=[pts[0].x(), pts[1].x()], y=[pts[0].y(), pts[1].y()],
                                    pen=self._pen(colour))
            item.setObjectName(f"findingAxis_{name}")
            item.setZValue(25)
            v.vb.addItem(item, ignoreBounds=True)
            self.items.append((v, item))
        self.update()

    def update(self) -> None:
        visible = self.shown_on_slice()
        for _, item in self.items:
            item.setVisible(visible)

    def shown_on_slice(self) -> bool:
        v, f = self.view, self.finding
        if v is None or f is None or v.current is None:
            return False
        if v.oblique_frame() is not None:
            return False
        return v.slice_index == f.measure_slice

    def visible_lines(self) -> list:
        """[(name, ((x0, y0), (x1, y1)))] of the lines drawn and visible now (for tests)."""
        out = []
        for _, item in self.items:
            if item.isVisible():
                x, y = item.getData()
                out.append((item.objectName(), ((float(x[0]), float(y[0])),
                                                (float(x[1]), float(y[1])))))
        return out

