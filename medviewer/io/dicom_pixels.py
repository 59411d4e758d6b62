"""Pixel decoding: native fast path, pydicom decoders, bit masking, rescale, colour to RGB.

The output array is allocated once by the reader; these helpers fill one slice at a time
without keeping float copies of the whole volume.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .dicom_index import FileHeader
from .errors import LoadError, guarded, quiet_panic_reports

__all__ = ["LoadError", "MONO", "is_colour", "stored_range", "raw_dtype", "plan_dtype",
           "mask_bits", "read_native_frame", "check_truncation", "can_read_native",
           "decode_frames", "palette_to_rgb", "rgb_to_uint8", "store_mono"]

MONO = ("MONOCHROME1", "MONOCHROME2")
_INT16 = np.iinfo(np.int16)


def is_colour(h: FileHeader) -> bool:
    return h.samples_per_pixel == 3 or h.photometric == "PALETTE COLOR"


def stored_range(h: FileHeader) -> tuple:
    bs = h.bits_stored or h.bits_allocated or 16
    if h.pixel_representation == 1:
        return -(1 << (bs - 1)), (1 << (bs - 1)) - 1
    return 0, (1 << bs) - 1


def raw_dtype(h: FileHeader) -> np.dtype:
    signed = h.pixel_representation == 1
    ba = h.bits_allocated if h.bits_allocated in (8, 16, 32, 64) else 16
    if ba == 1:
        return np.dtype(np.uint8)
    return np.dtype(f"{'i' if signed else 'u'}{ba // 8}")


def plan_dtype(headers: Sequence[FileHeader], rescales: Sequence[tuple]) -> tuple:
    """(output dtype, must_check_range) for monochrome frames: their headers and
    (slope, intercept) pairs, in the same order."""
    uniq = {id(h): h for h in headers}.values()
    if all(s == 1.0 and i == 0.0 for s, i in rescales):
        dtypes = {raw_dtype(h) for h in uniq}
        if len(dtypes) == 1:
            return dtypes.pop(), False
        rescales = [(1.0, 0.0)]
    if not all(float(s).is_integer() and float(i).is_integer() for s, i in rescales):
        return np.dtype(np.float32), False
    ranges = [stored_range(h) for h in uniq]
    lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
    vals = [v for s, i in rescales for v in (lo * s + i, hi * s + i)]
    if _INT16.min <= min(vals) and max(vals) <= _INT16.max:
        return np.dtype(np.int16), False
    if max(abs(v) for v in vals) >= 2 ** 31 or max(abs(s) for s, _ in rescales) >= 2 ** 31:
        return np.dtype(np.float32), False  # integer arithmetic could overflow int64
    return np.dtype(np.int16), True  # optimistic: each slice is checked, upgrade if needed


def mask_bits(arr: np.ndarray, h: FileHeader) -> np.ndarray:
    """Keep only BitsStored bits (sign-extended when signed), as DICOM requires."""
    ba, bs = arr.dtype.itemsize * 8, h.bits_stored
    if not bs or bs >= ba or arr.dtype.kind not in "iu":
        return arr
    if h.pixel_representation == 1:
        shift = ba - bs
        return (arr.astype(arr.dtype, copy=False) << shift) >> shift
    return arr & np.array((1 << bs) - 1, dtype=arr.dtype)


def read_native_frame(h: FileHeader, frame: int = 0) -> np.ndarray:
    """Fast path: one monochrome frame straight from the file (native transfer syntax)."""
    dt = raw_dtype(h)
    if h.transfer_syntax == "1.2.840.10008.1.2.2":
        dt = dt.newbyteorder(">")
    count = h.rows * h.columns
    frame_bytes = count * dt.itemsize
    check_truncation(h)
    arr = np.fromfile(h.path, dtype=dt, count=count, offset=h.pixel_offset + frame * frame_bytes)
    if arr.size != count:
        raise LoadError(f"pixel data truncated: expected {h.expected_pixel_bytes} bytes, "
                        f"found {max(0, h.file_size - h.pixel_offset)} ({Path(h.path).name})")
    if not dt.isnative:
        arr = arr.astype(dt.newbyteorder("="))
    return mask_bits(arr.reshape(h.rows, h.columns), h)


def check_truncation(h: FileHeader) -> None:
    """Raise LoadError when the file is too short for its (native) pixel data."""
    if h.pixel_offset is None or not h.is_native:
        return
    expected = h.expected_pixel_bytes
    found = min(h.file_size - h.pixel_offset, h.pixel_length if h.pixel_length is not None
                else h.file_size)
    if found < expected:
        raise LoadError(f"pixel data truncated: expected {expected} bytes, found "
                        f"{max(found, 0)} ({Path(h.path).name})")


def can_read_native(h: FileHeader) -> bool:
    return (h.is_native and h.pixel_offset is not None and h.samples_per_pixel == 1
            and h.photometric in MONO and h.bits_allocated in (8, 16, 32))


def decode_frames(ds, h: FileHeader, index: Optional[int] = None) -> np.ndarray:
    """Decode with pydicom: all frames (index None) or one; colour comes back RGB uint8."""
    from pydicom.pixels import pixel_array

    name = Path(h.path).name
    # decoders raise many types, pyo3 panics (BaseException) included: one clear error
    with guarded(name, describe=lambda exc: _as_load_error(exc, ds, h)), quiet_panic_reports():
        arr = pixel_array(ds, index=index) if index is not None else ds.pixel_array
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if h.photometric == "PALETTE COLOR":
        with guarded(name, "cannot apply the palette"):
            arr = palette_to_rgb(arr, ds)
    elif arr.ndim >= 3 and arr.shape[-1] == 3 and h.samples_per_pixel == 3:
        arr = rgb_to_uint8(arr, h)
    elif h.samples_per_pixel == 1:
        arr = mask_bits(arr, h)
    return arr


def palette_to_rgb(arr: np.ndarray, ds) -> np.ndarray:
    from pydicom.pixels import apply_color_lut

    rgb = apply_color_lut(arr, ds)
    if rgb.dtype.itemsize > 1:
        # 16-bit LUT entries: keep the top 8 bits
        rgb = (rgb >> (rgb.dtype.itemsize * 8 - 8)).astype(np.uint8)
    return rgb.astype(np.uint8, copy=False)


def rgb_to_uint8(arr: np.ndarray, h: FileHeader) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    bits = h.bits_stored or arr.dtype.itemsize * 8
    return (arr >> max(0, bits - 8)).astype(np.uint8)


def _as_load_error(exc: BaseException, ds, h: FileHeader) -> LoadError:
    name = Path(h.path).name
    msg = str(exc)
    if isinstance(exc, MemoryError):
        return LoadError(f"not enough memory to decode the pixel data ({name})")
    m = re.search(r"less than expected \((\d+) vs (\d+) bytes\)", msg)
    if m:
        return LoadError(f"pixel data truncated: expected {m.group(2)} bytes, found "
                         f"{m.group(1)} ({name})")
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        return LoadError(f"pixel data truncated or missing: the file ends before its pixel "
                         f"data is complete ({name})")
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    tsname = getattr(ts, "name", str(ts or "unknown"))
    lines = [ln.strip() for ln in msg.strip().splitlines() if ln.strip()]
    detail = "; ".join(lines[1:] if len(lines) > 1 else lines)[:300] or type(exc).__name__
    if not isinstance(exc, Exception):  # e.g. a Rust decoder's panic
        detail = f"{type(exc).__name__}: {detail}"
    low = msg.lower()
    if "no pixel data handlers" in low or "missing required" in low or "no plugins" in low \
            or "not supported" in low:
        return LoadError(f"unsupported transfer syntax {tsname}: {detail} ({name})")
    return LoadError(f"cannot decode pixel data ({tsname}): {detail} ({name})")


def store_mono(out: np.ndarray, z: int, raw: np.ndarray, slope: float, intercept: float,
               check: bool) -> Optional[np.ndarray]:
    """Write rescaled ``raw`` into ``out[z]``. Returns a new (float32) array if ``out`` had
    to be upgraded because a value did not fit int16, else None."""
    if slope == 1.0 and intercept == 0.0 and not check and out.dtype == raw.dtype:
        out[z] = raw
        return None
    if out.dtype == np.float32:
        np.multiply(raw, np.float32(slope), out=out[z], casting="unsafe")
        out[z] += np.float32(intercept)
        return None
    if out.dtype.kind in "iu" and float(slope).is_integer() and float(intercept).is_integer():
        if not check and slope == 1.0 and raw.dtype == out.dtype:
            np.add(raw, np.array(intercept, dtype=out.dtype), out=out[z])
            return None
        tmp = raw.astype(np.int64 if raw.dtype.itemsize >= 4 else np.int32)
        if slope != 1.0:
            tmp *= int(slope)
        tmp += int(intercept)
        info = np.iinfo(out.dtype)
        if tmp.min() < info.min or tmp.max() > info.max:
            new = out.astype(np.float32)
            new[z] = tmp
            return new
        out[z] = tmp
        return None
    new = out.astype(np.float32)
    store_mono(new, z, raw, slope, intercept, False)
    return new
