"""StatusReadout: the cursor readout in the status bar, at most a share of the bar's width
(elided, the full text in its tooltip), so the messages shown left of it stay readable."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSizePolicy

SHARE = 0.5  # the most of the status bar's width the readout takes


class StatusReadout(QLabel):
    def __init__(self, parent=None):
        super().__init__("", parent)
        self.setObjectName("statusReadout")
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Preferred)
        self.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def full_text(self) -> str:
        return self._full

    def setText(self, text: str) -> None:  # noqa: N802 (Qt name)
        self._full = text or ""
        self.setToolTip(self._full)
        self._fit()

    def _fit(self) -> None:
        bar = self.parentWidget()
        room = int((bar.width() if bar is not None else 800) * SHARE)
        fm = self.fontMetrics()
        shown = fm.elidedText(self._full, Qt.TextElideMode.ElideRight, room)
        super().setText(shown)
        self.setFixedWidth(min(room, fm.horizontalAdvance(shown) + 8) if shown else 0)

    def refit(self) -> None:
        """Call when the status bar's width changed."""
        self._fit()
