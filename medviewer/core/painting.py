"""Painting algorithms on (z, y, x) label arrays: brush, threshold, flood and polygon fill,
interpolation between slices. Pure functions returning flat int64 indices (sorted, unique)."""
from __future__ import annotations

from functools import lru_cache
from typing import Optional, Sequence, Tuple

import numpy as np

from .geometry import Geometry
from .lazy_import import LazyModule

# scipy (ndimage, and the interpolation's optimize/sparse: 0.5-0.8 s of imports) is imported
# on first use, not with this module: the annotation UI imports it at start-up.
ndimage = LazyModule("scipy.ndimage")

_EMPTY = np.zeros(0, dtype=np.int64)


def __getattr__(name: str):
    """``interpolate_between_slices`` re-exported from .interpolation, imported on first use."""
    if name == "interpolate_between_slices":
        from .interpolation import interpolate_between_slices

        return interpolate_between_slices
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _spacing_zyx(geometry: Geometry) -> Tuple[float, float, float]:
    sx, sy, sz = geometry.spacing  # uneven series: the median step (good enough for a brush)
    return (sz, sy, sx)


@lru_cache(maxsize=64)
def _ball_offsets(radius_mm: float, spacing_zyx: tuple, fixed_axis: Optional[int]) -> np.ndarray:
    """Integer (dz, dy, dx) offsets of voxel centres within ``radius_mm`` of the centre voxel,
    in lexicographic order (so shifted flat indices stay sorted). Always holds (0, 0, 0)."""
    sp = np.asarray(spacing_zyx, dtype=float)
    half = np.floor(radius_mm / sp + 1e-9).astype(int)
    if fixed_axis is not None:
        half[fixed_axis] = 0
    axes = [np.arange(-h, h + 1) for h in half]
    dz, dy, dx = np.meshgrid(*axes, indexing="ij")
    d2 = (dz * sp[0]) ** 2 + (dy * sp[1]) ** 2 + (dx * sp[2]) ** 2
    inside = d2 <= radius_mm ** 2 + 1e-9
    offs = np.stack([dz[inside], dy[inside], dx[inside]], axis=1).astype(np.int64)
    offs.flags.writeable = False
    return offs


def brush_offsets(geometry: Geometry, radius_mm: float, fixed_axis: Optional[int]) -> np.ndarray:
    """(n, 3) zyx voxel offsets of a brush (cached per radius, spacing and plane)."""
    sp = tuple(round(s, 6) for s in _spacing_zyx(geometry))
    return _ball_offsets(round(max(float(radius_mm), 0.0), 6), sp,
                         None if fixed_axis is None else int(fixed_axis))


def brush_indices(geometry: Geometry, center_zyx, radius_mm: float,
                  fixed_axis: Optional[int]) -> np.ndarray:
    """Flat indices of a disc (in the plane where array axis ``fixed_axis`` is constant) or a
    sphere (``fixed_axis=None``) of ``radius_mm`` around the voxel nearest ``center_zyx``,
    clipped to the volume. Cost is O(brush size), independent of the volume size."""
    shape = np.asarray(geometry.shape, dtype=np.int64)
    c = np.round(np.asarray(center_zyx, dtype=float)).astype(np.int64)
    offs = brush_offsets(geometry, radius_mm, fixed_axis)
    lo, hi = offs.min(axis=0) + c, offs.max(axis=0) + c
    if np.any(hi < 0) or np.any(lo >= shape):
        return _EMPTY
    pts = offs + c
    if np.any(lo < 0) or np.any(hi >= shape):
        pts = pts[np.all((pts >= 0) & (pts < shape), axis=1)]
    strides = np.array([shape[1] * shape[2], shape[2], 1], dtype=np.int64)
    return pts @ strides


def brush_segment_indices(geometry: Geometry, start_zyx, end_zyx, radius_mm: float,
                          fixed_axis: Optional[int]) -> np.ndarray:
    """Union of brush dabs along a mouse drag from ``start_zyx`` to ``end_zyx`` (dabs at most
    half a radius apart, so fast moves leave no gaps)."""
    a = np.asarray(start_zyx, dtype=float)
    b = np.asarray(end_zyx, dtype=float)
    sp = np.asarray(_spacing_zyx(geometry))
    length_mm = float(np.linalg.norm((b - a) * sp))
    step = max(float(radius_mm) / 2.0, float(sp.min()) / 2.0)
    n = int(np.ceil(length_mm / step)) if length_mm > 0 else 0
    if n == 0:
        return brush_indices(geometry, b, radius_mm, fixed_axis)
    centres = np.unique(np.round(a + np.linspace(0.0, 1.0, n + 1)[:, None] * (b - a)), axis=0)
    parts = [brush_indices(geometry, c, radius_mm, fixed_axis) for c in centres]
    return np.unique(np.concatenate(parts))


def _gather(image: np.ndarray, indices: np.ndarray) -> np.ndarray:
    if image.flags.c_contiguous:
        return image.reshape(-1)[indices]
    return image[np.unravel_index(indices, image.shape)]


def in_range(indices, image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The indices whose image value lies in [lo, hi] (threshold paint)."""
    idx = np.asarray(indices, dtype=np.int64)
    if idx.size == 0:
        return _EMPTY
    v = _gather(image, idx)
    return idx[(v >= lo) & (v <= hi)]


def flood_fill(image: np.ndarray, seed_zyx, lo: float, hi: float,
               fixed_axis: Optional[int]) -> np.ndarray:
    """Voxels connected to ``seed_zyx`` (face connectivity) whose values lie in [lo, hi]:
    on the seed's slice across array axis ``fixed_axis`` (2D) or in the whole volume
    (``fixed_axis=None``). Empty when the seed itself is out of range or outside."""
    seed = tuple(int(round(float(v))) for v in seed_zyx)
    if any(s < 0 or s >= n for s, n in zip(seed, image.shape[:3])):
        return _EMPTY
    if fixed_axis is None:
        region = image
        seed_r = seed
    else:
        sl = [slice(None)] * 3
        sl[fixed_axis] = seed[fixed_axis]
        region = image[tuple(sl)]
        seed_r = tuple(s for a, s in enumerate(seed) if a != fixed_axis)
    v = region[seed_r]
    if not (lo <= v <= hi):
        return _EMPTY
    mask = (region >= lo) & (region <= hi)
    lab, _ = ndimage.label(mask)  # default structure: face connectivity
    comp = np.flatnonzero(lab.reshape(-1) == lab[seed_r])
    if fixed_axis is None:
        return comp.astype(np.int64)
    pos2 = np.unravel_index(comp, region.shape)
    pos3 = list(pos2)
    pos3.insert(fixed_axis, np.full(len(comp), seed[fixed_axis], dtype=np.int64))
    return np.ravel_multi_index(tuple(pos3), image.shape[:3]).astype(np.int64)


def _plane_indices(shape, fixed_axis: int, slice_index: int, rr, cc) -> np.ndarray:
    pos = [rr.astype(np.int64), cc.astype(np.int64)]
    pos.insert(fixed_axis, np.full(len(rr), int(slice_index), dtype=np.int64))
    return np.ravel_multi_index(tuple(pos), tuple(shape))


def polygon_mask(plane_shape, points: Sequence) -> np.ndarray:
    """Bool (rows, cols) mask of a closed polygon given as (row, col) vertices: pixels whose
    centre is inside by the even-odd rule, plus every pixel the outline passes through."""
    nr, nc = int(plane_shape[0]), int(plane_shape[1])
    mask = np.zeros((nr, nc), dtype=bool)
    p = np.asarray(points, dtype=float).reshape(-1, 2)
    if len(p) == 0:
        return mask
    # interior: scanline even-odd at every pixel-centre row
    if len(p) >= 3:
        r1, c1 = p[:, 0], p[:, 1]
        r2, c2 = np.roll(r1, -1), np.roll(c1, -1)
        r_lo = max(int(np.ceil(r1.min())), 0)
        r_hi = min(int(np.floor(r1.max())), nr - 1)
        if r_lo <= r_hi:
            rows = np.arange(r_lo, r_hi + 1, dtype=float)[:, None]
            crosses = (r1 > rows) != (r2 > rows)
            with np.errstate(divide="ignore", invalid="ignore"):
                x = c1 + (rows - r1) * (c2 - c1) / (r2 - r1)
            x = np.where(crosses, x, np.inf)
            x.sort(axis=1)
            counts = crosses.sum(axis=1)
            for i, row in enumerate(range(r_lo, r_hi + 1)):
                xs = x[i, :counts[i]]
                for a, b in zip(xs[0::2], xs[1::2]):
                    ca, cb = max(int(np.ceil(a)), 0), min(int(np.floor(b)), nc - 1)
                    if ca <= cb:
                        mask[row, ca:cb + 1] = True
    # boundary: sample every edge finely and take the pixels it passes through
    q = np.vstack([p, p[:1]])
    for (ra, ca), (rb, cb) in zip(q[:-1], q[1:]):
        n = int(np.ceil(max(abs(rb - ra), abs(cb - ca)) * 4)) + 1
        t = np.linspace(0.0, 1.0, n + 1)
        rr = np.round(ra + t * (rb - ra)).astype(np.int64)
        cc = np.round(ca + t * (cb - ca)).astype(np.int64)
        ok = (rr >= 0) & (rr < nr) & (cc >= 0) & (cc < nc)
        mask[rr[ok], cc[ok]] = True
    return mask


def polygon_indices(shape, fixed_axis: int, slice_index: int, points: Sequence) -> np.ndarray:
    """Flat indices of a polygon / lasso on slice ``slice_index`` across array axis
    ``fixed_axis``; ``points`` are (row, col) in index units of the two other axes in
    increasing axis order (e.g. (y, x) for an axial slice, (z, x) for coronal)."""
    shape = tuple(int(s) for s in shape[:3])
    if not 0 <= int(slice_index) < shape[fixed_axis]:
        return _EMPTY
    plane = tuple(n for a, n in enumerate(shape) if a != fixed_axis)
    rr, cc = np.nonzero(polygon_mask(plane, points))
    return _plane_indices(shape, fixed_axis, slice_index, rr, cc)


def label_indices(labels: np.ndarray, value: int) -> np.ndarray:
    """Flat indices of every voxel of ``value``."""
    return np.flatnonzero(labels.reshape(-1) == int(value)).astype(np.int64)
