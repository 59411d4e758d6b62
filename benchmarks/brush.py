"""Benchmark `brush`: ms from a mouse-move event to the repainted slice while painting.

The real main window (offscreen) shows the real chest CT (512x512 slices); the brush tool with
a 10 mm radius is dragged across the axial view with real QMouseEvents sent to the viewport.
Each sample is the time from delivering one MouseMove (button held) to the painted view having
repainted synchronously (also reported: all three views repainted). Moves are paced 12 ms apart
outside the timed region, as a real mouse's are (pyqtgraph drops moves < 10 ms apart).
Baseline, same run: a bare pyqtgraph ImageItem.setImage of a 512x512 slice + repaint.
Goal: <= 8 ms. Usage: python benchmarks/brush.py [--quick]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CHEST_CT, emit, median_ms  # noqa: E402

os.environ["MEDVIEWER_WORKSPACE"] = tempfile.mkdtemp(prefix="mv_brush_ws_")


def _send(widget, kind, pos, button, buttons):
    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    ev = QMouseEvent(kind, QPointF(pos), QPointF(widget.mapToGlobal(pos)), button, buttons,
                     Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, ev)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="60 moves instead of 300")
    a = ap.parse_args()
    n_moves = 60 if a.quick else 300
    from PySide6.QtCore import QEvent, Qt
    from PySide6.QtTest import QTest

    from _viewer import shown_window
    from render import bare_baseline
    from medviewer.io.load import open_first

    vol = open_first([CHEST_CT])
    app, win = shown_window(vol)
    ctl = win.annotation.ctl
    deadline = time.time() + 60
    while not ctl.state.ready and time.time() < deadline:
        QTest.qWait(20)
    ctl.new_labelmap()
    win.set_tool("brush")
    win.annotation.options.set(radius_mm=10.0)
    ax = win.tri.views["axial"]
    vp = ax.viewport()
    lb = Qt.MouseButton.LeftButton

    def pos(row, col):
        return ax.mapFromScene(ax.vb.mapViewToScene(ax.display_to_view(row, col)))

    one, three = [], []
    strokes = 0
    for start in range(0, n_moves, 60):  # strokes of 60 moves across the lungs
        pts = [pos(150 + 3 * i, 120 + 4 * i) for i in range(61)]
        _send(vp, QEvent.Type.MouseButtonPress, pts[0], lb, lb)
        QTest.qWait(15)
        for p in pts[1:]:
            QTest.qWait(12)
            t0 = time.perf_counter()
            _send(vp, QEvent.Type.MouseMove, p, Qt.MouseButton.NoButton, lb)
            vp.repaint()
            t1 = time.perf_counter()
            for v in win.tri.views.values():
                if v is not ax:
                    v.viewport().repaint()
            t2 = time.perf_counter()
            one.append(t1 - t0)
            three.append(t2 - t0)
        _send(vp, QEvent.Type.MouseButtonRelease, pts[-1], lb, Qt.MouseButton.NoButton)
        strokes += 1
        ses = win.session
        ses.set_cursor_index((ses.cursor_zyx[0] + 3, 256, 256))  # next stroke on another slice
    painted = int((ctl.labelmap.labels > 0).sum())
    assert painted > 0 and len(ctl.undo_stack) == strokes, "the brush did not paint"
    bare = bare_baseline(app, vol.array, 200)
    result = {"benchmark": "brush", "quick": a.quick, "radius_mm": 10.0, "moves": len(one),
              "strokes": strokes, "voxels_painted": painted,
              "move_to_repaint_ms": round(median_ms(one), 3),
              "move_to_repaint_p95_ms": round(1000 * sorted(one)[int(0.95 * len(one))], 3),
              "move_to_three_views_ms": round(median_ms(three), 3),
              "bare_setimage_ms": round(bare, 3)}
    result["ratio_vs_bare"] = round(result["move_to_repaint_ms"] / bare, 2)
    result["goal_le_8ms"] = result["move_to_repaint_ms"] <= 8.0
    win.close()
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
