"""Benchmark `render`: ms per slice change in each plane (reslice + overlay + repaint), offscreen.

A 512 x 512 x N volume (the real chest CT stacked) with a label overlay is shown in the real
tri-planar window; each step moves the cursor one slice in one plane, and the changed view is
repainted synchronously. Baseline, same run: a bare pyqtgraph ImageItem.setImage of a 512x512
int16 slice + repaint. Goal: <= 5 ms per slice change. Usage: python benchmarks/render.py [--quick] [--busy 1]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import busy_cores, emit, median_ms  # noqa: E402
from _viewer import chest_volume_512, shown_window  # noqa: E402


def bare_baseline(app, arr, n: int) -> float:
    import pyqtgraph as pg

    view = pg.GraphicsView()
    vb = pg.ViewBox(lockAspect=True)
    view.setCentralItem(vb)
    item = pg.ImageItem(axisOrder="row-major")
    vb.addItem(item)
    view.resize(450, 400)
    view.show()
    app.processEvents()
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        item.setImage(arr[i % arr.shape[0]], autoLevels=False, levels=(-1000, 1000))
        view.viewport().repaint()
        times.append(time.perf_counter() - t0)
    view.close()
    return median_ms(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200 slices, 100 steps per plane")
    ap.add_argument("--busy", type=int, default=0, metavar="N",
                    help="N other processes keep a core each at 100 %% while it measures")
    a = ap.parse_args()
    n_slices, steps = (200, 100) if a.quick else (512, 400)
    vol, overlay = chest_volume_512(n_slices)
    with busy_cores(a.busy):
        result = measure(vol, overlay, steps)
    result.update(quick=a.quick, busy=a.busy)
    emit(result)
    return 0


def measure(vol, overlay, steps: int) -> dict:
    app, win = shown_window(vol, overlay)
    ses = win.session
    result = {"benchmark": "render", "volume_shape": list(vol.shape)}
    for plane, axis in (("axial", 0), ("coronal", 1), ("sagittal", 2)):
        view = win.tri.views[plane]
        times = []
        for i in range(steps):
            idx = list(ses.cursor_zyx)
            idx[axis] = (idx[axis] + 1) % vol.shape[axis]
            t0 = time.perf_counter()
            ses.set_cursor_index(idx)
            view.viewport().repaint()
            times.append(time.perf_counter() - t0)
        assert view.isVisible() and view.current.index == ses.cursor_zyx[axis]
        assert view.overlay_item.image is not None
        result[f"{plane}_ms"] = round(median_ms(times), 3)
        result[f"{plane}_p95_ms"] = round(1000 * sorted(times)[int(0.95 * len(times))], 3)
        print(plane, result[f"{plane}_ms"], "ms", file=sys.stderr)
    result["bare_setimage_ms"] = round(bare_baseline(app, vol.array, steps), 3)
    worst = max(result[f"{p}_ms"] for p in ("axial", "coronal", "sagittal"))
    result["worst_plane_vs_bare"] = round(worst / result["bare_setimage_ms"], 2)
    result["goal_le_5ms"] = worst <= 5.0
    win.close()
    return result


if __name__ == "__main__":
    sys.exit(main())
