"""Carry a 2D mask through a volume, slice by slice, with any interactive engine.

The engine gives one function, ``step(k, prev_mask2d) -> mask2d``: the mask of slice ``k``
given the mask of its neighbour (the slice just walked from). :func:`propagate` walks both
directions from the start slice and decides where to stop, the same way for every engine:

- the new mask is empty, or its area collapses below ``min_ratio`` or jumps above
  ``max_ratio`` times the previous slice's (the object ended, or leaked);
- the next slice is an *anchor*: a slice the user prompted on, whose mask is the user's and
  is left as it is in ``existing``;
- with ``existing`` (the previous 3D result, when re-propagating a correction): the new mask
  agrees with ``existing[k]`` (Dice >= ``agree``), so the slices beyond are left as they were
  and a correction rewrites only the slices it changes (one that leaves the start slice as it
  was in ``existing`` rewrites nothing).

Slices where the walk stopped keep their ``existing`` mask (empty without ``existing``).
numpy only: no Qt, no torch."""
from __future__ import annotations

from typing import Callable, Iterable, Optional, Sequence

import numpy as np

__all__ = ["propagate", "Step"]

Step = Callable[[int, np.ndarray], np.ndarray]


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.count_nonzero(a & b)) / total


def propagate(shape_zyx: Sequence[int], start_mask2d: np.ndarray, z: int, step: Step,
              existing: Optional[np.ndarray] = None, anchors: Iterable[int] = (),
              min_ratio: float = 0.25, max_ratio: float = 2.0, agree: float = 0.95,
              max_slices: Optional[int] = None) -> np.ndarray:
    """The boolean 3D mask (``shape_zyx``) with ``start_mask2d`` on slice ``z``, carried outward
    in both directions by ``step`` until a stop rule (module doc) ends each direction.

    ``existing``: the previous 3D result; the output starts as its copy (slice ``z`` replaced)
    and only slices the walk rewrites change. ``anchors``: slices never rewritten (the start
    slice ``z`` itself is not an anchor). ``max_slices``: at most this many new slices per
    direction."""
    shape = tuple(int(s) for s in shape_zyx)
    if len(shape) != 3:
        raise ValueError(f"shape_zyx must have 3 values, got {shape}")
    start = np.asarray(start_mask2d, bool)
    if start.shape != shape[1:]:
        raise ValueError(f"start mask {start.shape} is not a slice of {shape}")
    if not 0 <= int(z) < shape[0]:
        raise ValueError(f"start slice {z} is outside 0..{shape[0] - 1}")
    z = int(z)
    if existing is not None:
        existing = np.asarray(existing, bool)
        if existing.shape != shape:
            raise ValueError(f"existing mask {existing.shape} is not {shape}")
        out = existing.copy()
        if np.array_equal(existing[z], start):  # nothing changed where the walk starts
            return out
    else:
        out = np.zeros(shape, bool)
    out[z] = start
    if not start.any():
        return out
    anchors = {int(a) for a in anchors} - {z}
    for direction in (-1, 1):
        prev, prev_area, k, count = start, int(start.sum()), z + direction, 0
        while 0 <= k < shape[0] and (max_slices is None or count < max_slices):
            if k in anchors:
                break
            m = np.asarray(step(k, prev), bool)
            if m.shape != start.shape:
                raise ValueError(f"step({k}) returned shape {m.shape}, expected {start.shape}")
            area = int(m.sum())
            if area == 0 or area < min_ratio * prev_area or area > max_ratio * prev_area:
                break
            if existing is not None and _dice(m, existing[k]) >= agree:
                break
            out[k] = m
            prev, prev_area, k, count = m, area, k + direction, count + 1
    return out
