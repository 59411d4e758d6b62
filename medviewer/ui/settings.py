"""Persistent user settings (QSettings, INI format): layout, last folder, recent files, geometry,
privacy (anonymised exports and screenshots, hidden patient details)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import List

from PySide6.QtCore import QSettings

ORG = APP = "MedViewer"
MAX_RECENT = 10


def app_settings() -> QSettings:
    """The app's QSettings; ``MEDVIEWER_SETTINGS_DIR`` redirects them (tests use a tmp dir)."""
    folder = os.environ.get("MEDVIEWER_SETTINGS_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        return QSettings(str(Path(folder) / "medviewer.ini"), QSettings.Format.IniFormat)
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORG, APP)


def _as_list(value) -> List[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value]


def recent_paths(settings: QSettings) -> List[str]:
    return _as_list(settings.value("recent/paths"))


def add_recent(settings: QSettings, paths) -> List[str]:
    """Put ``paths`` first in the recent list (most recent first, no duplicates)."""
    recent = recent_paths(settings)
    for p in reversed([str(Path(p)) for p in paths]):
        if p in recent:
            recent.remove(p)
        recent.insert(0, p)
    recent = recent[:MAX_RECENT]
    settings.setValue("recent/paths", recent)
    return recent


def last_folder(settings: QSettings) -> str:
    return str(settings.value("paths/last_folder", "") or "")


def set_last_folder(settings: QSettings, path) -> None:
    p = Path(path)
    settings.setValue("paths/last_folder", str(p if p.is_dir() else p.parent))


def _flag(settings: QSettings, key: str, default: bool) -> bool:
    value = settings.value(key, default)
    if isinstance(value, str):  # INI files give strings back
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


# Privacy: exports and screenshots are anonymised unless the user turns it off; the viewer
# shows patient details unless "hide patient details" is on.
ANONYMISE_EXPORTS = "privacy/anonymise_exports"
ANONYMISE_SCREENSHOTS = "privacy/anonymise_screenshots"
HIDE_PATIENT = "privacy/hide_patient_details"


def anonymise_exports(settings: QSettings) -> bool:
    return _flag(settings, ANONYMISE_EXPORTS, True)


def anonymise_screenshots(settings: QSettings) -> bool:
    return _flag(settings, ANONYMISE_SCREENSHOTS, True)


def hide_patient_details(settings: QSettings) -> bool:
    return _flag(settings, HIDE_PATIENT, False)


# Slice views: the mouse wheel steps to the next image when turned towards the user (as PACS
# viewers do); "reverse" swaps that.
REVERSE_WHEEL = "view/reverse_wheel"


def reverse_wheel(settings: QSettings) -> bool:
    return _flag(settings, REVERSE_WHEEL, False)


# Corner overlays of the slice views: the keys of ui/corner_text.FIELDS that show.
OVERLAY_FIELDS = "view/overlay_fields"


def overlay_fields(settings: QSettings, known) -> List[str]:
    """The corner texts to show (all of ``known`` until the user chose)."""
    value = settings.value(OVERLAY_FIELDS)
    if value is None:
        return list(known)
    return [k for k in _as_list(value) if k in known]


def set_overlay_fields(settings: QSettings, fields) -> None:
    settings.setValue(OVERLAY_FIELDS, list(fields) or "")
