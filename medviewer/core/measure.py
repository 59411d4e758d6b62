"""Measurements on images: distances in mm and ROI statistics (pure numpy)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import Geometry


def distance_mm(geometry: Geometry, a_zyx, b_zyx) -> float:
    """Patient-space distance (mm) between two continuous (z, y, x) indices."""
    pa = geometry.index_zyx_to_lps(a_zyx)
    pb = geometry.index_zyx_to_lps(b_zyx)
    return float(np.linalg.norm(np.asarray(pa) - np.asarray(pb)))


def _bounds(shape, r0, c0, r1, c1):
    rlo, rhi = sorted((float(r0), float(r1)))
    clo, chi = sorted((float(c0), float(c1)))
    return rlo, rhi, clo, chi


def rect_mask(shape, r0: float, c0: float, r1: float, c1: float) -> np.ndarray:
    """Pixels whose centres lie inside the rectangle spanned by two corners (display coords)."""
    rlo, rhi, clo, chi = _bounds(shape, r0, c0, r1, c1)
    rows = np.arange(shape[0])[:, None]
    cols = np.arange(shape[1])[None, :]
    return (rows >= rlo) & (rows <= rhi) & (cols >= clo) & (cols <= chi)


def ellipse_mask(shape, r0: float, c0: float, r1: float, c1: float) -> np.ndarray:
    """Pixels whose centres lie inside the ellipse inscribed in the rectangle r0,c0 - r1,c1."""
    rlo, rhi, clo, chi = _bounds(shape, r0, c0, r1, c1)
    rc, cc = (rlo + rhi) / 2.0, (clo + chi) / 2.0
    ra, ca = max((rhi - rlo) / 2.0, 1e-9), max((chi - clo) / 2.0, 1e-9)
    rows = np.arange(shape[0])[:, None]
    cols = np.arange(shape[1])[None, :]
    return ((rows - rc) / ra) ** 2 + ((cols - cc) / ca) ** 2 <= 1.0


@dataclass(frozen=True)
class RoiStats:
    n_pixels: int
    mean: float
    sd: float
    min: float
    max: float
    area_mm2: float

    def text(self, units: str = "") -> str:
        u = f" {units}" if units else ""
        return (f"mean {self.mean:.1f}{u}  SD {self.sd:.1f}\nmin {self.min:.0f}  max {self.max:.0f}"
                f"\narea {self.area_mm2:.1f} mm²  ({self.n_pixels} px)")


def roi_stats(image: np.ndarray, mask: np.ndarray, row_spacing: float, col_spacing: float) -> RoiStats:
    """Mean, SD (population), min, max and area (mm²) of a 2D image inside a boolean mask."""
    if image.ndim != 2:
        raise ValueError("ROI statistics need a 2D grey-level image")
    vals = np.asarray(image)[mask].astype(np.float64)
    if vals.size == 0:
        nan = float("nan")
        return RoiStats(0, nan, nan, nan, nan, 0.0)
    return RoiStats(int(vals.size), float(vals.mean()), float(vals.std()), float(vals.min()),
                    float(vals.max()), float(vals.size * row_spacing * col_spacing))
