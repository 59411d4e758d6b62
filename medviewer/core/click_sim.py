"""The standard click simulator of interactive segmentation: where the next click goes,
Dice, and the number of clicks to reach a Dice (NoC@85, NoC@90).

The next click goes to the centre of the largest error region (the voxel farthest from the
region's boundary, by a Euclidean distance transform in millimetres): positive when the region
is missed (in the reference, not in the mask), negative when it is false (in the mask, not in
the reference). Works on 2D and 3D masks alike."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from .lazy_import import LazyModule

ndimage = LazyModule("scipy.ndimage")  # imported on first use: this module loads at start-up

__all__ = ["dice", "next_click", "noc", "Click", "MAX_CLICKS", "run_protocol"]

MAX_CLICKS = 20


@dataclass(frozen=True)
class Click:
    """A simulated click: the voxel (array index) and its sign."""

    index: tuple
    positive: bool


def dice(mask: np.ndarray, reference: np.ndarray) -> float:
    """Dice of two boolean masks; 1.0 when both are empty."""
    a, b = np.asarray(mask, bool), np.asarray(reference, bool)
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(a, b).sum()) / total


def _largest_region_centre(error: np.ndarray, sampling) -> Optional[tuple]:
    labels, n = ndimage.label(error)
    if n == 0:
        return None
    sizes = ndimage.sum_labels(error, labels, index=np.arange(1, n + 1))
    region = labels == (int(np.argmax(sizes)) + 1)
    # distance to the region's boundary; padding makes the image border a boundary too
    padded = np.pad(region, 1)
    dist = ndimage.distance_transform_edt(padded, sampling=sampling)
    dist = dist[tuple(slice(1, -1) for _ in range(region.ndim))]
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(dist)), region.shape))


def next_click(mask: np.ndarray, reference: np.ndarray,
               spacing: Optional[Sequence[float]] = None) -> Optional[Click]:
    """The next simulated click, or None when the mask equals the reference.

    ``spacing`` is the voxel size per array axis (mm); equal sizes when omitted."""
    a, b = np.asarray(mask, bool), np.asarray(reference, bool)
    if a.shape != b.shape:
        raise ValueError(f"mask {a.shape} and reference {b.shape} differ in shape")
    missed, false = b & ~a, a & ~b
    sampling = None if spacing is None else tuple(float(s) for s in spacing)
    best = None
    for error, positive in ((missed, True), (false, False)):
        labels, n = ndimage.label(error)
        if n == 0:
            continue
        size = int(ndimage.sum_labels(error, labels, np.arange(1, n + 1)).max())
        if best is None or size > best[0]:
            best = (size, error, positive)
    if best is None:
        return None
    centre = _largest_region_centre(best[1], sampling)
    return Click(centre, best[2])


def noc(dices: Sequence[float], target: float, max_clicks: int = MAX_CLICKS) -> int:
    """Number of clicks to reach ``target`` Dice: ``dices[k]`` is the Dice after click k+1.
    ``max_clicks`` when it is never reached within ``max_clicks`` clicks (the usual convention)."""
    for k, d in enumerate(list(dices)[:max_clicks]):
        if d >= target:
            return k + 1
    return max_clicks


def run_protocol(segment, reference: np.ndarray, spacing: Optional[Sequence[float]] = None,
                 max_clicks: int = MAX_CLICKS, stop_at: Optional[float] = None):
    """The click protocol on one 2D reference: ``segment(clicks, prev_mask) -> mask`` is called
    after each click with every click so far (a list of :class:`Click`) and the previous mask
    (None before the first). Returns (clicks, dices): the Dice after each click."""
    ref = np.asarray(reference, bool)
    mask, clicks, dices = np.zeros(ref.shape, bool), [], []
    prev = None
    for _ in range(int(max_clicks)):
        click = next_click(mask, ref, spacing)
        if click is None:
            break
        clicks.append(click)
        mask = np.asarray(segment(list(clicks), prev), bool)
        prev = mask
        dices.append(dice(mask, ref))
        if stop_at is not None and dices[-1] >= stop_at:
            break
    return clicks, dices
