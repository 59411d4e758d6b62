"""The store's own label-array files: compressed NIfTI-1 (.nii.gz) written atomically.

Arrays are (z, y, x) in MedViewer; on disk they are NIfTI (x, y, z) with the given RAS
affine, integer dtype kept exactly (uint8 / uint16, no scaling). gzip level 1 keeps a
512x512x300 label map well under a second to write on a small machine.
"""
from __future__ import annotations

import gzip
import os

import nibabel as nib
import numpy as np

from medviewer.core.atomic import atomic_open

LABEL_DTYPES = (np.uint8, np.uint16)
GZIP_LEVEL = 1


def _check_labels(labels: np.ndarray) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 3:
        raise ValueError(f"label arrays must be 3D (z, y, x), got shape {arr.shape}")
    if arr.dtype not in [np.dtype(d) for d in LABEL_DTYPES]:
        raise ValueError(f"label arrays must be uint8 or uint16, got {arr.dtype}")
    return arr


def _check_affine(affine_ras) -> np.ndarray:
    aff = np.asarray(affine_ras, dtype=float)
    if aff.shape != (4, 4) or not np.all(np.isfinite(aff)):
        raise ValueError("affine_ras must be a finite 4x4 matrix")
    if abs(np.linalg.det(aff[:3, :3])) < 1e-12:
        raise ValueError("affine_ras is singular")
    return aff


def write_label_nifti(path: str | os.PathLike, labels: np.ndarray, affine_ras) -> None:
    """Write ``labels`` (z, y, x) as a gzip'ed NIfTI-1 at ``path`` atomically and durably."""
    arr = _check_labels(labels)
    aff = _check_affine(affine_ras)
    # (z, y, x) C-order is (x, y, z) Fortran order: nibabel streams it without a copy.
    img = nib.Nifti1Image(np.ascontiguousarray(arr).T, aff)
    img.set_data_dtype(arr.dtype)
    img.header.set_xyzt_units("mm")
    img.header["intent_code"] = 1002  # NIFTI_INTENT_LABEL
    img.set_qform(aff, code=1)
    img.set_sform(aff, code=1)
    with atomic_open(path, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=GZIP_LEVEL, mtime=0) as gz:
            img.to_file_map({"image": nib.FileHolder(fileobj=gz)})


def read_label_nifti(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a label file written by :func:`write_label_nifti` -> (labels (z, y, x), RAS affine)."""
    img = nib.load(os.fspath(path))
    if len(img.shape) != 3:
        raise ValueError(f"label file {os.path.basename(path)} is not 3D: shape {img.shape}")
    data = np.asarray(img.dataobj.get_unscaled())
    if data.dtype not in [np.dtype(d) for d in LABEL_DTYPES]:
        raise ValueError(f"label file {os.path.basename(path)} has dtype {data.dtype}")
    labels = np.ascontiguousarray(data.T)
    if not labels.flags.writeable:
        labels = labels.copy()
    return labels, np.asarray(img.affine, dtype=float)
