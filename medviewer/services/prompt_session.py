"""One object being segmented from prompts, Qt-free: the prompt history (points, boxes,
scribbles in voxel ``(z, y, x)`` indices of the volume, each given on one plane), which
engines are available, and the segmentation of a frozen snapshot of the history on any plane
(run on a worker by the app; the CLI can use it as is).

The engines segment 2D on axial slices (array axis 0). A prompt given on a coronal or sagittal
plane is run on the volume with its axes permuted so that the plane's fixed axis comes first;
the mask is permuted back onto the volume's grid."""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from types import SimpleNamespace
from typing import List, Optional, Sequence, Tuple

import numpy as np

from medviewer.core.prompts import Box, Point, Prompts, Scribble

from . import interactive

__all__ = ["EngineInfo", "available_engines", "PromptEntry", "PromptSession", "Snapshot",
           "run_snapshot", "PLANE_OF_AXIS", "ResultCache"]

PLANE_OF_AXIS = {0: "axial", 1: "coronal", 2: "sagittal"}
KINDS = ("point", "box", "scribble")


@dataclass(frozen=True)
class EngineInfo:
    name: str
    available: bool
    reason: str = ""  # why not, when unavailable


def available_engines() -> List[EngineInfo]:
    """Every engine :func:`interactive.segment` knows, and whether it can run here."""
    return [EngineInfo(name, why is None, why or "")
            for name, why in interactive.available_engines().items()]


@dataclass(frozen=True)
class PromptEntry:
    """One prompt: ``kind`` point/box/scribble; ``voxels`` (z, y, x) indices (one for a point,
    the two corners for a box, the stroke for a scribble); ``axis`` the array axis fixed by
    the plane it was given on (0 axial, 1 coronal, 2 sagittal)."""

    kind: str
    voxels: Tuple[Tuple[int, int, int], ...]
    positive: bool = True
    axis: int = 0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown prompt kind {self.kind!r}")
        vox = tuple(tuple(int(c) for c in v) for v in self.voxels)
        if not vox or any(len(v) != 3 for v in vox):
            raise ValueError("a prompt needs (z, y, x) voxels")
        object.__setattr__(self, "voxels", vox)

    @property
    def slice_index(self) -> int:
        return self.voxels[0][self.axis]

    def label(self) -> str:
        sign = "+" if self.positive else "−"
        where = f"{PLANE_OF_AXIS[self.axis]} {self.slice_index + 1}"
        if self.kind == "point":
            z, y, x = self.voxels[0]
            return f"{sign} click at (x {x}, y {y}, z {z}) — {where}"
        if self.kind == "box":
            return f"box on {where}"
        return f"{sign} scribble, {len(self.voxels)} voxels — {where}"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "positive": self.positive, "plane": PLANE_OF_AXIS[self.axis],
                "voxels_zyx": [list(v) for v in self.voxels]}


def _perm(axis: int) -> Tuple[int, int, int]:
    """The axis order that puts ``axis`` first (the others keep their order)."""
    return (axis,) + tuple(a for a in range(3) if a != axis)


def to_prompts(entries: Sequence[PromptEntry], axis: int) -> Prompts:
    """Core prompts in the frame of the permuted volume (``axis`` first)."""
    p = _perm(axis)
    out = Prompts()
    for e in entries:
        vox = [tuple(v[i] for i in p) for v in e.voxels]
        if e.kind == "point":
            out = out.add(Point(vox[0], e.positive))
        elif e.kind == "box":
            (k, a0, b0), (_, a1, b1) = vox[0], vox[-1]
            out = out.add(Box(k, a0, b0, a1, b1))
        else:
            out = out.add(Scribble(tuple(vox), e.positive))
    return out


@dataclass(frozen=True)
class Snapshot:
    """What one engine run needs (immutable: handed to a worker)."""

    entries: Tuple[PromptEntry, ...]
    engine: str
    axis: int
    index: int  # the slice (along ``axis``) the object was started on
    three_d: bool
    generation: int


def _grey(volume):
    """The volume as grey levels: colour images (ultrasound, photos; (z, y, x, 3)) by their
    luminance (ITU-R BT.601), so that prompts work on them too."""
    arr = np.asarray(volume.array)
    if arr.ndim == 4 and arr.shape[-1] in (3, 4):
        lum = arr[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        return SimpleNamespace(array=lum, geometry=volume.geometry)
    return volume


def _permuted_volume(volume, axis: int):
    """The grey volume with ``axis`` first, on the spacing the engines use
    (:func:`interactive.engine_spacing`: a radiograph without pixel spacing gets an estimate)."""
    zyx = interactive.engine_spacing(volume).zyx
    volume = _grey(volume)
    p = _perm(axis)
    pz = tuple(zyx[i] for i in p)
    arr = np.transpose(np.asarray(volume.array), p) if axis else np.asarray(volume.array)
    return SimpleNamespace(array=arr, geometry=SimpleNamespace(spacing=(pz[2], pz[1], pz[0])))


class ResultCache:
    """Results of prompt prefixes (packed bits), so that undo restores the earlier result at
    once and each new prompt corrects the previous result instead of starting over."""

    def __init__(self, limit: int = 24):
        self.limit = int(limit)
        self._items: "OrderedDict[tuple, tuple]" = OrderedDict()

    def get(self, key) -> Optional[np.ndarray]:
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        bits, shape = item
        return np.unpackbits(bits, count=int(np.prod(shape))).reshape(shape).astype(bool)

    def put(self, key, mask: np.ndarray) -> None:
        self._items[key] = (np.packbits(np.asarray(mask, bool).ravel()), mask.shape)
        self._items.move_to_end(key)
        while len(self._items) > self.limit:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()


def _step(vol, prompts: Prompts, entry: "PromptEntry", snap: Snapshot, prev, prev_is_3d: bool,
          axis_perm) -> Tuple[np.ndarray, bool]:
    """One prompt more: 2D on the start slice with the previous result to correct, or, in 3D,
    the propagation of the start slice's result, then corrections on the prompted slice."""
    k = tuple(entry.voxels[0][i] for i in axis_perm)[0]
    if not snap.three_d:
        prev2d = None if prev is None else prev[snap.index]
        return interactive.segment(vol, prompts, z=snap.index, engine=snap.engine,
                                   prev_mask=prev2d), False
    if prev is None or not prev_is_3d:  # carry the start slice's result through first
        prev2d = None if prev is None else prev[snap.index]
        prev = interactive.segment(vol, prompts, z=snap.index, three_d=True,
                                   engine=snap.engine, prev_mask=prev2d)
        if k == snap.index:
            return prev, True
    return interactive.correct_3d(vol, prev, prompts, k, snap.engine), True


def run_snapshot(volume, snap: Snapshot, cache: Optional[ResultCache] = None) -> np.ndarray:
    """The boolean mask (the volume's grid) of ``snap``'s prompts, one prompt after the other:
    each corrects the result of those before it (2D on the start slice; in 3D, the start
    slice's result carried through the neighbouring slices, then each prompt on another slice
    correcting it there). ``cache`` keeps the result of every prefix of the prompts: undo and
    a repeated run cost nothing, a new prompt costs one engine run."""
    shape = tuple(np.asarray(volume.array).shape[:3])
    if not snap.entries:
        return np.zeros(shape, bool)
    cache = cache if cache is not None else ResultCache()
    if snap.engine == "learned":  # the app's worker: torch leaves a core to the GUI thread
        from medviewer.ai.device import configure_threads

        configure_threads(None)
    vol = _permuted_volume(volume, snap.axis)
    perm = _perm(snap.axis)
    head = (snap.engine, snap.axis, snap.index, snap.three_d)
    start, prev = 0, None
    for n in range(len(snap.entries), 0, -1):  # the longest prefix already done
        got = cache.get(head + (snap.entries[:n],))
        if got is not None:
            start, prev = n, got
            break
    prev_is_3d = snap.three_d and prev is not None and _is_3d(prev, snap.index)
    if start == len(snap.entries) and snap.three_d and not prev_is_3d:
        start -= 1  # 3D was switched on after the last prompt: carry its result through
        prev = cache.get(head + (snap.entries[:start],)) if start else None
    for n in range(start, len(snap.entries)):
        prompts = to_prompts(snap.entries[: n + 1], snap.axis)
        prev, prev_is_3d = _step(vol, prompts, snap.entries[n], snap, prev, prev_is_3d, perm)
        cache.put(head + (snap.entries[: n + 1],), prev)
    mask = prev
    if snap.axis:
        mask = np.transpose(mask, np.argsort(perm))
    return np.ascontiguousarray(mask)


def _is_3d(mask: np.ndarray, index: int) -> bool:
    rows = mask.reshape(mask.shape[0], -1).any(axis=1)
    rows[index] = False
    return bool(rows.any())


class PromptSession:
    """The prompts of one object: added, undone, removed, cleared; the plane and slice of the
    first prompt fix the frame (later prompts on other planes are refused); a prompt on
    another slice of that plane makes the result 3D (it corrects the propagation)."""

    def __init__(self, engine: Optional[str] = None):
        self.engine = engine or interactive.default_engine()
        self.entries: List[PromptEntry] = []
        self.three_d = False
        self.generation = 0
        self.axis: Optional[int] = None
        self.index: Optional[int] = None
        self.cache = ResultCache()

    def __len__(self) -> int:
        return len(self.entries)

    def _changed(self) -> None:
        self.generation += 1
        if not self.entries:
            self.axis = self.index = None
            self.three_d = False

    def check(self, entry: PromptEntry) -> str:
        """'' if ``entry`` can be added, else why not."""
        if self.axis is not None and entry.axis != self.axis:
            return (f"This object's prompts are on the {PLANE_OF_AXIS[self.axis]} plane: "
                    "accept or clear them to prompt on another plane")
        return ""

    def add(self, entry: PromptEntry) -> None:
        why = self.check(entry)
        if why:
            raise ValueError(why)
        if self.axis is None:
            self.axis, self.index = entry.axis, entry.slice_index
        elif entry.slice_index != self.index:
            self.three_d = True
        self.entries.append(entry)
        self._changed()

    def undo(self) -> Optional[PromptEntry]:
        if not self.entries:
            return None
        entry = self.entries.pop()
        self._changed()
        return entry

    def remove(self, i: int) -> PromptEntry:
        entry = self.entries.pop(int(i))
        if self.entries and entry.slice_index == self.index and \
                all(e.slice_index != self.index for e in self.entries):
            self.index = self.entries[0].slice_index  # the start slice's prompts are gone
        self._changed()
        return entry

    def clear(self) -> None:
        self.entries.clear()
        self.cache.clear()
        self._changed()

    def set_three_d(self, on: bool = True) -> None:
        if bool(on) != self.three_d and self.entries:
            self.three_d = bool(on)
            self._changed()

    def set_engine(self, name: str) -> None:
        if name != self.engine:
            self.engine = name
            self._changed()

    def snapshot(self) -> Snapshot:
        return Snapshot(tuple(self.entries), self.engine, self.axis or 0, self.index or 0,
                        self.three_d, self.generation)

    def stored_prompts(self) -> dict:
        """The prompts as the label store keeps them (:mod:`medviewer.services.prompt_records`),
        in the frame of the object's plane: (slice, row, column) of the permuted volume."""
        p = to_prompts(self.entries, self.axis or 0)
        return {"points": [list(pt.voxel) + [pt.positive] for pt in p.points],
                "boxes": [[b.z, b.y0, b.x0, b.y1, b.x1] for b in p.boxes],
                "scribbles": [{"voxels": [list(v) for v in sc.voxels],
                               "positive": sc.positive} for sc in p.scribbles]}

    def record(self) -> dict:
        """What produced the result, to store with it: engine, plane, slice, 3D, prompts."""
        return {"engine": self.engine, "plane": PLANE_OF_AXIS.get(self.axis or 0),
                "slice": self.index, "three_d": self.three_d,
                "prompts": [e.to_dict() for e in self.entries]}
