"""Projection images (radiographs): edge letters from DICOM PatientOrientation.

PatientOrientation (0020,0020) names the patient direction of the image rows (the way the
column index grows, towards the right edge) and of the columns (the way the row index grows,
towards the bottom edge) with the letters L/R, A/P, H/F, e.g. ``L\\F`` for a PA chest: the
right edge is the patient's left, the bottom edge the feet. The opposite edges get the
opposite letters. Radiographs have no ImageOrientationPatient: these letters are all a viewer
can say about their orientation.
"""
from __future__ import annotations

from typing import Optional

from .reslice import Edges

_OPPOSITE = {"L": "R", "R": "L", "A": "P", "P": "A", "H": "F", "F": "H"}


def _opposite(letters: str) -> str:
    return "".join(_OPPOSITE[c] for c in letters)


def projection_edges(value) -> Optional[Edges]:
    """Edges (top, bottom, left, right) of the stored image from a PatientOrientation value
    (``"L\\F"`` or a 2-item sequence); None when it is missing or not two sets of L/R/A/P/H/F
    letters."""
    if value is None:
        return None
    parts = value.split("\\") if isinstance(value, str) else [str(v) for v in value]
    parts = [p.strip().upper() for p in parts]
    if len(parts) != 2 or not all(p and set(p) <= set(_OPPOSITE) for p in parts):
        return None
    row_dir, col_dir = parts  # row_dir: towards the right edge; col_dir: towards the bottom
    return Edges(top=_opposite(col_dir), bottom=col_dir, left=_opposite(row_dir), right=row_dir)
