"""Opening studies, shared by the viewer and the command line: scanning paths into a
catalogue of series, loading one series, the demo studies, DICOM tags of a file.

Plain functions for a worker thread (they take a jobs ``Reporter`` for progress and cancel);
the readers behind them are in :mod:`medviewer.io`, imported when first used so the window
opens fast."""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

from medviewer.core.volume import Volume

__all__ = ["Catalogue", "SeriesEntry", "WriteError", "scan", "load", "demo_paths", "read_tags"]

from medviewer.io.catalogue import Catalogue, SeriesEntry  # noqa: E402  (plain dataclasses)
from medviewer.io.nifti_writer import WriteError  # noqa: E402  (numpy only)


def scan(paths: Sequence[str], reporter=None) -> Catalogue:
    """Files, folders (recursive) and DICOMDIRs -> a catalogue of image series, non-image
    objects and skipped files (with the reason), reading headers only."""
    from medviewer.io.discover import scan_paths

    return scan_paths([str(p) for p in paths], reporter)


def load(entry: SeriesEntry, reporter=None) -> Volume:
    """One catalogued series as a Volume (``LoadError``, a ValueError, says why not)."""
    from medviewer.io.load import load_series

    return load_series(entry, reporter)


def demo_paths() -> List[Path]:
    """The demo studies: files shipped inside installed packages, plus the shared chest CT."""
    from medviewer.io.demo import demo_paths as paths

    return list(paths())


def read_tags(path) -> list:
    """The DICOM tag rows of one file, for the tag browser."""
    from medviewer.io.dicom_tags import read_tags as tags

    return tags(path)


def nifti_suffix(path) -> bool:
    """Whether ``path`` ends in .nii or .nii.gz."""
    from medviewer.io.nifti_writer import nifti_suffix as suffix

    return bool(suffix(path))


def write_nifti(volume: Volume, path, anonymise: bool = True):
    """Write ``volume`` as NIfTI (RAS affine, gzip by suffix; a patient name or ID in its
    description hidden unless ``anonymise`` is off); WriteError/OSError say why not."""
    from medviewer.io.nifti_writer import write_nifti as write

    return write(volume, path, anonymise=anonymise)
