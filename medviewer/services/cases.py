"""Cases for a batch run (``medviewer predict``): which images/series the given paths hold,
reading them, and where each case's segmentation output goes.

Each image file (PNG/JPEG/BMP/TIFF, read with Pillow), each DICOM series and each volume file
(found by :func:`medviewer.services.studies.scan`) is one case. A case's name is its path (a
series: the folder holding its files, plus ``#series<N>`` when a folder holds several), never
patient identity.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from .studies import load, scan

__all__ = ["IMAGE_SUFFIXES", "Case", "CaseScan", "scan_cases", "find_cases", "read_image",
           "load_case", "is_labelmap_file", "seg_targets", "case_stem"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

@dataclass
class Case:
    name: str  # what the output calls it (a path; never patient identity)
    image_path: Optional[Path] = None  # PNG/JPEG
    entry: object = None  # medviewer.io.catalogue.SeriesEntry


def _is_image(p: Path) -> bool:
    return p.name.lower().endswith(IMAGE_SUFFIXES)


def _entry_name(entry, shared_parent: bool) -> str:
    if len(entry.paths) == 1:
        return str(entry.paths[0])
    parent = os.path.commonpath([str(Path(q).parent) for q in entry.paths])
    if shared_parent:
        tag = entry.series_number if entry.series_number is not None else entry.series_uid[-12:]
        return f"{parent}#series{tag}"
    return parent


@dataclass
class CaseScan:
    """What the given paths hold: the cases, and what is not a case (with the reason)."""
    cases: list
    missing: list  # [(path, reason)]: no such file or folder
    unreadable: list  # [(path, reason)]: image files that could not be read
    non_image: list  # [(path, reason)]: DICOM objects that hold no image (SEG, SR, ...)
    other: list = field(default_factory=list)  # [(path, reason)]: not image files at all
    # (text, a volume's data file); a non-DICOM file named .dcm counts as unreadable

    @property
    def skipped(self) -> list:
        return self.missing + self.unreadable + self.other + self.non_image


_DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")


def _not_an_image_file(path: str, reason: str) -> bool:
    from medviewer.io.discover import NOT_SUPPORTED

    if reason.startswith("data file of "):
        return True
    return reason == NOT_SUPPORTED and not path.lower().endswith(_DICOM_SUFFIXES)


def scan_cases(paths: Sequence[str], reporter=None, done=lambda: None) -> CaseScan:
    """The cases in ``paths`` (files or folders, recursively); ``done()`` after the scan."""
    images, others, missing = [], [], []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for q in sorted(q for q in p.rglob("*") if q.is_file()):
                (images if _is_image(q) else others).append(q)
        elif p.is_file():
            (images if _is_image(p) else others).append(p)
        else:
            missing.append((str(p), "no such file or folder"))
    found = CaseScan([Case(str(q), image_path=q) for q in images], missing, [], [])
    if others:
        try:
            cat = scan([str(q) for q in others], reporter)
        finally:
            done()
        parents: dict = {}
        for e in cat.series:
            if len(e.paths) > 1:
                key = os.path.commonpath([str(Path(q).parent) for q in e.paths])
                parents[key] = parents.get(key, 0) + 1
        for e in cat.series:
            key = (os.path.commonpath([str(Path(q).parent) for q in e.paths])
                   if len(e.paths) > 1 else None)
            found.cases.append(Case(_entry_name(e, parents.get(key, 0) > 1), entry=e))
        for sk in cat.skipped:
            other = _not_an_image_file(sk.path, sk.reason)
            (found.other if other else found.unreadable).append((sk.path, sk.reason))
        found.non_image += [(n.path, f"{n.kind}: not an image") for n in cat.non_image]
    return found


def find_cases(paths: Sequence[str], reporter=None, done=lambda: None):
    """(cases, skipped [(path, reason)]) for the given paths; ``done()`` after the scan."""
    found = scan_cases(paths, reporter, done)
    return found.cases, found.skipped


def read_image(path: Path):
    import numpy as np
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode in ("I;16", "I;16B", "I;16L", "I", "F", "L"):
            arr = np.asarray(im)
        else:
            arr = np.asarray(im.convert("RGB"))
    return arr


def load_case(case: Case, reporter=None):
    """The Volume of a series case (an image-file case is read with :func:`read_image`)."""
    return load(case.entry, reporter)


def is_labelmap_file(out: str) -> bool:
    return out.lower().endswith((".nii", ".nii.gz", ".nrrd"))


def case_stem(name: str) -> str:
    """A file-name stem for a case's outputs: its file or folder name without the image
    suffix, plus ``_series<N>`` when its folder holds several series."""
    base = Path(name.split("#")[0]).name or "case"
    for suf in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".mgz", ".dcm"):
        if base.lower().endswith(suf):
            base = base[: -len(suf)]
            break
    if "#" in name:
        base += "_" + name.split("#", 1)[1]
    return base


def seg_targets(cases, out: str) -> list:
    if is_labelmap_file(out):
        return [Path(out)]
    folder = Path(out)
    used: dict = {}
    targets = []
    for c in cases:
        base = case_stem(c.name)
        n = used.get(base, 0)
        used[base] = n + 1
        targets.append(folder / (f"{base}_{n}.nii.gz" if n else f"{base}.nii.gz"))
    return targets
