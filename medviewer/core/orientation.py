"""The axis flips that put a (z, y, x) voxel array in the order the AI models expect.

A model sees arrays whose x runs towards the patient's left, y towards the back and z
upwards (an axial DICOM series as usually stored: LPS). A NIfTI file is usually stored the
other way in x and y (RAS), and some series run feet first: the same anatomy then reaches the
network mirrored, and a network trained on LPS arrays labels the liver as spleen. Each
index axis of an axial series is flipped where it runs against L, P or S; arrays come back
by the same flips (in place: no copy of a whole volume). Series whose axes are not near L, P
and S in that order (sagittal or coronal stacks) are left as they are.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["AxisFlips"]


@dataclass(frozen=True)
class AxisFlips:
    """Array axes (0: z, 1: y, 2: x) that run against S, P, L; ``permuted``: the series'
    axes are not near S, P, L in that order (nothing is flipped then)."""

    axes: tuple = ()
    permuted: bool = False

    @classmethod
    def of(cls, geometry) -> "AxisFlips":
        nearest = geometry.axis_labels()  # index axes x, y, z -> (LPS axis, sign)
        if any(lps != i for i, (lps, _) in enumerate(nearest)):
            return cls((), True)
        return cls(tuple(sorted(2 - i for i, (_, sign) in enumerate(nearest) if sign < 0)))

    @classmethod
    def of_affine_ras(cls, affine, shape_zyx) -> "AxisFlips":
        from .geometry import Geometry

        return cls.of(Geometry.from_affine_ras(np.asarray(affine, float), shape_zyx))

    def __bool__(self) -> bool:
        return bool(self.axes)

    def view(self, arr: np.ndarray) -> np.ndarray:
        """``arr`` (z, y, x, ...) in LPS order: a view, no copy."""
        if not self.axes:
            return arr
        return arr[tuple(slice(None, None, -1) if a in self.axes else slice(None)
                         for a in range(3))]

    def z(self, index: int, nz: int) -> int:
        """A slice index of the array -> the same slice's index in the view (and back)."""
        return nz - 1 - int(index) if 0 in self.axes else int(index)

    def z_range(self, z_range: tuple, nz: int) -> tuple:
        z0, z1 = (int(v) for v in z_range)
        return (nz - z1, nz - z0) if 0 in self.axes else (z0, z1)

    def restore(self, arr: np.ndarray) -> np.ndarray:
        """An array computed on the view, flipped back to the original order in place (a
        slice at a time); returns it."""
        if 0 in self.axes:
            n = arr.shape[0]
            for k in range(n // 2):
                top = arr[k].copy()
                arr[k] = arr[n - 1 - k]
                arr[n - 1 - k] = top
        for a in (1, 2):
            if a in self.axes:
                for k in range(arr.shape[0]):
                    s = arr[k]
                    s[...] = s[::-1].copy() if a == 1 else s[:, ::-1].copy()
        return arr
