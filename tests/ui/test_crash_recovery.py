"""SIGKILL the real app mid-stroke: every stroke up to the last finished one comes back, the
unfinished one does not; the exit code is -9."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from medviewer.core import painting

from conftest import CHEST_CT

CHILD = Path(__file__).resolve().parent / "crash_child.py"
KILL_AFTER = 5


def _reproduce(geometry, strokes) -> np.ndarray:
    """The strokes redone directly with core.painting on a fresh array (undo drops one)."""
    done = []
    for s in strokes:
        if s.get("undo"):
            done.pop()
        else:
            done.append(s)
    labels = np.zeros(geometry.shape, dtype=np.uint8)
    flat = labels.reshape(-1)
    for s in done:
        c = [np.asarray(p) for p in s["centres"]]
        parts = [painting.brush_indices(geometry, c[0], s["radius"], s["fixed"])]
        parts += [painting.brush_segment_indices(geometry, a, b, s["radius"], s["fixed"])
                  for a, b in zip(c[:-1], c[1:])]
        flat[np.unique(np.concatenate(parts))] = s["label"]
    return labels


@pytest.mark.slow
def test_sigkill_mid_session_loses_no_finished_stroke(qtbot, window, tmp_path):
    if not CHEST_CT.is_dir():
        pytest.fail("the chest CT of ../shared/data is missing")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen",
               MEDVIEWER_SETTINGS_DIR=str(tmp_path / "child_settings"))
    workspace = Path(env["MEDVIEWER_WORKSPACE"])  # the same tmp workspace as this test's window
    proc = subprocess.Popen([sys.executable, str(CHILD), str(CHEST_CT)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=str(Path(__file__).resolve().parents[2]))
    strokes, lines = [], []
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
            if line.startswith("STROKE "):
                strokes.append(json.loads(line.split(" ", 2)[2]))
            if line.startswith("MIDSTROKE"):  # stroke 6 is half painted, button still down
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        rest, err = proc.communicate(timeout=30)
    assert len(strokes) == KILL_AFTER, (lines, err[-3000:])
    assert proc.returncode == -signal.SIGKILL
    # a stroke that finished between our read and the kill was printed too: count it
    strokes += [json.loads(ln.split(" ", 2)[2]) for ln in rest.splitlines() if ln.startswith("STROKE ")]
    assert list((workspace / "journal").glob("*.mvj")), "the killed app left its journal"

    # start again (this process, same workspace) and open the same CT
    ctl = window.annotation.ctl
    window.open_paths([str(CHEST_CT)])
    qtbot.waitUntil(lambda: ctl.state is not None and ctl.state.ready, timeout=120000)
    lm = ctl.labelmap
    assert lm is not None, "nothing was recovered"
    expected = _reproduce(lm.geometry, strokes)
    assert np.count_nonzero(expected) > 500
    assert set(np.unique(expected)) == {0, 1, 2}
    assert 3 not in lm.labels  # the half-painted sixth stroke was never finished
    np.testing.assert_array_equal(lm.labels, expected)
    n = len(strokes)
    assert f"Recovered {n} strokes from an unsaved session" in window.banner.text()
    assert window.banner.isVisible()
    # the recovered strokes are undoable one by one, and live in a fresh journal
    assert ctl.undo_stack.can_undo
    journals = list((workspace / "journal").glob("*.mvj"))
    assert len(journals) == 1
    ctl.undo()
    assert not np.array_equal(lm.labels, expected)  # the eraser stroke came undone
