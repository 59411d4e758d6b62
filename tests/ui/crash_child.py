"""Child process of test_crash_recovery: the real app paints strokes with real mouse events.

Usage: crash_child.py CT_FOLDER. After every finished stroke it prints
``STROKE k {json}`` (the dab centres the brush used); after the fifth it starts a sixth
stroke and holds the mouse button down until it is killed."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import pyqtgraph as pg  # noqa: E402
from PySide6.QtCore import QEvent, Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from annot_helpers import _send, drag, line, viewport_pos  # noqa: E402

# (plane, tool, label, display (row, col) start, end); "undo" = Ctrl+Z; "next" = PageDown first
PLAN = [
    ("axial", "brush", 1, (230, 200), (290, 250), ""),
    ("axial", "brush", 2, (300, 300), (250, 340), "next"),
    ("coronal", "brush", 1, (45, 180), (55, 300), ""),
    ("undo",),
    ("axial", "eraser", 0, (240, 190), (260, 240), "prev"),
    ("sagittal", "brush", 3, (48, 150), (52, 300), ""),  # held down until the kill
]


def main(ct: str) -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)
    from medviewer.ui.main_window import MainWindow

    win = MainWindow()
    win.resize(1400, 900)
    win.show()
    ctl = win.annotation.ctl
    win.open_paths([ct])
    deadline = time.monotonic() + 120
    while ctl.state is None or not ctl.state.ready:
        QTest.qWait(20)
        if time.monotonic() > deadline:
            print("TIMEOUT", flush=True)
            return 2
    ctl.new_labelmap()
    print("READY", flush=True)
    for k, step in enumerate(PLAN, start=1):
        if step[0] == "undo":
            QTest.keyClick(win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
            print(f"STROKE {k} " + json.dumps({"undo": True}), flush=True)
            continue
        plane, tool, label, a, b, move = step
        view = win.tri.views[plane]
        if move:
            view.setFocus()
            QTest.keyClick(view, Qt.Key.Key_PageDown if move == "next" else Qt.Key.Key_PageUp)
        win.set_tool(tool)
        if label:
            ctl.active_label = label
        pts = line(viewport_pos(view, *a), viewport_pos(view, *b), 6)
        if k < len(PLAN):
            drag(view.viewport(), pts)
            info = {"plane": plane, "tool": tool, "label": label,
                    "radius": win.annotation.options.radius_mm,
                    "fixed": view.reslicer.fixed_axis(plane), "centres": view.paint.last_centres}
            print(f"STROKE {k} " + json.dumps(info), flush=True)
        else:  # press and move, never release: the kill comes mid-stroke
            lb = Qt.MouseButton.LeftButton
            _send(view.viewport(), QEvent.Type.MouseButtonPress, pts[0], lb, lb)
            for p in pts[1:]:
                QTest.qWait(15)
                _send(view.viewport(), QEvent.Type.MouseMove, p, Qt.MouseButton.NoButton, lb)
            print("MIDSTROKE", flush=True)
    while True:  # keep the app alive (and the stroke open) until killed
        QTest.qWait(50)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
