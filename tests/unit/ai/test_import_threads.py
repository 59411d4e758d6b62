"""Torch and MONAI imported on two threads at once (the app's start-up preload and a first
prompt or AI job) must not break: in a fresh interpreter, both threads end with their work
done. Without the one import lock MONAI is sometimes seen half-initialised ("cannot import name
'download_and_extract' from partially initialized module 'monai.apps'")."""
import subprocess
import sys
import textwrap

import pytest
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_preload_and_a_first_prompt_job_on_two_threads():
    code = textwrap.dedent("""
        import threading
        import numpy as np
        from medviewer.services.ai_runs import preload_ai_libraries
        from medviewer.services import interactive
        from medviewer.core.prompts import Point, Prompts

        errors = []
        def run(fn):
            try:
                fn()
            except Exception as exc:
                errors.append(repr(exc))
        img = np.zeros((64, 64), np.float32)
        img[20:40, 20:40] = 100.0
        eng = lambda: interactive._engine("learned").segment_2d(
            img, Prompts().add(Point((0, 30, 30))), (1.0, 1.0), z=0)
        threads = [threading.Thread(target=run, args=(f,)) for f in (preload_ai_libraries, eng)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print("errors", errors)
        raise SystemExit(1 if errors else 0)
    """)
    for _ in range(2):
        res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                             text=True, timeout=300)
        assert res.returncode == 0, res.stdout + res.stderr[-2000:]
