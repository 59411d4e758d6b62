"""Start-up imports no heavy library the first window does not need: scipy (0.5-0.8 s on this
machine) is imported when a tool first uses it, not when the window opens (benchmarks/startup
measures the time). A fresh interpreter: an import happens once per process."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, sys, tempfile, os
from medviewer.app import main
rc = main(["--screenshot", os.path.join(tempfile.mkdtemp(), "s.png")])
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"scipy", "torch", "monai", "sklearn", "vtkmodules"})
import medviewer.core.painting as painting
import numpy as np
lab = np.zeros((3, 8, 8), np.int16); lab[0, 2:5, 2:5] = 1; lab[2, 3:6, 3:6] = 1
idx, _ = painting.interpolate_between_slices(lab, 1)  # the first use imports scipy
print(json.dumps({"rc": rc, "heavy": heavy, "scipy_after_use": "scipy" in sys.modules,
                  "filled": int(len(idx))}))
"""


def test_the_first_window_imports_no_scipy_and_tools_still_get_it(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), QT_QPA_PLATFORM="offscreen",
               MEDVIEWER_AI_PRELOAD="0", MEDVIEWER_SETTINGS_DIR=str(tmp_path))
    res = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                         env=env, timeout=300, cwd=REPO)
    assert res.returncode == 0, res.stderr[-2000:]
    import json

    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["rc"] == 0 and out["heavy"] == []
    assert out["scipy_after_use"] and out["filled"] > 0
