"""Where the demo studies are: files that ship with installed packages, plus the shared chest CT.

Nothing is downloaded: pydicom's test-file lookup is called with ``download=False``.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Optional

__all__ = ["demo_paths", "shared_data_dir", "CHEST_CT_FOLDER", "SHARED_DATA_ENV"]

SHARED_DATA_ENV = "MEDVIEWER_SHARED_DATA"
CHEST_CT_FOLDER = "tcia_cmb_crc_ct_chest"
RADIOGRAPH = "RG1_UNCI.dcm"  # pydicom-data: real chest radiograph, MONOCHROME1
FALLBACK_3D = "emri_small.dcm"  # pydicom-data: enhanced MR, 10 frames of 64 x 64
_NILEARN_TEMPLATES = ("mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
                      "mni_icbm152_t1_tal_nlin_sym_09a.nii.gz", "MNI152_T1_1mm_brain.nii.gz",
                      "MNI152_T1_2mm_brain.nii.gz", "avg152T1_brain.nii.gz")


def shared_data_dir() -> Optional[Path]:
    """$MEDVIEWER_SHARED_DATA, else <repo>/../shared/data, when that folder exists."""
    env = os.environ.get(SHARED_DATA_ENV)
    candidates = [Path(env)] if env else []
    repo = Path(__file__).resolve().parents[2]  # medviewer/io/demo.py -> <repo>
    candidates.append(repo.parent / "shared" / "data")
    for c in candidates:
        if c.is_dir():
            return c
    return None


def _pydicom_file(name: str) -> Optional[Path]:
    try:
        from pydicom.data import get_testdata_file

        found = get_testdata_file(name, download=False)
    except Exception:  # pydicom-data missing or its store unreadable: just no demo file
        return None
    return Path(found) if found and Path(found).is_file() else None


def _nilearn_template() -> Optional[Path]:
    """The MNI152 T1 template packaged with nilearn, found without importing nilearn."""
    try:
        spec = importlib.util.find_spec("nilearn")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        data = Path(root) / "datasets" / "data"
        for name in _NILEARN_TEMPLATES:
            if (data / name).is_file():
                return data / name
    return None


def demo_paths() -> list:
    """Demo inputs that exist here, in order: radiograph, chest CT folder, a 3D volume."""
    out: list = []
    rg = _pydicom_file(RADIOGRAPH)
    if rg is not None:
        out.append(rg)
    shared = shared_data_dir()
    if shared is not None and (shared / CHEST_CT_FOLDER).is_dir():
        out.append(shared / CHEST_CT_FOLDER)
    vol = _nilearn_template() or _pydicom_file(FALLBACK_3D)
    if vol is not None:
        out.append(vol)
    return out
