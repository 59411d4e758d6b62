"""The classical interactive engine: clicks, boxes and scribbles to a 2D mask by a geodesic
seed competition, and a 2D mask carried through neighbouring slices. numpy/scipy only: no
weights, no torch.

2D: every positive seed brings an intensity window (its neighbourhood's value +- a tolerance
from its local spread); pixels inside some window (and inside the boxes, if any) form a graph
whose edges cost their length in mm times (1 + the intensity step / tolerance). Each pixel goes
to the nearer kind of seed (positive or negative) by geodesic distance (Dijkstra); the mask is
the positive pixels connected to a positive seed, holes filled unless a negative seed is in
them. Positive seeds are always in the mask; the region a negative seed lands in is never."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

__all__ = ["segment_2d", "propagate_3d", "intensity_windows"]

_EDGE_BETA = 4.0  # how much an intensity step (in tolerances) lengthens an edge


def _smooth(image: np.ndarray) -> np.ndarray:
    return ndimage.gaussian_filter(np.asarray(image, dtype=np.float32), 0.8)


def intensity_windows(smooth: np.ndarray, seeds_yx) -> list:
    """(low, high) intensity windows, one per positive seed, from its 5x5 neighbourhood."""
    lo_q, hi_q = np.percentile(smooth, (0.5, 99.5))
    span = max(float(hi_q - lo_q), 1e-6)
    out = []
    for y, x in seeds_yx:
        patch = smooth[max(y - 2, 0):y + 3, max(x - 2, 0):x + 3]
        centre = float(np.median(patch))
        tol = float(np.clip(2.5 * patch.std(), 0.015 * span, 0.035 * span))
        out.append((centre - tol, centre + tol))
    return out


def _in_windows(smooth: np.ndarray, windows) -> np.ndarray:
    ok = np.zeros(smooth.shape, bool)
    for lo, hi in windows:
        ok |= (smooth >= lo) & (smooth <= hi)
    return ok


def _geodesic(smooth, allowed, spacing_yx, tol, sources_pos, sources_neg):
    """Geodesic distances on ``allowed`` pixels from the positive and the negative seeds."""
    ny, nx = smooth.shape
    idx = -np.ones(smooth.shape, np.int64)
    idx[allowed] = np.arange(int(allowed.sum()))
    rows, cols, wts = [], [], []
    sy, sx = spacing_yx
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a = (slice(0, ny - dy), slice(max(-dx, 0), nx - max(dx, 0)))
        b = (slice(dy, ny), slice(max(dx, 0), nx - max(-dx, 0)))
        both = allowed[a] & allowed[b]
        step = float(np.hypot(dy * sy, dx * sx))
        diff = np.abs(smooth[a] - smooth[b])[both]
        rows.append(idx[a][both])
        cols.append(idx[b][both])
        wts.append(step * (1.0 + _EDGE_BETA * diff / tol) + 1e-6)
    n = int(allowed.sum())
    graph = coo_matrix((np.concatenate(wts), (np.concatenate(rows), np.concatenate(cols))),
                       shape=(n, n)).tocsr()
    out = []
    for src in (sources_pos, sources_neg):
        if not src:
            out.append(np.full(n, np.inf))
            continue
        ids = [int(idx[y, x]) for y, x in src]
        out.append(dijkstra(graph, directed=False, indices=ids, min_only=True))
    return idx, out[0], out[1]


def segment_2d(image2d: np.ndarray, prompts, spacing: Sequence[float] = (1.0, 1.0),
               z: Optional[int] = None, windows=None) -> np.ndarray:
    """A boolean mask of one slice from the prompts on it.

    ``prompts``: a :class:`medviewer.core.prompts.Prompts`; only those on slice ``z`` count
    (every prompt when ``z`` is None). ``spacing``: (sy, sx) mm of the rows and columns.
    ``windows``: intensity windows to use instead of the positive seeds' own (propagation)."""
    image = np.asarray(image2d)
    if image.ndim != 2:
        raise ValueError(f"segment_2d needs a 2D image, got shape {image.shape}")
    shape = image.shape
    clip = lambda v: (int(np.clip(v[-2], 0, shape[0] - 1)), int(np.clip(v[-1], 0, shape[1] - 1)))
    pos = [clip(v) for v in prompts.seeds(True, z)]
    neg = [clip(v) for v in prompts.seeds(False, z)]
    boxes = prompts.boxes if z is None else prompts.boxes_on(z)
    roi = np.ones(shape, bool)
    if boxes:
        roi = np.zeros(shape, bool)
        for b in boxes:
            roi[max(b.y0, 0):b.y1 + 1, max(b.x0, 0):b.x1 + 1] = True
        if not pos:  # a box alone: its centre is the object
            pos = [clip(b.centre) for b in boxes]
    mask = np.zeros(shape, bool)
    if not pos:
        return mask
    smooth = _smooth(image)
    windows = list(windows) if windows is not None else intensity_windows(smooth, pos)
    tol = float(np.median([(hi - lo) / 2 for lo, hi in windows]))
    # the raw values too: smoothing blurs the object's rim out of its window
    raw = image.astype(np.float32)
    allowed = (_in_windows(smooth, windows) | _in_windows(raw, windows)) & roi
    for y, x in pos + neg:
        allowed[y, x] = True
    idx, d_pos, d_neg = _geodesic(smooth, allowed, tuple(spacing)[-2:], max(tol, 1e-6), pos, neg)
    win = np.zeros(shape, bool)
    win[allowed] = d_pos < d_neg  # ties (and unreachable pixels) are not the object
    neg_side = np.zeros(shape, bool)
    neg_side[allowed] = d_neg <= d_pos
    for y, x in neg:
        win[y, x], neg_side[y, x] = False, True
    for y, x in pos:
        win[y, x] = True
    mask = _keep_seeded(win, pos)
    filled = ndimage.binary_fill_holes(mask) & roi
    holes, n = ndimage.label(filled & ~mask)
    if n:
        bad = np.unique(holes[neg_side & (holes > 0)])
        filled[np.isin(holes, bad[bad > 0])] = False
    mask = _keep_seeded(filled & ~neg_side, pos)
    for y, x in pos:
        mask[y, x] = True
    return mask


def _keep_seeded(mask: np.ndarray, seeds) -> np.ndarray:
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3), bool))
    keep = {int(labels[y, x]) for y, x in seeds} - {0}
    return np.isin(labels, sorted(keep)) if keep else np.zeros_like(mask)


def propagate_3d(volume: np.ndarray, mask2d: np.ndarray, z: int, prompts=None,
                 spacing: Sequence[float] = (1.0, 1.0, 1.0), min_ratio: float = 0.25,
                 max_ratio: float = 2.0, max_slices: Optional[int] = None) -> np.ndarray:
    """The 3D mask of ``volume`` (z, y, x) grown from ``mask2d`` on slice ``z``.

    Each next slice is seeded from the previous mask's eroded core (plus any prompts given on
    that slice), restricted to a band around the previous mask, and segmented with the
    intensity windows of the starting slice. Growth stops in a direction when the area
    collapses below ``min_ratio`` or jumps above ``max_ratio`` times the previous one.
    ``spacing``: (sz, sy, sx) mm per array axis."""
    from medviewer.core.prompts import Prompts, Scribble

    vol = np.asarray(volume)
    prompts = prompts if prompts is not None else Prompts()
    out = np.zeros(vol.shape, bool)
    start = np.asarray(mask2d, bool)
    out[z] = start
    if not start.any():
        return out
    syx = tuple(spacing)[-2:]
    smooth0 = _smooth(vol[z])
    core_yx = _core(start, syx)
    windows = intensity_windows(smooth0, core_yx[:: max(len(core_yx) // 16, 1)])
    band_px = max(1, int(round(10.0 / min(syx))))  # the object moves < 10 mm a slice
    for step in (-1, 1):
        prev, k, count = start, z + step, 0
        while 0 <= k < vol.shape[0] and (max_slices is None or count < max_slices):
            seeds = _core(prev, syx)
            seeds = seeds[:: max(len(seeds) // 64, 1)]
            band = ndimage.binary_dilation(prev, iterations=band_px)
            ring = band ^ ndimage.binary_dilation(band, iterations=1)
            local = Prompts(scribbles=(Scribble(tuple((k, y, x) for y, x in seeds), True),
                                       Scribble(tuple((k, y, x) for y, x in np.argwhere(ring)),
                                                False)))
            for p in prompts.points:
                if p.voxel[0] == k:
                    local = local.add(p)
            m = segment_2d(vol[k], local, syx, z=k, windows=windows) & band
            area, prev_area = int(m.sum()), int(prev.sum())
            if area < min_ratio * prev_area or area > max_ratio * prev_area:
                break
            out[k], prev, k, count = m, m, k + step, count + 1
    return out


def _core(mask: np.ndarray, spacing_yx) -> list:
    """Pixels of the mask's eroded core: at least half the maximal depth inside it."""
    dist = ndimage.distance_transform_edt(mask, sampling=spacing_yx)
    core = dist >= 0.5 * dist.max()
    return [tuple(int(c) for c in p) for p in np.argwhere(core)]
