"""Label edits as deltas (indices, old, new), stroke recording and the undo/redo stack."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, List, Optional

import numpy as np

from .signals import Signal

if TYPE_CHECKING:  # pragma: no cover
    from .labelmap import LabelMap


@dataclass(frozen=True, eq=False)
class Edit:
    """A change of a label map: flat (z, y, x) ``indices`` (int64, sorted, unique) with their
    ``old`` and ``new`` values. Arrays are read-only; ``label`` is the label painted (0 for
    the eraser) and ``tool`` names what made it ("brush", "eraser", "fill3d", ...)."""

    indices: np.ndarray
    old: np.ndarray
    new: np.ndarray
    label: int = 0
    tool: str = ""

    def __post_init__(self):
        idx = np.asarray(self.indices, dtype=np.int64).ravel()
        old, new = np.asarray(self.old).ravel(), np.asarray(self.new).ravel()
        if not (len(idx) == len(old) == len(new)):
            raise ValueError("indices, old and new must have the same length")
        if len(idx) > 1 and not np.all(idx[1:] > idx[:-1]):
            raise ValueError("edit indices must be sorted and unique")
        for name, arr in (("indices", idx), ("old", old), ("new", new)):
            if arr.flags.writeable:  # never freeze (or alias) the caller's array
                arr = arr.copy()
                arr.flags.writeable = False
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "label", int(self.label))
        object.__setattr__(self, "tool", str(self.tool))

    @property
    def voxels(self) -> int:
        return int(len(self.indices))

    @property
    def nbytes(self) -> int:
        return int(self.indices.nbytes + self.old.nbytes + self.new.nbytes)

    def reversed(self) -> "Edit":
        """The edit that undoes this one (old and new swapped)."""
        return Edit(self.indices, self.new, self.old, self.label, self.tool)

    def __repr__(self) -> str:
        return f"Edit(tool={self.tool!r}, label={self.label}, voxels={self.voxels})"


def locked_mask(labelmap: "LabelMap") -> Optional[np.ndarray]:
    """Bool lookup (indexed by label value) of locked labels, or None when nothing is locked."""
    locked = labelmap.table.locked_values()
    if not locked:
        return None
    mask = np.zeros(int(np.iinfo(labelmap.labels.dtype).max) + 1, dtype=bool)
    mask[[v for v in locked if v < len(mask)]] = True
    return mask


def make_edit(labelmap: "LabelMap", indices, values, label: int, tool: str,
              respect_locks: bool = True) -> Optional[Edit]:
    """Build (without applying) the edit that sets ``indices`` to ``values`` (scalar or one
    per index). Unchanged voxels and, with ``respect_locks``, voxels of locked labels are left
    out. Returns None when nothing would change."""
    idx = np.asarray(indices, dtype=np.int64).ravel()
    vals = np.broadcast_to(np.asarray(values), idx.shape)
    if len(idx) and not np.all(idx[1:] > idx[:-1]):
        idx, first = np.unique(idx, return_index=True)
        vals = vals[first]
    if vals.size:
        labelmap.cover(vals)
    flat = labelmap.labels.reshape(-1)
    old = flat[idx]
    keep = old != vals
    lock = locked_mask(labelmap) if respect_locks else None
    if lock is not None:
        keep &= ~lock[old]
    if not keep.any():
        return None
    return Edit(idx[keep], old[keep], vals[keep].astype(flat.dtype), label, tool)


class StrokeRecorder:
    """Applies a stroke to ``labelmap.labels`` as it happens and records it as one Edit.

    ``add`` is O(number of indices given): it writes immediately (never changing a voxel
    whose current label is locked) and keeps the first old value of every voxel it changes.
    ``finish`` returns the Edit of the whole stroke (None if nothing changed) and emits
    ``labelmap.edited`` with it, so that views and the journal hear of it once per stroke.

    Until it is finished or cancelled the recorder is the label map's open ``stroke``
    (one at a time): ``LabelMap.snapshot()`` leaves its voxels out. Writes hold the label
    map's lock."""

    def __init__(self, labelmap: "LabelMap", label: int, tool: str):
        self.labelmap = labelmap
        self.label = int(label)
        self.tool = tool
        self._idx: List[np.ndarray] = []
        self._old: List[np.ndarray] = []
        self._finished = False
        with labelmap.lock:
            if labelmap.stroke is not None:
                raise RuntimeError("another stroke is open on this label map")
            labelmap.cover([self.label])
            self._lock = locked_mask(labelmap)
            labelmap.stroke = self

    def _close(self) -> None:
        self._finished = True
        if self.labelmap.stroke is self:
            self.labelmap.stroke = None

    def revert_into(self, labels: np.ndarray) -> None:
        """Write the stroke's first old values into ``labels`` (a copy of the label map):
        the array as it was before the stroke began (callers hold the label map's lock)."""
        flat = labels.reshape(-1)
        for idx, old in zip(reversed(self._idx), reversed(self._old)):
            flat[idx] = old

    def add(self, flat_indices, value=None) -> np.ndarray:
        """Set ``flat_indices`` to ``value`` (default: the recorder's label; scalar or one value
        per index). Returns the flat indices that actually changed."""
        if self._finished:
            raise RuntimeError("stroke already finished")
        value = self.label if value is None else value
        idx = np.asarray(flat_indices, dtype=np.int64).ravel()
        if idx.size == 0:
            return idx
        with self.labelmap.lock:
            return self._add(idx, np.asarray(value))

    def _add(self, idx: np.ndarray, vals: np.ndarray) -> np.ndarray:
        if vals.ndim == 0 and int(vals) != self.label:
            self.labelmap.cover([int(vals)])
        elif vals.ndim:
            self.labelmap.cover(vals)
        if self._lock is not None and len(self._lock) <= np.iinfo(self.labelmap.labels.dtype).max:
            self._lock = locked_mask(self.labelmap)  # the map was widened
        flat = self.labelmap.labels.reshape(-1)
        cur = flat[idx]
        changed = cur != vals
        if self._lock is not None:
            changed &= ~self._lock[cur]
        if not changed.all():
            idx, cur = idx[changed], cur[changed]
            if vals.ndim:
                vals = vals[changed]
        if idx.size:
            flat[idx] = vals
            self.labelmap.written(cur, vals)
            self._idx.append(idx)
            self._old.append(cur)
        return idx

    def finish(self, emit: bool = True) -> Optional[Edit]:
        """End the stroke: the Edit from the first old values to the current ones, or None."""
        with self.labelmap.lock:
            self._close()
            if not self._idx:
                return None
            idx = np.concatenate(self._idx)
            old = np.concatenate(self._old)
            self._idx, self._old = [], []
            idx, first = np.unique(idx, return_index=True)  # first occurrence = first old value
            old = old[first]
            new = self.labelmap.labels.reshape(-1)[idx]
        keep = old != new  # a voxel painted and erased again within the stroke
        if not keep.any():
            return None
        edit = Edit(idx[keep], old[keep], new[keep], self.label, self.tool)
        if emit:
            self.labelmap.edited.emit(edit)
        return edit

    def cancel(self) -> None:
        """Put back every voxel the stroke changed (nothing is emitted)."""
        with self.labelmap.lock:
            if self._idx:
                flat = self.labelmap.labels.reshape(-1)
                for idx, old in zip(reversed(self._idx), reversed(self._old)):
                    self.labelmap.written(flat[idx], old)
                    flat[idx] = old
            self._idx, self._old = [], []
            self._close()


class UndoStack:
    """Undo/redo of Edits. Memory is bounded by ``max_bytes`` (oldest undo steps dropped
    first; the newest step is always kept). ``changed`` is emitted (no arguments) on every
    change of the stack."""

    def __init__(self, max_bytes: int = 200 * 2**20):
        self.max_bytes = int(max_bytes)
        self._undo: deque = deque()
        self._redo: List[Edit] = []
        self._bytes = 0
        self.changed = Signal("undo_changed")

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def memory_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._undo)

    def peek_undo(self) -> Optional[Edit]:
        return self._undo[-1] if self._undo else None

    def push(self, edit: Optional[Edit]) -> None:
        if edit is None:
            return
        self._bytes -= sum(e.nbytes for e in self._redo)
        self._redo.clear()
        self._undo.append(edit)
        self._bytes += edit.nbytes
        while self._bytes > self.max_bytes and len(self._undo) > 1:
            self._bytes -= self._undo.popleft().nbytes
        self.changed.emit()

    def undo(self, labelmap: "LabelMap") -> Optional[Edit]:
        """Revert the newest edit on ``labelmap``; returns that edit (as it was pushed)."""
        if not self._undo:
            return None
        edit = self._undo.pop()
        labelmap.apply(edit, reverse=True)
        self._redo.append(edit)
        self.changed.emit()
        return edit

    def redo(self, labelmap: "LabelMap") -> Optional[Edit]:
        if not self._redo:
            return None
        edit = self._redo.pop()
        labelmap.apply(edit)
        self._undo.append(edit)
        self.changed.emit()
        return edit

    def clear(self) -> None:
        self._undo.clear()
        self._redo.clear()
        self._bytes = 0
        self.changed.emit()
