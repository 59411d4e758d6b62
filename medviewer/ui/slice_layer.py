"""SliceLayer: one extra ImageItem over a SliceView (a heat map, an AI proposal), placed on the
view's current slice with its pixel spacing and hidden while there is nothing to draw, or
while the view shows an oblique plane (layers hold data of the orthogonal slices)."""
from __future__ import annotations

from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF


class SliceLayer:
    """Subclasses decide what to draw in ``update()`` and call :meth:`_show` or :meth:`_hide`;
    ``_shown_key`` lets them skip redrawing the same slice."""

    def __init__(self, view, name: str, z_value: float):
        self.view = view
        self.item = pg.ImageItem(axisOrder="row-major")
        self.item.setObjectName(f"{name}_{view.plane}")
        self.item.setZValue(z_value)
        self.item.setVisible(False)
        view.vb.addItem(self.item, ignoreBounds=True)
        self._shown_key = None
        layers = getattr(view, "layers", None)
        if layers is not None:
            layers.append(self)  # the view re-runs update() when it turns oblique or back

    def shown_image(self) -> Optional[np.ndarray]:
        """The 2D image drawn in this view now (None when nothing is drawn)."""
        return self.item.image if self.item.isVisible() else None

    def _is_shown(self, key) -> bool:
        if self._oblique():
            return False
        return key == self._shown_key and self.item.isVisible()

    def _oblique(self) -> bool:
        frame = getattr(self.view, "oblique_frame", None)
        return frame is not None and frame() is not None

    def _show(self, img: np.ndarray, key, levels: tuple) -> None:
        """Draw ``img`` (rows, cols of the current slice) over the view's slice."""
        if self._oblique():
            self._hide()
            return
        cur = self.view.current
        self.item.setImage(img, autoLevels=False, levels=levels)
        cs, rs = cur.col_spacing, cur.row_spacing
        self.item.setRect(QRectF(-0.5 * cs, -0.5 * rs, img.shape[1] * cs, img.shape[0] * rs))
        self.item.setVisible(True)
        self._shown_key = key

    def _hide(self) -> None:
        self._shown_key = None
        if self.item.isVisible():
            self.item.setVisible(False)
