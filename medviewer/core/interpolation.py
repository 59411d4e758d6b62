"""Filling a label between annotated slices: shape-based interpolation that follows moving shapes.

Between two consecutive annotated ("key") slices the label is interpolated by blending signed
distance maps. The connected pieces of the two key slices are paired first: pieces overlapping
one-to-one, and pieces overlapping nothing by nearest centroids. A pair is blended after shifting
both distance maps towards the linearly interpolated centroid, by the part of the centroid offset
judged to be motion (all of it for pieces that do not overlap), so an oblique vessel or a lesion
drifting across slices stays a full tube. Groups of pieces that overlap several-to-one (a split
or a merge) are blended where they are, so that the overlap decides what joins; pieces left
without a partner shrink away and are gone half-way."""
from __future__ import annotations

from typing import List, Tuple

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import connected_components

_EMPTY = np.zeros(0, dtype=np.int64)
_MARGIN = 3  # pixels around the cropped shapes: the zero level must stay inside the crop
_CONNECT = np.ones((3, 3), bool)  # 8-connected pieces in a slice


def _signed_distance(mask: np.ndarray, sampling) -> np.ndarray:
    """Negative inside, positive outside; the zero level lies halfway between pixels."""
    inside = ndimage.distance_transform_edt(mask, sampling=sampling)
    outside = ndimage.distance_transform_edt(~mask, sampling=sampling)
    half = 0.5 * float(np.min(sampling)) if sampling is not None else 0.5
    return np.where(mask, -(inside - half), outside - half)


def _fade(mask: np.ndarray, ts, sampling) -> List[np.ndarray]:
    """A shape with no partner on the other key slice: eroded by its distance map so that it
    is gone at ``t = 0.5``."""
    d = _signed_distance(mask, sampling)
    depth = max(-float(d.min()), 1e-6)
    return [d + depth * (t / (1.0 - t)) < 0 if t < 1.0 else np.zeros_like(mask) for t in ts]


def _blend_in_place(ma: np.ndarray, mb: np.ndarray, ts, sampling) -> List[np.ndarray]:
    """Overlap-based blend: the signed distance maps are mixed where they are (no alignment).
    A shape facing nothing shrinks and is gone half-way."""
    if not mb.any():
        return _fade(ma, ts, sampling)
    if not ma.any():
        return _fade(mb, [1.0 - t for t in ts], sampling)
    da, db = _signed_distance(ma, sampling), _signed_distance(mb, sampling)
    return [((1.0 - t) * da + t * db) <= 0 for t in ts]


def _motion_weight(ma: np.ndarray, mb: np.ndarray) -> float:
    """How much of the centroid offset of two paired pieces is treated as motion: ``1 - IoU``
    of the pieces where they are. Pieces that overlap well are morphed correctly by the blend in
    place (aligning them would misread growth on one side as motion); as the overlap vanishes
    the blend in place breaks into a waist or a gap, and alignment takes over."""
    union = np.count_nonzero(ma | mb)
    return 1.0 - np.count_nonzero(ma & mb) / float(union) if union else 0.0


def _blend_moving(ma: np.ndarray, mb: np.ndarray, ts, sampling) -> List[np.ndarray]:
    """Blend of two single pieces that may have moved: at fraction ``t`` the distance maps are
    shifted towards the interpolated centroid (by the part of the offset judged to be motion),
    then mixed."""
    ca = np.array(ndimage.center_of_mass(ma))
    cb = np.array(ndimage.center_of_mass(mb))
    offset = cb - ca
    w = _motion_weight(ma, mb) if np.any(np.abs(offset) > 1e-3) else 0.0
    if w == 0.0:
        return _blend_in_place(ma, mb, ts, sampling)
    da, db = _signed_distance(ma, sampling), _signed_distance(mb, sampling)
    out = []
    for t in ts:
        sa = ndimage.shift(da, w * t * offset, order=1, mode="nearest")
        sb = ndimage.shift(db, -w * (1.0 - t) * offset, order=1, mode="nearest")
        out.append(((1.0 - t) * sa + t * sb) <= 0)
    return out


def _overlap_groups(la, na, lb, nb) -> list:
    """Groups ``(ids a, ids b)`` of pieces linked by overlap; a free piece is its own group."""
    both = (la > 0) & (lb > 0)
    touch = np.zeros((na + 1, nb + 1), bool)
    touch[la[both], lb[both]] = True
    touch = touch[1:, 1:]
    adjacency = np.block([[np.zeros((na, na), bool), touch], [touch.T, np.zeros((nb, nb), bool)]])
    n, group = connected_components(adjacency, directed=False)
    order = np.argsort(group, kind="stable")
    cuts = np.searchsorted(group[order], np.arange(1, n))
    return [([int(i) + 1 for i in m if i < na], [int(i) - na + 1 for i in m if i >= na])
            for m in np.split(order, cuts)]


def _pair_free(la, free_a: list, lb, free_b: list) -> Tuple[list, list, list]:
    """Pair pieces that overlap nothing by nearest centroids (optimal assignment). Pieces further
    apart than 3x the sum of their equivalent radii stay unpaired, unless each side has exactly
    one free piece. Returns (pairs, unpaired a, unpaired b)."""
    if not free_a or not free_b:
        return [], free_a, free_b
    ca = np.array(ndimage.center_of_mass(la > 0, la, free_a)).reshape(-1, 2)
    cb = np.array(ndimage.center_of_mass(lb > 0, lb, free_b)).reshape(-1, 2)
    ra = np.sqrt(ndimage.sum_labels(la > 0, la, free_a) / np.pi)
    rb = np.sqrt(ndimage.sum_labels(lb > 0, lb, free_b) / np.pi)
    dist = np.linalg.norm(ca[:, None] - cb[None], axis=2)
    rows, cols = linear_sum_assignment(dist)
    alone = len(free_a) == 1 and len(free_b) == 1
    pairs = [(free_a[i], free_b[j]) for i, j in zip(rows, cols)
             if alone or dist[i, j] <= 3.0 * (ra[i] + rb[j])]
    paired_a, paired_b = {p[0] for p in pairs}, {p[1] for p in pairs}
    return (pairs, [i for i in free_a if i not in paired_a], [j for j in free_b if j not in paired_b])


def _jobs(la, na, lb, nb) -> list:
    """Blend jobs ``(ids a, ids b, blend)`` for a key-slice pair. Pieces overlapping one-to-one
    and free pieces paired by centroid follow motion; groups overlapping several-to-one (splits,
    merges) are blended in place, overlap deciding what joins; unpaired pieces fade out."""
    jobs, free_a, free_b = [], [], []
    for ia, ib in _overlap_groups(la, na, lb, nb):
        if len(ia) == 1 and len(ib) == 1:
            jobs.append((ia, ib, _blend_moving))
        elif ia and ib:
            jobs.append((ia, ib, _blend_in_place))
        else:
            free_a += ia
            free_b += ib
    pairs, alone_a, alone_b = _pair_free(la, free_a, lb, free_b)
    jobs += [([i], [j], _blend_moving) for i, j in pairs]
    jobs += [([i], [], _blend_in_place) for i in alone_a]
    jobs += [([], [j], _blend_in_place) for j in alone_b]
    return jobs


def _box(objects: list, ids_a: list, objects_b: list, ids_b: list, shape) -> Tuple[slice, slice]:
    """Bounding box of the given pieces plus a margin, clipped to the slice."""
    sl = [objects[i - 1] for i in ids_a] + [objects_b[j - 1] for j in ids_b]
    r0, r1 = min(s[0].start for s in sl), max(s[0].stop for s in sl)
    c0, c1 = min(s[1].start for s in sl), max(s[1].stop for s in sl)
    return (slice(max(r0 - _MARGIN, 0), min(r1 + _MARGIN, shape[0])),
            slice(max(c0 - _MARGIN, 0), min(c1 + _MARGIN, shape[1])))


def _interpolate_pair(ka: np.ndarray, kb: np.ndarray, n_between: int, sampling,
                      follow_motion: bool) -> List[np.ndarray]:
    """Masks of the ``n_between`` slices strictly between key masks ``ka`` and ``kb`` (full-slice
    booleans), built job by job in cropped windows."""
    ts = [(k + 1) / float(n_between + 1) for k in range(n_between)]
    result = [np.zeros(ka.shape, bool) for _ in ts]
    if follow_motion:
        la, na = ndimage.label(ka, structure=_CONNECT)
        lb, nb = ndimage.label(kb, structure=_CONNECT)
        jobs = _jobs(la, na, lb, nb)
    else:  # the plain blend: everything in place, as one piece
        la, lb = ka.astype(np.int32), kb.astype(np.int32)
        jobs = [([1], [1], _blend_in_place)]
    obj_a, obj_b = ndimage.find_objects(la), ndimage.find_objects(lb)
    for ids_a, ids_b, blend in jobs:
        box = _box(obj_a, ids_a, obj_b, ids_b, ka.shape)
        ma, mb = np.isin(la[box], ids_a), np.isin(lb[box], ids_b)
        for res, got in zip(result, blend(ma, mb, ts, sampling)):
            res[box] |= got
    return result


def interpolate_between_slices(labels: np.ndarray, value: int, axis: int = 0, sampling=None,
                               follow_motion: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """Fill the slices between annotated slices of label ``value`` along ``axis`` by shape-based
    interpolation that follows shapes moving between the key slices (see the module docstring;
    ``follow_motion=False`` gives the plain overlap-based blend). Only voxels that are 0 are
    returned (voxels already ``value`` are right, other labels are kept; locked labels are
    guarded again when the edit is applied); annotated slices are kept. ``sampling``: in-plane
    pixel size (row, col) for anisotropic pixels. Returns ``(sorted flat indices, values)``."""
    value = int(value)
    lab = np.moveaxis(labels, axis, 0)
    annotated = [k for k in range(lab.shape[0]) if np.any(lab[k] == value)]
    out = []
    for a, b in zip(annotated[:-1], annotated[1:]):
        if b - a < 2:
            continue
        fills = _interpolate_pair(lab[a] == value, lab[b] == value, b - a - 1, sampling,
                                  follow_motion)
        for k, fill in zip(range(a + 1, b), fills):
            rr, cc = np.nonzero(fill & (lab[k] == 0))
            if len(rr):
                pos = [rr, cc]  # the other axes, in increasing order
                pos.insert(axis, np.full(len(rr), k, dtype=np.int64))
                out.append(np.ravel_multi_index(tuple(pos), labels.shape))
    if not out:
        return _EMPTY, np.zeros(0, dtype=labels.dtype)
    idx = np.sort(np.concatenate(out)).astype(np.int64)
    return idx, np.full(len(idx), value, dtype=labels.dtype)
