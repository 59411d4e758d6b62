"""The corner overlays of a slice view, as reading tools show them (Qt-free text building).

Top left (under the plane and slice number): patient name and ID, study date, series
description. Top right: window centre/width and zoom. Bottom right: slice position (mm)
and thickness, above a ruler when the pixel spacing is known. Which of them show is the user's list (``FIELDS`` keys, setting
``view/overlay_fields``); the patient name, ID and study date never show while patient
details are hidden, and a name repeated in the series description reads "(hidden)".
"""
from __future__ import annotations

from typing import Iterable, Optional

from medviewer.core.deid import identity_values, redact
from medviewer.core.volume import Volume

FIELDS = {  # key -> menu text, in display order
    "patient": "Patient name and ID",
    "study_date": "Study date",
    "series": "Series description",
    "position": "Slice position (mm)",
    "thickness": "Slice thickness",
    "window": "Window centre / width",
    "zoom": "Zoom",
    "ruler": "Scale ruler (calibrated images)",
}
PATIENT_FIELDS = ("patient", "study_date")  # hidden with "hide patient details"
_LPS_AXIS = {"axial": (2, "z"), "coronal": (1, "y"), "sagittal": (0, "x")}


def _date(text: str) -> str:
    t = (text or "").strip()
    return f"{t[:4]}-{t[4:6]}-{t[6:8]}" if len(t) == 8 and t.isdigit() else t


def _thickness(volume: Volume, native: bool, spacing_mm: float) -> str:
    if native:
        try:
            thk = float(str(volume.meta.get("SliceThickness", "")).split("\\")[0])
        except ValueError:
            thk = None
        if thk is not None and thk > 0:
            return f"Thk {thk:g} mm"
    return f"Thk {spacing_mm:.3g} mm (voxel)"


def top_left(volume: Volume, fields: Iterable[str], hide_patient: bool) -> str:
    fields = set(fields)
    meta = volume.meta or {}
    lines = []
    if "patient" in fields and not hide_patient:
        name = str(meta.get("PatientName", "")).replace("^", " ").strip()
        pid = str(meta.get("PatientID", "")).strip()
        who = "  ".join(s for s in (name, pid if pid != name else "") if s)
        if who:
            lines.append(who)
    if "study_date" in fields and not hide_patient:
        date = _date(str(meta.get("StudyDate", "") or meta.get("SeriesDate", "")))
        if date:
            lines.append(f"Study {date}")
    if "series" in fields:
        desc = volume.description or ""
        if hide_patient:
            desc = redact(desc, identity_values(meta))
        number = str(meta.get("SeriesNumber", "") or "").strip()
        text = " ".join(s for s in ((f"Se {number}" if number else ""), desc) if s)
        if text:
            lines.append(text)
    return "\n".join(lines)


def top_right(fields: Iterable[str], window: Optional[tuple], zoom: Optional[float]) -> str:
    fields = set(fields)
    lines = []
    if "window" in fields and window is not None:
        lines.append(f"C {window[0]:.0f} / W {window[1]:.0f}")
    if "zoom" in fields and zoom is not None and zoom > 0:
        lines.append(f"Zoom {zoom:.2f}×")
    return "\n".join(lines)


def bottom_right(volume: Volume, fields: Iterable[str], plane: str, lps, native: bool,
                 spacing_mm: float, slab: str = "", oblique: bool = False) -> str:
    """Slice position along the plane's patient axis (LPS mm) and its thickness; on an
    oblique plane "Oblique" instead of the position, for a slab its mode and thickness
    (``slab``, e.g. "MIP 10 mm") instead of the slice thickness."""
    fields = set(fields)
    lines = []
    if "position" in fields and oblique:
        lines.append("Oblique")
    elif "position" in fields and lps is not None:
        axis, name = _LPS_AXIS[plane]
        lines.append(f"Pos {name} {float(lps[axis]):.1f} mm")
    if "thickness" in fields:
        lines.append(f"Slab {slab}" if slab else _thickness(volume, native, spacing_mm))
    return "\n".join(lines)
