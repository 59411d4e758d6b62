"""Scanning files, folders (recursive) and DICOMDIRs into a Catalogue without reading pixels.

One unreadable file never aborts a scan: it is listed in ``Catalogue.skipped`` with a reason.
Non-image DICOM objects (RT, SR, SEG, waveforms, presentation states...) go to
``Catalogue.non_image``; volume files (NIfTI, NRRD, MHA/MHD, MGZ) become kind="file" series.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Optional

from .catalogue import Catalogue, NonImageObject, SeriesEntry, SkippedFile
from .dicom_dir import dicomdir_files, is_dicomdir
from .dicom_group import group_headers
from .dicom_checks import header_problem
from .dicom_index import NotDicomError, index_file, non_image_kind
from .dicom_pixels import LoadError, check_truncation
from .errors import guarded, reason as error_reason

log = logging.getLogger(__name__)
NOT_SUPPORTED = "not a DICOM or volume file"
_DATA_SUFFIXES = {".raw": (".mhd",), ".zraw": (".mhd",), ".img": (".hdr",)}


_VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".mgz")


def _is_volume_file(path: Path) -> bool:
    try:
        from . import volume_files  # lazy: keeps SimpleITK/nibabel out of the scan's import
    except ImportError:  # TEMPORARY fallback until medviewer/io/volume_files.py exists
        return path.name.lower().endswith(_VOLUME_SUFFIXES)
    return bool(volume_files.is_volume_file(path))


def _expand(paths: Iterable, cat: Catalogue) -> list:
    """Files to scan, in a stable order; DICOMDIRs given directly expand to their files."""
    out: list = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.is_file()))
        elif p.is_file() and is_dicomdir(p):
            try:
                found, missing = dicomdir_files(p)
            except Exception as exc:
                cat.skipped.append(SkippedFile(str(p), f"unreadable DICOMDIR: {_first_line(exc)}"))
                continue
            out.extend(found)
            cat.non_image.append(NonImageObject(str(p), "DICOMDIR"))
            cat.skipped.extend(SkippedFile(m, why) for m, why in missing)
        elif p.is_file():
            out.append(p)
        else:
            cat.skipped.append(SkippedFile(str(p), "no such file or folder"))
    seen: set = set()
    unique = []
    for p in out:
        key = str(p.resolve())
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0][:200] if text else type(exc).__name__)


def _data_file_of(p: Path) -> Optional[str]:
    for header_suffix in _DATA_SUFFIXES.get(p.suffix.lower(), ()):
        header = p.with_suffix(header_suffix)
        if header.exists():
            return f"data file of {header.name} (opened through it)"
    return None


def scan_paths(paths: list, reporter=None) -> Catalogue:
    """Index files/folders/DICOMDIRs. ``reporter(done, total, msg)`` is called per file."""
    cat = Catalogue()
    files = _expand(paths, cat)
    headers: list = []
    order: dict = {}  # entry key or file path -> position of its first file
    file_entries: list = []
    total = len(files)
    for i, p in enumerate(files):
        if reporter is not None:
            reporter(i, total, f"Scanning file {i + 1} of {total}")
        order.setdefault(str(p), i)
        _scan_one(p, cat, headers, file_entries)
    entries = group_headers(headers) + file_entries
    entries.sort(key=lambda e: order.get(str(e.paths[0]), 0))
    cat.series.extend(entries)
    if reporter is not None:
        reporter(total, total, "Scan finished")
    log.info("scan: %d series, %d non-image, %d skipped", len(cat.series),
             len(cat.non_image), len(cat.skipped))
    return cat


def _scan_one(p: Path, cat: Catalogue, headers: list, file_entries: list) -> None:
    try:
        if _is_volume_file(p):
            file_entries.append(SeriesEntry(key=str(p), kind="file", paths=[str(p)],
                                            description=p.name, n_images=1))
            return
    except Exception as exc:  # a broken volume_files helper must not abort the scan
        cat.skipped.append(SkippedFile(str(p), f"volume file check failed: {_first_line(exc)}"))
        return
    data_of = _data_file_of(p)
    if data_of:
        cat.skipped.append(SkippedFile(str(p), data_of))
        return
    try:
        with guarded(p.name, "unreadable DICOM header"):  # any type, pyo3 panics included
            h, ds, has_pixels = index_file(p)
    except LoadError as exc:
        cause = exc.__cause__
        if isinstance(cause, NotDicomError):
            cat.skipped.append(SkippedFile(str(p), str(cause) or NOT_SUPPORTED))
        else:
            why = error_reason(cause) if cause is not None else str(exc)
            cat.skipped.append(SkippedFile(str(p), f"unreadable DICOM header: {why}"))
        return
    kind = non_image_kind(h.sop_class_uid, h.modality)
    if kind:
        cat.non_image.append(NonImageObject(str(p), kind, h.modality, h.sop_class_uid,
                                            h.series_uid))
        return
    if not has_pixels:
        reason = "no pixel data" if h.rows else "no pixel data (not an image object)"
        cat.skipped.append(SkippedFile(str(p), reason))
        return
    problem = header_problem(h)
    if problem:
        cat.skipped.append(SkippedFile(str(p), problem))
        return
    try:
        check_truncation(h)
    except LoadError as exc:
        cat.skipped.append(SkippedFile(str(p), str(exc)))
        return
    headers.append(h)
