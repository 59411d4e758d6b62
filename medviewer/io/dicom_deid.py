"""De-identifying DICOM headers that an export copies from its sources, and reading a
source file's identity (for export sidecars and case-label exports).

``scrub_dataset`` works on a dataset in place, at every sequence depth: the patient's name
and ID become the pseudonym, type-2 attributes (birth date, sex, study date and time,
accession number, study ID, referring physician) are emptied, the other identifying
attributes (:data:`medviewer.core.deid.IDENTITY_KEYWORDS`) and every private attribute are
removed. UIDs are kept: a derived object (a SEG) must still name the study, series, frame of
reference and images it belongs to, or nothing can attach it to its source (DICOM PS3.15's
"Retain UIDs" option).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from medviewer.core.deid import BLANK_KEYWORDS, IDENTITY_KEYWORDS, REPLACE_KEYWORDS

__all__ = ["scrub_dataset", "mark_deidentified", "find_leaks", "read_identity",
           "DEID_METHOD"]

DEID_METHOD = "MedViewer: pseudonym for name/ID; identity removed; UIDs kept"  # LO: <= 64
IDENTITY_TAGS = ("PatientName", "PatientID", "StudyInstanceUID", "SeriesInstanceUID")


def scrub_dataset(ds, pseudonym: str) -> None:
    """De-identify ``ds`` in place (see the module's docstring)."""
    for elem in list(ds):
        if elem.tag.is_private:
            del ds[elem.tag]
            continue
        kw = elem.keyword
        if kw in REPLACE_KEYWORDS:
            elem.value = pseudonym
        elif kw in BLANK_KEYWORDS:
            elem.value = ""
        elif kw in IDENTITY_KEYWORDS:
            del ds[elem.tag]
        elif elem.VR == "SQ":
            for item in elem.value:
                scrub_dataset(item, pseudonym)


def mark_deidentified(ds) -> None:
    """Say in the object that the patient's identity was removed (Patient module)."""
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = DEID_METHOD


def _strings(ds) -> Iterable[str]:
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                yield from _strings(item)
        elif elem.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN"):
            continue
        else:
            value = elem.value
            for v in (value if isinstance(value, (list, tuple)) or
                      type(value).__name__ == "MultiValue" else [value]):
                yield str(v)


def find_leaks(ds, values: Iterable[str]) -> list:
    """Which of ``values`` (identifying strings of the source) still appear in any text value
    of ``ds`` (case-insensitive); [] when none does."""
    texts = [t.lower() for t in _strings(ds)]
    return [v for v in values if v and any(v.lower() in t for t in texts)]


def read_identity(path) -> dict:
    """PatientName, PatientID, StudyInstanceUID and SeriesInstanceUID of a DICOM file (those
    present, as text); {} when the file is missing or not DICOM."""
    import pydicom

    p = Path(path)
    if not p.is_file():
        return {}
    try:
        ds = pydicom.dcmread(str(p), stop_before_pixels=True, specific_tags=list(IDENTITY_TAGS))
    except Exception:  # not DICOM, unreadable: no identity to report
        return {}
    out = {}
    for kw in IDENTITY_TAGS:
        value = ds.get(kw)
        if value is not None and str(value).strip():
            out[kw] = str(value).strip()
    return out
