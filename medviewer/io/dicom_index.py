"""DICOM header indexing without pixel data: one FileHeader per file, plus SOP class kinds.

``index_file(path)`` reads a file's header and the pixel data element's offset and length
(without reading the pixels): so a header scan can say "no pixel data" or "pixel data
truncated" cheaply. Common files (Part 10, little endian, explicit or implicit VR, no
functional groups) go through the fast parser of ``dicom_fastscan``; everything else through
pydicom (``stop_before_pixels``, then the element header where pydicom stopped). Both paths
fill the FileHeader through the same value accessors, so they give equal headers.
"""
from __future__ import annotations

import hashlib
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pydicom
from pydicom.errors import InvalidDicomError

from .dicom_fastscan import fast_scan
from .dicom_values import ParsedValues, PydicomValues, Values
from .dicom_values import floats as _floats, tag_info as _tag_info
from .dicom_sop import non_image_kind  # noqa: F401  (re-exported)

DICOM_SUFFIXES = {"", ".dcm", ".dicom", ".ima", ".dic"}
_PIXEL_TAGS = {(0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009)}
_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN", b"SQ", b"UT", b"UC", b"UR"}
_NATIVE_TS = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}
META_KEYWORDS = (
    "Modality", "SeriesDescription", "StudyDescription", "Manufacturer",
    "ManufacturerModelName", "SeriesInstanceUID", "StudyInstanceUID", "SOPClassUID",
    "PhotometricInterpretation", "BitsAllocated", "BitsStored", "PixelRepresentation",
    "SeriesNumber", "StudyDate", "SeriesDate", "BodyPartExamined", "ProtocolName",
    "SliceThickness", "ConvolutionKernel", "MagneticFieldStrength", "PatientOrientation",
    "PatientName", "PatientID",
)


def _first_float(value) -> Optional[float]:
    if value is None or value == "":
        return None
    try:
        if isinstance(value, (list, tuple)) or hasattr(value, "__iter__") and not isinstance(value, str):
            value = list(value)[0]
        value = float(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return value if math.isfinite(value) else None


_PATIENT_KW = ("PatientName", "PatientID")
_MINOR_NUMBERS = {"InstanceNumber": "instance_number", "AcquisitionNumber": "acquisition_number",
                  "TemporalPositionIdentifier": "temporal_index", "SeriesNumber": "series_number"}


def _window(f, ds) -> Optional[tuple]:
    c, w = f.first("WindowCenter"), f.first("WindowWidth")
    if (c is None or w is None) and ds is not None and "PerFrameFunctionalGroupsSequence" in ds:
        g = _functional(ds, "FrameVOILUTSequence", "WindowCenter")
        if g is not None:
            c, w = _first_float(g.get("WindowCenter")), _first_float(g.get("WindowWidth"))
    if c is None or w is None or w <= 0:
        return None
    return c, w


_SCAN_KEYWORDS = (
    "SOPClassUID", "SOPInstanceUID", "FrameOfReferenceUID", "InstanceNumber",
    "AcquisitionNumber", "TemporalPositionIdentifier", "Rows", "Columns", "NumberOfFrames",
    "SamplesPerPixel", "ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing",
    "ImagerPixelSpacing", "RescaleSlope", "RescaleIntercept", "GantryDetectorTilt",
    "WindowCenter", "WindowWidth", "SpacingBetweenSlices", "SpecificCharacterSet",
    "SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence",
)
_TAGS: list = []
_FAST_ARGS: Optional[tuple] = None
_ENHANCED_KW = ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence")
_HEAD_BYTES = 16384


def _scan_tags() -> list:
    """The header elements the scan needs (parsing only these is much faster)."""
    if not _TAGS:
        _TAGS.extend(_tag_info(k)[0] for k in _SCAN_KEYWORDS + META_KEYWORDS)
    return _TAGS


def _fast_args() -> tuple:
    """(wanted, refuse) for ``fast_scan``, built once (a scan may run in a worker thread:
    the tuple is built first, then published in one assignment)."""
    global _FAST_ARGS
    if _FAST_ARGS is None:
        kws = [k for k in _SCAN_KEYWORDS + META_KEYWORDS if k not in _ENHANCED_KW]
        wanted = {_tag_info(k)[0]: (k, _tag_info(k)[1], k in _PATIENT_KW) for k in kws}
        _FAST_ARGS = (wanted, frozenset(_tag_info(k)[0] for k in _ENHANCED_KW))
    return _FAST_ARGS


class NotDicomError(ValueError):
    """The file is not a DICOM file (no preamble magic and not readable as DICOM)."""


@dataclass
class FileHeader:
    """What the scan learnt about one DICOM file (io-private; kept in SeriesEntry.headers)."""

    path: str
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    modality: str = ""
    series_uid: str = ""
    study_uid: str = ""
    frame_of_reference_uid: str = ""
    series_description: str = ""
    study_description: str = ""
    study_date: str = ""
    series_number: Optional[int] = None
    instance_number: Optional[int] = None
    acquisition_number: Optional[int] = None
    temporal_index: Optional[int] = None
    rows: int = 0
    columns: int = 0
    n_frames: int = 1
    samples_per_pixel: int = 1
    bits_allocated: int = 0
    bits_stored: int = 0
    pixel_representation: int = 0
    photometric: str = ""
    transfer_syntax: str = ""
    iop: Optional[tuple] = None  # 6 cosines
    ipp: Optional[tuple] = None  # 3 mm
    pixel_spacing: Optional[tuple] = None  # (row spacing, column spacing)
    slope: float = 1.0
    intercept: float = 0.0
    has_rescale: bool = False
    gantry_tilt: float = 0.0
    enhanced: bool = False  # per-frame functional groups present
    patient_key: str = ""
    patient_label: str = ""
    pixel_offset: Optional[int] = None  # file offset of the pixel data value (native only)
    pixel_length: Optional[int] = None  # its declared length (None if undefined/unknown)
    file_size: int = 0
    window: Optional[tuple] = None  # (center, width) of the first window
    slice_thickness: Optional[float] = None
    spacing_between_slices: Optional[float] = None
    meta: dict = field(default_factory=dict)  # series-level tags for Volume.meta
    notes: list = field(default_factory=list)

    @property
    def expected_pixel_bytes(self) -> int:
        spp = 2 if self.photometric == "YBR_FULL_422" else self.samples_per_pixel
        bits = self.rows * self.columns * self.n_frames * spp * self.bits_allocated
        return (bits + 7) // 8

    @property
    def is_native(self) -> bool:
        return self.transfer_syntax in _NATIVE_TS


def _first_item(ds, seq_name: str):
    seq = ds.get(seq_name)
    return seq[0] if seq else None


def _functional(ds, group: str, inner: str):
    """An item of ``group`` from the shared groups, else from the first per-frame item."""
    for outer in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        item = _first_item(ds, outer)
        if item is not None:
            g = _first_item(item, group)
            if g is not None and inner in g:
                return g
    return None


def _fill_geometry(h: FileHeader, f, ds) -> None:
    if ds is not None and "PerFrameFunctionalGroupsSequence" in ds:
        h.enhanced = True
        g = _functional(ds, "PlaneOrientationSequence", "ImageOrientationPatient")
        if g is not None and h.iop is None:
            h.iop = _floats(g.ImageOrientationPatient, 6)
        g = _functional(ds, "PixelMeasuresSequence", "PixelSpacing")
        if g is not None and h.pixel_spacing is None:
            h.pixel_spacing = _floats(g.PixelSpacing, 2)
        g = _functional(ds, "PlanePositionSequence", "ImagePositionPatient")
        if g is not None and h.ipp is None:
            h.ipp = _floats(g.ImagePositionPatient, 3)
    if h.pixel_spacing is None:
        h.pixel_spacing = f.spacing("ImagerPixelSpacing")


def _read_pixel_element(fh, h: FileHeader, explicit: bool, little: bool) -> bool:
    """Parse the element header where pydicom stopped. True when pixel data is present."""
    raw = fh.read(12)
    if len(raw) < 8:
        return False
    e = "<" if little else ">"
    group, elem = struct.unpack(e + "HH", raw[:4])
    if (group, elem) not in _PIXEL_TAGS:
        return False
    if explicit and raw[4:6] in _LONG_VRS and len(raw) == 12:
        (length,) = struct.unpack(e + "I", raw[8:12])
        start = fh.tell()
    elif explicit:
        (length,) = struct.unpack(e + "H", raw[6:8])
        start = fh.tell() - 4
    else:
        (length,) = struct.unpack(e + "I", raw[4:8])
        start = fh.tell() - 4
    if length != 0xFFFFFFFF:
        h.pixel_offset, h.pixel_length = start, length
    return True


def index_file(path: str | Path, use_fast: bool = True) -> tuple:
    """Read one file's header. Returns (FileHeader, dataset-without-pixels or None, has_pixels):
    the dataset is None when the fast parser read the header (``use_fast=False``: always
    pydicom). Raises NotDicomError (not DICOM) or other exceptions (unreadable header)."""
    p = Path(path)
    with open(p, "rb") as fh:
        head = fh.read(_HEAD_BYTES)
        size = os.fstat(fh.fileno()).st_size
        fast = fast_scan(fh, head, size, *_fast_args()) if use_fast else None
        if fast is not None:
            h = FileHeader(path=str(p), file_size=size, transfer_syntax=fast.transfer_syntax,
                           pixel_offset=fast.pixel_offset, pixel_length=fast.pixel_length)
            _fill_from_dataset(h, ParsedValues(fast), None)
            return h, None, fast.has_pixels
        magic = len(head) >= 132 and head[128:132] == b"DICM"
        if not magic and p.suffix.lower() not in DICOM_SUFFIXES:
            raise NotDicomError("not a DICOM or volume file")
        fh.seek(0)
        try:
            ds = pydicom.dcmread(fh, stop_before_pixels=True, force=not magic,
                                 specific_tags=_scan_tags())
        except InvalidDicomError as exc:
            raise NotDicomError("not a DICOM or volume file") from exc
        if not magic and not any(k in ds for k in ("SOPClassUID", "Modality", "Rows",
                                                       "StudyInstanceUID", "SeriesInstanceUID")):
            raise NotDicomError("not a DICOM or volume file")
        h = FileHeader(path=str(p), file_size=size)
        meta = getattr(ds, "file_meta", None)
        ts = str(getattr(meta, "TransferSyntaxUID", "") or "") if meta is not None else ""
        h.transfer_syntax = ts
        has_pixels = False
        if ts in _NATIVE_TS or not ts:
            explicit = ts not in ("1.2.840.10008.1.2", "") and not ds.is_implicit_VR
            little = ts != "1.2.840.10008.1.2.2"
            if not ts:
                explicit, little = not ds.is_implicit_VR, ds.is_little_endian
            has_pixels = _read_pixel_element(fh, h, explicit, little)
        elif "1.2.840.10008.1.2.1.99" == ts:  # deflated: can't peek; assume present
            has_pixels = "Rows" in ds
        else:
            has_pixels = _read_pixel_element(fh, h, True, True)
    _fill_from_dataset(h, PydicomValues(ds), ds)
    return h, ds, has_pixels


def _fill_from_dataset(h: FileHeader, f: Values, ds) -> None:
    """Fill ``h`` from the values of ``f``; ``ds`` (pydicom dataset or None) is only needed
    for enhanced multi-frame functional groups."""
    h.sop_class_uid = f.text("SOPClassUID")
    if not h.sop_class_uid:  # e.g. DICOMDIR: only in the file meta
        h.sop_class_uid = f.media_sop_class()
    h.sop_instance_uid = f.text("SOPInstanceUID")
    h.modality = f.text("Modality")
    h.series_uid = f.text("SeriesInstanceUID")
    h.study_uid = f.text("StudyInstanceUID")
    h.frame_of_reference_uid = f.text("FrameOfReferenceUID")
    h.series_description = f.text("SeriesDescription")
    h.study_description = f.text("StudyDescription")
    h.study_date = f.text("StudyDate")
    h.series_number = f.int("SeriesNumber")
    h.instance_number = f.int("InstanceNumber")
    h.acquisition_number = f.int("AcquisitionNumber")
    h.temporal_index = f.int("TemporalPositionIdentifier")
    for kw in _MINOR_NUMBERS:  # minor tags never sink a file: ignored, with a note
        if getattr(h, _MINOR_NUMBERS[kw]) is None and f.text(kw):
            h.notes.append(f"{kw} is not a number ({f.text(kw)[:16]!r}): ignored")
    h.rows = f.int("Rows") or 0
    h.columns = f.int("Columns") or 0
    h.n_frames = f.count("NumberOfFrames")
    h.samples_per_pixel = f.int("SamplesPerPixel") or 1
    h.bits_allocated = f.int("BitsAllocated") or 0
    h.bits_stored = f.int("BitsStored") or h.bits_allocated
    h.pixel_representation = f.int("PixelRepresentation") or 0
    h.photometric = f.text("PhotometricInterpretation").upper()
    h.gantry_tilt = f.first("GantryDetectorTilt") or 0.0
    slope, icpt = f.text("RescaleSlope"), f.text("RescaleIntercept")
    if slope or icpt:
        try:
            h.slope = float(slope.split("\\")[0]) if slope else 1.0
            h.intercept = float(icpt.split("\\")[0]) if icpt else 0.0
            h.has_rescale = True
        except ValueError:
            h.notes.append("unreadable rescale slope/intercept ignored")
    h.iop = f.nums("ImageOrientationPatient", 6)
    h.ipp = f.nums("ImagePositionPatient", 3)
    h.pixel_spacing = f.nums("PixelSpacing", 2)
    _fill_geometry(h, f, ds)
    h.window = _window(f, ds)
    h.slice_thickness = f.first("SliceThickness")
    h.spacing_between_slices = f.first("SpacingBetweenSlices")
    if h.enhanced and h.slice_thickness is None:
        g = _functional(ds, "PixelMeasuresSequence", "SliceThickness")
        h.slice_thickness = _first_float(g.SliceThickness) if g is not None else None
    h.meta = {k: f.text(k) for k in META_KEYWORDS if k not in _PATIENT_KW and f.has(k)}
    for k in _PATIENT_KW:
        if f.has(k):
            h.meta[k] = f.person(k)
    h.meta["TransferSyntaxUID"] = h.transfer_syntax
    ts_name = f.ts_name()
    if ts_name:
        h.meta["TransferSyntax"] = ts_name
    name = h.meta.get("PatientName", "")
    pid = h.meta.get("PatientID", "")
    h.patient_key = "patient-" + hashlib.sha1(f"{name}\x00{pid}".encode()).hexdigest()[:12]
    h.patient_label = " ".join(s for s in (name, pid) if s)
