"""Header checks of NIfTI/NRRD/MetaImage/MGH files before any reader allocates or computes
from them: the memory budget, and non-finite geometry that makes SimpleITK's NIfTI reader
spin for minutes (a NaN or inf in the sform/qform goes through an SVD that never converges).

- ``nifti_plan(p, hdr)``: checks a NIfTI header (read by nibabel, which only parses it) and
  says which reader to use: SimpleITK, or nibabel when a geometry or scaling field is not
  finite (nibabel uses only the affine it picks; Geometry then rejects it if that one is
  the non-finite one);
- ``check_nibabel_size(p, img)``: the budget for a nibabel read;
- ``sitk_reader(p)``: a SimpleITK reader whose header was read (``ReadImageInformation``)
  and checked (finite spacing/origin/direction, budget) before ``Execute`` reads pixels.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from . import budget
from .errors import LoadError

__all__ = ["nifti_plan", "check_nibabel_size", "sitk_reader", "NIFTI_GEOMETRY_FIELDS"]

NIFTI_GEOMETRY_FIELDS = ("pixdim", "quatern_b", "quatern_c", "quatern_d", "qoffset_x",
                         "qoffset_y", "qoffset_z", "srow_x", "srow_y", "srow_z")
_NIFTI_SCALING = ("scl_slope", "scl_inter")


def _finite(hdr, field: str, count: int = 0) -> bool:
    try:
        values = np.asarray(hdr[field], dtype=float).ravel()
    except (KeyError, ValueError, TypeError):
        return True  # a field this header type does not have
    if count:
        values = values[:count]
    return bool(np.all(np.isfinite(values)))


def _read_bytes(n_voxels: int, itemsize: int, scaled: bool) -> int:
    """Peak of a read: the stored data, plus the scaled copy (float), plus our array."""
    out = max(itemsize, 4) if scaled else itemsize
    return n_voxels * (itemsize + out * (2 if scaled else 1))


def _scaled(hdr) -> bool:
    try:
        slope, inter = float(hdr["scl_slope"]), float(hdr["scl_inter"])
    except (KeyError, ValueError, TypeError):
        return False
    return (math.isfinite(slope) and slope not in (0.0, 1.0)) or \
        (math.isfinite(inter) and inter != 0.0)


def nifti_plan(p: Path, hdr) -> tuple:
    """(data bytes the header declares, reader: "sitk" or "nibabel", why nibabel).

    Raises LoadError for shapes that are not a positive size, MemoryBudgetError when the
    read would need more than the budget."""
    shape = tuple(int(s) for s in hdr.get_data_shape())
    if not shape or any(s <= 0 for s in shape):
        raise LoadError(f"{p.name}: the header declares an empty image (dims {shape})")
    n = int(np.prod(shape, dtype=object))
    itemsize = hdr.get_data_dtype().itemsize
    dims = " x ".join(str(s) for s in shape)
    budget.check(_read_bytes(n, itemsize, _scaled(hdr)), f"a {dims} "
                 f"{hdr.get_data_dtype()} image", p.name)
    bad = [f for f in NIFTI_GEOMETRY_FIELDS if not _finite(hdr, f, 4 if f == "pixdim" else 0)]
    # NaN scl_slope means "no scaling" (nibabel writes it): only infinities are suspect
    bad += [f for f in _NIFTI_SCALING if np.isinf(float(hdr[f]))]
    why = f"non-finite {', '.join(bad)} in the header" if bad else ""
    return n * itemsize, ("nibabel" if bad else "sitk"), why


def check_nibabel_size(p: Path, img) -> None:
    """The budget check for reading ``img`` (a lazily loaded nibabel image)."""
    hdr = img.header
    shape = tuple(int(s) for s in img.shape)
    if not shape or any(s <= 0 for s in shape):
        raise LoadError(f"{p.name}: the header declares an empty image (dims {shape})")
    n = int(np.prod(shape, dtype=object))
    itemsize = hdr.get_data_dtype().itemsize
    budget.check(_read_bytes(n, itemsize, _scaled(hdr)) + n * 8,  # + our transposed copy
                 f"a {' x '.join(str(s) for s in shape)} image", p.name)


def sitk_reader(p: Path):
    """A SimpleITK ImageFileReader for ``p`` with its header read and checked: finite
    spacing, origin and direction, and a pixel buffer within the budget."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(p))
    reader.ReadImageInformation()
    size = tuple(int(s) for s in reader.GetSize())
    geometry = list(reader.GetSpacing()) + list(reader.GetOrigin()) + list(reader.GetDirection())
    if not all(math.isfinite(v) for v in geometry):
        raise LoadError(f"{p.name}: the header's spacing, origin or direction is not finite")
    comps = max(1, int(reader.GetNumberOfComponents()))
    try:
        probe = sitk.Image([1] * len(size), reader.GetPixelID(), comps)
        itemsize = max(1, probe.GetSizeOfPixelComponent())
    except RuntimeError:
        itemsize = 8
    n = int(np.prod(size, dtype=object)) * comps
    budget.check(2 * n * itemsize, f"a {' x '.join(str(s) for s in size)} image", p.name)
    return reader
