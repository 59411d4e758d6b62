"""Slice numbers and image order as PACS viewers show them.

A stack of stored images (the plane whose slices are the files: array axis 0) is numbered by
its DICOM InstanceNumber when every slice has a distinct one, and "next image" (wheel down,
PageDown, Down) follows increasing InstanceNumber, as a PACS steps through a series. Without
InstanceNumbers, and for reformatted planes, the order follows the patient axis the way an
axial CT is usually numbered: head to feet (axial), front to back (coronal), right to left
(sagittal); the number shown is the position counted in that order.

``Volume.meta['instance_numbers']`` (set by the DICOM reader) holds one InstanceNumber per
array index along axis 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from .geometry import Geometry

# plane -> (LPS axis, direction) that "next image" moves to: towards the feet (-S), the back
# (+P), the patient's left (+L)
NEXT_DIRECTION = {"axial": (2, -1), "coronal": (1, +1), "sagittal": (0, +1)}
ORDER_WORDS = {"axial": "head to feet", "coronal": "front to back", "sagittal": "right to left"}


@dataclass(frozen=True)
class SliceNumbering:
    """How one plane's slices are numbered and stepped through."""

    n: int  # slices in the plane
    step: int  # +1 or -1: the array-index step of "next image"
    instance_numbers: Optional[tuple] = None  # per array index, when shown
    order: str = ""  # how positions are counted ("InstanceNumber", "head to feet"...)

    def position(self, index: int) -> int:
        """1-based position of array ``index`` in image order."""
        return index + 1 if self.step > 0 else self.n - index

    def index_of_position(self, position: int) -> int:
        return position - 1 if self.step > 0 else self.n - position

    def label(self, index: int) -> str:
        """"Im 40/100" (InstanceNumber; with the position when the numbers are not 1..n)
        or "Sl 40/100" (position in patient order)."""
        pos = self.position(index)
        if self.instance_numbers is None:
            return f"Sl {pos}/{self.n}"
        inst = self.instance_numbers[index]
        if inst == pos:
            return f"Im {inst}/{self.n}"
        return f"Im {inst} ({pos}/{self.n})"


def _distinct_numbers(numbers: Optional[Sequence], n: int) -> Optional[tuple]:
    if numbers is None or len(numbers) != n:
        return None
    try:
        out = tuple(int(v) for v in numbers)
    except (TypeError, ValueError):
        return None
    return out if len(set(out)) == n else None


def slice_numbering(geometry: Geometry, meta: dict, plane: str, fixed_axis: int) -> SliceNumbering:
    """The numbering of ``plane`` (its slices hold array axis ``fixed_axis`` constant)."""
    n = int(geometry.shape[fixed_axis])
    lps, sign = geometry.axis_labels()[2 - fixed_axis]  # index axis order is (x, y, z)
    want_axis, want_dir = NEXT_DIRECTION[plane]
    step = sign * want_dir if lps == want_axis else +1
    numbers = None
    if fixed_axis == 0 and not (meta or {}).get("resampled"):
        numbers = _distinct_numbers((meta or {}).get("instance_numbers"), n)
    if numbers is not None and n > 1:
        rising = all(b > a for a, b in zip(numbers, numbers[1:]))
        falling = all(b < a for a, b in zip(numbers, numbers[1:]))
        if rising or falling:  # next image = the next InstanceNumber
            return SliceNumbering(n, +1 if rising else -1, numbers, "InstanceNumber")
    return SliceNumbering(n, step, numbers, ORDER_WORDS[plane])
