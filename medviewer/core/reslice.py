"""Axial / coronal / sagittal slices of a (z, y, x) array in radiological display orientation.

Pure numpy. Array axes are matched to the nearest patient axes (``Geometry.axis_labels``)
and flipped so that every plane is shown the radiological way:

- axial:    patient Right on screen left, Anterior at the top
- coronal:  patient Right on screen left, Superior at the top
- sagittal: Anterior on screen left, Superior at the top

Display coordinates are continuous pixel indices ``(row, col)`` of the displayed 2D image
(pixel centres at integers). For series with uneven slice spacing the z axis is shown on an
even display grid (nearest true slice per display row) so that coronal and sagittal views
show true positions; the data are never changed. A slice is a numpy view (or, on an uneven
grid, one small gather), so extraction is cheap.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np

from .geometry import LPS_LETTERS, Geometry

PLANES = ("axial", "coronal", "sagittal")
# plane -> (fixed LPS axis, (row LPS axis, row sign), (col LPS axis, col sign)); the sign is
# the LPS direction in which the display row/col index increases.
_PLANE_AXES = {
    "axial": (2, (1, +1), (0, +1)),
    "coronal": (1, (2, -1), (0, +1)),
    "sagittal": (0, (2, -1), (1, +1)),
}
_MAX_DISPLAY_ROWS = 2048


def direction_letters(vec, threshold: float = 0.3) -> str:
    """Letters of the patient directions a vector points to, strongest first (e.g. 'AR')."""
    v = np.asarray(vec, dtype=float)
    v = v / (np.linalg.norm(v) or 1.0)
    out = []
    for ax in np.argsort(-np.abs(v)):
        if not out or abs(v[ax]) >= threshold:
            out.append(LPS_LETTERS[ax][1 if v[ax] > 0 else 0])
    return "".join(out)


@dataclass(frozen=True)
class Edges:
    top: str
    bottom: str
    left: str
    right: str


@dataclass
class PlaneSlice:
    """One displayed 2D slice: image (rows, cols[, 3]), pixel size in mm and edge letters."""

    plane: str
    index: int
    image: np.ndarray
    row_spacing: float
    col_spacing: float
    edges: Edges


class _AxisMap:
    """Maps one display axis (rows or cols) to one array axis, with flip / uneven grid."""

    def __init__(self, geometry: Geometry, array_axis: int, flip: bool):
        self.axis = array_axis
        self.flip = flip
        n = geometry.shape[array_axis]
        self.n_index = n
        index_axis = 2 - array_axis
        self.spacing = geometry.spacing[index_axis]
        self._offs: Optional[np.ndarray] = None
        offs = geometry.slice_offsets
        if array_axis == 0 and offs is not None and n > 1:
            o = np.asarray(offs, dtype=float) - offs[0]
            extent = float(o[-1])
            step = max(float(np.min(np.diff(o))), extent / (_MAX_DISPLAY_ROWS - 1))
            n_disp = int(round(extent / step)) + 1
            self._offs, self._extent, self.spacing = o, extent, step
            self.n_display = n_disp
            mm = self._display_mm(np.arange(n_disp, dtype=float))
            self.select = np.abs(mm[:, None] - o[None, :]).argmin(axis=1)
        else:
            self.n_display = n
            self.select = slice(None, None, -1) if flip else slice(None)

    def _display_mm(self, d):
        return self._extent - d * self.spacing if self.flip else d * self.spacing

    def to_index(self, d):
        d = np.asarray(d, dtype=float)
        if self._offs is None:
            return (self.n_index - 1 - d) if self.flip else d
        mm = self._display_mm(d)
        return np.interp(mm, self._offs, np.arange(self.n_index, dtype=float))

    def to_display(self, i):
        i = np.asarray(i, dtype=float)
        if self._offs is None:
            return (self.n_index - 1 - i) if self.flip else i
        mm = np.interp(i, np.arange(self.n_index, dtype=float), self._offs)
        return (self._extent - mm) / self.spacing if self.flip else mm / self.spacing


class _PlaneMap:
    def __init__(self, geometry: Geometry, plane: str):
        labels = geometry.axis_labels()  # per index axis (x, y, z): (lps axis, sign)
        by_lps = {lps: (index_axis, sign) for index_axis, (lps, sign) in enumerate(labels)}
        fixed_lps, (row_lps, row_sign), (col_lps, col_sign) = _PLANE_AXES[plane]
        self.plane = plane
        self.fixed = 2 - by_lps[fixed_lps][0]
        d = geometry.direction_matrix
        vecs = []
        maps = []
        for lps, want in ((row_lps, row_sign), (col_lps, col_sign)):
            index_axis, sign = by_lps[lps]
            flip = sign != want
            maps.append(_AxisMap(geometry, 2 - index_axis, flip))
            vecs.append(d[:, index_axis] * (-1.0 if flip else 1.0))
        self.row, self.col = maps
        self.edges = Edges(top=direction_letters(-vecs[0]), bottom=direction_letters(vecs[0]),
                           left=direction_letters(-vecs[1]), right=direction_letters(vecs[1]))


class Reslicer:
    """Plane extraction and display <-> index maps for one Geometry."""

    def __init__(self, geometry: Geometry):
        self.geometry = geometry
        self._planes: Dict[str, _PlaneMap] = {p: _PlaneMap(geometry, p) for p in PLANES}

    def edges(self, plane: str) -> Edges:
        return self._planes[plane].edges

    def fixed_axis(self, plane: str) -> int:
        """The array axis (0 = z, 1 = y, 2 = x) that a slice of ``plane`` holds constant."""
        return self._planes[plane].fixed

    def n_slices(self, plane: str) -> int:
        return self.geometry.shape[self._planes[plane].fixed]

    def display_shape(self, plane: str) -> Tuple[int, int]:
        pm = self._planes[plane]
        return pm.row.n_display, pm.col.n_display

    def pixel_spacing(self, plane: str) -> Tuple[float, float]:
        """(row spacing, col spacing) in mm of the displayed image."""
        pm = self._planes[plane]
        return pm.row.spacing, pm.col.spacing

    def native_plane(self) -> str:
        """The plane whose slices are the stored images (fixed axis = array axis 0)."""
        return next(p for p, pm in self._planes.items() if pm.fixed == 0)

    def slice_index(self, plane: str, index_zyx) -> int:
        return int(round(float(np.asarray(index_zyx, dtype=float)[self._planes[plane].fixed])))

    def extract(self, array: np.ndarray, plane: str, index: int) -> PlaneSlice:
        """The displayed 2D image of slice ``index`` (clamped) of ``plane``."""
        pm = self._planes[plane]
        index = int(np.clip(index, 0, self.geometry.shape[pm.fixed] - 1))
        sel = [slice(None)] * 3
        sel[pm.fixed] = index
        return self._oriented(pm, index, array[tuple(sel)])

    def _oriented(self, pm: _PlaneMap, index: int, img: np.ndarray) -> PlaneSlice:
        """A (rows, cols) slice in array axis order -> the displayed PlaneSlice."""
        if pm.row.axis > pm.col.axis:
            img = img.swapaxes(0, 1)
        img = img[pm.row.select][:, pm.col.select]
        return PlaneSlice(pm.plane, index, img, pm.row.spacing, pm.col.spacing, pm.edges)

    def to_display(self, plane: str, index_zyx) -> Tuple[float, float]:
        """Continuous (z, y, x) index -> continuous (row, col) in the plane's display."""
        pm = self._planes[plane]
        idx = np.asarray(index_zyx, dtype=float)
        return float(pm.row.to_display(idx[pm.row.axis])), float(pm.col.to_display(idx[pm.col.axis]))

    def to_index(self, plane: str, slice_index: float, row: float, col: float) -> np.ndarray:
        """Display (row, col) on slice ``slice_index`` -> continuous (z, y, x) index."""
        pm = self._planes[plane]
        out = np.empty(3)
        out[pm.fixed] = slice_index
        out[pm.row.axis] = pm.row.to_index(row)
        out[pm.col.axis] = pm.col.to_index(col)
        return out

    def to_lps(self, plane: str, slice_index: float, row: float, col: float) -> np.ndarray:
        return self.geometry.index_zyx_to_lps(self.to_index(plane, slice_index, row, col))


class SlabCache:
    """``Reslicer.extract`` for one plane of one array, from contiguous copies of blocks of
    ``block`` consecutive slices, for planes where a slice is a strided gather (the sagittal
    plane of a (z, y, x) array: every voxel of a slice on its own cache line, 2 ms per 512x512
    slice). A block costs about as much to copy as two single slices (the voxels of ``block``
    neighbouring slices share their cache lines: 8 int16 slices of 512x512 in 4.3 ms, 8 uint8
    ones in 3.3 ms), so stepping through slices gets cheap; 8 keeps the step that makes a
    block under a 60 Hz frame.

    The cache holds ``max_blocks`` blocks of the array it was last asked about; a block is made
    only when the same array (object, buffer and ``version``) is asked for twice in a row, so
    an array that is new at every call costs no more than ``extract``. Arrays edited in place
    without a new ``version`` must be followed by ``invalidate()``. The pixels are exactly
    those of ``Reslicer.extract``.
    """

    def __init__(self, reslicer: Reslicer, plane: str, block: int = 8, max_blocks: int = 2,
                 phase: int = 0):
        self.reslicer = reslicer
        self.plane = plane
        self.block = int(block)
        self.max_blocks = int(max_blocks)
        self.phase = int(phase)  # blocks start at phase + k * block (two caches: stagger them)
        self._key = None
        self._blocks: Dict[int, np.ndarray] = {}

    @staticmethod
    def worthwhile(array: np.ndarray, fixed: int) -> bool:
        """True when a slice along array axis ``fixed`` is a gather with the smallest stride
        (each voxel on a different cache line) of a slice large enough to matter."""
        if fixed == 0 or array.ndim != 3:
            return False
        other = [a for a in range(3) if a != fixed]
        strides = [abs(st) for st in array.strides]
        return (strides[fixed] < min(strides[a] for a in other)
                and array.shape[other[0]] * array.shape[other[1]] >= 128 * 128)

    def invalidate(self) -> None:
        self._key = None
        self._blocks.clear()

    def extract(self, array: np.ndarray, index: int, version=None) -> PlaneSlice:
        r = self.reslicer
        pm = r._planes[self.plane]
        fixed = pm.fixed
        if not self.worthwhile(array, fixed):
            return r.extract(array, self.plane, index)
        key = (id(array), array.__array_interface__["data"][0], array.shape, array.strides,
               array.dtype.str, version)
        if key != self._key:
            self.invalidate()
            self._key = key
            return r.extract(array, self.plane, index)
        n = array.shape[fixed]
        index = int(np.clip(index, 0, n - 1))
        start = index - (index - self.phase) % self.block
        b0 = max(start, 0)
        blk = self._blocks.get(b0)
        if blk is None:
            blk = self._make_block(array, fixed, b0, min(start + self.block, n))
            if len(self._blocks) >= self.max_blocks:
                self._blocks.pop(next(iter(self._blocks)))
            self._blocks[b0] = blk
        return r._oriented(pm, index, blk[index - b0])

    @staticmethod
    def _make_block(array: np.ndarray, fixed: int, b0: int, b1: int) -> np.ndarray:
        """Slices b0..b1-1 along ``fixed`` (1 or 2) as a C-contiguous (k, rows, cols) array in
        array axis order. Copied one axis-0 row at a time: the source is read in its own
        order, which is several times faster than one strided transposing copy."""
        sel = [slice(None)] * 3
        sel[fixed] = slice(b0, b1)
        sub = array[tuple(sel)]
        shape = [sub.shape[fixed]] + [sub.shape[a] for a in range(3) if a != fixed]
        out = np.empty(shape, dtype=array.dtype)
        src = sub.transpose(0, 2, 1) if fixed == 2 else sub  # axis 1: the fixed one
        for i in range(sub.shape[0]):
            out[:, i, :] = src[i]
        return out
