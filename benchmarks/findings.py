"""Benchmark `findings`: measuring every connected component of a 512x512x100 label map.

Label map on the real chest CT (512x512x100, 0.898 x 0.898 x 2.5 mm): label 1 = lung/air
(-1000..-400 HU), label 2 = bone (> 300 HU: hundreds of components), label 3..7 = 400 small
spheres (2-6 mm radius) scattered at random (seeded): many components of several labels.
Measured: ``services.findings.case_findings`` (the app's path: one find_objects pass, each
label labelled inside its box, hull diameters from each row's ends). Baseline, same run: the
obvious way — each label labelled over the whole volume, each component's mask taken over the
whole volume, diameters from the convex hull of all its voxels on every slice.
Also measured: after an edit of one label (a sphere of label 3 erased), the app's update
(only label 3 measured again and merged) vs measuring everything again.
Prints one JSON line: times (s, median of repeats), the number of findings and the ratios
baseline / app and full / update. Usage: python benchmarks/findings.py [--quick]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CHEST_CT, emit  # noqa: E402

import numpy as np  # noqa: E402


def label_map(vol) -> np.ndarray:
    img = np.asarray(vol.array)
    labels = np.zeros(vol.shape, np.uint8)
    labels[(img > -1000) & (img < -400)] = 1
    labels[img > 300] = 2
    rng = np.random.default_rng(16)
    sp = vol.geometry.spacing
    zz, yy, xx = np.ogrid[:vol.shape[0], :vol.shape[1], :vol.shape[2]]
    for _ in range(400):
        c = rng.uniform([5, 40, 40], [vol.shape[0] - 5, vol.shape[1] - 40, vol.shape[2] - 40])
        r = rng.uniform(2.0, 6.0)
        z0, z1 = int(max(c[0] - r / sp[2] - 1, 0)), int(c[0] + r / sp[2] + 2)
        y0, y1 = int(c[1] - r / sp[1] - 1), int(c[1] + r / sp[1] + 2)
        x0, x1 = int(c[2] - r / sp[0] - 1), int(c[2] + r / sp[0] + 2)
        d2 = (((zz[z0:z1] - c[0]) * sp[2]) ** 2 + ((yy[:, y0:y1] - c[1]) * sp[1]) ** 2
              + ((xx[..., x0:x1] - c[2]) * sp[0]) ** 2)
        labels[z0:z1, y0:y1, x0:x1][d2 <= r * r] = 3 + int(rng.integers(0, 5))
    return labels


def baseline(labels, vol) -> int:
    """Whole-volume labelling and masks; hull of all voxels per slice (no boxes)."""
    from scipy import ndimage

    from medviewer.core.findings import slice_diameters

    img = np.asarray(vol.array)
    n = 0
    for value in [int(v) for v in np.unique(labels) if v > 0]:
        comp, k = ndimage.label(labels == value, structure=np.ones((3, 3, 3), bool))
        for c in range(1, k + 1):
            mask = comp == c
            vals = img[mask]
            _ = vals.mean(), vals.std()
            zs = np.flatnonzero(mask.any(axis=(1, 2)))
            best = max((slice_diameters(mask[z], vol.geometry, int(z))[0].length_mm, z) for z in zs)
            slice_diameters(mask[best[1]], vol.geometry, int(best[1]))
            n += 1
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 repeat instead of 3")
    a = ap.parse_args()
    repeats = 1 if a.quick else 3
    from medviewer.io.load import open_first
    from medviewer.services.findings import case_findings

    vol = open_first([CHEST_CT])
    labels = label_map(vol)
    app, base, upd = [], [], []
    n_app = n_base = 0
    edited = labels.copy()
    edited[tuple(np.argwhere(labels == 3)[:50].T)] = 0
    for _ in range(repeats):
        t = time.perf_counter()
        found = case_findings(vol, labels)
        app.append(time.perf_counter() - t)
        n_app = len(found)
        t = time.perf_counter()
        updated = case_findings(vol, edited, update=(found, {3}))
        upd.append(time.perf_counter() - t)
        t = time.perf_counter()
        n_base = baseline(labels, vol)
        base.append(time.perf_counter() - t)
    assert n_app == n_base, (n_app, n_base)
    assert updated == case_findings(vol, edited)
    app_s, base_s = statistics.median(app), statistics.median(base)
    upd_s = statistics.median(upd)
    emit({"benchmark": "findings", "shape": list(labels.shape), "findings": n_app,
          "labels": int(len(np.unique(labels)) - 1), "app_s": round(app_s, 3),
          "baseline_s": round(base_s, 3), "ratio": round(base_s / app_s, 2),
          "edit_update_s": round(upd_s, 3), "edit_ratio": round(app_s / upd_s, 2),
          "repeats": repeats})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
