"""Benchmark `mesh`: label surfaces for the 3D view (services.surfaces, VTK surface nets).

Cases, on TotalSegmentator's reference files (../shared/data/totalseg): ``ct_sm`` = the
example CT's 41-label segmentation (122x101x30, 3 mm), and ``ct_dicom`` = the 31-label
segmentation of its DICOM series (512x512x20, 0.98 mm), a bigger grid.

Measurements (one JSON line each, the median of the repeats):
- ``all_labels``: every label meshed at once with smoothing, plus the label boxes the app keeps
  for re-meshing (what the 3D pane's first mesh job does). Goal <= 1 s. Baseline in the same
  run: the classic per-label pipeline (discrete flying edges + windowed-sinc smoothing, one
  label after another).
- ``one_label_after_brush``: a brush-sized edit (a 10 mm disc on one slice, as the Brush tool
  paints) on the edge of the largest label; the labels it changed are re-meshed, each in its
  bounding box (plan + crop copies + mesh: the pane's whole path except the bridge). Goal
  <= 200 ms. Baseline: re-meshing all labels.
- ``main_thread_stall``: the longest gap of a 1 ms timer loop on the main thread while a
  worker thread meshes the ct_dicom labels whole, 5 times (VTK lets the GIL go while it
  works; this is how long the GUI thread could freeze). Goal <= 50 ms (issue 14 section 4).
  ``control_max_gap_ms``: the same loop with no worker, as long (the machine's own noise).
- ``gui_stall_full_mesh`` (not with --no-app): in the real window (offscreen) with the 3D pane
  shown, the longest gap of a 1 ms QTimer on the GUI thread while ct_dicom's labels are meshed
  again 3 times and the surfaces put in the scene and rendered; and the longest render.
  Baseline in the same run: the surfaces' back faces drawn (as before back-face culling).
- ``stroke_to_surface`` (not with --no-app): in the real window (offscreen), a brush stroke
  dragged with mouse events across the axial view on ct_sm; ms from the button's release to
  the re-meshed surface being in the 3D pane's scene (the bridge, the worker, the scene).

Usage: python benchmarks/mesh.py [--quick] [--busy 1] [--no-app]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED_DATA, busy_cores, emit, median_ms  # noqa: E402

TOTALSEG = SHARED_DATA / "totalseg" / "tests" / "reference_files"
CASES = {"ct_sm": ("example_ct_sm.nii.gz", "example_seg.nii.gz"),
         "ct_dicom": ("example_ct_dicom", "example_seg_dicom.nii.gz")}
GOAL_ALL_S, GOAL_ONE_S = 1.0, 0.2
os.environ["MEDVIEWER_WORKSPACE"] = tempfile.mkdtemp(prefix="mv_mesh_ws_")


def load_case(name: str):
    from medviewer.io.load import open_first
    from medviewer.services.annotations import read_label_file

    image, seg = CASES[name]
    vol = open_first([TOTALSEG / image])
    # the DICOM case's labels are stored with rows flipped (LAS): resampled onto the image
    # (nearest neighbour, exact for a flip)
    labels, _table, _warnings = read_label_file(TOTALSEG / seg, vol.geometry, resample=True)
    return vol, labels


def classic_pipeline(labels, geometry) -> int:
    """Baseline: per label, discrete flying edges then windowed-sinc smoothing."""
    import numpy as np
    from vtkmodules.util import numpy_support
    from vtkmodules.vtkCommonDataModel import vtkImageData
    from vtkmodules.vtkFiltersCore import vtkWindowedSincPolyDataFilter
    from vtkmodules.vtkFiltersGeneral import vtkDiscreteFlyingEdges3D

    padded = np.pad(labels, 1)
    img = vtkImageData()
    img.SetDimensions(*padded.shape[::-1])
    img.SetSpacing(*geometry.spacing)
    img.GetPointData().SetScalars(numpy_support.numpy_to_vtk(padded.ravel(), deep=False))
    tris = 0
    for v in [int(x) for x in np.unique(labels) if x]:
        fe = vtkDiscreteFlyingEdges3D()
        fe.SetInputData(img)
        fe.SetValue(0, v)
        sinc = vtkWindowedSincPolyDataFilter()
        sinc.SetInputConnection(fe.GetOutputPort())
        sinc.SetNumberOfIterations(8)
        sinc.Update()
        tris += sinc.GetOutput().GetNumberOfCells()
    return tris


def brush_edit(labels, geometry, radius_mm: float = 10.0):
    """Flat indices, old and new values of a brush disc on the edge of the largest label."""
    import numpy as np

    from medviewer.core.labelmap import count_values

    counts = count_values(labels)
    counts[0] = 0
    value = int(np.argmax(counts))
    zyx = np.argwhere(labels == value)
    z = int(np.median(zyx[:, 0]))
    row = zyx[zyx[:, 0] == z]
    y, x = int(np.median(row[:, 1])), int(row[:, 2].max())  # the label's edge on that slice
    sx, sy = geometry.spacing[:2]
    yy, xx = np.ogrid[:labels.shape[1], :labels.shape[2]]
    disc = ((yy - y) * sy) ** 2 + ((xx - x) * sx) ** 2 <= radius_mm ** 2
    idx = np.flatnonzero(disc.ravel()) + z * labels.shape[1] * labels.shape[2]
    return value, idx, labels.ravel()[idx].copy()


def measure_case(name: str, repeats: int) -> list:
    import numpy as np

    from medviewer.services import surfaces as sf

    vol, labels = load_case(name)
    geo = vol.geometry
    sf.mesh_labels(labels, geo)  # warm: VTK and scipy imported, caches filled
    sf.label_boxes(labels)
    full, base = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        surfaces = sf.mesh_labels(labels, geo)
        boxes = sf.label_boxes(labels)
        full.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        base_tris = classic_pipeline(labels, geo)
        base.append(time.perf_counter() - t0)
    tris = sum(s.n_triangles for s in surfaces.values())
    out = [{"benchmark": "mesh", "case": name, "measure": "all_labels",
            "shape_zyx": list(labels.shape), "labels": len(surfaces), "triangles": tris,
            "seconds": round(median_ms(full) / 1000, 4), "goal_s": GOAL_ALL_S,
            "goal_ratio": round(median_ms(full) / 1000 / GOAL_ALL_S, 3),
            "baseline": "per-label flying edges + windowed sinc",
            "baseline_seconds": round(median_ms(base) / 1000, 4), "baseline_triangles": base_tris,
            "ratio_vs_baseline": round(median_ms(full) / median_ms(base), 3)}]
    value, idx, old = brush_edit(labels, geo)
    one, sizes = [], None
    for _ in range(repeats):
        lab = labels.copy()
        bx = dict(boxes)
        t0 = time.perf_counter()
        lab.ravel()[idx] = value
        plan = sf.remesh_plan(idx, old, np.full(len(idx), value, lab.dtype), lab.shape, bx)
        crops = plan.crops(lab)
        res = sf.mesh_crops(crops, geo)
        one.append(time.perf_counter() - t0)
        sizes = (plan.values, [list(c.shape) for _v, c, _o in crops], res[value].n_triangles)
    out.append({"benchmark": "mesh", "case": name, "measure": "one_label_after_brush",
                "brush_voxels": int(len(idx)), "label": value, "labels_remeshed": list(sizes[0]),
                "regions_zyx": sizes[1], "triangles": sizes[2],
                "ms": round(median_ms(one), 2), "goal_ms": 1000 * GOAL_ONE_S,
                "goal_ratio": round(median_ms(one) / 1000 / GOAL_ONE_S, 3),
                "baseline": "all labels re-meshed", "baseline_ms": round(median_ms(full), 1),
                "ratio_vs_baseline": round(median_ms(one) / median_ms(full), 3)})
    return out


def measure_stall(runs: int = 5) -> dict:
    import threading

    from medviewer.services import surfaces as sf

    vol, labels = load_case("ct_dicom")
    sf.mesh_labels(labels, vol.geometry)
    sf.label_boxes(labels)  # scipy.ndimage imported before the clock starts, as the app has it
    done = threading.Event()

    def work():
        for _ in range(runs):
            sf.mesh_labels(labels, vol.geometry)
            sf.label_boxes(labels)
        done.set()

    gaps = []
    worker = threading.Thread(target=work)
    last = time.perf_counter()
    worker.start()
    while not done.is_set():
        time.sleep(0.001)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
    worker.join()
    gaps.sort()
    # the floor: the same loop with no worker for as long (what the machine's load alone does)
    control, end = [], time.perf_counter() + sum(gaps)
    last = time.perf_counter()
    while last < end:
        time.sleep(0.001)
        now = time.perf_counter()
        control.append(now - last)
        last = now
    return {"benchmark": "mesh", "case": "ct_dicom", "measure": "main_thread_stall",
            "meshes": runs, "ticks": len(gaps), "max_gap_ms": round(1000 * gaps[-1], 1),
            "p99_gap_ms": round(1000 * gaps[int(0.99 * (len(gaps) - 1))], 2), "goal_ms": 50.0,
            "goal_ratio": round(1000 * gaps[-1] / 50.0, 3),
            "control_max_gap_ms": round(1000 * max(control), 1)}


def measure_gui_stall(runs: int = 3) -> dict:
    """The real window (offscreen) with the 3D pane shown: the longest gap of a 1 ms timer on
    the GUI thread while every label of ct_dicom is meshed again and the new surfaces are put
    in the scene and rendered; and the longest single render (software OpenGL here)."""
    from PySide6.QtCore import QEventLoop, QTimer

    from _viewer import shown_window

    vol, _labels = load_case("ct_dicom")
    app, win = shown_window(vol)
    ctl = win.annotation.ctl
    wait_until(lambda: ctl.state is not None and ctl.state.ready)
    win.annotation.io.import_labelmap(TOTALSEG / CASES["ct_dicom"][1], resample=True)
    wait_until(lambda: ctl.labelmap is not None and ctl.labelmap.labels.any())
    feature = win.features["view3d"]
    feature.show_3d(True)
    pane = feature.pane
    wait_until(lambda: pane.scene is not None and len(pane.scene.actors) > 10, 120)
    renders, render_now = [], pane._render_now

    def timed_render():
        t0 = time.perf_counter()
        render_now()
        renders.append(time.perf_counter() - t0)

    pane._render_now = timed_render
    gaps, last = [], [time.perf_counter()]

    def tick():
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    from medviewer.ui.view3d import scene as scene_module

    timer = QTimer()
    timer.setInterval(1)
    timer.timeout.connect(tick)
    out = {}
    for culling in (False, True):  # the baseline first: back faces drawn, as before
        scene_module.BACKFACE_CULLING = culling
        gaps.clear()
        renders.clear()
        timer.start()
        for _ in range(runs):
            n = pane.renders
            feature.mesher.remesh_all()
            wait_until(lambda: not feature.mesher._full_running and pane.renders > n)
            loop = QEventLoop()
            QTimer.singleShot(200, loop.quit)
            loop.exec()
        timer.stop()
        out[culling] = (max(gaps), max(renders), median_ms(renders))
    tris = sum(feature.mesher.triangles.values())
    size = list(pane.scene.size)
    win.close()
    (base_gap, base_max, base_med), (gap, rmax, rmed) = out[False], out[True]
    return {"benchmark": "mesh", "case": "ct_dicom", "measure": "gui_stall_full_mesh", "meshes": runs,
            "triangles": tris, "pane_px": size, "max_gap_ms": round(1000 * gap, 1),
            "max_render_ms": round(1000 * rmax, 1), "median_render_ms": round(rmed, 1),
            "goal_ms": 50.0, "goal_ratio": round(1000 * gap / 50.0, 3),
            "baseline": "back faces drawn", "baseline_max_gap_ms": round(1000 * base_gap, 1),
            "baseline_max_render_ms": round(1000 * base_max, 1),
            "baseline_median_render_ms": round(base_med, 1),
            "ratio_vs_baseline": round(gap / base_gap, 3)}


def measure_app(repeats: int) -> dict:
    """Release of a real brush stroke -> re-meshed surface in the 3D pane's scene."""
    from PySide6.QtCore import QEvent, QEventLoop, QPointF, Qt, QTimer
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from _viewer import shown_window

    vol, _labels = load_case("ct_sm")
    app, win = shown_window(vol)
    ctl = win.annotation.ctl
    wait_until(lambda: ctl.state is not None and ctl.state.ready)
    win.annotation.io.import_labelmap(TOTALSEG / CASES["ct_sm"][1])
    wait_until(lambda: ctl.labelmap is not None and ctl.labelmap.labels.any())
    feature = win.features["view3d"]
    feature.show_3d(True)
    wait_until(lambda: feature.pane.scene is not None and len(feature.pane.scene.actors) > 10)
    done = []
    # the timed wait is an event loop, as the app's: QTest.qWait keeps the GIL while it
    # sleeps, which slowed the meshing worker 5x in this measurement
    loop = QEventLoop()
    feature.mesher.sig_remeshed.connect(lambda values: (done.append(time.perf_counter()),
                                                        loop.quit()))
    win.set_tool("brush")
    win.annotation.options.set(radius_mm=10.0)
    ax = win.tri.views["axial"]
    vp, lb = ax.viewport(), Qt.MouseButton.LeftButton

    def send(kind, pos, button, buttons):
        QApplication.sendEvent(vp, QMouseEvent(kind, QPointF(pos), QPointF(vp.mapToGlobal(pos)),
                                               button, buttons, Qt.KeyboardModifier.NoModifier))

    def pos(row, col):
        return ax.mapFromScene(ax.vb.mapViewToScene(ax.display_to_view(row, col)))

    samples = []
    for i in range(repeats + 1):  # the first stroke (journal created, first edit) not counted
        ctl.active_label = 5 + (i % 3)
        pts = [pos(40 + 2 * i, 30 + 4 * k) for k in range(8)]
        send(QEvent.Type.MouseButtonPress, pts[0], lb, lb)
        for p in pts[1:]:
            QTest.qWait(12)
            send(QEvent.Type.MouseMove, p, Qt.MouseButton.NoButton, lb)
        done.clear()
        t0 = time.perf_counter()
        send(QEvent.Type.MouseButtonRelease, pts[-1], lb, Qt.MouseButton.NoButton)
        if not done:
            QTimer.singleShot(30000, loop.quit)
            loop.exec()
        if not done:
            raise TimeoutError("no re-mesh within 30 s of the stroke")
        if i:
            samples.append(done[0] - t0)
        QTest.qWait(50)
    status = feature.pane.status.text()
    win.close()
    return {"benchmark": "mesh", "case": "ct_sm", "measure": "stroke_to_surface",
            "strokes": len(samples), "ms": round(median_ms(samples), 1),
            "max_ms": round(1000 * max(samples), 1),
            "samples_ms": [round(1000 * x) for x in samples], "goal_ms": 1000 * GOAL_ONE_S,
            "goal_ratio": round(median_ms(samples) / 1000 / GOAL_ONE_S, 3), "pane_status": status}


def wait_until(cond, seconds: float = 60) -> None:
    """Run the event loop until ``cond()`` (an event loop lets workers have the GIL)."""
    from PySide6.QtCore import QEventLoop, QTimer

    end = time.time() + seconds
    while not cond():
        if time.time() > end:
            raise TimeoutError("the app did not get there in time")
        loop = QEventLoop()
        QTimer.singleShot(5, loop.quit)
        loop.exec()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 repeats instead of 9")
    ap.add_argument("--busy", type=int, default=0, help="keep N other cores at 100 %% meanwhile")
    ap.add_argument("--no-app", action="store_true", help="skip the real-window measurement")
    a = ap.parse_args()
    repeats = 3 if a.quick else 9
    with busy_cores(a.busy):
        results = [r for case in CASES for r in measure_case(case, repeats)]
        results.append(measure_stall())
        if not a.no_app:
            results.append(measure_app(repeats))
            results.append(measure_gui_stall())
    for r in results:
        r.update(busy=a.busy, quick=a.quick, cores=os.cpu_count())
        emit(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
