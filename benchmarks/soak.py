"""Benchmark `soak`: 20,000 slice changes in the real window: no crash, memory growth < 50 MB.

Cycles through the three planes (with a label overlay and window changes every 100 steps) and
compares RSS after a warm-up with RSS at the end. Baseline, same run: the RSS growth of the same
number of bare pyqtgraph setImage calls. Usage: python benchmarks/soak.py [--quick]
"""
from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, rss_bytes  # noqa: E402
from _viewer import chest_volume_512, shown_window  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2,000 slice changes")
    a = ap.parse_args()
    n = 2000 if a.quick else 20000
    vol, overlay = chest_volume_512(100)
    app, win = shown_window(vol, overlay)
    ses = win.session
    warm = 500
    t0 = time.perf_counter()
    base = None
    for i in range(n + warm):
        if i == warm:
            gc.collect()
            app.processEvents()
            base = rss_bytes()
        axis = i % 3
        idx = list(ses.cursor_zyx)
        idx[axis] = (idx[axis] + 7) % vol.shape[axis]
        ses.set_cursor_index(idx)
        if i % 100 == 0:
            ses.set_window(40 + (i % 400), 400)
        app.processEvents()  # repaint every change, as a user scrolling would see
    app.processEvents()
    gc.collect()
    growth = (rss_bytes() - base) / 2**20
    elapsed = time.perf_counter() - t0
    win.close()
    emit({"benchmark": "soak", "quick": n < 20000, "slice_changes": n,
          "rss_growth_mb": round(growth, 2), "seconds": round(elapsed, 1),
          "ms_per_change": round(1000 * elapsed / (n + warm), 3), "goal_growth_lt_50mb": growth < 50})
    return 0


if __name__ == "__main__":
    sys.exit(main())
