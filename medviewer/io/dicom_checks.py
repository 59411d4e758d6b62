"""Checks of DICOM header values before anything is allocated or decoded from them.

- ``header_problem(h)``: image attributes a reader cannot work with (no Rows/Columns,
  unsupported BitsAllocated/SamplesPerPixel, BitsStored > BitsAllocated, NumberOfFrames that
  is not a positive whole number);
- ``check_frame_count(h, ds)``: NumberOfFrames is never trusted beyond what the pixel data
  can hold (native: its length; encapsulated: one fragment at least per frame);
- ``check_codestreams(h, ds)``: the JPEG / JPEG-LS / JPEG 2000 frame sizes written inside the
  compressed fragments are not larger than Rows x Columns (decoders allocate from those);
- ``check_finite(...)``: positions and rescale values are finite numbers and rescaled values
  fit a float32;
- ``load_estimate(...)``: the peak memory of filling a volume, for the budget check.
"""
from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Iterator, Optional, Sequence

from .dicom_index import FileHeader
from .errors import LoadError

__all__ = ["header_problem", "check_frame_count", "check_codestreams", "check_positions",
           "check_rescale", "frame_bytes", "FRAME_RECORD_BYTES"]

SUPPORTED_BITS = (1, 8, 16, 32, 64)
SUPPORTED_SAMPLES = (1, 3)
FRAME_RECORD_BYTES = 1024  # what one frame's bookkeeping (position, rescale...) costs
_FLOAT32_MAX = float(3.4e38)
_ITEM = 0xFFFEE000
_JPEG_SOF = frozenset((0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE,
                       0xCF, 0xF7))  # F7: JPEG-LS SOF55
_JPEG_NO_LENGTH = frozenset((0x01, 0xD0, 0xD1, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8))


def header_problem(h: FileHeader) -> Optional[str]:
    """Why this file's image attributes cannot be loaded, or None when they can."""
    if h.rows <= 0 or h.columns <= 0:
        return "image attributes missing (Rows/Columns)"
    if h.rows > 0xFFFF or h.columns > 0xFFFF:
        return f"Rows/Columns {h.rows} x {h.columns} out of range"
    if h.bits_allocated not in SUPPORTED_BITS:
        return f"BitsAllocated {h.bits_allocated} is not supported"
    if h.bits_stored > h.bits_allocated:
        return f"BitsStored {h.bits_stored} is more than BitsAllocated {h.bits_allocated}"
    if h.samples_per_pixel not in SUPPORTED_SAMPLES:
        return f"SamplesPerPixel {h.samples_per_pixel} is not supported"
    if h.n_frames < 1:
        return "NumberOfFrames is not a positive whole number"
    return None


def frame_bytes(h: FileHeader) -> int:
    """Bytes of one decoded frame as the header describes it (at least 1)."""
    spp = 2 if h.photometric == "YBR_FULL_422" else h.samples_per_pixel
    return max(1, (h.rows * h.columns * spp * max(h.bits_allocated, 1) + 7) // 8)


def _items(buf) -> Iterator[tuple]:
    """(value offset, length) of each item of encapsulated pixel data, the offset table
    first; stops at the end, at a sequence delimiter or at anything that is not an item."""
    view = memoryview(buf)
    pos, n = 0, len(view)
    while pos + 8 <= n:
        group, elem, length = struct.unpack_from("<HHI", view, pos)
        if (group << 16 | elem) != _ITEM or length == 0xFFFFFFFF:
            return
        yield pos + 8, min(length, n - pos - 8)
        pos += 8 + length


def _pixel_bytes(ds):
    for kw in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if kw in ds:
            return ds[kw].value
    return None


def check_frame_count(h: FileHeader, ds) -> None:
    """LoadError unless the pixel data can hold NumberOfFrames frames."""
    name = Path(h.path).name
    problem = header_problem(h)
    if problem:
        raise LoadError(f"{name}: {problem}")
    data = _pixel_bytes(ds)
    if data is None:  # the scan saw the pixel data element: pydicom dropped it, cut short
        raise LoadError(f"{name}: pixel data truncated or missing: the file ends before its "
                        f"pixel data is complete")
    if h.is_native or not _is_encapsulated(data):
        need = h.n_frames * frame_bytes(h)
        if len(data) < need:
            raise LoadError(f"{name}: NumberOfFrames is {h.n_frames}, which needs {need} bytes "
                            f"of pixel data, but the file holds {len(data)}")
        return
    n_fragments = max(0, sum(1 for _ in _items(data)) - 1)  # the first item is the offset table
    if h.n_frames > n_fragments:
        raise LoadError(f"{name}: NumberOfFrames is {h.n_frames} but the compressed pixel data "
                        f"holds {n_fragments} fragment(s); each frame needs one at least")


def _is_encapsulated(data) -> bool:
    return len(data) >= 8 and struct.unpack_from("<I", data, 0)[0] == 0xE000FFFE


def _jpeg_size(frag) -> Optional[tuple]:
    """(rows, columns) from a JPEG / JPEG-LS frame header (SOFn), None if not found."""
    pos, n = 2, len(frag)
    while pos + 4 <= n:
        if frag[pos] != 0xFF:
            return None
        marker = frag[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in _JPEG_SOF:
            if pos + 9 > n:
                return None
            return struct.unpack_from(">HH", frag, pos + 5)
        if marker in _JPEG_NO_LENGTH:
            pos += 2
            continue
        pos += 2 + struct.unpack_from(">H", frag, pos + 2)[0]
    return None


def _j2k_size(frag) -> Optional[tuple]:
    """(rows, columns) from a JPEG 2000 codestream's SIZ marker, None if not found."""
    i = bytes(frag[:4096]).find(b"\xff\x4f\xff\x51")
    if i < 0 or i + 24 > len(frag):
        return None
    xsiz, ysiz, xo, yo = struct.unpack_from(">IIII", frag, i + 8)
    return max(0, ysiz - yo), max(0, xsiz - xo)


def check_codestreams(h: FileHeader, ds) -> None:
    """LoadError when a compressed frame declares more rows or columns than the header:
    decoders allocate what the codestream declares, before any budget check could see it."""
    if h.is_native:
        return
    data = _pixel_bytes(ds)
    if data is None or not _is_encapsulated(data):
        return
    view = memoryview(data)
    for k, (off, length) in enumerate(_items(data)):
        if k == 0 or length < 4:
            continue  # the offset table; or a fragment too short to hold a header
        frag = view[off:off + length]
        if frag[0] == 0xFF and frag[1] == 0xD8:
            size = _jpeg_size(frag)
        elif frag[0] == 0xFF and frag[1] == 0x4F or bytes(frag[4:8]) == b"jP  ":
            size = _j2k_size(frag)
        else:
            continue  # a continuation fragment or RLE (its decoder is told the size)
        # 0 rows (a height set later by a DNL marker) makes libjpeg allocate without limit
        if size is not None and not (0 < size[0] <= h.rows and 0 < size[1] <= h.columns):
            raise LoadError(f"{Path(h.path).name}: a compressed frame declares {size[0]} x "
                            f"{size[1]} pixels but the header says {h.rows} x {h.columns}")


def check_positions(paths: Sequence[str], positions: Sequence[Optional[tuple]]) -> None:
    """LoadError naming the first file whose ImagePositionPatient is not finite."""
    for path, ipp in zip(paths, positions):
        if ipp is not None and not all(math.isfinite(v) for v in ipp):
            raise LoadError(f"{Path(path).name}: ImagePositionPatient "
                            f"({', '.join(f'{v:g}' for v in ipp)}) is not a finite position")


def check_rescale(path: str, slope: float, intercept: float, stored: tuple) -> None:
    """LoadError when RescaleSlope/Intercept are not finite or the rescaled stored range
    ``stored`` (lo, hi) does not fit a float32."""
    name = Path(path).name
    if not (math.isfinite(slope) and math.isfinite(intercept)):
        raise LoadError(f"{name}: RescaleSlope {slope:g} / RescaleIntercept {intercept:g} are "
                        f"not finite numbers")
    ends = [stored[0] * slope + intercept, stored[1] * slope + intercept]
    if max(abs(v) for v in ends) > _FLOAT32_MAX:
        raise LoadError(f"{name}: RescaleSlope {slope:g} and RescaleIntercept {intercept:g} "
                        f"give values out of range ({min(ends):.3g} to {max(ends):.3g})")
