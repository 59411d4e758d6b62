"""PatientPrivacy: whether the viewer shows patient details (View > Hide patient details,
persisted), and the moment a screenshot is taken with them hidden (anonymised screenshots).

Widgets that show patient details (series browser, tag browser, info panel, the slice
views' corner overlays, window title)
follow ``sig_changed(hidden)``; the shown state is the user's toggle, or hidden while
:meth:`capture` holds it for a screenshot."""
from __future__ import annotations

import contextlib
from typing import Iterator

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication

from . import settings as st


class PatientPrivacy(QObject):
    sig_changed = Signal(bool)  # True: patient details are hidden now

    def __init__(self, settings, parent=None):
        super().__init__(parent)
        self.settings = settings
        self._toggle = st.hide_patient_details(settings)
        self._captures = 0

    @property
    def hidden(self) -> bool:
        """Whether patient details are hidden on screen right now."""
        return self._toggle or self._captures > 0

    @property
    def toggled(self) -> bool:
        """The user's "hide patient details" choice (persisted)."""
        return self._toggle

    def set_hidden(self, hidden: bool) -> None:
        was = self.hidden
        self._toggle = bool(hidden)
        self.settings.setValue(st.HIDE_PATIENT, self._toggle)
        if self.hidden != was:
            self.sig_changed.emit(self.hidden)

    @contextlib.contextmanager
    def capture(self, anonymise: bool = True) -> Iterator[None]:
        """Patient details hidden (when ``anonymise``) and repainted while the block runs;
        shown as before afterwards. The user's toggle is not changed."""
        if not anonymise:
            yield
            return
        was = self.hidden
        self._captures += 1
        try:
            if not was:
                self.sig_changed.emit(True)
                QApplication.processEvents()  # repaint before the grab
            yield
        finally:
            self._captures -= 1
            if not was:
                self.sig_changed.emit(self.hidden)
