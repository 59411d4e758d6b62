"""Benchmark `startup`: seconds from process start to a shown main window (no study opened).

Runs `python -m medviewer --screenshot` in fresh interpreters (the window is shown, grabbed,
and the app exits) and reads the time to the shown window from inside; checks that torch is
not imported at start-up. Baseline, same run: a bare PySide6 QMainWindow shown and grabbed.
Goal: <= 1.5 s. Usage: python benchmarks/startup.py [--quick]
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, run_child  # noqa: E402

OURS = r'''
import json, os, sys, time, tempfile
import psutil
from PySide6.QtCore import QTimer
start = psutil.Process().create_time()
shown = {}
def probe():
    from PySide6.QtWidgets import QApplication
    for w in QApplication.topLevelWidgets():
        if w.isVisible() and w.objectName() == "mainWindow":
            shown["t"] = time.time() - start
            shown["torch"] = "torch" in sys.modules
            return
    QTimer.singleShot(1, probe)
from medviewer.app import main
QTimer.singleShot(0, probe)  # runs as soon as the event loop starts
out = os.path.join(tempfile.mkdtemp(), "s.png")
rc = main(["--screenshot", out])
print(json.dumps({"s": shown.get("t"), "torch": shown.get("torch"), "rc": rc, "total": time.time() - start}))
'''

BARE = r'''
import json, os, time, tempfile, psutil
start = psutil.Process().create_time()
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication([])
w = QMainWindow(); w.resize(1400, 900); w.show(); app.processEvents()
t = time.time() - start
w.grab().save(os.path.join(tempfile.mkdtemp(), "s.png"))
print(json.dumps({"s": t}))
'''


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 runs instead of 5")
    a = ap.parse_args()
    runs = 2 if a.quick else 5
    ours = [run_child(OURS) for _ in range(runs)]
    bare = [run_child(BARE) for _ in range(runs)]
    if any(r["s"] is None for r in ours):
        raise SystemExit("the main window was never seen (objectName 'mainWindow')")
    s = statistics.median(r["s"] for r in ours)
    b = statistics.median(r["s"] for r in bare)
    emit({"benchmark": "startup", "quick": a.quick, "shown_s": round(s, 3),
          "bare_qt_window_s": round(b, 3), "ratio_vs_bare": round(s / b, 2),
          "torch_imported_at_startup": any(r["torch"] for r in ours),
          "goal_le_1.5s": s <= 1.5})
    return 0


if __name__ == "__main__":
    sys.exit(main())
