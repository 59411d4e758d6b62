"""Thick-slab (MIP / MinIP / average) and oblique reformats of a (z, y, x) volume. Pure numpy.

Slabs on the orthogonal planes reduce whole slices of the array (no interpolation): a slab of
``thickness_mm`` holds ``slab_count(thickness_mm, spacing)`` slices of the plane's slice
spacing, centred on the cursor's slice (an even count has one more at the higher index) and cut
at the volume's ends. ``thickness_mm`` 0 is the thin slice.

Oblique planes: an :class:`ObliqueFrame` rotates the three MPR planes together (they stay
mutually perpendicular and pass through the cursor). Each plane's image is sampled on a square
grid (the volume's smallest voxel spacing) by trilinear interpolation, with the same rule as
ITK's linear interpolator: a point is inside when its continuous index lies in
[-0.5, n - 0.5) on every axis (neighbours clamped at the border); points outside get ``fill``.
An oblique slab samples planes one voxel apart along the plane's normal
(:meth:`ObliqueFrame.normal_step`), on a lattice of whole steps from the frame's centre
(:meth:`ObliqueFrame.slab_depths`), and reduces them plane by plane; core.slab_planes keeps a
view's planes so that the next slab computes only the ones it does not share.

View coordinates are millimetres: the pixel (i, j) of a plane's image is centred at
(y, x) = (i * s, j * s). The frame's centre (an LPS point) is shown at the plane's ``anchor``
(y, x), so with no rotation the oblique image lies exactly where the orthogonal one does.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from .geometry import Geometry
from .reslice import _PLANE_AXES, PLANES, PlaneSlice, Reslicer

SLAB_MODES = ("mip", "minip", "average")
SLAB_NAMES = {"mip": "MIP", "minip": "MinIP", "average": "Average"}


# ---------------------------------------------------------------------------- slabs
def slab_count(thickness_mm: float, spacing_mm: float) -> int:
    """Slices in a slab of ``thickness_mm`` at ``spacing_mm`` (at least 1; 0 mm = thin)."""
    if not thickness_mm or thickness_mm <= 0:
        return 1
    if not spacing_mm > 0:
        raise ValueError(f"slice spacing must be positive, got {spacing_mm}")
    return max(1, int(round(float(thickness_mm) / float(spacing_mm))))


def slab_range(index: int, count: int, size: int) -> Tuple[int, int]:
    """[first, stop) of ``count`` slices centred on ``index``, cut to [0, size)."""
    first = int(index) - (count - 1) // 2
    return max(0, first), min(int(size), first + count)


def _check_mode(mode: str) -> None:
    if mode not in SLAB_MODES:
        raise ValueError(f"unknown slab mode {mode!r}; choose from {SLAB_MODES}")


def reduce_slab(stack: np.ndarray, mode: str, axis: int = 0) -> np.ndarray:
    """Max / min / mean (float32) of ``stack`` along ``axis``, the axis kept with length 1."""
    _check_mode(mode)
    if mode == "mip":
        return stack.max(axis=axis, keepdims=True)
    if mode == "minip":
        return stack.min(axis=axis, keepdims=True)
    return stack.mean(axis=axis, keepdims=True, dtype=np.float32)


def plane_slice_spacing(reslicer: Reslicer, plane: str) -> float:
    """Spacing in mm between the slices of an orthogonal ``plane`` (the mean step if uneven)."""
    g = reslicer.geometry
    fixed = reslicer.fixed_axis(plane)
    if fixed == 0 and g.slice_offsets is not None and len(g.slice_offsets) > 1:
        offs = g.slice_offsets
        return float(offs[-1] - offs[0]) / (len(offs) - 1)
    return float(g.spacing[2 - fixed])


def ortho_slab(reslicer: Reslicer, array: np.ndarray, plane: str, index: int,
               thickness_mm: float, mode: str = "mip") -> PlaneSlice:
    """The displayed slab of an orthogonal plane: ``mode`` over the slices that
    ``thickness_mm`` covers around slice ``index`` (a thin slice when it covers one)."""
    _check_mode(mode)
    fixed = reslicer.fixed_axis(plane)
    size = array.shape[fixed]
    index = int(np.clip(index, 0, size - 1))
    n = slab_count(thickness_mm, plane_slice_spacing(reslicer, plane))
    if n == 1:
        return reslicer.extract(array, plane, index)
    a, b = slab_range(index, n, size)
    sel = [slice(None)] * 3
    sel[fixed] = slice(a, b)
    reduced = reduce_slab(array[tuple(sel)], mode, axis=fixed)
    out = reslicer.extract(reduced, plane, 0)  # the same display orientation as a thin slice
    out.index = index
    return out


# ---------------------------------------------------------------------------- sampling
_SPLIT_POINTS = 65536  # fewer samples than this: one thread
_POOL = None


def _workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _pool():
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="reformat")
    return _POOL


def _forget_pool() -> None:  # a forked child has none of the parent's threads
    global _POOL
    _POOL = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def trilinear(array: np.ndarray, z: np.ndarray, y: np.ndarray, x: np.ndarray,
              fill: float = 0.0) -> np.ndarray:
    """Trilinear samples (float32) of a (z, y, x) ``array`` at continuous indices, as ITK's
    linear interpolator takes them: neighbours clamped at the border, points outside
    [-0.5, n - 0.5) on any axis set to ``fill``."""
    from scipy import ndimage  # imported on the first oblique picture, not at start-up

    z, y, x = (np.asarray(c, dtype=np.float64) for c in (z, y, x))  # map_coordinates' own type
    out = np.empty(z.shape, dtype=np.float32)
    if z.ndim == 0 or z.size < _SPLIT_POINTS or _workers() < 2:
        ndimage.map_coordinates(array, (z, y, x), order=1, mode="nearest", output=out)
    else:  # map_coordinates lets go of the GIL: the halves run on two cores when free
        def part(s):
            ndimage.map_coordinates(array, (z[s], y[s], x[s]), order=1, mode="nearest", output=out[s])

        half = z.shape[0] // 2
        list(_pool().map(part, (slice(0, half), slice(half, None))))
    outside = np.zeros(z.shape, dtype=bool)
    for c, n in zip((z, y, x), array.shape):
        outside |= (c < -0.5) | (c >= n - 0.5)
    out[outside] = fill
    return out


def nearest(array: np.ndarray, z, y, x, fill=0) -> np.ndarray:
    """Nearest-neighbour samples (array dtype) at continuous indices (labels)."""
    idx = []
    inside = np.ones(np.shape(z), dtype=bool)
    for c, n in zip((z, y, x), array.shape):
        i = np.floor(np.asarray(c, dtype=np.float64) + 0.5).astype(np.int64)
        inside &= (i >= 0) & (i < n)
        idx.append(np.clip(i, 0, n - 1))
    out = array[tuple(idx)]
    out[~inside] = fill
    return out


def plane_indices(geometry: Geometry, origin_lps, row_dir, col_dir, shape: Tuple[int, int],
                  spacing: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Continuous (z, y, x) indices (float64, each ``shape``) of the grid
    origin + i * spacing * row_dir + j * spacing * col_dir."""
    nr, nc = int(shape[0]), int(shape[1])
    o = np.asarray(origin_lps, dtype=float)
    r = np.asarray(row_dir, dtype=float) * spacing
    c = np.asarray(col_dir, dtype=float) * spacing
    if geometry.slice_offsets is None:  # an affine map: three index points give the grid
        i0, ir, ic = geometry.lps_to_index_zyx(np.stack([o, o + r, o + c]))
        dr, dc = ir - i0, ic - i0
        rows = np.arange(nr, dtype=np.float64)[:, None]
        cols = np.arange(nc, dtype=np.float64)[None, :]
        return tuple(i0[k] + rows * dr[k] + cols * dc[k] for k in range(3))
    ii, jj = np.mgrid[0:nr, 0:nc]
    pts = o + ii.reshape(-1, 1) * r + jj.reshape(-1, 1) * c
    idx = geometry.lps_to_index_zyx(pts)
    return tuple(idx[:, k].reshape(nr, nc) for k in range(3))


def reformat_plane(array: np.ndarray, geometry: Geometry, origin_lps, row_dir, col_dir,
                   shape: Tuple[int, int], spacing: float, *, normal=None,
                   offsets_mm: Sequence[float] = (0.0,), mode: str = "mip",
                   fill: float = 0.0, order: int = 1) -> np.ndarray:
    """A plane (or a slab of planes at ``offsets_mm`` along ``normal``) resampled from
    ``array``: trilinear (``order`` 1, float32) or nearest (``order`` 0, array dtype)."""
    if order not in (0, 1):
        raise ValueError(f"order must be 0 (nearest) or 1 (trilinear), got {order}")
    offsets = list(offsets_mm)
    if len(offsets) > 1:
        _check_mode(mode)
        if normal is None:
            raise ValueError("a slab needs the plane's normal")
    planes = []
    for off in offsets:
        o = np.asarray(origin_lps, dtype=float)
        if off:
            o = o + off * np.asarray(normal, dtype=float)
        z, y, x = plane_indices(geometry, o, row_dir, col_dir, shape, spacing)
        planes.append(trilinear(array, z, y, x, fill) if order == 1 else nearest(array, z, y, x, fill))
        if len(planes) == 2:  # keep at most two pictures: the running result and the new one
            planes = [reduce_planes(planes, mode, out=planes[0])]
    return planes[0] if len(offsets) < 2 else _finish(planes[0], mode, len(offsets))


def reduce_planes(planes: Sequence[np.ndarray], mode: str, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Max / min / sum of equal-shaped pictures, plane by plane (no (n, rows, cols) array):
    the running result goes to ``out`` (a new float32 array when None). A mean is
    :func:`_finish`'s sum / n, so that a slab gives the same numbers however it was summed."""
    _check_mode(mode)
    acc = np.array(planes[0], dtype=np.float32, copy=True) if out is None else out
    if out is not None and out is not planes[0]:
        np.copyto(acc, planes[0])
    fn = {"mip": np.maximum, "minip": np.minimum, "average": np.add}[mode]
    for p in planes[1:]:
        fn(acc, p, out=acc)
    return acc


def _finish(acc: np.ndarray, mode: str, n: int) -> np.ndarray:
    if mode == "average":
        acc /= np.float32(n)
    return acc


def slab_offsets(thickness_mm: float, step_mm: float) -> np.ndarray:
    """Offsets (mm, along the normal) of the planes of an oblique slab, centred on 0."""
    n = slab_count(thickness_mm, step_mm)
    return (np.arange(n) - (n - 1) // 2) * float(step_mm)


@dataclass(frozen=True)
class PlaneStack:
    """The grid of one oblique plane and its parallels: the picture at depth ``d`` (mm along
    ``normal``) samples ``origin + d * normal + i * spacing * row + j * spacing * col``."""

    geometry: Geometry
    origin: np.ndarray  # LPS of pixel (0, 0) at depth 0
    row: np.ndarray
    col: np.ndarray
    normal: np.ndarray
    shape: Tuple[int, int]
    spacing: float
    step: float  # mm between the planes of a slab

    def key(self) -> bytes:
        """Equal for grids whose pictures at equal depths are equal."""
        parts = np.concatenate([self.origin, self.row, self.col, self.normal,
                                [self.shape[0], self.shape[1], self.spacing, self.step]])
        return np.round(parts, 9).tobytes()

    def plane(self, array: np.ndarray, depth: float, fill: float = 0.0, order: int = 1) -> np.ndarray:
        """The picture at ``depth``."""
        return reformat_plane(array, self.geometry, self.origin, self.row, self.col, self.shape,
                              self.spacing, normal=self.normal, offsets_mm=(float(depth),),
                              fill=fill, order=order)

    def image(self, array: np.ndarray, depths: Sequence[float], mode: str = "mip",
              fill: float = 0.0, order: int = 1) -> np.ndarray:
        """The pictures at ``depths`` reduced by ``mode`` (one depth: that picture)."""
        return reformat_plane(array, self.geometry, self.origin, self.row, self.col, self.shape,
                              self.spacing, normal=self.normal, offsets_mm=[float(d) for d in depths],
                              mode=mode, fill=fill, order=order)


# ---------------------------------------------------------------------------- oblique frame
def _base_frame(plane: str) -> np.ndarray:
    """Columns: the plane's display row direction, col direction and normal (LPS)."""
    fixed, (row_ax, row_sign), (col_ax, col_sign) = _PLANE_AXES[plane]
    m = np.zeros((3, 3))
    m[row_ax, 0] = row_sign
    m[col_ax, 1] = col_sign
    m[fixed, 2] = 1.0
    return m


def _in_plane(psi: float) -> np.ndarray:
    c, s = math.cos(psi), math.sin(psi)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotation_about(axis, angle: float) -> np.ndarray:
    """Rotation matrix of ``angle`` radians about the unit vector ``axis`` (right hand)."""
    a = np.asarray(axis, dtype=float)
    a = a / np.linalg.norm(a)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)


@dataclass
class ObliqueFrame:
    """The rotation shared by the three MPR planes, plus per plane an in-plane turn (so the
    view in which one rotates keeps its picture still while its crosshair lines turn) and the
    view position (y, x mm) where ``center`` is shown."""

    geometry: Geometry
    spacing: float  # the pixel size of oblique images (mm)
    center: np.ndarray  # LPS
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    psi: Dict[str, float] = field(default_factory=lambda: {p: 0.0 for p in PLANES})
    anchor: Dict[str, Tuple[float, float]] = field(default_factory=dict)
    extent: Dict[str, Tuple[float, float]] = field(default_factory=dict)  # (height, width) mm

    @classmethod
    def identity(cls, reslicer: Reslicer, center_zyx) -> "ObliqueFrame":
        g = reslicer.geometry
        center = g.index_zyx_to_lps(np.asarray(center_zyx, dtype=float))
        f = cls(g, float(min(g.spacing)), np.asarray(center, dtype=float))
        for p in PLANES:
            rs, cs = reslicer.pixel_spacing(p)
            nr, nc = reslicer.display_shape(p)
            row, col = reslicer.to_display(p, center_zyx)
            f.anchor[p] = (row * rs, col * cs)
            f.extent[p] = (nr * rs, nc * cs)
        return f

    @property
    def is_identity(self) -> bool:
        return bool(np.allclose(self.rotation, np.eye(3), atol=1e-9)
                    and all(abs(v) < 1e-9 for v in self.psi.values()))

    def axes(self, plane: str) -> np.ndarray:
        """Columns: row direction, col direction, normal of ``plane`` now (LPS)."""
        return self.rotation @ _base_frame(plane) @ _in_plane(self.psi[plane])

    def shape(self, plane: str) -> Tuple[int, int]:
        h, w = self.extent[plane]
        return max(1, int(math.ceil(h / self.spacing - 1e-6))), max(1, int(math.ceil(w / self.spacing - 1e-6)))

    def view_of(self, plane: str, lps) -> Tuple[float, float, float]:
        """LPS point -> (y mm, x mm) in ``plane``'s view and its distance (mm) along the normal."""
        a = self.axes(plane)
        u, v, w = a.T @ (np.asarray(lps, dtype=float) - self.center)
        ya, xa = self.anchor[plane]
        return ya + u, xa + v, w

    def lps_of(self, plane: str, y: float, x: float, depth: float) -> np.ndarray:
        """(y, x) mm in ``plane``'s view at ``depth`` mm along its normal -> LPS."""
        a = self.axes(plane)
        ya, xa = self.anchor[plane]
        return self.center + a @ np.array([y - ya, x - xa, depth])

    def recentre(self, lps) -> None:
        """Rotate about ``lps`` from now on, without moving any picture."""
        for p in PLANES:
            y, x, _ = self.view_of(p, lps)
            self.anchor[p] = (y, x)
        self.center = np.asarray(lps, dtype=float)

    def rotate(self, plane: str, angle: float) -> None:
        """Turn the planes by ``angle`` radians about ``plane``'s normal (through the
        centre); ``plane``'s own picture keeps still (its in-plane turn compensates)."""
        old = self.axes(plane)
        self.rotation = rotation_about(old[:, 2], angle) @ self.rotation
        unturned = self.rotation @ _base_frame(plane)
        self.psi[plane] = math.atan2(float(old[:, 0] @ unturned[:, 1]), float(old[:, 0] @ unturned[:, 0]))

    def image(self, array: np.ndarray, plane: str, cursor_lps, thickness_mm: float = 0.0,
              mode: str = "mip", fill: float = 0.0, order: int = 1) -> np.ndarray:
        """``plane``'s picture through ``cursor_lps`` (a slab when ``thickness_mm`` > 0)."""
        _, _, depth = self.view_of(plane, cursor_lps)
        depths = self.slab_depths(plane, depth, thickness_mm) if order == 1 else np.array([depth])
        return self.planes(plane).image(array, depths, mode, fill, order)

    def planes(self, plane: str) -> "PlaneStack":
        """``plane``'s sampling grid now (a frozen copy: safe to hand to another thread)."""
        a = self.axes(plane)
        return PlaneStack(self.geometry, self.lps_of(plane, 0.0, 0.0, 0.0), a[:, 0], a[:, 1], a[:, 2],
                          self.shape(plane), self.spacing, self.normal_step(plane))

    def slab_depths(self, plane: str, depth: float, thickness_mm: float) -> np.ndarray:
        """Depths (mm along ``plane``'s normal) of the planes of a slab around ``depth``
        (just ``depth`` when thin): one :meth:`normal_step` apart, on the lattice of whole
        steps from the frame's centre, centred on the lattice point nearest ``depth`` (within
        half a step, 0.94 mm on the chest CT's tilted axial planes). The lattice lets the
        next slab, a step or a few on, share all but a few planes with the last one."""
        step = self.normal_step(plane)
        n = slab_count(thickness_mm, step)
        if n < 2:
            return np.array([float(depth)])
        return (round(float(depth) / step) + np.arange(n) - (n - 1) // 2) * step

    def normal_step(self, plane: str) -> float:
        """Millimetres along ``plane``'s normal that move one voxel through the volume's grid
        (the step between the planes of an oblique slab): 2.5 mm for axial planes of a CT
        with 2.5 mm slices, less when tilted towards the finer in-plane axes."""
        n = self.axes(plane)[:, 2]
        g = self.geometry
        per_mm = np.linalg.norm(g.lps_to_index(g.origin + n) - g.lps_to_index(np.asarray(g.origin)))
        return float(1.0 / per_mm) if per_mm > 0 else self.spacing

    def line_angle(self, plane: str, other: str) -> float:
        """Angle (degrees in [-90, 90), view x towards view y) of ``other``'s plane crossing ``plane``'s view."""
        a, b = self.axes(plane), self.axes(other)
        d = np.cross(a[:, 2], b[:, 2])
        deg = math.degrees(math.atan2(float(d @ a[:, 0]), float(d @ a[:, 1])))
        return (deg + 90.0) % 180.0 - 90.0  # a line has no direction: (-90, 90]

    def index_of(self, plane: str, y: float, x: float, depth: float) -> np.ndarray:
        return self.geometry.lps_to_index_zyx(self.lps_of(plane, y, x, depth))



@dataclass
class MprSettings:
    """What the MPR views of one window show, shared by them: a thin slice or a slab
    (``slab_mode`` over ``slab_mm``; 0 mm = thin) on the orthogonal planes, or on the
    oblique planes of ``frame`` (None = orthogonal)."""

    slab_mode: str = "mip"
    slab_mm: float = 0.0
    frame: Optional[ObliqueFrame] = None
    turning: Optional[str] = None  # the plane in whose view a rotation drag is going on

    def slab_of(self, plane: str) -> Tuple[str, float]:
        """(mode, mm) that ``plane`` shows now: thin while the planes turn under another
        view's drag (an oblique slab costs one plane per voxel of thickness), else the slab."""
        if self.frame is not None and self.turning not in (None, plane):
            return self.slab_mode, 0.0
        return self.slab_mode, self.slab_mm

    def set_slab(self, mode: str, thickness_mm: float) -> None:
        _check_mode(mode)
        t = float(thickness_mm)
        if not math.isfinite(t) or t < 0:
            raise ValueError(f"slab thickness must be 0 (thin) or more mm, got {thickness_mm}")
        self.slab_mode, self.slab_mm = mode, t

    def describe(self) -> str:
        """'MIP 10 mm', 'oblique', 'oblique MinIP 5 mm' or '' (thin, orthogonal)."""
        parts = ["oblique"] if self.frame is not None else []
        if self.slab_mm > 0:
            parts.append(f"{SLAB_NAMES[self.slab_mode]} {self.slab_mm:g} mm")
        return " ".join(parts)


# the other plane whose crossing a view draws as its horizontal / vertical crosshair line
H_LINE = {"axial": "coronal", "coronal": "axial", "sagittal": "axial"}
V_LINE = {"axial": "sagittal", "coronal": "sagittal", "sagittal": "coronal"}


def view_turn_sign(plane: str) -> float:
    """+1 when a counter-clockwise turn in ``plane``'s view coordinates (x = col, y = row)
    is a right-handed turn about its normal, else -1."""
    return -float(np.sign(np.linalg.det(_base_frame(plane))))
