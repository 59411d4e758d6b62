"""Loading a catalogued series: DICOM entries to the DICOM reader, volume files to theirs."""
from __future__ import annotations

from pathlib import Path

from medviewer.core.volume import Volume

from .catalogue import SeriesEntry
from .dicom_pixels import LoadError

__all__ = ["LoadError", "load_series", "open_first"]


def load_series(entry: SeriesEntry, reporter=None) -> Volume:
    """Load one SeriesEntry. Raises LoadError (a ValueError) with a clear message."""
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
