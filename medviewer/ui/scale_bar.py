"""ScaleBar: a calibrated ruler drawn over a slice view (a round length in mm), shown only
when the pixel spacing is known."""
from __future__ import annotations

import math

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QWidget

_NICE = (1, 2, 5)


def nice_length(mm: float) -> float:
    """The largest 1, 2 or 5 × 10^k mm not above ``mm`` (``mm`` > 0)."""
    k = math.floor(math.log10(mm))
    best = 10.0 ** k
    for f in _NICE:
        if f * 10.0 ** k <= mm:
            best = f * 10.0 ** k
    return best


class ScaleBar(QWidget):
    HEIGHT = 22

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.mm = 0.0
        self.pixels = 0  # the bar's length on screen

    def set_scale(self, mm_per_pixel: float, room: int) -> None:
        """Fit a round length into about ``room`` screen pixels (hidden when it cannot)."""
        if mm_per_pixel <= 0 or not math.isfinite(mm_per_pixel) or room < 20:
            self.mm, self.pixels = 0.0, 0
            self.hide()
            return
        self.mm = nice_length(room * mm_per_pixel)
        self.pixels = int(round(self.mm / mm_per_pixel))
        self.resize(max(self.pixels + 2, 60), self.HEIGHT)
        self.update()

    def text(self) -> str:
        return f"{self.mm:g} mm" if self.mm else ""

    def paintEvent(self, ev):  # noqa: N802 (Qt name)
        if not self.pixels:
            return
        p = QPainter(self)
        p.setPen(QPen(QColor("#f0f0f0"), 1))
        x0, x1, y = self.width() - self.pixels - 1, self.width() - 1, self.HEIGHT - 3
        p.drawLine(QPoint(x0, y), QPoint(x1, y))
        for x in (x0, x1):
            p.drawLine(QPoint(x, y - 5), QPoint(x, y))
        p.drawText(self.rect().adjusted(0, 0, -2, -6), Qt.AlignmentFlag.AlignRight |
                   Qt.AlignmentFlag.AlignBottom, self.text())
        p.end()
