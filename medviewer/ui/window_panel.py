"""Window/level presets: a toolbar combo and a menu with shortcuts; the series' own window first."""
from __future__ import annotations

from typing import List, Optional

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QComboBox, QMenu, QWidget

from medviewer.core.session import Session
from medviewer.core.volume import Volume
from medviewer.core.windowing import CT_PRESETS, PERCENTILE_PRESETS, preset_window

SERIES_DEFAULT = "Series default"
# F1 is help; presets take F2..F11 in this order (names not offered for a modality are skipped)
_ALL = [SERIES_DEFAULT] + list(CT_PRESETS) + list(PERCENTILE_PRESETS)
PRESET_SHORTCUTS = {name: f"F{i + 2}" for i, name in enumerate(_ALL)}
CUSTOM = "Custom"


def presets_for(volume: Optional[Volume]) -> List[str]:
    if volume is None:
        return []
    if volume.is_rgb:
        return [SERIES_DEFAULT]
    ct = list(CT_PRESETS) if volume.modality.upper() == "CT" or volume.units == "HU" else []
    return [SERIES_DEFAULT] + ct + list(PERCENTILE_PRESETS)


class WindowPresets(QComboBox):
    """Combo of the presets valid for the active volume; follows and drives session.window."""

    def __init__(self, session: Session, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.setObjectName("windowPresetCombo")
        self.setToolTip("Window/level preset (F2 = series default). Right drag in a view to adjust")
        self.setMinimumContentsLength(16)
        self.session = session
        self.menu = QMenu("&Window", parent)
        self.menu.setObjectName("windowMenu")
        self._group = QActionGroup(self)
        self._updating = False
        self.currentTextChanged.connect(self._on_combo)
        session.active_changed.connect(self._on_active_changed)
        session.window_changed.connect(self._on_window_changed)

    def apply(self, name: str) -> None:
        """Set the session window to a preset by name."""
        v = self.session.active
        if v is None or v.is_rgb:
            return
        if name == SERIES_DEFAULT:
            hint = v.default_window()
            self.session.set_window(hint.center, hint.width, SERIES_DEFAULT)
        else:
            hint = preset_window(name, v.array)
            self.session.set_window(hint.center, hint.width, name)
        self._select(name)

    def _select(self, name: str) -> None:
        self._updating = True
        try:
            if self.findText(name) < 0:
                self.addItem(name)
            self.setCurrentText(name)
        finally:
            self._updating = False

    def _on_combo(self, name: str) -> None:
        if not self._updating and name and name != CUSTOM:
            self.apply(name)

    def _on_active_changed(self, volume: Optional[Volume]) -> None:
        names = presets_for(volume)
        self._updating = True
        try:
            self.clear()
            self.addItems(names)
        finally:
            self._updating = False
        self.menu.clear()
        for name in names:
            act = QAction(name, self.menu)
            act.setObjectName(f"preset_{name.replace(' ', '_')}")
            act.setShortcut(QKeySequence(PRESET_SHORTCUTS[name]))
            act.setToolTip(f"Window preset {name} ({PRESET_SHORTCUTS[name]})")
            act.triggered.connect(lambda checked=False, n=name: self.apply(n))
            self.menu.addAction(act)
        if volume is not None:
            self._select(SERIES_DEFAULT)

    def _on_window_changed(self, center: float, width: float) -> None:
        name = self.session.window_name or CUSTOM
        if name not in (self.currentText(),):
            self._select(name if self.findText(name) >= 0 or name == CUSTOM else CUSTOM)
