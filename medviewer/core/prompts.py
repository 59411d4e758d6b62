"""Interactive-segmentation prompts (clicks, boxes, scribbles) in voxel indices, and their
conversion from patient LPS millimetres through a volume's :class:`Geometry`.

Voxels are ``(z, y, x)`` array indices, as everywhere in the core. A prompt is positive (the
object is here) or negative (the object is not here)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, List, Sequence, Tuple

import numpy as np

__all__ = ["Point", "Box", "Scribble", "Prompts", "point_from_mm", "box_from_mm",
           "OutsideImage", "scribble_from_mm"]

Voxel = Tuple[int, int, int]


class OutsideImage(ValueError):
    """A prompt in millimetres that falls outside the image."""


@dataclass(frozen=True)
class Point:
    """One click at voxel ``(z, y, x)``; ``positive`` False for a negative click."""

    voxel: Voxel
    positive: bool = True


@dataclass(frozen=True)
class Box:
    """A box on slice ``z``: rows ``y0..y1`` and columns ``x0..x1``, inclusive."""

    z: int
    y0: int
    x0: int
    y1: int
    x1: int

    def __post_init__(self):
        y0, y1 = sorted((int(self.y0), int(self.y1)))
        x0, x1 = sorted((int(self.x0), int(self.x1)))
        for name, v in (("z", int(self.z)), ("y0", y0), ("x0", x0), ("y1", y1), ("x1", x1)):
            object.__setattr__(self, name, v)

    @property
    def centre(self) -> Voxel:
        return (self.z, (self.y0 + self.y1) // 2, (self.x0 + self.x1) // 2)


@dataclass(frozen=True)
class Scribble:
    """A stroke: the voxels it covers, all positive or all negative."""

    voxels: Tuple[Voxel, ...]
    positive: bool = True

    def __post_init__(self):
        object.__setattr__(self, "voxels", tuple(tuple(int(c) for c in v) for v in self.voxels))


@dataclass(frozen=True)
class Prompts:
    """Every prompt given so far for one object."""

    points: Tuple[Point, ...] = ()
    boxes: Tuple[Box, ...] = ()
    scribbles: Tuple[Scribble, ...] = ()

    def add(self, prompt) -> "Prompts":
        """A copy with ``prompt`` (a Point, Box or Scribble) appended."""
        if isinstance(prompt, Point):
            return Prompts(self.points + (prompt,), self.boxes, self.scribbles)
        if isinstance(prompt, Box):
            return Prompts(self.points, self.boxes + (prompt,), self.scribbles)
        if isinstance(prompt, Scribble):
            return Prompts(self.points, self.boxes, self.scribbles + (prompt,))
        raise TypeError(f"not a prompt: {type(prompt).__name__}")

    def seeds(self, positive: bool, z=None) -> List[Voxel]:
        """Voxels of the points and scribbles of one sign (only slice ``z`` if given)."""
        out = [p.voxel for p in self.points if p.positive == positive]
        for s in self.scribbles:
            if s.positive == positive:
                out.extend(s.voxels)
        return [v for v in out if z is None or v[0] == z]

    def boxes_on(self, z: int) -> List[Box]:
        return [b for b in self.boxes if b.z == z]

    def slices(self) -> List[int]:
        """The slices that carry a prompt, sorted."""
        zs = {v[0] for v in self.seeds(True) + self.seeds(False)} | {b.z for b in self.boxes}
        return sorted(zs)

    def __len__(self) -> int:
        return len(self.points) + len(self.boxes) + len(self.scribbles)


def _voxel(geometry, lps: Sequence[float]) -> Voxel:
    zyx = np.round(geometry.lps_to_index_zyx(np.asarray(lps, dtype=float))).astype(int)
    if not geometry.contains_index_zyx(zyx):
        raise OutsideImage(f"({', '.join(f'{v:g}' for v in lps)}) mm is outside the image "
                           f"(voxel z, y, x = {tuple(int(v) for v in zyx)}, "
                           f"shape {geometry.shape})")
    return tuple(int(v) for v in zyx)


def point_from_mm(geometry, lps: Sequence[float], positive: bool = True) -> Point:
    """The click at patient LPS ``(x, y, z)`` mm, on the nearest voxel."""
    return Point(_voxel(geometry, lps), positive)


def box_from_mm(geometry, corner0: Sequence[float], corner1: Sequence[float]) -> Box:
    """The box between two LPS corners (mm) on one slice (the first corner's slice)."""
    a, b = _voxel(geometry, corner0), _voxel(geometry, corner1)
    if a[0] != b[0]:
        raise OutsideImage(f"the box corners lie on different slices ({a[0]} and {b[0]})")
    return Box(a[0], a[1], a[2], b[1], b[2])


def scribble_from_mm(geometry, points_mm: Iterable[Sequence[float]],
                     positive: bool = True) -> Scribble:
    """A scribble through the given LPS points (each on its nearest voxel)."""
    return Scribble(tuple(_voxel(geometry, p) for p in points_mm), positive)
