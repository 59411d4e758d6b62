"""Writing a Volume to NIfTI-1 (.nii or .nii.gz) with nibabel, atomically.

- Voxels: our (z, y, x) array is written as NIfTI's (i, j, k) = (x, y, z), in its own data
  type (int16 stays int16; bool becomes uint8; 64-bit integers become int32 when they fit).
  Values are written as they are (already rescaled), so scl_slope/scl_inter stay unset.
- Geometry: the affine is ``Geometry.affine_ras()`` (LPS -> RAS at this edge). When the
  direction is orthonormal it goes to both sform and qform with code 1 (scanner), as
  dcm2niix does; a sheared direction (gantry tilt) cannot be a qform, so only the sform is
  set and the qform code is 0.
- Uneven slice spacing cannot be expressed by an affine: we refuse (``WriteError``) rather
  than write a wrong geometry; resample first (``medviewer.core.resample.resample_even``).
- RGB volumes (z, y, x, 3) uint8 are written as NIfTI RGB24 (datatype 128), which dcm2niix
  also writes for colour DICOM and which nibabel and SimpleITK read back.
- The header's description is the volume's (ASCII, 79 characters); ``anonymise`` (the
  default) shows a patient name or ID that it repeats as "(hidden)".
- The file appears atomically: written to a temporary file in the same folder, then
  ``os.replace``d over the target.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from medviewer.core.atomic import atomic_path
from medviewer.core.deid import identity_values, redact
from medviewer.core.volume import Volume

__all__ = ["WriteError", "write_nifti", "nifti_suffix"]

_RGB = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")])


class WriteError(ValueError):
    """The volume cannot be written as asked; the message says why and what to do."""


def nifti_suffix(path) -> str:
    """'.nii.gz' or '.nii' for a NIfTI path, '' otherwise."""
    name = Path(path).name.lower()
    for suf in (".nii.gz", ".nii"):
        if name.endswith(suf):
            return suf
    return ""


def _data_xyz(volume: Volume) -> np.ndarray:
    arr = volume.array
    if volume.is_rgb:
        if arr.dtype != np.uint8 or arr.shape[3] != 3:
            raise WriteError(f"colour volumes must be uint8 with 3 channels, got {arr.dtype} "
                             f"{arr.shape}")
        rgb = np.empty(arr.shape[:3], dtype=_RGB)
        for i, name in enumerate("RGB"):
            rgb[name] = arr[..., i]
        return rgb.transpose(2, 1, 0)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    elif arr.dtype.kind in "iu" and arr.dtype.itemsize == 8:
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        info = np.iinfo(np.int32)
        if lo < info.min or hi > info.max:
            raise WriteError(f"64-bit integer values {lo}..{hi} do not fit NIfTI int32")
        arr = arr.astype(np.int32)
    elif arr.dtype.kind not in "iuf":
        raise WriteError(f"cannot write {arr.dtype} voxels to NIfTI")
    if arr.dtype.byteorder not in ("=", "|"):
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr.transpose(2, 1, 0)  # (z, y, x) -> (x, y, z); F-contiguous view, no copy


def write_nifti(volume: Volume, path, anonymise: bool = True) -> Path:
    """Write ``volume`` to ``path`` (.nii or .nii.gz, gzip by suffix); returns the path."""
    import nibabel as nib

    out = Path(path)
    suffix = nifti_suffix(out)
    if not suffix:
        raise WriteError(f"{out.name}: the file name must end in .nii or .nii.gz")
    geom = volume.geometry
    if geom.is_uneven:
        raise WriteError("slice spacing is uneven and a NIfTI affine cannot express it; "
                         "resample to even spacing first (medviewer convert --resample)")
    data = _data_xyz(volume)
    affine = geom.affine_ras()
    img = nib.Nifti1Image(data, affine)
    hdr = img.header
    hdr.set_data_dtype(data.dtype)
    hdr.set_xyzt_units("mm", "sec")
    if geom.is_orthonormal:
        img.set_sform(affine, code=1)
        img.set_qform(affine, code=1)
    else:
        img.set_sform(affine, code=1)
        img.set_qform(None, code=0)
    desc = volume.description or ""
    if anonymise:
        desc = redact(desc, identity_values(volume.meta or {}))
    desc = "".join(c for c in desc if 32 <= ord(c) < 127)[:79]
    hdr["descrip"] = desc.encode("ascii")
    with atomic_path(out, suffix) as tmp:
        nib.save(img, str(tmp))
    return out
