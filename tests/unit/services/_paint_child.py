"""Child processes of test_paint_kill: paint the planned strokes through the app's
PaintSession (the real journal and store) while a second thread saves at random moments,
until the test kills them with SIGKILL.

This script is a fork server: it imports the app and loads the CT once, then for each line
``WORKSPACE SEED`` on stdin forks a painter. The painter prints ``READY pid``, then per
stroke ``BEGIN i`` and ``END i`` (after end_stroke returned: the stroke is on disk) or
``CANCEL i``, and ``SAVED seq`` after each stored record; the server prints ``REAPED code``
(the painter's exit code, negative for a signal) once the painter is gone."""
from __future__ import annotations

import os
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _paint_data import load_ct, stroke_plan  # noqa: E402
from medviewer.core.hashing import image_hash  # noqa: E402
from medviewer.core.labelmap import LabelMap  # noqa: E402
from medviewer.services.painting import PaintSession  # noqa: E402
from medviewer.services.workspace import Workspace  # noqa: E402

_out = threading.Lock()


def say(line: str) -> None:
    with _out:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


N_STROKES = 200  # more than a painter paints before its kill


def paint(ct, folder: str, seed: int) -> None:
    ws = Workspace(folder=folder)
    ps = PaintSession(ws, image_hash(ct))
    ps.labelmap = LabelMap(ct.geometry)
    ps.base_record_id = None
    plan = stroke_plan(ct.geometry, N_STROKES, seed)
    rng = random.Random(seed)

    def saver():
        while True:
            time.sleep(rng.uniform(0.002, 0.05))
            rec = ps.save(ws.store, ct, "corrected", ws.person())
            if rec is not None:
                say(f"SAVED {rec.seq}")

    threading.Thread(target=saver, daemon=True).start()
    say(f"READY {os.getpid()}")
    for i, (value, cancel, segs) in enumerate(plan):
        say(f"BEGIN {i}")
        ps.begin_stroke(value, "eraser" if value == 0 else "brush")
        for seg in segs:  # the mouse moves
            ps.stroke_add(seg)
            time.sleep(0.001)
        if cancel:
            ps.cancel_stroke()
            say(f"CANCEL {i}")
        else:
            ps.end_stroke()
            say(f"END {i}")
    say("DONE")
    time.sleep(600)  # killed here at the latest


def main() -> int:
    ct = load_ct()
    say("SERVER")
    for line in sys.stdin:
        folder, seed = line.split()
        pid = os.fork()
        if pid == 0:  # the painter
            try:
                paint(ct, folder, int(seed))
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        say(f"REAPED {code}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
