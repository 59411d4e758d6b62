"""Header values by keyword, read as text: from pydicom's raw elements or the fast parser's.

``dicom_index`` fills a FileHeader through these accessors whichever way the header was read,
so both ways give equal headers (tests/unit/io/test_dicom_fastscan.py checks it).
"""
from __future__ import annotations

import math
from typing import Optional

import pydicom

_INFO: dict = {}  # keyword -> (tag, dictionary VR)


def tag_info(kw: str) -> tuple:
    entry = _INFO.get(kw)
    if entry is None:
        from pydicom.datadict import dictionary_VR, tag_for_keyword

        tag = tag_for_keyword(kw)
        entry = _INFO[kw] = (tag, dictionary_VR(tag))
    return entry


def floats(value, n: int) -> Optional[tuple]:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n else None


_TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "SH", "TM", "UI", "ST", "LT"}


class Values:
    """Header values by keyword, as text (subclasses provide ``raw``, ``has``, ``person``,
    ``media_sop_class``, ``ts_name`` and ``spacing``)."""

    def raw(self, kw: str):
        raise NotImplementedError

    def text(self, kw: str) -> str:
        v = self.raw(kw)
        if v is None:
            return ""
        if isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue":
            return "\\".join(str(x) for x in v)
        return str(v).strip()

    def nums(self, kw: str, n: int) -> Optional[tuple]:
        t = self.text(kw)
        if not t:
            return None
        try:
            out = tuple(float(x) for x in t.split("\\"))
        except ValueError:
            return None
        return out if len(out) == n else None

    def first(self, kw: str) -> Optional[float]:
        """The first value as a float; None when absent, unreadable or not finite."""
        t = self.text(kw)
        try:
            v = float(t.split("\\")[0]) if t else None
        except ValueError:
            return None
        return v if v is not None and math.isfinite(v) else None

    def int(self, kw: str) -> Optional[int]:
        v = self.first(kw)
        return int(v) if v is not None else None

    def count(self, kw: str) -> int:
        """A count such as NumberOfFrames: 1 when absent or empty, 0 when it is not a
        positive whole number (the caller reports that)."""
        if not self.text(kw):
            return 1
        v = self.first(kw)
        return int(v) if v is not None and v >= 1 and float(v).is_integer() else 0


class PydicomValues(Values):
    """Reads string-valued header elements straight from pydicom's raw elements (no value
    conversion: the scan touches ~50 elements per file, conversion would dominate)."""

    def __init__(self, ds):
        self.ds = ds

    def raw(self, kw: str):
        tag, dict_vr = tag_info(kw)
        elem = self.ds._dict.get(tag)
        if elem is None:
            return None
        value = elem.value
        if isinstance(value, bytes):
            vr = getattr(elem, "VR", None) or dict_vr
            if vr in _TEXT_VRS:
                return value.decode("latin-1").strip(" \x00")
            return self.ds.get(kw)
        return value

    def has(self, kw: str) -> bool:
        return kw in self.ds

    def person(self, kw: str) -> str:  # person names need the character set: pydicom converts
        return str(self.ds.get(kw, "") or "")

    def media_sop_class(self) -> str:
        meta = getattr(self.ds, "file_meta", None)
        return str(meta.get("MediaStorageSOPClassUID", "") or "") if meta is not None else ""

    def ts_name(self) -> str:
        return str(getattr(getattr(getattr(self.ds, "file_meta", None), "TransferSyntaxUID",
                                   None), "name", "") or "")

    def spacing(self, kw: str) -> Optional[tuple]:
        return floats(self.ds.get(kw), 2)


class ParsedValues(Values):
    """The values the fast parser found, keyed by keyword (already text, already stripped:
    see ``dicom_fastscan``)."""

    def __init__(self, fast):
        self.fast = fast
        self.values = fast.values

    def raw(self, kw: str):
        return self.values.get(kw)

    def text(self, kw: str) -> str:
        return self.values.get(kw, "")

    def has(self, kw: str) -> bool:
        return kw in self.values

    def person(self, kw: str) -> str:
        return self.values.get(kw, "")

    def media_sop_class(self) -> str:
        return self.fast.media_sop_class_uid

    def ts_name(self) -> str:
        return ts_name(self.fast.transfer_syntax)

    def spacing(self, kw: str) -> Optional[tuple]:
        t = self.text(kw)
        return floats(t.split("\\"), 2) if t else None


_TS_NAMES: dict = {}


def ts_name(ts: str) -> str:
    if ts not in _TS_NAMES:
        _TS_NAMES[ts] = str(pydicom.uid.UID(ts).name)
    return _TS_NAMES[ts]
