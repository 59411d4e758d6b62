"""Findings: each connected component of a label becomes a measured finding (numpy/scipy).

A finding has its label, slice range, bounding box (voxels and LPS mm), volume (ml), the
RECIST-style longest diameter in a stored slice plane and the longest diameter perpendicular
to it on the same slice (both in mm, with their end points), and the image's mean and SD
inside it (HU for CT, the image's own units otherwise).

Conventions:
- Components are 26-connected by default (``connectivity=6``: faces only), one label value
  at a time: two touching labels are two findings.
- "Axial" means the stored slice plane (``labels[z]``); for an axial series that is the axial
  plane. Distances are measured between voxel centres in patient millimetres through the
  geometry (pixel spacing and direction cosines; anisotropic and non-square pixels included).
- The long axis is the longest centre-to-centre distance on any one slice of the component
  (RECIST: the slice where the lesion is longest); the short axis is the longest chord of the
  component on that slice perpendicular to the long axis (voxel centres within half a pixel
  of one perpendicular line).
- Volume is voxel count x voxel volume (|det| of the direction x spacing; for uneven slice
  spacing each slice gets its local step). SD is the population SD (ddof 0), as in
  :func:`medviewer.core.measure.roi_stats`.
- Speed: one ``find_objects`` pass over the label map boxes every label, components are
  labelled inside their label's box only, and diameters come from the convex hull of each
  row's first and last voxel.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .geometry import Geometry

__all__ = ["Diameter", "Finding", "FindingChange", "CONNECTIVITIES", "find_findings",
           "merge_findings", "match_findings",
           "slice_diameters", "voxel_volumes_mm3", "findings_to_rows", "CSV_COLUMNS"]

CONNECTIVITIES = (6, 26)
Reporter = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Diameter:
    """A measured line on slice ``z``: end points as continuous (z, y, x) indices and LPS mm."""

    length_mm: float
    a_zyx: Tuple[float, float, float]
    b_zyx: Tuple[float, float, float]
    a_lps: Tuple[float, float, float]
    b_lps: Tuple[float, float, float]


@dataclass(frozen=True)
class Finding:
    number: int  # 1.. in label order, then by size (largest first)
    label: int
    name: str
    component: int  # 1.. within its label (largest first)
    n_voxels: int
    volume_ml: float
    slices: Tuple[int, int]  # first, last z (inclusive)
    bbox_min_zyx: Tuple[int, int, int]
    bbox_max_zyx: Tuple[int, int, int]  # inclusive
    bbox_min_lps: Tuple[float, float, float]  # of the voxel centres of the box's corners
    bbox_max_lps: Tuple[float, float, float]
    centroid_zyx: Tuple[float, float, float]
    centroid_lps: Tuple[float, float, float]
    measure_slice: int  # where the diameters are measured (the longest cross-section)
    centre_zyx: Tuple[float, float, float]  # centre of the component on measure_slice
    largest_slice: int  # the slice of largest cross-section area
    long_axis: Optional[Diameter]
    short_axis: Optional[Diameter]
    mean: Optional[float]  # None without an image
    sd: Optional[float]
    units: str = ""
    source: str = "labels"  # "labels" or "proposal"
    connectivity: int = 26

    @property
    def long_mm(self) -> float:
        return 0.0 if self.long_axis is None else self.long_axis.length_mm

    @property
    def short_mm(self) -> float:
        return 0.0 if self.short_axis is None else self.short_axis.length_mm

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> "Finding":
        d = dict(d)
        for key in ("long_axis", "short_axis"):
            v = d.get(key)
            d[key] = None if v is None else Diameter(**{k: (tuple(x) if isinstance(x, list) else x)
                                                        for k, x in v.items()})
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})


# ---------------------------------------------------------------------- geometry helpers
def _plane_matrix(geometry: Geometry) -> np.ndarray:
    """2x2 R such that in-plane mm coordinates (orthonormal basis) are R @ (x, y) index."""
    m = geometry.direction_matrix[:, :2] * np.asarray(geometry.spacing[:2])
    _, r = np.linalg.qr(m)
    return r


def voxel_volumes_mm3(geometry: Geometry) -> np.ndarray:
    """The volume of one voxel of each slice (mm^3): |det(direction x spacing)|, with each
    slice's local step for uneven spacing."""
    g = geometry
    nz = g.shape[0]
    base = abs(float(np.linalg.det(g.direction_matrix @ np.diag([g.spacing[0], g.spacing[1], 1.0]))))
    if g.slice_offsets is None or nz < 2:
        return np.full(nz, base * g.spacing[2])
    return base * np.gradient(np.asarray(g.slice_offsets, dtype=float))


def _to_tuple(a) -> tuple:
    return tuple(float(v) for v in np.asarray(a, dtype=float).ravel())


def _diameter(geometry: Geometry, z: int, a_yx, b_yx, length: float) -> Diameter:
    a = (float(z), float(a_yx[0]), float(a_yx[1]))
    b = (float(z), float(b_yx[0]), float(b_yx[1]))
    lps = geometry.index_zyx_to_lps(np.array([a, b]))
    return Diameter(float(length), a, b, _to_tuple(lps[0]), _to_tuple(lps[1]))


# ---------------------------------------------------------------------- diameters
def _run_starts(key: np.ndarray) -> np.ndarray:
    """Where each run of equal values of a sorted ``key`` starts."""
    new = np.empty(len(key), dtype=bool)
    new[:1] = True
    np.not_equal(key[1:], key[:-1], out=new[1:])
    return np.flatnonzero(new)


def _run_ends(key: np.ndarray) -> np.ndarray:
    """The first and last position of each run of a sorted ``key`` (one when they agree)."""
    first = _run_starts(key)
    last = np.empty_like(first)
    last[:-1] = first[1:] - 1
    last[-1:] = len(key) - 1
    both = np.empty(2 * len(first), dtype=first.dtype)
    both[0::2], both[1::2] = first, last
    keep = np.empty(len(both), dtype=bool)
    keep[:1] = True
    np.not_equal(both[1:], both[:-1], out=keep[1:])
    return both[keep]


def _longest_pair(pts: np.ndarray) -> Tuple[int, int, float]:
    """Indices of the two farthest points of ``pts`` (n, 2 mm) and their distance."""
    n = len(pts)
    if n == 1:
        return 0, 0, 0.0
    cand = np.arange(n)
    if n > 8:
        try:
            from scipy.spatial import ConvexHull

            cand = ConvexHull(pts).vertices
        except Exception:  # collinear or too few distinct points: keep them all
            cand = np.arange(n)
    p = pts[cand]
    d2 = ((p[:, None, :] - p[None, :, :]) ** 2).sum(-1)
    i, j = np.unravel_index(int(np.argmax(d2)), d2.shape)
    return int(cand[i]), int(cand[j]), float(np.sqrt(d2[i, j]))


def _perpendicular(pts_mm: np.ndarray, u: np.ndarray, bin_mm: float):
    """The longest chord perpendicular to unit vector ``u``: (t, vmin, vmax) in the (u, v)
    frame, or None. Points within half a bin of one line perpendicular to u count."""
    v_dir = np.array([-u[1], u[0]])
    t = pts_mm @ u
    v = pts_mm @ v_dir
    bins = np.floor(t / bin_mm + 0.5).astype(np.int64)
    order = np.argsort(bins, kind="stable")
    b, vv, tt = bins[order], v[order], t[order]
    starts = _run_starts(b)
    vmax = np.maximum.reduceat(vv, starts)
    vmin = np.minimum.reduceat(vv, starts)
    k = int(np.argmax(vmax - vmin))
    if vmax[k] - vmin[k] <= 0:
        return None
    tc = float(tt[starts[k]:(starts[k + 1] if k + 1 < len(starts) else len(tt))].mean())
    return tc, float(vmin[k]), float(vmax[k]), v_dir


def slice_diameters(mask2d: np.ndarray, geometry: Geometry, z: int = 0, offset_yx=(0, 0),
                    r: Optional[np.ndarray] = None) -> Tuple[Optional[Diameter], Optional[Diameter]]:
    """(long axis, short axis) of a 2D mask on slice ``z`` (``offset_yx``: where the mask's
    (0, 0) sits in the slice). Both None for an empty mask; a single voxel has length 0.
    ``r``: the geometry's in-plane matrix, when the caller has it."""
    ys, xs = np.nonzero(mask2d)
    if ys.size == 0:
        return None, None
    ys = ys + int(offset_yx[0])
    xs = xs + int(offset_yx[1])
    r = _plane_matrix(geometry) if r is None else r
    pts = np.column_stack([xs, ys]).astype(float) @ r.T
    # rows' first and last voxels hold the convex hull of the whole mask
    ext = _run_ends(ys)
    i, j, length = _longest_pair(pts[ext])
    i, j = ext[i], ext[j]
    long_ = _diameter(geometry, z, (ys[i], xs[i]), (ys[j], xs[j]), length)
    if length == 0:
        return long_, _diameter(geometry, z, (ys[i], xs[i]), (ys[i], xs[i]), 0.0)
    u = (pts[j] - pts[i]) / length
    bin_mm = float(min(np.abs(np.diag(r))))
    perp = _perpendicular(pts, u, bin_mm)
    if perp is None:
        short = _diameter(geometry, z, (ys[i], xs[i]), (ys[i], xs[i]), 0.0)
    else:
        tc, vmin, vmax, v_dir = perp
        rinv = np.linalg.inv(r)
        ends = [rinv @ (tc * u + vv * v_dir) for vv in (vmin, vmax)]  # (x, y) index
        short = _diameter(geometry, z, (ends[0][1], ends[0][0]), (ends[1][1], ends[1][0]),
                          vmax - vmin)
    return long_, short


def _component_long_axes(zs, ys, xs, pts):
    """For each slice of a component (voxels sorted by z, y, x): its longest diameter."""
    out = {}
    zstarts = _run_starts(zs)
    zends = np.append(zstarts[1:], len(zs))
    ext = _run_ends(zs.astype(np.int64) * (int(ys.max()) + 1) + ys)
    ez = zs[ext]
    for s, e in zip(zstarts, zends):
        z = int(zs[s])
        sel = ext[(ez == z)]
        i, j, length = _longest_pair(pts[sel])
        out[z] = (length, int(sel[i]), int(sel[j]), int(e - s))
    return out


# ---------------------------------------------------------------------- findings
def _structure(connectivity: int) -> np.ndarray:
    from scipy import ndimage

    if connectivity not in CONNECTIVITIES:
        raise ValueError(f"connectivity must be 6 or 26, got {connectivity}")
    return ndimage.generate_binary_structure(3, 1 if connectivity == 6 else 3)


def find_findings(labels: np.ndarray, geometry: Geometry, image: Optional[np.ndarray] = None,
                  names: Optional[Mapping[int, str]] = None, *, connectivity: int = 26,
                  units: str = "", source: str = "labels", values: Optional[Sequence[int]] = None,
                  min_voxels: int = 1, reporter: Optional[Reporter] = None) -> List[Finding]:
    """Every connected component of every label value > 0 of ``labels`` (z, y, x) on
    ``geometry`` as a :class:`Finding`, in label order and, within a label, largest first.

    ``image``: the grey-level image on the same grid (mean/SD; None: not measured; colour
    images are not measured). ``values``: only these labels. ``min_voxels``: smaller
    components are left out. ``reporter(done, total, message)`` reports progress and may
    raise to cancel."""
    from scipy import ndimage

    labels = np.asarray(labels)
    if labels.ndim != 3 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"findings need a 3D integer label map, got {labels.dtype} {labels.shape}")
    if tuple(labels.shape) != tuple(geometry.shape):
        raise ValueError(f"label map shape {labels.shape} does not match the geometry {geometry.shape}")
    if image is not None:
        image = np.asarray(image)
        if image.ndim != 3 or tuple(image.shape) != tuple(labels.shape):
            image = None  # colour or another grid: not measured
    structure = _structure(connectivity)
    names = dict(names or {})
    if labels.dtype.kind == "i" and labels.size and labels.min() < 0:
        raise ValueError("label values must not be negative")
    boxes = ndimage.find_objects(labels)
    wanted = [v for v in range(1, len(boxes) + 1) if boxes[v - 1] is not None]
    if values is not None:
        keep = {int(v) for v in values}
        wanted = [v for v in wanted if v in keep]
    vox_mm3 = voxel_volumes_mm3(geometry)
    r = _plane_matrix(geometry)
    out: List[Finding] = []
    for done, value in enumerate(wanted):
        if reporter is not None:
            reporter(done, len(wanted), f"Measuring {names.get(value, f'label {value}')}…")
        box = boxes[value - 1]
        comp, n = ndimage.label(labels[box] == value, structure=structure)
        origin = np.array([s.start for s in box])
        counts = np.bincount(comp.ravel(), minlength=n + 1)
        order = [c for c in np.argsort(-counts[1:], kind="stable") + 1 if counts[c] >= min_voxels]
        sub = ndimage.find_objects(comp)
        img_box = image[box] if image is not None else None
        for rank, c in enumerate(order, start=1):
            out.append(_measure(comp, c, sub[c - 1], origin, img_box, geometry, r, vox_mm3,
                                value, names.get(value, f"Label {value}"), rank, units,
                                source, connectivity))
    if reporter is not None:
        reporter(len(wanted), len(wanted), "Findings measured")
    return [replace(f, number=i) for i, f in enumerate(out, start=1)]


def merge_findings(old: Sequence[Finding], new: Sequence[Finding],
                   values: Sequence[int]) -> List[Finding]:
    """``old`` findings with those of ``values`` replaced by ``new`` (measured again for those
    labels only, e.g. after an edit that touched them), in label order, renumbered."""
    values = {int(v) for v in values}
    kept = [f for f in old if f.label not in values]
    merged = sorted(kept + [f for f in new if f.label in values],
                    key=lambda f: (f.label, f.component))
    return [replace(f, number=i) for i, f in enumerate(merged, start=1)]


def _measure(comp, c, sub, origin, img_box, geometry, r, vox_mm3, value, name, rank, units,
             source, connectivity) -> Finding:
    mask = comp[sub] == c
    off = origin + np.array([s.start for s in sub])
    zs, ys, xs = np.nonzero(mask)
    zs, ys, xs = zs + off[0], ys + off[1], xs + off[2]
    n = int(zs.size)
    volume_ml = float(vox_mm3[zs].sum() / 1000.0) if n else 0.0
    pts = np.column_stack([xs, ys]).astype(float) @ r.T
    per_slice = _component_long_axes(zs, ys, xs, pts)
    mz = max(per_slice, key=lambda z: (per_slice[z][0], per_slice[z][3], -z))
    largest = max(per_slice, key=lambda z: (per_slice[z][3], -z))
    sel = zs == mz
    sy, sx = ys[sel], xs[sel]
    m2 = np.zeros((int(sy.max() - sy.min() + 1), int(sx.max() - sx.min() + 1)), dtype=bool)
    m2[sy - sy.min(), sx - sx.min()] = True
    long_, short = slice_diameters(m2, geometry, int(mz), (int(sy.min()), int(sx.min())), r)
    centre = (float(mz), float(sy.mean()), float(sx.mean()))
    lo = off
    hi = off + np.array(mask.shape) - 1
    corners = np.array([[a, b, c_] for a in (lo[0], hi[0]) for b in (lo[1], hi[1])
                        for c_ in (lo[2], hi[2])], dtype=float)
    centroid = (float(zs.mean()), float(ys.mean()), float(xs.mean()))
    lps = geometry.index_zyx_to_lps(np.vstack([corners, centroid]))
    corners_lps = lps[:8]
    mean = sd = None
    if img_box is not None:
        vals = img_box[sub][mask].astype(np.float64)
        mean, sd = float(vals.mean()), float(vals.std())
    return Finding(
        number=0, label=int(value), name=str(name), component=rank, n_voxels=n,
        volume_ml=volume_ml, slices=(int(lo[0]), int(hi[0])),
        bbox_min_zyx=tuple(int(v) for v in lo), bbox_max_zyx=tuple(int(v) for v in hi),
        bbox_min_lps=_to_tuple(corners_lps.min(axis=0)),
        bbox_max_lps=_to_tuple(corners_lps.max(axis=0)),
        centroid_zyx=centroid, centroid_lps=_to_tuple(lps[8]),
        measure_slice=int(mz), centre_zyx=centre, largest_slice=int(largest),
        long_axis=long_, short_axis=short, mean=mean, sd=sd, units=units, source=source,
        connectivity=int(connectivity))


# ---------------------------------------------------------------------- follow-up
@dataclass(frozen=True)
class FindingChange:
    """A finding at two time points (``baseline`` or ``followup`` None: seen at one only)."""

    baseline: Optional[Finding]
    followup: Optional[Finding]
    distance_mm: Optional[float]  # between the centroids (LPS), when both are there

    def _delta(self, attr: str) -> Optional[float]:
        if self.baseline is None or self.followup is None:
            return None
        return float(getattr(self.followup, attr) - getattr(self.baseline, attr))

    @property
    def volume_change_ml(self) -> Optional[float]:
        return self._delta("volume_ml")

    @property
    def volume_change_pct(self) -> Optional[float]:
        d = self.volume_change_ml
        return None if d is None or self.baseline.volume_ml == 0 else 100.0 * d / self.baseline.volume_ml

    @property
    def long_change_mm(self) -> Optional[float]:
        return self._delta("long_mm")

    @property
    def short_change_mm(self) -> Optional[float]:
        return self._delta("short_mm")

    @property
    def status(self) -> str:
        return "new" if self.baseline is None else "gone" if self.followup is None else "matched"


def match_findings(baseline: Sequence[Finding], followup: Sequence[Finding],
                   max_distance_mm: float = 20.0) -> List[FindingChange]:
    """Pair the findings of two time points in one patient frame (the follow-up registered
    to the baseline): same label, centroids at most ``max_distance_mm`` apart, closest pairs
    first (greedy). Unpaired findings are "gone" (baseline only) or "new" (follow-up only).
    In baseline order, then the new ones."""
    pairs = []
    for i, b in enumerate(baseline):
        cb = np.asarray(b.centroid_lps)
        for j, f in enumerate(followup):
            if f.label == b.label:
                d = float(np.linalg.norm(np.asarray(f.centroid_lps) - cb))
                if d <= max_distance_mm:
                    pairs.append((d, i, j))
    to_follow: Dict[int, Tuple[int, float]] = {}
    taken = set()
    for d, i, j in sorted(pairs):
        if i not in to_follow and j not in taken:
            to_follow[i] = (j, d)
            taken.add(j)
    out = []
    for i, b in enumerate(baseline):
        if i in to_follow:
            j, d = to_follow[i]
            out.append(FindingChange(b, followup[j], d))
        else:
            out.append(FindingChange(b, None, None))
    out += [FindingChange(None, f, None) for j, f in enumerate(followup) if j not in taken]
    return out


# ---------------------------------------------------------------------- tables
CSV_COLUMNS = ("number", "label", "name", "component", "source", "n_voxels", "volume_ml",
               "first_slice", "last_slice", "measure_slice", "long_axis_mm", "short_axis_mm",
               "mean", "sd", "units",
               "bbox_min_z", "bbox_min_y", "bbox_min_x", "bbox_max_z", "bbox_max_y", "bbox_max_x",
               "bbox_min_l", "bbox_min_p", "bbox_min_s", "bbox_max_l", "bbox_max_p", "bbox_max_s",
               "centroid_l", "centroid_p", "centroid_s",
               "long_a_l", "long_a_p", "long_a_s", "long_b_l", "long_b_p", "long_b_s",
               "short_a_l", "short_a_p", "short_a_s", "short_b_l", "short_b_p", "short_b_s",
               "connectivity")


def findings_to_rows(findings: Sequence[Finding]) -> List[Dict[str, object]]:
    """One flat dict per finding with :data:`CSV_COLUMNS` (mm, ml; empty where unmeasured)."""
    rows = []
    for f in findings:
        row = {"number": f.number, "label": f.label, "name": f.name, "component": f.component,
               "source": f.source, "n_voxels": f.n_voxels, "volume_ml": f.volume_ml,
               "first_slice": f.slices[0], "last_slice": f.slices[1],
               "measure_slice": f.measure_slice, "long_axis_mm": f.long_mm,
               "short_axis_mm": f.short_mm, "mean": "" if f.mean is None else f.mean,
               "sd": "" if f.sd is None else f.sd, "units": f.units,
               "connectivity": f.connectivity}
        for pre, vals in (("bbox_min_", f.bbox_min_zyx), ("bbox_max_", f.bbox_max_zyx)):
            row.update({pre + k: v for k, v in zip("zyx", vals)})
        for pre, vals in (("bbox_min_", f.bbox_min_lps), ("bbox_max_", f.bbox_max_lps),
                          ("centroid_", f.centroid_lps)):
            row.update({pre + k: v for k, v in zip("lps", vals)})
        for pre, d in (("long_", f.long_axis), ("short_", f.short_axis)):
            for end in "ab":
                vals = getattr(d, f"{end}_lps") if d is not None else ("", "", "")
                row.update({f"{pre}{end}_{k}": v for k, v in zip("lps", vals)})
        rows.append(row)
    return rows
