"""Slice sorting and true geometry: order along the normal, spacing from positions, gaps,
uneven spacing, gantry tilt, duplicate positions (4D), and defaults when positions are missing.

Nothing is silently averaged: uneven or missing slices keep their true offsets
(``Geometry.slice_offsets``); a tilted stack keeps its true (non-orthogonal) stacking vector.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from medviewer.core.geometry import Geometry

RESAMPLE_HINT = ("geometry kept as acquired (resample only on request: View > Resample to even "
                 "spacing, or convert --resample)")
DUP_TOL_MM = 0.01  # positions closer than this along the normal are "the same position"
TILT_TOL_DEG = 0.1
MAX_MISSING_MULTIPLE = 10  # a gap of more than this many steps is "uneven", not "missing"


@dataclass
class StackResult:
    order: list  # indices into the input frames, one per output slice (z order)
    geometry: Geometry
    warnings: list = field(default_factory=list)
    n_volumes: int = 1


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _cosines(iop: Optional[Sequence[float]]) -> tuple:
    if iop is None:
        return np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    r = np.asarray(iop[:3], dtype=float)
    c = np.asarray(iop[3:6], dtype=float)
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(c))):
        raise ValueError("invalid ImageOrientationPatient")
    with np.errstate(over="ignore", invalid="ignore"):
        nr, nc = np.linalg.norm(r), np.linalg.norm(c)
    if not (1e-6 <= nr < np.inf and 1e-6 <= nc < np.inf) or abs(np.dot(r / nr, c / nc)) > 0.01:
        raise ValueError("invalid ImageOrientationPatient")
    return r / nr, c / nc


SPACING_UNKNOWN = "Pixel spacing unknown: 1 mm assumed"


def stack_frames(positions: Sequence[Optional[Sequence[float]]], iop, pixel_spacing,
                 shape_yx: tuple, temporal_keys: Optional[Sequence] = None,
                 fallback_z: Optional[float] = None, gantry_tilt: float = 0.0) -> StackResult:
    """Sort frames into a volume. ``positions``: IPP of each frame (None when unknown).

    ``temporal_keys`` order frames that share a position (first one wins)."""
    n = len(positions)
    keys = list(temporal_keys) if temporal_keys is not None else [0] * n
    warnings: list = []
    sx, sy = 1.0, 1.0
    if fallback_z is not None and not (np.isfinite(fallback_z) and fallback_z > 0):
        fallback_z = None
    if pixel_spacing is not None and all(0 < float(v) < np.inf for v in pixel_spacing):
        sy, sx = float(pixel_spacing[0]), float(pixel_spacing[1])
    else:
        warnings.append(SPACING_UNKNOWN)
    try:
        row, col = _cosines(iop)
    except ValueError:
        row, col = _cosines(None)
        warnings.append("Invalid image orientation: identity direction assumed")
        iop = None
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)

    if n == 0:
        raise ValueError("no frames to stack")
    if any(p is None for p in positions) or iop is None:
        return _unpositioned(positions, row, col, normal, (sx, sy), shape_yx, fallback_z, warnings)

    pts = np.asarray(positions, dtype=float)
    with np.errstate(over="ignore", invalid="ignore"):
        dist = pts @ normal
    if not np.all(np.isfinite(dist)):
        raise ValueError("slice positions are not finite numbers")
    order = sorted(range(n), key=lambda i: (round(dist[i] / DUP_TOL_MM), keys[i], i))
    # cluster equal positions; keep the first frame of each (first temporal index)
    clusters: list = []
    for i in order:
        if clusters and abs(dist[i] - dist[clusters[-1][0]]) < DUP_TOL_MM:
            clusters[-1].append(i)
        else:
            clusters.append([i])
    chosen = [c[0] for c in clusters]
    sizes = [len(c) for c in clusters]
    n_volumes = max(sizes)
    if n_volumes > 1:
        if min(sizes) == n_volumes:
            warnings.append(f"{n_volumes} volumes found at the same slice positions (4D series); "
                            f"showing the first volume ({len(chosen)} slices)")
        else:
            dup = sum(s - 1 for s in sizes)
            warnings.append(f"Duplicate slice positions: {dup} extra image(s) at positions "
                            f"already filled; the first image at each position is shown")
    nz = len(chosen)
    origin = pts[chosen[0]]
    if nz == 1:
        sz = fallback_z if fallback_z and fallback_z > 0 else 1.0
        direction = np.column_stack([row, col, normal])
        if not fallback_z:
            warnings.append("Single slice: slice thickness unknown, 1 mm assumed")
        geom = Geometry(shape=(1,) + tuple(shape_yx), spacing=(sx, sy, sz), origin=origin,
                        direction=tuple(direction.ravel()))
        return StackResult(chosen, geom, warnings, n_volumes)

    d = dist[chosen] - dist[chosen[0]]
    p = pts[chosen]
    # stacking vector per mm along the normal, fitted over all slices
    disp = p - origin
    v = np.linalg.lstsq(d[:, None], disp, rcond=None)[0][0]
    resid = np.abs(disp - d[:, None] * v[None, :]).max()
    zdir = v / np.linalg.norm(v)
    cos_t = float(np.clip(np.dot(zdir, normal), -1.0, 1.0))
    tilt = float(np.degrees(np.arccos(cos_t)))
    if tilt > TILT_TOL_DEG:
        warnings.append(f"Gantry tilt: slices are stacked {tilt:.2f} degrees off the slice "
                        f"normal; geometry kept as acquired (sheared volume)")
    else:
        zdir, cos_t = normal, 1.0
        if abs(gantry_tilt) > TILT_TOL_DEG:
            warnings.append(f"GantryDetectorTilt is {gantry_tilt:g} degrees but the slice "
                            f"positions show no tilt; positions were used")
    if resid > 0.5:
        warnings.append(f"Slice positions are not on a straight line (off by up to "
                        f"{_fmt(resid)} mm); the fitted stacking direction is used")
    offsets = d / cos_t  # mm along the stacking direction
    steps = np.diff(offsets)
    typical = float(np.median(steps))
    tol = max(0.01, 0.01 * typical)
    ratio = steps / typical
    mult = np.round(ratio)
    is_missing = (mult >= 2) & (mult <= MAX_MISSING_MULTIPLE) & (np.abs(steps - mult * typical) <= tol * mult)
    is_regular = np.abs(steps - typical) <= tol
    slice_offsets = None
    if not np.all(is_regular):
        slice_offsets = tuple(float(o) for o in offsets)
        if np.any(is_missing):
            n_missing = int(np.sum(mult[is_missing] - 1))
            warnings.append(f"Missing slices: about {n_missing} slice(s) missing in "
                            f"{int(np.sum(is_missing))} gap(s) of the {_fmt(typical)} mm step; "
                            f"{RESAMPLE_HINT}")
        if not np.all(is_regular | is_missing):
            warnings.append(f"Uneven slice spacing: steps from {_fmt(float(steps.min()))} to "
                            f"{_fmt(float(steps.max()))} mm; {RESAMPLE_HINT}")
    direction = np.column_stack([row, col, zdir])
    geom = Geometry(shape=(nz,) + tuple(shape_yx), spacing=(sx, sy, typical), origin=origin,
                    direction=tuple(direction.ravel()), slice_offsets=slice_offsets)
    return StackResult(chosen, geom, warnings, n_volumes)


def _unpositioned(positions, row, col, normal, sxy, shape_yx, fallback_z, warnings) -> StackResult:
    n = len(positions)
    first = next((q for q in positions if q is not None), None)
    origin = np.asarray(first, dtype=float) if first is not None else np.zeros(3)
    sz = fallback_z if fallback_z and fallback_z > 0 else 1.0
    if n > 1:
        extra = "" if fallback_z else "; 1 mm between frames assumed"
        warnings.append(f"Frames have no patient positions: stacked in file/frame order{extra}")
    direction = np.column_stack([row, col, normal])
    geom = Geometry(shape=(n,) + tuple(shape_yx), spacing=(sxy[0], sxy[1], sz), origin=origin,
                    direction=tuple(direction.ravel()))
    return StackResult(list(range(n)), geom, warnings, 1)
