"""The AI libraries (torch and the inference module) are imported in the background after start-up (not in the first job), and
not at all when MEDVIEWER_AI_PRELOAD=0. Each case runs in a fresh interpreter: an import
happens once per process."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import sys, time
from PySide6.QtCore import QEventLoop
from PySide6.QtWidgets import QApplication
app = QApplication([])
from medviewer.ui.ai import preload
assert "torch" not in sys.modules
scheduled = preload.schedule(app, delay_ms=50)
deadline = time.time() + (120 if scheduled else 1)
while time.time() < deadline and not preload.done.is_set():
    app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
    time.sleep(0.02)
print(scheduled, "torch" in sys.modules, "medviewer.ai.inference" in sys.modules,
      preload.done.is_set(), "monai" in sys.modules)
"""


def _run(env_value: str) -> list:
    env = dict(os.environ, MEDVIEWER_AI_PRELOAD=env_value, PYTHONPATH=str(REPO),
               QT_QPA_PLATFORM="offscreen")
    res = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                         env=env, timeout=300, cwd=REPO)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout.split()


@pytest.mark.slow
def test_preload_imports_torch_and_monai_in_the_background():
    # torch and the inference module; not MONAI (predict runs without it: ai/preload.py)
    assert _run("1") == ["True", "True", "True", "True", "False"]


def test_preload_can_be_switched_off():
    assert _run("0") == ["False", "False", "False", "False", "False"]
