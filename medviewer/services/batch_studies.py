"""The studies of a batch run: what the given folders, files and list files hold, each with a
deterministic id, so that every process of a run (and every later run) names a study alike.

A study is one case of :func:`medviewer.services.cases.scan_cases`: an image file, a DICOM
series, or a volume file. Its id is a hash of its resolved path (a series: its first file)
and its SeriesInstanceUID, so the id does not depend on how the path was written, on the
order of the inputs or on what else was given. A file that could not be read, or a path that
does not exist, is a study too (it fails with the reason; the rest go on). Its ``path`` is
relative to the common folder of the inputs; no patient name or ID is ever part of either.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from .cases import Case, scan_cases

__all__ = ["Study", "StudyList", "collect_studies", "read_list", "study_id"]


@dataclass(frozen=True)
class Study:
    id: str  # 16 hex digits
    path: str  # relative to the inputs' common folder (a series may end in #series<N>)
    case: Optional[Case] = None
    error: str = ""  # set when the path could not be read at all: the study fails with it


@dataclass
class StudyList:
    studies: list  # [Study], sorted by path
    non_image: list  # [(path, reason)]: DICOM objects without pixels (SEG, SR), files that
    # are no images at all (text, a volume's data file): passed over, not studies
    root: str  # the folder the study paths are relative to


def _hash(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def _resolved(path) -> str:
    return str(Path(path).resolve())


def study_id(case: Case) -> str:
    """The case's id: its resolved path (a series: its first file) and series UID, hashed."""
    if case.image_path is not None:
        return _hash("image", _resolved(case.image_path))
    entry = case.entry
    first = min(_resolved(p) for p in entry.paths)
    return _hash("series", first, str(entry.series_uid or ""))


def read_list(path) -> list:
    """The paths of a list file: one per line; blank lines and ``#`` comments are skipped;
    a relative path is relative to the list file's folder. ValueError when unreadable."""
    lst = Path(path)
    try:
        text = lst.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the list {lst}: {exc}") from exc
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        p = Path(line).expanduser()
        out.append(str(p if p.is_absolute() else lst.parent / p))
    return out


def _root(paths: Sequence[str]) -> str:
    parents = [os.path.dirname(_resolved(p)) for p in paths]
    try:
        return os.path.commonpath(parents) if parents else ""
    except ValueError:  # different drives
        return ""


def _relative(path: str, root: str) -> str:
    head, sep, tail = path.partition("#")
    full = _resolved(head)
    rel = os.path.relpath(full, root) if root else full
    return rel + sep + tail


def collect_studies(paths: Sequence[str], reporter=None,
                    done: Callable[[], None] = lambda: None) -> StudyList:
    """Every study in ``paths`` (files and folders, recursively), once, sorted by path."""
    found = scan_cases(paths, reporter, done)
    root = _root(paths)
    by_id: dict = {}
    for case in found.cases:
        sid = study_id(case)
        by_id.setdefault(sid, Study(sid, _relative(case.name, root), case))
    for path, why in found.missing + found.unreadable:
        sid = _hash("unreadable", _resolved(path))
        by_id.setdefault(sid, Study(sid, _relative(str(path), root), error=why))
    studies = sorted(by_id.values(), key=lambda s: (s.path, s.id))
    passed = [(_relative(str(p), root), w) for p, w in found.non_image + found.other]
    return StudyList(studies, passed, root)
