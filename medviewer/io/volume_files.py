"""Reading non-DICOM volume files (NIfTI, NRRD, MetaImage, FreeSurfer MGH/MGZ) into Volumes.

NIfTI, NRRD and MetaImage go through SimpleITK, whose origin/spacing/direction are already
DICOM LPS with direction columns along the (x, y, z) index axes, exactly our Geometry
convention; its pixel buffer is already (z, y, x) and becomes our array without a copy
(``volume_pixels.image_array``). A NIfTI whose voxels need no scaling (uncompressed, or
compressed up to 16 MiB of voxels) has only its header read by SimpleITK and its voxels
read straight into our array (``volume_pixels``): one pass, one buffer, where SimpleITK
holds the voxels twice while it reads. FreeSurfer MGH/MGZ (which SimpleITK cannot read)
and NIfTI files that SimpleITK refuses (e.g. a sheared sform) go through nibabel, whose
data are (i, j, k) = (x, y, z) with a RAS affine: we transpose to (z, y, x) and convert the
affine with ``Geometry.from_affine_ras``.

Data types are kept as stored (int16 stays int16); NIfTI scl_slope/scl_inter are applied
by the library when they are not the identity. 4D and multi-component images keep their
first volume/component with a warning; 3-component uint8 images become RGB (z, y, x, 3);
2D images become one-slice volumes.

Modality: these formats carry none, except MetaImage's ``Modality`` field which we honour.
Otherwise ``modality`` stays "" (the UI then offers percentile windows) unless the values
look unmistakably like Hounsfield units (see ``looks_like_hu``): then "CT"/"HU", which only
adds the CT window presets to the list.
"""
from __future__ import annotations

import gzip
import os
import re
import struct
import zlib
from pathlib import Path

import numpy as np

from medviewer.core.geometry import Geometry
from medviewer.core.volume import Volume

from .errors import LoadError, guarded, passthrough
from .volume_checks import check_nibabel_size, nifti_plan, sitk_reader
from .volume_pixels import (header_reader, image_array, raw_nifti_plan, read_raw_nifti,
                            small_gz_header)

__all__ = ["VOLUME_SUFFIXES", "LoadError", "is_volume_file", "read_volume_file", "looks_like_hu"]

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".mgz", ".mgh")
_NIBABEL_ONLY = (".mgz", ".mgh")
_FORMAT_NAMES = {".nii.gz": "NIfTI", ".nii": "NIfTI", ".nrrd": "NRRD", ".nhdr": "NRRD",
                 ".mha": "MetaImage", ".mhd": "MetaImage", ".mgz": "MGH", ".mgh": "MGH"}
_MET_MODALITIES = {"MET_MOD_CT": ("CT", "HU"), "MET_MOD_MR": ("MR", ""), "MET_MOD_NM": ("NM", ""),
                   "MET_MOD_US": ("US", "")}


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suf in VOLUME_SUFFIXES:
        if name.endswith(suf):
            return suf
    return ""


def is_volume_file(path) -> bool:
    """True when the file name has a volume-file suffix we read (case-insensitive)."""
    return bool(_suffix(Path(path)))


def looks_like_hu(array: np.ndarray) -> bool:
    """Integer-valued data spanning air to soft tissue/bone, with real air present.

    min <= -900, max >= 200, at least 1% of (sampled) voxels near air (-1100..-900) and far
    fewer just below air (-1300..-1100, where CT has nothing but padding values below).
    The air peak keeps MR phase maps (spread over -4096..4095) out."""
    if array.ndim != 3 or array.size == 0 or array.dtype.kind not in "iuf":
        return False
    flat = array.reshape(-1)
    if flat.size > 1_000_000:  # a contiguous copy: each test below would gather again
        flat = np.ascontiguousarray(flat[:: flat.size // 1_000_000 + 1])
    if array.dtype.kind == "f" and not (np.all(np.isfinite(flat))
                                        and np.array_equal(flat, np.round(flat))):
        return False
    lo, hi = float(flat.min()), float(flat.max())
    if lo > -900 or hi < 200:
        return False
    air = np.count_nonzero((flat >= -1100) & (flat <= -900))
    below_air = np.count_nonzero((flat >= -1300) & (flat < -1100))  # empty in CT but padding
    return air >= 0.01 * flat.size and air >= 4 * below_air


def read_volume_file(path, reporter=None) -> Volume:
    """Read one NIfTI/NRRD/MetaImage/MGH file. Raises LoadError with the reason (whatever
    the library raised: see ``errors.guarded``)."""
    p = Path(path)
    progress = passthrough(reporter) if reporter is not None else None
    with guarded(p.name, "cannot read", progress):
        return _read_volume_file(p, progress)


def _read_volume_file(p: Path, reporter) -> Volume:
    suf = _suffix(p)
    if not suf:
        raise LoadError(f"{p.name}: not a volume file (expected one of {', '.join(VOLUME_SUFFIXES)})")
    if not p.is_file():
        raise LoadError(f"{p.name}: no such file")
    if reporter is not None:
        reporter(0, 1, f"Reading {p.name}")
    warnings: list = []
    meta = {"format": _FORMAT_NAMES[suf], "file": p.name}
    reader, nifti = "sitk", None
    if suf in (".nii", ".nii.gz"):
        reader, why, nifti = _check_nifti(p)
        if why:
            warnings.append(f"read with nibabel ({why})")
    if suf in _NIBABEL_ONLY or reader == "nibabel":
        array, geometry, modality = _read_nibabel(p, warnings)
    else:
        try:
            array, geometry, modality = _read_sitk(p, warnings, nifti)
        except _SitkRefused as exc:
            if suf not in (".nii", ".nii.gz"):
                raise LoadError(f"{p.name}: cannot read: {exc}") from None
            array, geometry, modality = _read_nibabel(p, warnings)
            warnings.append(f"read with nibabel (SimpleITK refused it: {exc})")
    meta["dtype"] = str(array.dtype)
    units = ""
    if modality:
        units = _MET_MODALITIES.get("MET_MOD_" + modality, ("", ""))[1]
    elif array.ndim == 3 and looks_like_hu(array):
        modality, units = "CT", "HU"
        meta["modality_guessed"] = True
    try:
        vol = Volume(array=array, geometry=geometry, modality=modality,
                     description=_strip_suffix(p.name, suf), units=units, warnings=warnings,
                     meta=meta, source_paths=[str(p)], uid=str(p.resolve()))
    except ValueError as exc:
        raise LoadError(f"{p.name}: {exc}") from None
    if reporter is not None:
        reporter(1, 1, "Done")
    return vol


def _strip_suffix(name: str, suf: str) -> str:
    return name[: len(name) - len(suf)]


class _SitkRefused(Exception):
    pass


def _first_line(exc: BaseException) -> str:
    """The useful part of a library error: ITK's 'ERROR: Class(0x..): text' line, else the last."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for ln in lines:
        if "ERROR:" in ln:
            text = ln.split("ERROR:", 1)[1].strip()
            return re.sub(r"^\w+\(0x[0-9a-fA-F]+\):\s*", "", text)
    return lines[-1] if lines else type(exc).__name__


def _check_nifti(p: Path) -> tuple:
    """Check a NIfTI header before any reader allocates from it; returns (reader, why,
    nifti): nifti is (nibabel's header, where the voxels start) for ``_read_sitk``'s raw
    reads, None when the file's vox_offset points into the header (SimpleITK reads those).

    The memory budget and finite geometry (``volume_checks.nifti_plan``), then the size:
    SimpleITK reads a truncated NIfTI without error (garbage voxels). .nii: the file must
    hold vox_offset + data bytes. .nii.gz: the gzip trailer's ISIZE must equal that size
    (mod 2**32); when it does not (truncated, or a multi-member gzip), we decompress the
    stream once, up to that size, to count the bytes and to find a missing end-of-stream."""
    import nibabel as nib

    try:
        img = nib.load(str(p))
        hdr = img.header  # a copy whose vox_offset says 0: the file's is the proxy's offset
        data_bytes, reader, why = nifti_plan(p, hdr)
        offset = _data_offset(img)
        need = offset + data_bytes
        nifti = (hdr, offset) if offset == int(img.dataobj.offset) else None
    except LoadError:
        raise
    except Exception as exc:
        raise LoadError(f"{p.name}: cannot read the NIfTI header: {_first_line(exc)}") from None
    if not p.name.lower().endswith(".gz"):
        have = p.stat().st_size
        if have < need:
            raise LoadError(f"{p.name}: file is truncated ({have} bytes, the header needs {need})")
        return reader, why, nifti
    with open(p, "rb") as fh:
        fh.seek(-4, os.SEEK_END)
        isize = struct.unpack("<I", fh.read(4))[0]
    if isize == need % (1 << 32):
        return reader, why, nifti
    have = 0
    try:
        with gzip.open(p, "rb") as gz:
            while have < need:
                block = gz.read(1 << 22)
                if not block:
                    break
                have += len(block)
    except (EOFError, OSError, zlib.error) as exc:
        raise LoadError(f"{p.name}: compressed data is truncated or corrupt ({exc})") from None
    if have < need:
        raise LoadError(f"{p.name}: file is truncated ({have} bytes uncompressed, the header "
                        f"needs {need})")
    return reader, why, nifti


# ---------------------------------------------------------------------------- SimpleITK
def _read_sitk(p: Path, warnings: list, nifti=None):
    """SimpleITK reads the header; the voxels come from ``read_raw_nifti`` when ``nifti``
    (nibabel's header, where the voxels start) allows a raw read, else from SimpleITK."""
    reader, plan = _nifti_header_reader(p, nifti)
    try:
        if reader is None:
            reader = sitk_reader(p)  # the header first: finite geometry, within the budget
            if nifti is not None and not p.name.lower().endswith(".gz"):
                plan = raw_nifti_plan(*nifti, reader)
        img = reader.Execute() if plan is None else None
    except RuntimeError as exc:
        raise _SitkRefused(_first_line(exc)) from None
    src = reader if img is None else img
    modality = ""
    if src.HasMetaDataKey("Modality"):
        modality = _MET_MODALITIES.get(src.GetMetaData("Modality").strip(), ("", ""))[0]
    dim = src.GetDimension()
    size = tuple(int(s) for s in src.GetSize())
    ncomp = reader.GetNumberOfComponents() if img is None else img.GetNumberOfComponentsPerPixel()
    spacing = list(src.GetSpacing())
    origin = list(src.GetOrigin())
    direction = np.asarray(src.GetDirection(), dtype=float).reshape(dim, dim)
    if plan is not None:
        arr = read_raw_nifti(p, plan)  # (z, y, x) or (y, x); a 4D file's first volume
    else:
        try:
            arr = image_array(img)  # (z, y, x[, c]) or (t, z, y, x[, c]) or (y, x[, c])
        except RuntimeError as exc:
            raise LoadError(f"{p.name}: cannot read pixels: {_first_line(exc)}") from None
        del img  # the array owns it now
    if dim > 4 or dim < 2:
        raise LoadError(f"{p.name}: {dim}D images are not supported")
    if dim == 4:
        warnings.append(f"4D image with {size[3]} volumes: showing the first")
        if plan is None:  # SimpleITK read them all: keep a copy of the first, free the rest
            arr = arr[0].copy()
        spacing, origin, direction = spacing[:3], origin[:3], direction[:3, :3]
    elif dim == 2:
        arr = arr[np.newaxis]
        d3 = np.eye(3)
        d3[:2, :2] = direction
        spacing, origin, direction = spacing + [1.0], origin + [0.0], d3
    if ncomp > 1:
        if ncomp == 3 and arr.dtype == np.uint8:
            arr = np.ascontiguousarray(arr)
        else:
            warnings.append(f"{ncomp} components per voxel: showing the first")
            arr = np.ascontiguousarray(arr[..., 0])
    try:
        geom = Geometry(shape=arr.shape[:3], spacing=spacing, origin=origin,
                        direction=tuple(direction.ravel()))
    except ValueError as exc:
        raise LoadError(f"{p.name}: bad geometry: {exc}") from None
    return arr, geom, modality


def _nifti_header_reader(p: Path, nifti) -> tuple:
    """(reader, plan) for a small .nii.gz read raw: SimpleITK reads its header bytes alone
    (``volume_pixels.header_reader``); (None, None) otherwise, and when that fails for any
    reason (then the real file goes to SimpleITK, which says why)."""
    if nifti is None or not p.name.lower().endswith(".gz"):
        return None, None
    try:
        head = small_gz_header(p, *nifti)
        reader = header_reader(head) if head is not None else None
    except (RuntimeError, LoadError, OSError, EOFError, zlib.error):
        return None, None
    if reader is None:
        return None, None
    plan = raw_nifti_plan(*nifti, reader)
    return (reader, plan) if plan is not None else (None, None)


# ---------------------------------------------------------------------------- nibabel
def _data_offset(img) -> int:
    """Where a NIfTI's voxels start: its vox_offset (nibabel's data proxy has it; the image's
    header is a copy that says 0), except in a one-file NIfTI whose vox_offset points into
    the header (0 in some old files): then right after the header."""
    import nibabel as nib

    offset = int(getattr(img.dataobj, "offset", 0))
    hdr = img.header
    if isinstance(hdr, nib.Nifti1Header) and bytes(hdr["magic"]).rstrip(b"\x00") in (b"n+1", b"n+2"):
        return max(offset, int(hdr.single_vox_offset))
    return offset


def _data_proxy(img, p: Path):
    """The image's data proxy, starting where ``_data_offset`` says."""
    import nibabel as nib

    start = _data_offset(img)
    if int(getattr(img.dataobj, "offset", start)) < start:
        fixed = img.header.copy()
        fixed.set_data_offset(start)
        return nib.arrayproxy.ArrayProxy(str(p), fixed)
    return img.dataobj


def _read_nibabel(p: Path, warnings: list):
    import nibabel as nib

    try:
        img = nib.load(str(p))
        check_nibabel_size(p, img)
        data = np.asanyarray(_data_proxy(img, p))  # scaled like nibabel does; MGH: no scaling
        affine = np.asarray(img.affine, dtype=float)
    except LoadError:
        raise
    except Exception as exc:  # nibabel raises many types (ImageFileError, EOFError, zlib...)
        raise LoadError(f"{p.name}: cannot read: {_first_line(exc) or type(exc).__name__}") from None
    if data.ndim == 2:
        data = data[:, :, np.newaxis]
    elif data.ndim == 4:
        if data.shape[3] == 3 and data.dtype == np.uint8:
            pass  # kept as RGB below
        else:
            warnings.append(f"4D image with {data.shape[3]} volumes: showing the first")
            data = data[..., 0]
    elif data.ndim != 3:
        raise LoadError(f"{p.name}: {data.ndim}D images are not supported")
    native = data.dtype.newbyteorder("=")  # MGH is big-endian on disk
    order = (2, 1, 0, 3) if data.ndim == 4 else (2, 1, 0)  # (x, y, z[, c]) -> (z, y, x[, c])
    arr = np.ascontiguousarray(data.transpose(order), dtype=native)
    try:
        geom = Geometry.from_affine_ras(affine, arr.shape[:3])
    except ValueError as exc:
        raise LoadError(f"{p.name}: bad geometry: {exc}") from None
    return arr, geom, ""

