"""Proposals: a model's labels shown over a person's label map until a person accepts them —
which voxels an accept changes, how the model's labels map onto the person's table, and how
a proposal slice is drawn (outline and hatching, unlike a person's fill). numpy only."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Dict, NamedTuple, Optional, Tuple

import numpy as np

from .labels import LabelTable
from .overlay import label_boundaries

HATCH_PERIOD = 6  # pixels between the diagonal hatch lines
HATCH_WIDTH = 2  # pixels of each hatch line
HATCH_ALPHA = 150  # hatch lines are see-through; the outline is opaque


@dataclass(frozen=True, eq=False)
class Proposal:
    """``labels`` (z, y, x), read-only, on the image grid (0 = nothing proposed); ``table``
    the model's label table (``LabelTable.to_dict()`` form); ``record_id`` the 'predicted'
    record it came from; ``z`` the axial slice that was run (None: the volume); ``box`` the
    (z, y, x) slices of the smallest box holding every proposed voxel (None: empty), so that
    accepting looks at that box only. ``make`` counts and boxes the labels: call it off the GUI
    thread for a volume's proposal."""

    labels: np.ndarray
    table: dict
    record_id: str
    source: str = ""
    z: Optional[int] = None
    counts: Dict[int, int] = field(default_factory=dict)
    box: Optional[Tuple[slice, slice, slice]] = None

    @classmethod
    def make(cls, labels: np.ndarray, table: dict, record_id: str, source: str = "",
             z: Optional[int] = None) -> "Proposal":
        arr = np.asarray(labels)
        if arr.ndim != 3 or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"a proposal is a 3D integer array, got {arr.dtype} {arr.shape}")
        if arr.flags.writeable:
            arr = arr.copy()
            arr.flags.writeable = False
        return cls(arr, dict(table or {}), str(record_id), str(source), z, value_counts(arr, z),
                   bounding_box(arr))

    @property
    def empty(self) -> bool:
        return not self.counts

    def names(self) -> Dict[int, str]:
        """{value: name} of every value present (a default name where the table has none)."""
        table = LabelTable.from_dict(self.table)
        return {v: (table.get(v).name if table.get(v) else f"Label {v}") for v in self.counts}

    def value_at(self, zyx) -> int:
        z, y, x = (int(v) for v in zyx)
        return int(self.labels[z, y, x])

    def without(self, value: Optional[int] = None, axis: Optional[int] = None,
                index: Optional[int] = None) -> "Proposal":
        """The proposal with a part taken out (a label, a slice, or both), e.g. once accepted."""
        arr = np.array(self.labels, copy=True)
        region = arr[_region(arr.shape, axis, index, self.box)]
        if value is None:
            region[...] = 0
        else:
            region[region == int(value)] = 0
        return Proposal.make(arr, self.table, self.record_id, self.source, self.z)


def value_counts(labels: np.ndarray, z: Optional[int] = None) -> Dict[int, int]:
    """{value: voxels} of the non-zero values (only slice ``z`` is looked at when given)."""
    part = labels if z is None else labels[int(z)]
    counts = np.bincount(part.reshape(-1).astype(np.int64, copy=False))
    return {int(v): int(counts[v]) for v in np.flatnonzero(counts) if v}


def bounding_box(labels: np.ndarray) -> Optional[Tuple[slice, slice, slice]]:
    """The (z, y, x) slices of the smallest box holding every non-zero voxel (None: none)."""
    arr = np.asarray(labels)
    zs = np.flatnonzero(arr.reshape(arr.shape[0], -1).any(axis=1))
    if not zs.size:
        return None
    part = arr[zs[0]:zs[-1] + 1]
    ys = np.flatnonzero(part.any(axis=(0, 2)))
    xs = np.flatnonzero(part.any(axis=(0, 1)))
    return tuple(slice(int(a[0]), int(a[-1]) + 1) for a in (zs, ys, xs))


def _region(shape, axis: Optional[int], index: Optional[int], box=None) -> tuple:
    """Slices of the part of an array of ``shape`` (one slice ``index`` along ``axis`` when
    given) inside ``box`` (when given); every slice has an explicit start and stop."""
    out = []
    for a, n in enumerate(shape):
        lo, hi = 0, int(n)
        if axis is not None and a == int(axis):
            lo, hi = int(index), int(index) + 1
        if box is not None:
            lo, hi = max(lo, int(box[a].start)), min(hi, int(box[a].stop))
        out.append(slice(lo, max(lo, hi)))
    return tuple(out)


def _flat_indices(local: np.ndarray, region: tuple, shape: tuple) -> np.ndarray:
    """Flat indices into an array of ``shape`` of flat indices ``local`` into its ``region``
    (each row of the region starts at a known flat index of the whole array)."""
    (z0, y0, x0), (lz, ly, lx) = (r.start for r in region), (r.stop - r.start for r in region)
    if not local.size:
        return np.zeros(0, np.int64)
    rows = (np.arange(z0, z0 + lz, dtype=np.int64)[:, None] * shape[1]
            + np.arange(y0, y0 + ly, dtype=np.int64)[None, :]).ravel() * shape[2] + x0
    row = local // lx
    return rows[row] + (local - row * lx)


def label_mapping(proposal_table: dict, values, target: LabelTable,
                  present) -> Tuple[Dict[int, int], list]:
    """Where each proposal value goes in the person's table ``target``: the label of the same
    name, else the same value when it is free (or an unused "Label v" placeholder), else a new
    value. ``present``: {value: voxels} of the person's label map, or a function value ->
    voxels (asked only about placeholders). Returns (mapping, changes) with changes =
    [(value, name, colour, rename)] the table needs (add, or rename)."""
    voxels = present if callable(present) else (lambda v: present.get(v, 0))
    table = LabelTable.from_dict(proposal_table)
    by_name = {lab.name.strip().lower(): lab.value for lab in target}
    mapping, changes, taken = {}, [], set(target.labels)
    next_free = max([target.max_value] + [int(v) for v in values]) + 1
    for v in sorted(int(v) for v in values):
        lab = table.get(v)
        name = lab.name if lab is not None else f"Label {v}"
        colour = lab.color if lab is not None else None
        key = name.strip().lower()
        if key in by_name:
            mapping[v] = by_name[key]
            continue
        cur = target.get(v)
        if v not in taken:
            mapping[v] = v
            changes.append((v, name, colour, False))
        elif cur is not None and cur.name == f"Label {v}" and not voxels(v):
            mapping[v] = v
            changes.append((v, name, colour, True))
        else:
            while next_free in taken:
                next_free += 1
            mapping[v] = next_free
            used = {tuple(lab.color) for lab in target}
            if colour is not None and tuple(colour) in used:
                colour = None  # another label of the person has it: the new value's own colour
            changes.append((next_free, name, colour, False))
        taken.add(mapping[v])
        by_name[key] = mapping[v]
    return mapping, changes


class AcceptPlan(NamedTuple):
    """What accepting changes in a label map (read-only arrays): sorted unique flat
    ``indices``, their ``old`` and ``new`` values; ``kept`` voxels a person labelled were
    left as they are, and ``locked`` voxels of locked labels; ``values`` the distinct new
    values."""

    indices: np.ndarray
    old: np.ndarray
    new: np.ndarray
    kept: int
    locked: int
    values: Tuple[int, ...] = ()


def plan_accept(current: np.ndarray, proposal: np.ndarray, mapping: Dict[int, int],
                value: Optional[int] = None, axis: Optional[int] = None,
                index: Optional[int] = None, replace: bool = False, box=None,
                locked: Optional[np.ndarray] = None) -> AcceptPlan:
    """The voxels of ``current`` that accepting ``proposal`` changes: the proposed voxels (of
    ``value`` only, on slice ``index`` along ``axis`` only, when given) mapped through
    ``mapping``. Voxels a person labelled (non-zero in ``current``) are kept unless
    ``replace``; voxels whose current value is locked (``locked``: a bool lookup by value,
    ``edits.locked_mask``) are never changed. Only voxels whose value changes are planned.
    ``box``: (z, y, x) slices holding every proposed voxel (``Proposal.box``): only that part
    of the arrays is looked at. Pure numpy on arrays it only reads: runs on a worker."""
    if current.shape != proposal.shape:
        raise ValueError(f"proposal {proposal.shape} does not fit the label map {current.shape}")
    region = _region(current.shape, axis, index, box)
    prop = np.ascontiguousarray(proposal[region]).reshape(-1)
    cur = np.ascontiguousarray(current[region]).reshape(-1)
    mask = prop != 0 if value is None else prop == int(value)
    kept = 0
    if not replace:
        painted = mask & (cur != 0)
        kept = int(np.count_nonzero(painted))
        mask &= ~painted
    local = np.flatnonzero(mask)
    top = max([int(prop.max(initial=0))] + list(mapping))
    widest = max([0] + [int(v) for v in mapping.values()])
    dtype = current.dtype if widest <= np.iinfo(current.dtype).max else np.dtype(np.uint16)
    lut = np.zeros(top + 1, dtype=dtype)
    for src, dst in mapping.items():
        lut[int(src)] = int(dst)
    new, old = lut[prop[local]], cur[local]
    keep = new != old
    n_locked = 0
    if locked is not None:
        frozen = locked[old]
        n_locked = int(np.count_nonzero(frozen & keep))
        keep &= ~frozen
    out = [_flat_indices(local[keep], region, current.shape), old[keep], new[keep]]
    for arr in out:
        arr.flags.writeable = False
    values = tuple(int(v) for v in np.flatnonzero(np.bincount(out[2], minlength=1)))
    return AcceptPlan(*out, kept, n_locked, values)


@lru_cache(maxsize=8)
def _hatch(shape: tuple, period: int, width: int) -> np.ndarray:
    """The diagonal hatch pattern of a slice shape (cached: the views keep their shapes)."""
    rows = np.arange(shape[0])[:, None]
    cols = np.arange(shape[1])[None, :]
    hatch = ((rows + cols) % int(period)) < int(width)
    hatch.flags.writeable = False
    return hatch


def proposal_rgba(img: np.ndarray, lut: np.ndarray, period: int = HATCH_PERIOD,
                  width: int = HATCH_WIDTH, hatch_alpha: int = HATCH_ALPHA) -> np.ndarray:
    """(h, w, 4) uint8 RGBA of a 2D proposal slice: each label's outline opaque in its colour
    and its inside hatched with diagonal lines (a person's labels are filled). Colours are
    looked up only where something is drawn (this runs on the GUI thread per view)."""
    img = np.asarray(img)
    out = np.zeros(img.shape + (4,), dtype=np.uint8)
    if img.size == 0 or not img.any():
        return out
    edge = label_boundaries(img) != 0  # labelled voxels on a boundary
    inside = (img != 0) & _hatch(img.shape, int(period), int(width)) & ~edge
    top = len(lut) - 1
    for mask, alpha in ((edge, 255), (inside, int(hatch_alpha))):
        vals = img[mask]
        out[mask, :3] = lut[np.minimum(vals, top), :3]
        out[mask, 3] = alpha
    return out
