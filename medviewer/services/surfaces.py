"""Label-map surfaces for the 3D view: smooth per-label triangle meshes in LPS millimetres
(VTK's surface nets, all labels in one pass), and the region to mesh again after an edit.

Qt-free, so the UI meshes on a worker and the benchmark and tests call the same code. VTK is
imported inside the functions (it takes ~0.25 s): the app starts without it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Sequence, Tuple

import numpy as np

from medviewer.core.geometry import Geometry
from medviewer.core.lazy_import import LazyModule

ndimage = LazyModule("scipy.ndimage")

SMOOTHING_ITERATIONS = 8  # surface nets' constrained smoothing; 16 shrank organs ~5 % more
Box = Tuple[Tuple[int, int], Tuple[int, int], Tuple[int, int]]  # (z0, z1), (y0, y1), (x0, x1)


def vtk_missing() -> Optional[str]:
    """Why VTK cannot be used here (one sentence), or None when it imports."""
    try:
        import vtkmodules.vtkFiltersCore  # noqa: F401
        from vtkmodules.vtkFiltersCore import vtkSurfaceNets3D  # noqa: F401
    except ImportError as exc:  # the module, or a library it needs (libGL, libX11)
        return f"VTK is not available ({exc}); install it with pip install vtk==9.7.2."
    return None


@dataclass(frozen=True, eq=False)
class LabelSurface:
    """One label's closed surface: ``points`` (n, 3) LPS mm (float32) and ``faces`` (m, 3)
    vertex indices, wound so that normals point out of the label. Arrays are read-only."""

    value: int
    points: np.ndarray
    faces: np.ndarray
    normals: Optional[np.ndarray] = None  # (n, 3) unit vertex normals (float32), for shading

    def __post_init__(self):
        if self.normals is None:
            object.__setattr__(self, "normals", vertex_normals(self.points, self.faces))
        for arr in (self.points, self.faces, self.normals):
            arr.flags.writeable = False

    @property
    def n_triangles(self) -> int:
        return int(len(self.faces))

    def volume_mm3(self) -> float:
        """Enclosed volume (divergence theorem; the surface is closed)."""
        if not len(self.faces):
            return 0.0
        p = self.points.astype(np.float64)
        a, b, c = p[self.faces[:, 0]], p[self.faces[:, 1]], p[self.faces[:, 2]]
        return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)

    def bounds(self) -> Tuple[np.ndarray, np.ndarray]:
        """(min, max) LPS corners of the points."""
        return self.points.min(axis=0), self.points.max(axis=0)


def vertex_normals(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals of a triangle mesh (float32)."""
    out = np.zeros((len(points), 3), np.float64)
    if len(faces):
        p = points.astype(np.float32, copy=False)
        n = np.cross(p[faces[:, 1]] - p[faces[:, 0]], p[faces[:, 2]] - p[faces[:, 0]])
        flat = faces.ravel()
        for k in range(3):  # bincount per component: much faster than np.add.at
            out[:, k] = np.bincount(flat, weights=np.repeat(n[:, k], 3), minlength=len(points))
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out.astype(np.float32)


def present_values(labels: np.ndarray) -> list:
    """The non-zero values in ``labels``, ascending."""
    from medviewer.core.labelmap import count_values

    return [int(v) for v in np.flatnonzero(count_values(labels)) if v]


def mesh_labels(labels: np.ndarray, geometry: Geometry, values: Optional[Iterable[int]] = None,
                offset_zyx: Sequence[int] = (0, 0, 0),
                smoothing: int = SMOOTHING_ITERATIONS) -> Dict[int, LabelSurface]:
    """Surfaces of ``values`` (default: every non-zero value present) of a (z, y, x) label
    array that is ``geometry``'s grid, or a crop of it starting at ``offset_zyx``. A value
    with no voxel gets an empty surface (so that a caller drops its old one). The array is
    padded with background first: labels cut by the image's edge get closed caps."""
    from vtkmodules.util import numpy_support
    from vtkmodules.vtkCommonDataModel import vtkImageData
    from vtkmodules.vtkFiltersCore import vtkSurfaceNets3D

    lab = np.asarray(labels)
    if lab.ndim != 3 or not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"labels must be a 3D integer array, got {lab.dtype} {lab.shape}")
    wanted = present_values(lab) if values is None else sorted({int(v) for v in values if v})
    out = {v: _empty(v) for v in wanted}
    if not wanted or not lab.any():
        return out
    padded = np.pad(lab.astype(np.uint16 if lab.dtype.itemsize <= 2 else np.int32, copy=False), 1)
    nz, ny, nx = padded.shape
    spacing = np.asarray(geometry.spacing, dtype=float)  # smoothing in mm, not in voxels
    img = vtkImageData()
    img.SetDimensions(nx, ny, nz)
    img.SetSpacing(*spacing)
    img.GetPointData().SetScalars(numpy_support.numpy_to_vtk(padded.ravel(), deep=False))
    nets = vtkSurfaceNets3D()
    nets.SetInputData(img)
    nets.SetNumberOfLabels(len(wanted))
    for i, v in enumerate(wanted):
        nets.SetLabel(i, float(v))
    nets.SetOutputMeshTypeToTriangles()
    nets.SetSmoothing(smoothing > 0)
    nets.SetNumberOfIterations(max(int(smoothing), 1))
    nets.Update()
    poly = nets.GetOutput()
    if poly.GetNumberOfCells() == 0:
        return out
    pts = numpy_support.vtk_to_numpy(poly.GetPoints().GetData()).astype(np.float64)
    faces = numpy_support.vtk_to_numpy(poly.GetPolys().GetConnectivityArray()).reshape(-1, 3)
    sides = numpy_support.vtk_to_numpy(poly.GetCellData().GetArray("BoundaryLabels"))
    index_xyz = pts / spacing - 1.0 + np.asarray(offset_zyx, dtype=float)[::-1]
    lps = geometry.index_to_lps(index_xyz).astype(np.float32)
    if np.linalg.det(geometry.direction_matrix) < 0:  # a left-handed grid turns faces inside out
        faces = faces[:, ::-1]
    for v, surf in _split(lps, faces, sides, wanted).items():
        out[v] = surf
    return out


def _empty(value: int) -> LabelSurface:
    return LabelSurface(int(value), np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32))


def _split(points: np.ndarray, faces: np.ndarray, sides: np.ndarray,
           wanted: Sequence[int]) -> Dict[int, LabelSurface]:
    """One surface per wanted label from the shared mesh: a face between labels a and b
    (``sides`` = (a, b); its normal points out of a) belongs to both, flipped for b. Linear
    time: a radix sort of the owners, a lookup table for each label's vertices."""
    owner = np.concatenate([sides[:, 0], sides[:, 1]]).astype(np.int64)
    tri = np.concatenate([faces, faces[:, ::-1]]).astype(np.int32, copy=False)
    wanted_mask = np.zeros(max(int(owner.max(initial=0)), max(wanted)) + 1, bool)
    wanted_mask[np.asarray(wanted, dtype=np.int64)] = True
    keep = wanted_mask[np.maximum(owner, 0)] & (owner >= 0)
    owner = owner[keep].astype(np.uint16 if owner.max(initial=0) < 65536 else np.int64)
    tri = tri[keep]
    order = np.argsort(owner, kind="stable")  # radix sort for 16-bit keys
    owner, tri = owner[order], tri[order]
    cuts = np.flatnonzero(np.diff(owner)) + 1
    lookup = np.full(len(points), -1, np.int32)
    out = {}
    for part, value in zip(np.split(tri, cuts), owner[np.r_[0, cuts]] if len(owner) else []):
        used = np.flatnonzero(np.bincount(part.ravel(), minlength=len(points)))
        lookup[used] = np.arange(len(used), dtype=np.int32)
        out[int(value)] = LabelSurface(int(value), np.ascontiguousarray(points[used]), lookup[part])
    return out


# ---------------------------------------------------------------------------- edits
def label_boxes(labels: np.ndarray) -> Dict[int, Box]:
    """Bounding box (half-open index ranges, z y x) of every non-zero value present."""
    lab = np.asarray(labels)
    if not lab.size or not lab.any():
        return {}
    objs = ndimage.find_objects(lab.astype(np.int32, copy=False) if lab.dtype.kind == "u"
                                and lab.dtype.itemsize > 2 else lab)
    return {i + 1: tuple((s.start, s.stop) for s in sl) for i, sl in enumerate(objs) if sl is not None}


def indices_box(flat_indices: np.ndarray, shape: Sequence[int]) -> Optional[Box]:
    """Bounding box of flat (z, y, x) indices, or None for none."""
    idx = np.asarray(flat_indices, dtype=np.int64).ravel()
    if not idx.size:
        return None
    zyx = np.unravel_index(idx, tuple(shape))
    return tuple((int(a.min()), int(a.max()) + 1) for a in zyx)


def union_box(*boxes: Optional[Box]) -> Optional[Box]:
    boxes = [b for b in boxes if b is not None]
    if not boxes:
        return None
    return tuple((min(b[i][0] for b in boxes), max(b[i][1] for b in boxes)) for i in range(3))


@dataclass(frozen=True)
class RemeshPlan:
    """What to mesh again after an edit: each changed label within the box (padded,
    clipped) that holds all of its voxels."""

    regions: Tuple[Tuple[int, Box], ...]  # (value, box), ascending values

    @property
    def values(self) -> Tuple[int, ...]:
        return tuple(v for v, _box in self.regions)

    def crops(self, labels: np.ndarray) -> list:
        """[(value, a copy of its box of ``labels``, the box's (z, y, x) start)]: what a
        worker meshes (take them while no one writes the labels)."""
        return [(v, np.array(labels[tuple(slice(a, b) for a, b in box)]), tuple(a for a, _ in box))
                for v, box in self.regions]


def mesh_crops(crops: Sequence[tuple], geometry: Geometry,
               smoothing: int = SMOOTHING_ITERATIONS) -> Dict[int, LabelSurface]:
    """The surfaces of :meth:`RemeshPlan.crops`, each label meshed in its own box."""
    out: Dict[int, LabelSurface] = {}
    for value, crop, offset in crops:
        out.update(mesh_labels(crop, geometry, [value], offset, smoothing))
    return out


def remesh_plan(indices: np.ndarray, old: np.ndarray, new: np.ndarray, shape: Sequence[int],
                boxes: Dict[int, Box], margin: int = 1) -> Optional[RemeshPlan]:
    """The labels an edit changed (those it painted and those it painted over or erased),
    each with the region holding all of its voxels: its known box joined with the edit's own,
    ``margin`` voxels wider. ``boxes`` (value -> Box) is updated to the new extents' bound."""
    from medviewer.core.labelmap import distinct_values

    changed = {int(v) for v in distinct_values(np.concatenate([np.ravel(old), np.ravel(new)])) if v}
    edit_box = indices_box(indices, shape)
    if not changed or edit_box is None:
        return None
    regions = []
    for v in sorted(changed):
        region = union_box(edit_box, boxes.get(v))
        regions.append((v, tuple((max(0, a - margin), min(int(n), b + margin))
                                 for (a, b), n in zip(region, shape))))
    for v in {int(x) for x in distinct_values(np.ravel(new)) if x}:
        boxes[v] = union_box(boxes.get(v), edit_box)
    return RemeshPlan(tuple(regions))
