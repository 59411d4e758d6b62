"""Window/level presets and percentile windows (pure numpy)."""
from __future__ import annotations

import numpy as np

from .volume import WindowHint

# (center, width) in HU, as commonly used in radiology reading rooms
CT_PRESETS = {
    "CT Brain": (40.0, 80.0),
    "CT Lung": (-600.0, 1500.0),
    "CT Mediastinum": (50.0, 350.0),
    "CT Bone": (400.0, 1800.0),
    "CT Abdomen": (40.0, 400.0),
    "CT Liver": (60.0, 160.0),
}

PERCENTILE_PRESETS = {
    "Full range": (0.0, 100.0),
    "Percentile 1-99": (1.0, 99.0),
    "Percentile 5-95": (5.0, 95.0),
}


def _sample(array: np.ndarray, max_values: int = 2_000_000) -> np.ndarray:
    flat = array.reshape(-1)
    if flat.size > max_values:
        step = flat.size // max_values + 1
        flat = flat[::step]
    return flat


def percentile_window(array: np.ndarray, lo: float = 1.0, hi: float = 99.0,
                      name: str = "Percentile 1-99") -> WindowHint:
    """A window spanning the lo..hi percentiles of a (sub-sampled) array."""
    vals = _sample(np.asarray(array))
    if vals.dtype.kind == "f":
        vals = vals[np.isfinite(vals)]  # NaN/inf voxels (masked maps, overflowed scaling)
    if vals.size == 0:
        return WindowHint(0.0, 1.0, name)
    a, b = np.percentile(vals, [lo, hi]).astype(float)
    if b <= a:
        a, b = float(vals.min()), float(vals.max())
    with np.errstate(over="ignore"):  # values near the float64 limits: b - a overflows
        width = float(min(max(b - a, 1e-6), np.finfo(float).max))
    return WindowHint(center=a / 2.0 + b / 2.0, width=width, name=name)


def preset_window(name: str, array: np.ndarray) -> WindowHint:
    if name in CT_PRESETS:
        c, w = CT_PRESETS[name]
        return WindowHint(c, w, name)
    if name in PERCENTILE_PRESETS:
        lo, hi = PERCENTILE_PRESETS[name]
        return percentile_window(array, lo, hi, name)
    raise KeyError(f"unknown window preset: {name}")


def window_to_levels(center: float, width: float) -> tuple:
    """DICOM-style (center, width) -> (low, high) display levels."""
    width = max(float(width), 1e-6)
    return (float(center) - width / 2.0, float(center) + width / 2.0)

