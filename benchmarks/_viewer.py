"""Benchmark helpers that need Qt: a real volume from the chest CT, and a shown main window."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402

from _common import CHEST_CT  # noqa: E402


def chest_volume_512(n_slices: int):
    """The real chest CT (512x512) stacked to ``n_slices`` slices, with a label overlay."""
    from medviewer.core.geometry import Geometry
    from medviewer.core.overlay import LabelOverlay
    from medviewer.core.volume import Volume
    from medviewer.io.discover import scan_paths
    from medviewer.io.load import load_series

    ct = load_series(scan_paths([CHEST_CT]).series[0])
    reps = -(-n_slices // ct.shape[0])
    arr = np.concatenate([ct.array] * reps)[:n_slices]
    g = ct.geometry
    geo = Geometry(shape=arr.shape, spacing=g.spacing, origin=g.origin, direction=g.direction)
    vol = Volume(np.ascontiguousarray(arr), geo, modality="CT", units="HU", window=ct.window)
    labels = np.zeros(arr.shape, np.uint8)
    labels[(arr < -400) & (arr > -1000)] = 1
    labels[arr > 300] = 2
    return vol, LabelOverlay(labels, opacity=0.5)


def shown_window(volume=None, overlay=None, size=(1400, 900)):
    from PySide6.QtWidgets import QApplication

    from medviewer.ui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    win = MainWindow()
    win.resize(*size)
    win.set_layout("tri", remember=False)
    win.show()
    app.processEvents()
    if volume is not None:
        win.session.add_volume(volume)
        if overlay is not None:
            win.session.set_overlay(overlay)
    app.processEvents()
    return app, win
