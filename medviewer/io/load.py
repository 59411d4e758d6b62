"""Loading a catalogued series: DICOM entries to the DICOM reader, volume files to theirs.

Every load runs inside one guard (``errors.guarded``): whatever a reader or decoder raises,
pyo3 panics included, leaves as a ``LoadError`` naming the file, with patient names and IDs
removed from the message; the progress callback's own exceptions (a job's cancellation) pass
through unchanged."""
from __future__ import annotations

from pathlib import Path

from medviewer.core.volume import Volume

from .catalogue import SeriesEntry
from .errors import LoadError, MemoryBudgetError, guarded, passthrough

__all__ = ["LoadError", "MemoryBudgetError", "load_series", "open_first"]


def _patient_values(entry: SeriesEntry) -> set:
    out = set()
    for h in entry.headers or ():
        for kw in ("PatientName", "PatientID"):
            v = str(h.meta.get(kw, "") or "")
            out.add(v)
            out.update(part for part in v.replace("^", " ").split() if len(part) >= 3)
    out.add(entry.patient_label)
    return out


def _entry_name(entry: SeriesEntry) -> str:
    if not entry.paths:
        return entry.key
    name = Path(entry.paths[0]).name
    return name if len(entry.paths) == 1 else f"{name} (+{len(entry.paths) - 1} files)"


def load_series(entry: SeriesEntry, reporter=None) -> Volume:
    """Load one SeriesEntry. Raises LoadError (a ValueError) with a clear message."""
    progress = passthrough(reporter) if reporter is not None else None
    with guarded(_entry_name(entry), "cannot load", progress, secrets=_patient_values(entry)):
        return _load(entry, progress)


def _load(entry: SeriesEntry, reporter) -> Volume:
    if entry.kind == "dicom":
        from .dicom_reader import read_dicom_series

        return read_dicom_series(entry, reporter)
    if entry.kind == "file":
        from .volume_files import read_volume_file

        if reporter is not None:
            reporter(0, 1, f"Reading {Path(entry.paths[0]).name}")
        vol = read_volume_file(entry.paths[0])
        if reporter is not None:
            reporter(1, 1, "Done")
        return vol
    raise LoadError(f"unknown series kind {entry.kind!r}")


def open_first(paths, reporter=None) -> Volume:
    """Scan ``paths`` and load the first series that loads; LoadError if none does."""
    from .discover import scan_paths

    cat = scan_paths(list(paths) if not isinstance(paths, (str, Path)) else [paths], reporter)
    errors = []
    for entry in cat.series:
        try:
            return load_series(entry, reporter)
        except LoadError as exc:
            errors.append(f"{entry.description or entry.key}: {exc}")
    if errors:
        raise LoadError("no series could be loaded: " + "; ".join(errors[:3]))
    raise LoadError("no image series found")
