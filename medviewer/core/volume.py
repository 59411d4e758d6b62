"""Volume: a read-only voxel array with its geometry, display hints and metadata."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .geometry import Geometry


@dataclass(frozen=True)
class WindowHint:
    center: float
    width: float
    name: str = "Series default"


@dataclass
class Volume:
    """Pixels in (z, y, x) order, or (z, y, x, 3) for colour, plus where they are.

    The array is made read-only: a Volume may cross threads. Values are already rescaled
    (slope/intercept applied: HU for CT). ``invert`` is True for MONOCHROME1 images, which
    the viewer shows inverted. ``warnings`` are human-readable geometry or pixel notes
    (missing slices, uneven spacing, gantry tilt...)."""

    array: np.ndarray
    geometry: Geometry
    modality: str = ""
    description: str = ""
    units: str = ""  # e.g. "HU"
    invert: bool = False
    window: Optional[WindowHint] = None
    warnings: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)  # series-level tags (no patient identity in logs)
    source_paths: list = field(default_factory=list)  # one per slice (DICOM) or one file
    uid: str = ""

    def __post_init__(self):
        if self.array.ndim not in (3, 4):
            raise ValueError(f"Volume array must be 3D (or 4D RGB), got shape {self.array.shape}")
        if tuple(self.array.shape[:3]) != tuple(self.geometry.shape):
            raise ValueError(f"array shape {self.array.shape[:3]} != geometry {self.geometry.shape}")
        if self.array.flags.writeable:
            self.array.flags.writeable = False

    @property
    def is_rgb(self) -> bool:
        return self.array.ndim == 4

    @property
    def shape(self) -> tuple:
        return tuple(self.array.shape[:3])

    def value_at(self, index_zyx) -> Optional[float]:
        """Voxel value at the nearest voxel of a continuous (z, y, x) index, None outside."""
        i = tuple(int(round(float(v))) for v in index_zyx)
        if not self.geometry.contains_index_zyx(i):
            return None
        v = self.array[i]
        return v.tolist() if self.is_rgb else float(v)

    def default_window(self) -> WindowHint:
        if self.window is not None:
            return self.window
        from .windowing import percentile_window

        return percentile_window(self.array)
