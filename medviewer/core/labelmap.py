"""LabelMap: an editable integer label layer on a volume's voxel grid, with its label table."""
from __future__ import annotations

import threading
from typing import Optional

import numpy as np

from .edits import Edit, make_edit
from .geometry import Geometry
from .labels import MAX_LABEL_VALUE, LabelTable
from .signals import Signal


def dtype_for(max_value: int) -> np.dtype:
    """uint8 while every label fits, else uint16."""
    if max_value > MAX_LABEL_VALUE:
        raise ValueError(f"label values above {MAX_LABEL_VALUE} are not supported")
    return np.dtype(np.uint8) if max_value <= 255 else np.dtype(np.uint16)


class LabelMap:
    """Labels ``(z, y, x)`` on ``geometry`` (uint8, widened to uint16 as soon as the table or
    an edit needs a value above 255). Drop-in for ``overlay.LabelOverlay`` in views:
    ``labels``, ``visible``, ``n_labels``, ``lut()``, plus ``opacity`` and ``outline``.

    ``edited`` is emitted with the effective Edit (old -> new as it happened) after every
    ``apply`` (undo emits the reversed edit) and once per finished stroke.

    ``voxel_counts()`` counts the whole array once, then keeps the counts from the voxels each
    edit changes; ``version`` goes up with every change. Write through ``apply``/
    ``set_voxels``/a ``StrokeRecorder`` (or set ``labels``); after writing into the array
    directly, call ``written()``.

    Those writers hold ``lock`` while they write, and a ``StrokeRecorder`` registers itself
    as the open stroke until it is finished or cancelled: :meth:`snapshot` (from any thread)
    is the array as it was before the open stroke began, never a part of a stroke."""

    def __init__(self, geometry: Geometry, table: Optional[LabelTable] = None,
                 array: Optional[np.ndarray] = None, name: str = "Segmentation"):
        self.geometry = geometry
        self.table = LabelTable.default() if table is None else table
        self.name = name
        self.opacity = 0.5
        self.visible = True
        self.outline = False
        self.edited = Signal("labelmap_edited")
        self._counts: Optional[np.ndarray] = None  # voxels per value, once asked for
        self.version = 0  # changes with every write (a plan made earlier is stale)
        self.lock = threading.RLock()  # held by every writer and by snapshot()
        self.stroke = None  # the StrokeRecorder painting now (its voxels are not final yet)
        if array is None:
            self._labels = np.zeros(geometry.shape, dtype=dtype_for(self.table.max_value))
        else:
            self._labels = self._adopt(array)
        self.table.changed.connect(self._on_table_changed)

    @property
    def labels(self) -> np.ndarray:
        """The (z, y, x) label array; always C-contiguous and writable (edits write through
        flat views of it)."""
        return self._labels

    @labels.setter
    def labels(self, array: np.ndarray) -> None:
        arr = np.asarray(array)
        if tuple(arr.shape) != tuple(self.geometry.shape) or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"labels must be an integer array of shape {tuple(self.geometry.shape)}")
        arr = np.ascontiguousarray(arr)
        if not arr.flags.writeable:
            arr = arr.copy()
        with self.lock:
            self._labels = arr
            self._counts = None
            self.version += 1

    def snapshot(self) -> np.ndarray:
        """A copy of the labels without the stroke being painted (its voxels as they were
        before it began): what a save, an export or a worker reads. Safe from any thread."""
        with self.lock:
            out = self._labels.copy()
            if self.stroke is not None:
                self.stroke.revert_into(out)
        return out

    def _adopt(self, array: np.ndarray) -> np.ndarray:
        arr = np.asarray(array)
        if tuple(arr.shape) != tuple(self.geometry.shape):
            raise ValueError(f"label array shape {arr.shape} does not match the image "
                             f"{tuple(self.geometry.shape)}")
        if arr.dtype == bool:
            arr = arr.astype(np.uint8)
        if not np.issubdtype(arr.dtype, np.integer):
            if arr.size and not np.all(np.mod(arr, 1) == 0):
                raise ValueError("label arrays must hold whole numbers")
        lo = arr.min() if arr.size else 0
        hi = int(arr.max()) if arr.size else 0
        if lo < 0:
            raise ValueError("label values must not be negative")
        # values present in the array but unknown to the table get a default entry
        if hi > MAX_LABEL_VALUE:
            raise ValueError(f"label values above {MAX_LABEL_VALUE} are not supported")
        if hi > 0:
            self._counts = count_values(arr)  # kept from here on (see voxel_counts)
            present = np.flatnonzero(self._counts)
            missing = [int(v) for v in present if v and int(v) not in self.table]
            for v in missing:
                self.table._insert(self._default_label(v))
            if missing:
                self.table.changed.emit()
        dt = dtype_for(max(hi, self.table.max_value))
        out = np.ascontiguousarray(arr, dtype=dt)
        if out is arr and not out.flags.writeable:
            out = out.copy()
        return out

    @staticmethod
    def _default_label(value: int):
        from .labels import Label, palette_color

        return Label(value, f"Label {value}", palette_color(value))

    # ------------------------------------------------------------------ display (LabelOverlay API)
    @property
    def shape(self) -> tuple:
        return tuple(self.labels.shape)

    @property
    def n_labels(self) -> int:
        return self.table.max_value

    def lut(self) -> np.ndarray:
        return self.table.lut(self.opacity)

    # ------------------------------------------------------------------ dtype
    def ensure_capacity(self, value: int) -> None:
        """Widen the array (uint8 -> uint16) if ``value`` does not fit."""
        with self.lock:
            if value > np.iinfo(self.labels.dtype).max:
                counts = self._counts  # widening keeps every value
                self.labels = self.labels.astype(dtype_for(int(value)))
                self._counts = counts

    def _on_table_changed(self, *args) -> None:
        self.ensure_capacity(self.table.max_value)

    def cover(self, values) -> None:
        """Make sure the table has an entry for every non-zero value in ``values`` (so that
        every painted voxel has a name and a colour) and the array can hold them."""
        vals = distinct_values(values)
        missing = [int(v) for v in vals if v and int(v) not in self.table]
        if missing:
            for v in missing:
                self.table._insert(self._default_label(v))
            self.table.changed.emit()  # widens the array if needed
        if vals.size:
            self.ensure_capacity(int(vals[-1]))

    # ------------------------------------------------------------------ edits
    def apply(self, edit: Edit, reverse: bool = False, values=None) -> Edit:
        """Write an edit's new values (its old ones with ``reverse``); emits ``edited`` with
        the effective edit and returns it. ``values``: the distinct values written, when
        known (a large edit's are not looked up again)."""
        eff = edit.reversed() if reverse else edit
        with self.lock:
            if eff.new.size:
                self.cover(eff.new if values is None else values)
            self.labels.reshape(-1)[eff.indices] = eff.new
            self.written(eff.old, eff.new)
        self.edited.emit(eff)
        return eff

    def set_voxels(self, indices, values, label: int, tool: str,
                   respect_locks: bool = True) -> Optional[Edit]:
        """Build and apply an edit in one go (fills, polygons, interpolation, removal).
        Returns the applied Edit (push it onto the UndoStack) or None if nothing changed."""
        edit = make_edit(self, indices, values, label, tool, respect_locks)
        if edit is not None:
            self.apply(edit)
        return edit

    def clear_label(self, value: int, respect_locks: bool = False) -> Optional[Edit]:
        """Set every voxel of ``value`` to 0 (the 'remove label' tool); returns the Edit."""
        idx = np.flatnonzero(self.labels.reshape(-1) == int(value))
        return self.set_voxels(idx, 0, int(value), "remove", respect_locks)

    def remove_label(self, value: int) -> Optional[Edit]:
        """Clear the label's voxels (locked or not) and drop it from the table. Undoing the
        returned Edit brings the voxels back (and a default table entry for them)."""
        edit = self.clear_label(value)
        if int(value) in self.table:
            self.table.remove(value)
        return edit

    def voxel_counts(self) -> dict:
        """{value: number of voxels} for every non-zero value present (the whole array is
        counted the first time only; edits keep the counts)."""
        if self._counts is None:
            self._counts = count_values(self.labels)
        counts = self._counts
        return {int(v): int(counts[v]) for v in np.flatnonzero(counts) if v}

    def written(self, old=None, new=None) -> None:
        """Voxels of values ``old`` became ``new`` (a scalar or one per voxel): keeps the
        counts and the version, for whoever writes into ``labels`` (edits, strokes). Without
        values (the array was written some other way) the counts are counted again."""
        self.version += 1
        if old is None:
            self._counts = None
        if self._counts is None:
            return
        old = np.asarray(old).ravel()
        new = np.broadcast_to(np.asarray(new), old.shape).ravel()
        if not old.size:
            return
        top = int(max(old.max(), new.max())) + 1
        if top > len(self._counts):
            self._counts = np.concatenate([self._counts, np.zeros(top - len(self._counts),
                                                                  np.int64)])
        n = len(self._counts)
        self._counts -= np.bincount(old, minlength=n)
        self._counts += np.bincount(new, minlength=n)


_CHUNK = 1 << 20


def count_values(labels: np.ndarray) -> np.ndarray:
    """Voxels per value (index = value) of a non-negative integer array, counted in chunks
    (a bincount of the whole array would first copy it to 8 bytes per voxel)."""
    flat = np.asarray(labels).reshape(-1)
    top = int(flat.max(initial=0)) + 1
    counts = np.zeros(top, np.int64)
    cast = not np.can_cast(flat.dtype, np.intp, "safe")  # e.g. whole numbers as floats
    for i in range(0, flat.size, _CHUNK):
        part = flat[i:i + _CHUNK]
        counts += np.bincount(part.astype(np.intp) if cast else part, minlength=top)
    return counts


def distinct_values(values) -> np.ndarray:
    """The sorted distinct values of an integer array (a bincount for non-negative ones, much
    faster than ``np.unique`` on a large edit)."""
    vals = np.asarray(values).ravel()
    if vals.size < 4096 or not np.issubdtype(vals.dtype, np.integer) or vals.min() < 0 \
            or vals.max() > MAX_LABEL_VALUE:
        return np.unique(vals)
    return np.flatnonzero(np.bincount(vals)).astype(vals.dtype)
