"""Series thumbnails: a small 8-bit middle-slice image (numpy, safe off the GUI thread) -> QIcon."""
from __future__ import annotations

import numpy as np
from PySide6.QtGui import QIcon, QImage, QPixmap

from medviewer.core.reslice import Reslicer
from medviewer.core.volume import Volume
from medviewer.core.windowing import window_to_levels

THUMB_SIZE = 64


def thumbnail_array(volume: Volume, size: int = THUMB_SIZE) -> np.ndarray:
    """Middle native slice, windowed with the series default, nearest-neighbour down-sampled."""
    r = Reslicer(volume.geometry)
    plane = r.native_plane()
    img = r.extract(volume.array, plane, r.n_slices(plane) // 2).image
    step = max(1, int(np.ceil(max(img.shape[:2]) / size)))
    img = np.asarray(img[::step, ::step])
    if volume.is_rgb:
        return np.ascontiguousarray(img.astype(np.uint8))
    hint = volume.default_window()
    lo, hi = window_to_levels(hint.center, hint.width)
    out = np.clip((img.astype(np.float32) - lo) / (hi - lo) * 255.0, 0, 255).astype(np.uint8)
    if volume.invert:
        out = 255 - out
    return np.ascontiguousarray(out)


def array_to_icon(arr: np.ndarray) -> QIcon:
    """uint8 (h, w) grey or (h, w, 3) RGB -> QIcon (GUI thread only)."""
    arr = np.ascontiguousarray(arr)
    h, w = arr.shape[:2]
    if arr.ndim == 3:
        img = QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_RGB888)
    else:
        img = QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_Grayscale8)
    return QIcon(QPixmap.fromImage(img.copy()))
