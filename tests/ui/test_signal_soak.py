"""Regression guard for PySide6 6.12.0 on CPython 3.11 aborting after ~1,000 signal emits.

The crash (`Fatal Python error: bool_dealloc`) kills the interpreter, possibly after pytest
printed "passed", so the emits run in a subprocess and we check its exit code."""
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow  # 240,000 signals in a subprocess

N_EMITS = 120_000

SCRIPT = textwrap.dedent(f"""
    import os, sys
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import numpy as np
    import pyqtgraph as pg
    from PySide6.QtCore import QObject, Signal
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])

    class Emitter(QObject):
        sig_flag = Signal(bool)
        sig_index = Signal(int, float)

    got = [0, 0]
    e = Emitter()
    e.sig_flag.connect(lambda b: got.__setitem__(0, got[0] + 1))
    e.sig_index.connect(lambda i, f: got.__setitem__(1, got[1] + 1))
    for i in range({N_EMITS}):
        e.sig_flag.emit(bool(i & 1))
        e.sig_index.emit(i, float(i))
    # pyqtgraph's own signals, as a slice change emits them
    item = pg.ImageItem(axisOrder="row-major")
    img = np.random.default_rng(0).integers(0, 1000, (64, 64)).astype(np.int16)
    for i in range(2000):
        item.setImage(img, autoLevels=False, levels=(0, 1000 + i))
    app.processEvents()
    assert got == [{N_EMITS}, {N_EMITS}], got
    print("EMITS_OK", got[0] + got[1])
""")


def test_many_signal_emits_do_not_abort_the_interpreter():
    res = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, f"exit {res.returncode}\n{res.stdout}\n{res.stderr[-3000:]}"
    assert f"EMITS_OK {2 * N_EMITS}" in res.stdout
