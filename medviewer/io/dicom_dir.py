"""DICOMDIR reading: the files a DICOMDIR's directory records reference (ReferencedFileID)."""
from __future__ import annotations

from pathlib import Path

import pydicom

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"


def is_dicomdir(path: str | Path) -> bool:
    """True for a DICOMDIR (by name, or by its Media Storage Directory SOP class)."""
    p = Path(path)
    if p.name.upper() == "DICOMDIR":
        return True
    try:
        with open(p, "rb") as fh:
            head = fh.read(132)
        if head[128:132] != b"DICM":
            return False
        ds = pydicom.dcmread(p, specific_tags=[(0x0002, 0x0002)], stop_before_pixels=True)
        return str(ds.file_meta.get("MediaStorageSOPClassUID", "")) == MEDIA_STORAGE_DIRECTORY
    except Exception:
        return False


def dicomdir_files(path: str | Path) -> tuple:
    """(existing referenced files in record order, [(missing path, reason)])."""
    p = Path(path)
    ds = pydicom.dcmread(p, force=True)
    root = p.parent
    found, missing, seen = [], [], set()
    for rec in ds.get("DirectoryRecordSequence", []):
        ref = rec.get("ReferencedFileID")
        if ref is None:
            continue
        parts = [str(ref)] if isinstance(ref, str) else [str(x) for x in ref]
        target = root.joinpath(*parts)
        if not target.exists():  # media file IDs are upper case; the disk may not be
            alt = _case_insensitive(root, parts)
            target = alt if alt is not None else target
        key = str(target)
        if key in seen:
            continue
        seen.add(key)
        if target.is_file():
            found.append(target)
        else:
            missing.append((key, "referenced by DICOMDIR but not found"))
    return found, missing


def _case_insensitive(root: Path, parts: list):
    cur = root
    for part in parts:
        if not cur.is_dir():
            return None
        match = next((c for c in cur.iterdir() if c.name.upper() == part.upper()), None)
        if match is None:
            return None
        cur = match
    return cur
