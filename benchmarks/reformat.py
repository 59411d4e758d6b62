"""Benchmark `reformat`: ms per update of thick slabs (MIP / MinIP / average) and oblique planes at 512².

The real chest CT (100 slices of 512 x 512, 0.898 x 0.898 x 2.5 mm) in core.reformat, no GUI.
An update moves the cursor one image, as the wheel does in a slice view, and recomputes the
picture. Slabs of 5, 10, 20 and 40 mm (the thicknesses View > Slab offers), each mode:
- ortho: the axial slab (whole slices, no interpolation), and the worst of coronal / sagittal;
- oblique: the planes turned 25 deg about the axial normal and -20 deg about the coronal one
  (axial: 512 x 512 trilinear samples a plane, planes one voxel step apart along the normal;
  also the worst of coronal / sagittal). The wheel moves the cursor one step along the normal
  (to the nearest voxel, as the session keeps it). ``update_ms``: the way a slice view does
  it now (core.slab_planes: the planes of the last slab kept, the new ones sampled, then
  reduced); ``cold_ms``: every plane sampled (a new thickness, turned planes, a jump: the
  view's worker does this when more than SYNC_SLAB_PLANES are new, the GUI thread keeps the last
  picture); ``baseline_ms``: the previous method, every plane sampled on every update.
  ``worker_updates``: wheel updates that would have gone to the worker (goal 0).
- ``mad_vs_sitk_hu``: mean |ours - SimpleITK| over the inside pixels, SimpleITK resampling
  each plane of the same slab (linear, one (cols, rows, n) grid) and reduced the same way.
Goal: <= 50 ms per update for 512², idle and with ``--busy 1`` (a child process keeps one
core at 100 %). Usage: python benchmarks/reformat.py [--busy N] [--updates N]
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CHEST_CT, busy_cores, emit, median_ms  # noqa: E402

THICKNESSES = (5.0, 10.0, 20.0, 40.0)
MODES = ("mip", "minip", "average")
GOAL_MS = 50.0


def _timed(fn, n: int) -> float:
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
    return round(median_ms(times), 2)


def _sitk_image(ct):
    import SimpleITK as sitk

    g = ct.geometry
    img = sitk.GetImageFromArray(ct.array)
    img.SetSpacing(g.spacing)
    img.SetOrigin(g.origin)
    img.SetDirection(g.direction)
    return img


def _sitk_planes(img, frame, plane, depths, step):
    """SimpleITK's linear resample of the planes at ``depths`` (n, rows, cols), -5000 outside."""
    import SimpleITK as sitk

    a = frame.axes(plane)
    nr, nc = frame.shape(plane)
    direction = tuple(np.column_stack([a[:, 1], a[:, 0], a[:, 2]]).ravel())
    origin = frame.lps_of(plane, 0.0, 0.0, float(depths[0]))
    res = sitk.Resample(img, (nc, nr, len(depths)), sitk.Transform(), sitk.sitkLinear, tuple(origin),
                        (frame.spacing, frame.spacing, step), direction, -5000.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(res)


def _mad_vs_sitk(img, ct, frame, plane, cursor, mm, mode) -> float:
    _, _, depth = frame.view_of(plane, cursor)
    depths = frame.slab_depths(plane, depth, mm)
    stack = _sitk_planes(img, frame, plane, depths, frame.normal_step(plane))
    inside = (stack > -5000).all(axis=0)
    ref = {"mip": np.max, "minip": np.min, "average": np.mean}[mode](stack, axis=0)
    ours = frame.image(ct.array, plane, cursor, mm, mode, fill=-5000.0)
    return round(float(np.abs(ours[inside] - ref[inside]).mean()), 4)


def _wheel(g, frame, plane, start_zyx, n):
    """(cursor LPS, slab depth) after each of ``n`` wheel steps along ``plane``'s normal, as a
    slice view makes them: the depth moves one normal step exactly, the cursor goes to the
    nearest voxel of that point; 20 images on, 20 back, ..."""
    step, normal = frame.normal_step(plane), frame.axes(plane)[:, 2]
    lps0 = g.index_zyx_to_lps(start_zyx)
    d0 = d = frame.view_of(plane, lps0)[2]
    out = []
    for i in range(n):
        d += step if (i // 20) % 2 == 0 else -step
        out.append((g.index_zyx_to_lps(np.round(g.lps_to_index_zyx(lps0 + (d - d0) * normal))), d))
    return out


def _timed_all(fn, n: int):
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
    return round(median_ms(times), 2), round(1000 * max(times), 2)


def measure_oblique(ct, frame, plane, n: int, img) -> dict:
    """Thin plane and every slab of ``plane`` of the turned frame: update, cold, baseline."""
    from medviewer.core.slab_planes import SYNC_SLAB_PLANES, SlabPlanes

    g, arr = ct.geometry, ct.array
    fill = float(arr.min())
    wheel = _wheel(g, frame, plane, np.array(arr.shape) // 2, n)
    out = {"shape": list(frame.shape(plane)), "normal_step_mm": round(frame.normal_step(plane), 4),
           "thin_ms": _timed(lambda i: frame.image(arr, plane, wheel[i][0], fill=fill), n)}
    for mm in THICKNESSES:
        row = {"planes": len(frame.slab_depths(plane, 0.0, mm))}
        reps = max(3, n // 10)
        row["baseline_ms"] = _timed(lambda i: frame.image(arr, plane, wheel[i][0], mm, "mip", fill=fill), reps)
        for mode in MODES:
            cache = SlabPlanes()
            worker = []

            def update(i, cache=cache, worker=worker, mode=mode):
                req = cache.request(frame.planes(plane), arr, frame.slab_depths(plane, wheel[i][1], mm), mode, fill)
                if len(cache.missing(req)) > SYNC_SLAB_PLANES:
                    worker.append(i)
                return cache.image(req)

            update(0)  # the first slab of the scroll: cold (the worker's)
            worker.clear()
            m = dict(zip(("update_ms", "update_max_ms"), _timed_all(lambda i: update(i + 1), n - 1)))
            m["worker_updates"] = len(worker)
            m["cold_ms"] = _timed(lambda i, mode=mode: SlabPlanes().image(cache.request(
                frame.planes(plane), arr, frame.slab_depths(plane, wheel[i][1], mm), mode, fill)), reps)
            m["mad_vs_sitk_hu"] = _mad_vs_sitk(img, ct, frame, plane, wheel[0][0], mm, mode)
            m["update_vs_goal"] = round(m["update_ms"] / GOAL_MS, 3)
            m["update_vs_baseline"] = round(m["update_ms"] / row["baseline_ms"], 3)
            row[mode] = m
        out[f"slab_{mm:g}mm"] = row
    return out


def measure_ortho(ct, plane, n: int) -> dict:
    from medviewer.core.reformat import ortho_slab
    from medviewer.core.reslice import Reslicer

    r, arr = Reslicer(ct.geometry), ct.array
    size = r.n_slices(plane)
    start = size // 3
    out = {"thin_ms": _timed(lambda i: r.extract(arr, plane, start + i % (size // 3)).image, n)}
    for mm in THICKNESSES:
        out[f"slab_{mm:g}mm"] = {mode: _timed(
            lambda i, mode=mode: ortho_slab(r, arr, plane, start + i % (size // 3), mm, mode), n) for mode in MODES}
    return out


def measure(ct, n: int) -> dict:
    import SimpleITK as sitk

    from medviewer.core.reformat import PLANES, ObliqueFrame
    from medviewer.core.reslice import Reslicer

    arr, g = ct.array, ct.geometry
    frame = ObliqueFrame.identity(Reslicer(g), np.array(arr.shape) // 2)
    frame.rotate("axial", math.radians(25))
    frame.rotate("coronal", math.radians(-20))
    img = _sitk_image(ct)
    out = {"ortho": {p: measure_ortho(ct, p, n) for p in PLANES},
           "oblique": {p: measure_oblique(ct, frame, p, n, img) for p in PLANES}}
    # SimpleITK's own time for the thin oblique axial plane (one thread and its default)
    wheel = _wheel(g, frame, "axial", np.array(arr.shape) // 2, n)
    one = lambda i: _sitk_planes(img, frame, "axial", [frame.view_of("axial", wheel[i][0])[2]], 1.0)  # noqa: E731
    default_threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    out["sitk_thin_axial_default_threads_ms"] = _timed(one, n)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        out["sitk_thin_axial_1_thread_ms"] = _timed(one, n)
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(default_threads)
    ob = out["oblique"]
    worst_update = max(row[m]["update_ms"] for p in ob for k, row in ob[p].items() if k.startswith("slab_")
                       for m in MODES)
    worst_thin = max(ob[p]["thin_ms"] for p in ob)
    worst_ortho = max(v for p in out["ortho"].values() for k, row in p.items() if k.startswith("slab_")
                      for v in row.values())
    out["worst_oblique_slab_update_ms"] = worst_update
    out["worst_oblique_thin_ms"] = worst_thin
    out["worst_ortho_slab_ms"] = worst_ortho
    out["worst_mad_vs_sitk_hu"] = max(row[m]["mad_vs_sitk_hu"] for p in ob for k, row in ob[p].items()
                                      if k.startswith("slab_") for m in MODES)
    out["worker_updates"] = sum(row[m]["worker_updates"] for p in ob for k, row in ob[p].items()
                                if k.startswith("slab_") for m in MODES)
    out["goal_le_50ms"] = max(worst_update, worst_thin, worst_ortho) <= GOAL_MS and out["worker_updates"] == 0
    out["goal_mad_le_1hu"] = out["worst_mad_vs_sitk_hu"] <= 1.0
    return out


def _summary(m: dict) -> dict:
    """The axial 512² rows in short: update / cold / baseline ms per thickness (MIP)."""
    ax = m["oblique"]["axial"]
    return {k: (v["mip"]["update_ms"], v["mip"]["cold_ms"], v["baseline_ms"]) for k, v in ax.items()
            if k.startswith("slab_")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--busy", type=int, default=0, help="also measure with N cores kept busy")
    ap.add_argument("--updates", type=int, default=30, help="updates per measurement")
    a = ap.parse_args()
    from medviewer.io.discover import scan_paths
    from medviewer.io.load import load_series

    ct = load_series(scan_paths([CHEST_CT]).series[0])
    result = {"benchmark": "reformat", "volume_shape": list(ct.shape), "updates": a.updates,
              "goal_ms": GOAL_MS, "idle": measure(ct, a.updates)}
    print("idle axial (update, cold, baseline) ms", _summary(result["idle"]), file=sys.stderr)
    if a.busy:
        with busy_cores(a.busy):
            time.sleep(0.5)
            result[f"busy_{a.busy}"] = measure(ct, a.updates)
        print("busy axial (update, cold, baseline) ms", _summary(result[f"busy_{a.busy}"]), file=sys.stderr)
    modes = [v for v in result.values() if isinstance(v, dict)]
    result["goal_le_50ms"] = all(v["goal_le_50ms"] for v in modes)
    result["goal_mad_le_1hu"] = all(v["goal_mad_le_1hu"] for v in modes)
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
