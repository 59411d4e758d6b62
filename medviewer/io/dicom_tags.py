"""Tag browser rows: every header element of a DICOM file (sequences nested), pixels unread."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from .dicom_index import DICOM_SUFFIXES

MAX_VALUE_CHARS = 200


@dataclass(frozen=True)
class TagRow:
    tag: str  # "(0010,0010)"
    keyword: str
    vr: str
    value: str  # truncated to ~200 characters
    depth: int  # sequence nesting (0 = top level)


def _value_text(elem) -> str:
    if elem.VR == "SQ":
        return f"<sequence of {len(elem.value)} item(s)>"
    if elem.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN") and isinstance(elem.value, bytes):
        return f"<{len(elem.value)} bytes>"
    try:
        text = str(elem.value)
    except Exception as exc:  # malformed values should not break the browser
        text = f"<unreadable: {type(exc).__name__}>"
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 3] + "..."


def _rows(ds, depth: int, out: list) -> None:
    for elem in ds:
        tag = f"({elem.tag.group:04X},{elem.tag.element:04X})"
        out.append(TagRow(tag, elem.keyword or ("Private tag" if elem.tag.is_private else ""),
                          str(elem.VR), _value_text(elem), depth))
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value):
                out.append(TagRow("(FFFE,E000)", f"Item {i + 1}", "", "", depth + 1))
                _rows(item, depth + 2, out)


class NotDicomFile(ValueError):
    """The file behind an image is not DICOM (e.g. NIfTI, NRRD): it has no tags to show."""


def read_tags(path: str | Path) -> list:
    """All header elements (file meta first) as TagRows; the pixel data is not read.

    Raises NotDicomFile for files that are neither DICOM with the "DICM" preamble nor a
    preamble-less DICOM with a DICOM-like name (.dcm or no suffix) that pydicom can parse."""
    p = Path(path)
    with open(p, "rb") as fh:
        head = fh.read(132)
    magic = len(head) == 132 and head[128:132] == b"DICM"
    if not magic and p.suffix.lower() not in DICOM_SUFFIXES:
        raise NotDicomFile("not a DICOM file")
    try:
        ds = pydicom.dcmread(p, stop_before_pixels=True, force=not magic)
    except InvalidDicomError as exc:
        raise NotDicomFile("not a DICOM file") from exc
    if not magic and not any(k in ds for k in ("SOPClassUID", "Modality", "StudyInstanceUID")):
        raise NotDicomFile("not a DICOM file")
    out: list = []
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        _rows(meta, 0, out)
    _rows(ds, 0, out)
    return out
