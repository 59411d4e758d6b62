"""Pixel buffers of volume files without the copies a plain read makes.

- ``image_array(img)``: a SimpleITK image's pixels as a NumPy (z, y, x[, c]) array that
  *shares* the image's buffer (``GetArrayFromImage`` copies it: twice the volume's memory at
  the peak, and time) and keeps the image alive for as long as the array, or any view of it,
  lives (``GetArrayViewFromImage`` alone does not: its view dangles once the image goes).
- ``raw_nifti_plan(hdr, reader)`` and ``read_raw_nifti(p, plan)``: an uncompressed one-file
  NIfTI whose voxels SimpleITK would return unchanged (one component, no scl_slope/scl_inter
  scaling, a plain numeric type) is read straight from the file into its final array, once:
  NIfTI's (x, y, z) Fortran order is our (z, y, x) C order, so the bytes need no transpose.
  The header was read by SimpleITK (``ImageFileReader.ReadImageInformation``), whose size,
  dimension and pixel type must agree with nibabel's parse of the same header; otherwise
  there is no plan and SimpleITK reads the file as before. A 4D file reads its first volume
  only (the one we keep).
- ``small_gz_header(p, hdr, offset)`` and ``header_reader(head)``: a .nii.gz with voxels up
  to ``GZ_RAW_LIMIT`` that may be read raw: SimpleITK reads its header bytes alone (a
  temporary header-only .nii) for the geometry, and ``read_raw_nifti`` decompresses the
  voxels once with Python's zlib, straight into the array. SimpleITK spends ~10 ms on any
  .nii.gz (it opens the stream twice, header then voxels: 2-4x nibabel's whole read of a
  TotalSegmentator-sized file) and holds the voxels twice while it reads; past ~16 MB its
  zlib (~3x faster than Python's) wins on time while its memory stays that of nibabel's
  read (which holds them twice too), so bigger files go to SimpleITK.
"""
from __future__ import annotations

import gzip
import math
import os
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import LoadError
from .volume_checks import sitk_reader

__all__ = ["image_array", "RawPlan", "raw_nifti_plan", "read_raw_nifti", "GZ_RAW_LIMIT",
           "small_gz_header", "header_reader"]

GZ_RAW_LIMIT = 16 << 20  # voxel bytes of a .nii.gz that Python decompresses itself


class _ImageBuffer:
    """Exposes a SimpleITK image's pixel buffer to NumPy and owns the image: NumPy keeps the
    exporting object as the array's base, so the image lives as long as the array."""

    def __init__(self, img):
        import SimpleITK as sitk

        view = sitk.GetArrayViewFromImage(img)  # a view that does not own the image
        self.__array_interface__ = dict(view.__array_interface__)
        self._image = img


def image_array(img) -> np.ndarray:
    """The pixels of a SimpleITK image, (z, y, x[, c]) as ``GetArrayFromImage`` gives them,
    without copying the buffer; the array keeps the image alive."""
    return np.asarray(_ImageBuffer(img))


def _sitk_dtypes() -> dict:
    import SimpleITK as sitk

    return {sitk.sitkUInt8: np.uint8, sitk.sitkInt8: np.int8, sitk.sitkUInt16: np.uint16,
            sitk.sitkInt16: np.int16, sitk.sitkUInt32: np.uint32, sitk.sitkInt32: np.int32,
            sitk.sitkUInt64: np.uint64, sitk.sitkInt64: np.int64,
            sitk.sitkFloat32: np.float32, sitk.sitkFloat64: np.float64}


@dataclass(frozen=True)
class RawPlan:
    offset: int  # where the voxels start in the file
    dtype: np.dtype  # as stored (byte order included)
    shape_zyx: tuple  # what SimpleITK's array would be: size reversed (first volume of 4D)


def _no_scaling(hdr) -> bool:
    """scl_slope in {0, 1, NaN} and scl_inter in {0, NaN}: no reader scales these."""
    try:
        slope, inter = float(hdr["scl_slope"]), float(hdr["scl_inter"])
    except (KeyError, ValueError, TypeError):
        return False
    return (slope in (0.0, 1.0) or math.isnan(slope)) and (inter == 0.0 or math.isnan(inter))


def _raw_candidate(hdr) -> bool:
    """What nibabel's header alone says: one file, no scaling, a plain numeric type."""
    magic = bytes(hdr["magic"]).rstrip(b"\x00")
    return magic in (b"n+1", b"n+2") and _no_scaling(hdr) and \
        np.dtype(hdr.get_data_dtype()).kind in "iuf"


def raw_nifti_plan(hdr, data_offset: int, reader):
    """A RawPlan when the voxels can be read raw (see the module doc), else None.

    ``hdr``: nibabel's header of a one-file NIfTI; ``data_offset``: where its voxels start
    (``volume_files`` corrects a vox_offset inside the header); ``reader``: SimpleITK's
    ImageFileReader after ``ReadImageInformation``."""
    if not _raw_candidate(hdr) or int(reader.GetNumberOfComponents()) != 1:
        return None
    stored = np.dtype(hdr.get_data_dtype())
    want = _sitk_dtypes().get(reader.GetPixelID())
    if want is None or stored.newbyteorder("=") != np.dtype(want):
        return None
    size = tuple(int(s) for s in reader.GetSize())
    shape = tuple(int(s) for s in hdr.get_data_shape())
    if len(size) not in (2, 3, 4) or math.prod(size) != math.prod(shape):
        return None
    keep = size[:3] if len(size) == 4 else size
    return RawPlan(offset=int(data_offset), dtype=stored, shape_zyx=keep[::-1])


def read_raw_nifti(p: Path, plan: RawPlan) -> np.ndarray:
    """The voxels of ``plan`` read from ``p`` (.nii, or .nii.gz decompressed on the way) into
    a new native-order (z, y, x) array, the only copy."""
    arr = np.empty(plan.shape_zyx, dtype=plan.dtype)
    buf = memoryview(arr.reshape(-1).view(np.uint8))
    if p.name.lower().endswith(".gz"):
        got = _inflate_into(p, plan.offset, buf)
    else:
        got = 0
        with open(p, "rb", buffering=0) as fh:
            fh.seek(plan.offset)
            while got < len(buf):
                n = fh.readinto(buf[got:])
                if not n:
                    break
                got += n
    if got < len(buf):
        raise LoadError(f"{p.name}: file is truncated ({plan.offset + got} bytes"
                        f"{' uncompressed' if p.name.lower().endswith('.gz') else ''}, the "
                        f"header needs {plan.offset + len(buf)})")
    if not plan.dtype.isnative:
        arr = arr.byteswap(inplace=True).view(plan.dtype.newbyteorder("="))
    return arr


def _gz_chunks(fh, stop: int):
    """Decompressed chunks of a (multi-member) gzip stream, about ``stop`` bytes in all, then
    on to the end of the stream so that zlib checks the CRC-32 and length (when the stream
    ends within 1 MiB more: trailing data is not ours to decompress in full)."""
    d = zlib.decompressobj(31)  # 31: gzip header and trailer
    total = 0
    while True:
        data = fh.read(1 << 18)
        if not data:
            if not d.eof:
                raise EOFError("compressed data ended before the end-of-stream marker")
            return
        while data:
            if d.eof:  # another member (zero padding between members is allowed)
                data = data.lstrip(b"\x00")
                if not data:
                    break
                d = zlib.decompressobj(31)
            out = d.decompress(data)
            data = d.unused_data if d.eof else b""
            total += len(out)
            yield out
            if total > stop + (1 << 20):
                return


def _inflate_into(p: Path, skip: int, out: memoryview) -> int:
    """Decompress ``p`` into ``out``, its first ``skip`` bytes dropped; bytes written."""
    pos = -skip
    try:
        with open(p, "rb") as fh:
            for chunk in _gz_chunks(fh, skip + len(out)):
                lo, hi = max(pos, 0), min(pos + len(chunk), len(out))
                if hi > lo:
                    out[lo:hi] = chunk[lo - pos: hi - pos]
                pos += len(chunk)
    except (EOFError, OSError, zlib.error) as exc:
        raise LoadError(f"{p.name}: compressed data is truncated or corrupt ({exc})") from None
    return min(max(pos, 0), len(out))


def small_gz_header(p: Path, hdr, data_offset: int):
    """The header bytes (header and extensions, up to the voxels) of a .nii.gz whose voxels
    may be read raw and hold at most ``GZ_RAW_LIMIT`` bytes; None for any other file
    (SimpleITK reads it)."""
    n = math.prod(int(s) for s in hdr.get_data_shape()) * np.dtype(hdr.get_data_dtype()).itemsize
    if not _raw_candidate(hdr) or n > GZ_RAW_LIMIT or data_offset > GZ_RAW_LIMIT:
        return None
    with gzip.open(p, "rb") as gz:
        head = gz.read(data_offset)
    return head if len(head) == data_offset else None


def header_reader(head: bytes):
    """``volume_checks.sitk_reader`` of a NIfTI's header bytes alone, written to a temporary
    .nii: SimpleITK's geometry for the whole file, which depends on the header alone. Its
    errors name the temporary file: the caller falls back to reading the real file."""
    fd, tmp = tempfile.mkstemp(suffix=".nii", prefix="medviewer-header-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(head)
        return sitk_reader(Path(tmp))
    finally:
        os.unlink(tmp)
