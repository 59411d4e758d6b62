"""Can this machine render the 3D view? Asked in a child process (``python -m
medviewer.ui.view3d.probe`` prints one JSON line), because a broken OpenGL driver can abort
the process that tries it; the answer is kept for the session."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Optional

OFF_VALUES = ("0", "off", "no", "false")
_answer: Optional[str] = None  # "" = it works; else why not (one sentence)


def turned_off() -> Optional[str]:
    if os.environ.get("MEDVIEWER_3D", "").strip().lower() in OFF_VALUES:
        return "The 3D view is turned off (MEDVIEWER_3D=off)."
    return None


def known_answer() -> Optional[str]:
    """"" when the 3D view works, a reason when it does not, None when not asked yet."""
    return turned_off() or _answer


def ask(timeout: float = 60.0) -> str:
    """Run the probe (blocking: call it on a worker). "" when VTK renders here, else why not."""
    global _answer
    off = turned_off()
    if off:
        return off
    if _answer is not None:
        return _answer
    try:
        res = subprocess.run([sys.executable, "-m", "medviewer.ui.view3d.probe"],
                             capture_output=True, text=True, timeout=timeout,
                             env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
        lines = res.stdout.strip().splitlines()
        if res.returncode == 0 and lines:
            _answer = str(json.loads(lines[-1]).get("problem") or "")
        else:
            _answer = (f"OpenGL rendering failed in a test process (exit code {res.returncode}); "
                       "the 3D view is off.")
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        _answer = f"The 3D view could not be checked ({exc})."
    return _answer


def _probe() -> str:
    from medviewer.services.surfaces import vtk_missing

    missing = vtk_missing()
    if missing:
        return missing
    try:
        from .scene import Scene3D

        scene = Scene3D(16, 16)
        problem = scene.opengl_problem()
        if problem:
            return problem
        img = scene.render()
        return "" if img.shape == (16, 16, 3) else "OpenGL gave no picture."
    except ImportError as exc:
        return f"VTK's rendering modules are not available ({exc})."


if __name__ == "__main__":
    print(json.dumps({"problem": _probe()}))
