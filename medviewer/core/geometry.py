"""Image geometry in DICOM patient coordinates (LPS): voxel <-> patient maps, orientation.

Conventions (used everywhere in MedViewer):
- Arrays are indexed ``arr[z, y, x]`` (slice, row, column).
- An *index* given to or returned by this module is ``(x, y, z)`` order, as in ITK, so that
  ``spacing``, ``direction`` columns and index components line up. Helpers with ``_zyx`` in
  their name take or return array order.
- ``direction`` is a 3x3 matrix whose columns are the LPS unit vectors of the x (column),
  y (row) and z (slice) index axes. With gantry tilt the z column is the true stacking
  direction, which is not perpendicular to the slice plane: the matrix is then not
  orthonormal and we keep it that way (true geometry, never silently corrected).
- ``slice_offsets`` (optional) are the true positions of every slice along the z axis, in mm
  from the first slice, for series whose spacing is uneven. ``spacing[2]`` then holds the
  median step, for display only; voxel <-> patient maps use the true offsets.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

LPS_LETTERS = (("R", "L"), ("A", "P"), ("I", "S"))  # negative, positive end of each LPS axis


def _as_tuple(values, n: int) -> tuple:
    out = tuple(float(v) for v in np.asarray(values, dtype=float).ravel())
    if len(out) != n:
        raise ValueError(f"expected {n} values, got {len(out)}")
    return out


@dataclass(frozen=True)
class Geometry:
    """Where a (z, y, x) voxel array sits in patient space (LPS, millimetres)."""

    shape: tuple  # (nz, ny, nx), array order
    spacing: tuple = (1.0, 1.0, 1.0)  # (sx, sy, sz) mm
    origin: tuple = (0.0, 0.0, 0.0)  # LPS of voxel (0, 0, 0)
    direction: tuple = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)  # row-major 3x3
    slice_offsets: Optional[tuple] = None  # true z positions (mm from slice 0) if uneven
    _inv: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if len(self.shape) != 3:
            raise ValueError(f"Geometry needs a 3D shape, got {self.shape}")
        object.__setattr__(self, "spacing", _as_tuple(self.spacing, 3))
        object.__setattr__(self, "origin", _as_tuple(self.origin, 3))
        object.__setattr__(self, "direction", _as_tuple(self.direction, 9))
        if not all(0 < s < np.inf for s in self.spacing):
            raise ValueError(f"spacing must be positive and finite, got {self.spacing}")
        if not all(np.isfinite(self.origin)):
            raise ValueError(f"origin must be finite, got {self.origin}")
        if not all(np.isfinite(self.direction)):
            raise ValueError(f"direction must be finite, got {self.direction}")
        if self.slice_offsets is not None:
            offs = _as_tuple(self.slice_offsets, self.shape[0])
            if not all(np.isfinite(offs)):
                raise ValueError("slice offsets must be finite")
            if len(offs) > 1 and np.any(np.diff(offs) <= 0):
                raise ValueError("slice offsets must increase strictly")
            object.__setattr__(self, "slice_offsets", offs)
        with np.errstate(over="ignore", invalid="ignore"):
            m = self.direction_matrix @ np.diag(self.spacing)
            det = np.linalg.det(m) if np.all(np.isfinite(m)) else np.nan
        if not np.isfinite(det):
            raise ValueError("spacing x direction is out of range")
        if abs(det) < 1e-12:
            raise ValueError("direction matrix is singular")
        object.__setattr__(self, "_inv", np.linalg.inv(m))

    # ------------------------------------------------------------------ basics
    @property
    def direction_matrix(self) -> np.ndarray:
        return np.asarray(self.direction, dtype=float).reshape(3, 3)

    @property
    def size_xyz(self) -> tuple:
        return (self.shape[2], self.shape[1], self.shape[0])

    @property
    def is_uneven(self) -> bool:
        return self.slice_offsets is not None

    @property
    def is_orthonormal(self) -> bool:
        d = self.direction_matrix
        return bool(np.allclose(d.T @ d, np.eye(3), atol=1e-4))

    def tilt_degrees(self) -> float:
        """Angle between the stacking direction and the slice normal (gantry tilt)."""
        d = self.direction_matrix
        normal = np.cross(d[:, 0], d[:, 1])
        normal /= np.linalg.norm(normal)
        c = abs(float(np.dot(normal, d[:, 2] / np.linalg.norm(d[:, 2]))))
        return float(np.degrees(np.arccos(min(1.0, c))))

    # ------------------------------------------------------------------ maps
    def _z_mm(self, k: np.ndarray) -> np.ndarray:
        if self.slice_offsets is None:
            return k * self.spacing[2]
        offs = np.asarray(self.slice_offsets)
        idx = np.arange(len(offs), dtype=float)
        if len(offs) == 1:
            return k * self.spacing[2]
        # linear inside, extrapolated with the end steps outside
        out = np.interp(k, idx, offs)
        lo, hi = k < 0, k > len(offs) - 1
        out = np.where(lo, offs[0] + k * (offs[1] - offs[0]), out)
        out = np.where(hi, offs[-1] + (k - (len(offs) - 1)) * (offs[-1] - offs[-2]), out)
        return out

    def _k_from_mm(self, zmm: np.ndarray) -> np.ndarray:
        if self.slice_offsets is None:
            return zmm / self.spacing[2]
        offs = np.asarray(self.slice_offsets)
        if len(offs) == 1:
            return zmm / self.spacing[2]
        idx = np.arange(len(offs), dtype=float)
        out = np.interp(zmm, offs, idx)
        lo, hi = zmm < offs[0], zmm > offs[-1]
        out = np.where(lo, (zmm - offs[0]) / (offs[1] - offs[0]), out)
        out = np.where(hi, len(offs) - 1 + (zmm - offs[-1]) / (offs[-1] - offs[-2]), out)
        return out

    def index_to_lps(self, index_xyz) -> np.ndarray:
        """Continuous (x, y, z) index (shape (3,) or (n, 3)) -> LPS mm."""
        idx = np.asarray(index_xyz, dtype=float)
        pts = np.atleast_2d(idx)
        mm = np.empty_like(pts)
        mm[:, 0] = pts[:, 0] * self.spacing[0]
        mm[:, 1] = pts[:, 1] * self.spacing[1]
        mm[:, 2] = self._z_mm(pts[:, 2])
        out = mm @ self.direction_matrix.T + np.asarray(self.origin)
        return out[0] if idx.ndim == 1 else out

    def lps_to_index(self, lps) -> np.ndarray:
        """LPS mm (shape (3,) or (n, 3)) -> continuous (x, y, z) index."""
        p = np.asarray(lps, dtype=float)
        pts = np.atleast_2d(p) - np.asarray(self.origin)
        # solve D @ mm = p  (mm in the index axes' millimetres)
        mm = pts @ np.linalg.inv(self.direction_matrix).T
        out = np.empty_like(mm)
        out[:, 0] = mm[:, 0] / self.spacing[0]
        out[:, 1] = mm[:, 1] / self.spacing[1]
        out[:, 2] = self._k_from_mm(mm[:, 2])
        return out[0] if p.ndim == 1 else out

    def index_zyx_to_lps(self, index_zyx) -> np.ndarray:
        return self.index_to_lps(np.asarray(index_zyx, dtype=float)[..., ::-1])

    def lps_to_index_zyx(self, lps) -> np.ndarray:
        return self.lps_to_index(lps)[..., ::-1]

    def contains_index_zyx(self, index_zyx) -> bool:
        i = np.round(np.asarray(index_zyx, dtype=float)).astype(int)
        return bool(np.all(i >= 0) and np.all(i < np.asarray(self.shape)))

    # ------------------------------------------------------------------ orientation
    def axis_labels(self) -> list:
        """For each index axis (x, y, z), the LPS axis it is closest to and its sign.

        Returns [(lps_axis, sign), ...] with lps_axis in {0: L, 1: P, 2: S}."""
        d = np.abs(self.direction_matrix)
        used: set = set()
        out = []
        # greedy on the largest components first so that each LPS axis is used once
        order = np.argsort(-d.max(axis=0))
        result = [None, None, None]
        for col in order:
            for row in np.argsort(-d[:, col]):
                if row not in used:
                    used.add(int(row))
                    result[col] = (int(row), 1 if self.direction_matrix[row, col] >= 0 else -1)
                    break
        out = result
        return out

    def orientation_code(self) -> str:
        """Three letters: where each index axis (x, y, z) points, e.g. 'LPS' or 'RAS'."""
        return "".join(LPS_LETTERS[ax][1 if sign > 0 else 0] for ax, sign in self.axis_labels())

    def affine_lps(self) -> np.ndarray:
        """4x4 matrix from (x, y, z) index to LPS (even spacing; nominal for uneven)."""
        a = np.eye(4)
        a[:3, :3] = self.direction_matrix @ np.diag(self.spacing)
        a[:3, 3] = self.origin
        return a

    def affine_ras(self) -> np.ndarray:
        """4x4 matrix from (x, y, z) index to RAS, as NIfTI wants it."""
        return np.diag([-1.0, -1.0, 1.0, 1.0]) @ self.affine_lps()

    @classmethod
    def from_affine_ras(cls, affine: np.ndarray, shape_zyx: Sequence[int]) -> "Geometry":
        lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(affine, dtype=float)
        m = lps[:3, :3]
        spacing = np.linalg.norm(m, axis=0)
        direction = m / spacing
        return cls(shape=tuple(shape_zyx), spacing=tuple(spacing), origin=tuple(lps[:3, 3]),
                   direction=tuple(direction.ravel()))

    def with_even_spacing(self, spacing_z: float, n_slices: int) -> "Geometry":
        return Geometry(shape=(n_slices, self.shape[1], self.shape[2]),
                        spacing=(self.spacing[0], self.spacing[1], spacing_z),
                        origin=self.origin, direction=self.direction)

    def to_dict(self) -> dict:
        d = {"shape_zyx": list(self.shape), "spacing_xyz": list(self.spacing),
             "origin_lps": list(self.origin),
             "direction_lps": [list(r) for r in self.direction_matrix],
             "orientation": self.orientation_code()}
        if self.slice_offsets is not None:
            d["slice_offsets_mm"] = list(self.slice_offsets)
        return d
