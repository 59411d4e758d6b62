"""Shared by the PaintSession tests and their child process: a real CT (TotalSegmentator's
small example) opened through the app's loader, and brush strokes planned on its geometry
with core.painting."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from medviewer.core import painting

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
DATA = Path(os.environ.get("MEDVIEWER_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()
CT = DATA / "totalseg" / "tests" / "reference_files" / "example_ct_sm.nii.gz"


def load_ct(path=CT):
    """The CT as the app opens it (scan + load through medviewer.services.studies)."""
    from medviewer.services.studies import load, scan

    cat = scan([str(path)])
    return load(cat.series[0])


def stroke_plan(geometry, n: int, seed: int, cancel_every: int = 5) -> list:
    """``n`` strokes (value, cancelled, [flat index arrays, one per mouse move]): drags of a
    2D brush (radius 4-9 mm) on axial slices of ``geometry``; value 0 erases; every
    ``cancel_every``-th stroke is cancelled (Esc) before it ends."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = geometry.shape
    plan = []
    for i in range(n):
        value = 0 if i % 7 == 6 else int(rng.integers(1, 5))
        z = int(rng.integers(0, nz))
        pts = np.cumsum(rng.normal(0, 4, (6, 2)), axis=0) + [rng.uniform(10, ny - 10),
                                                             rng.uniform(10, nx - 10)]
        centres = [np.array([z, y, x]) for y, x in pts]
        radius = float(rng.uniform(4, 9))
        segs = [painting.brush_indices(geometry, centres[0], radius, 0)]
        segs += [painting.brush_segment_indices(geometry, a, b, radius, 0)
                 for a, b in zip(centres[:-1], centres[1:])]
        plan.append((value, (i + 1) % cancel_every == 0, segs))
    return plan


def reference(shape, plan, finished) -> np.ndarray:
    """The labels after the strokes ``finished`` (plan positions, in order) were painted."""
    out = np.zeros(shape, np.uint8)
    flat = out.reshape(-1)
    for i in sorted(finished):
        value, _, segs = plan[i]
        flat[np.unique(np.concatenate(segs))] = value
    return out
