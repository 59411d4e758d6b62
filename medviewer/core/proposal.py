"""Proposals: a model's labels shown over a person's label map until a person accepts them —
which voxels an accept changes, how the model's labels map onto the person's table, and how
a proposal slice is drawn (outline and hatching, unlike a person's fill). numpy only."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Dict, Optional, Tuple

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
    record it came from; ``z`` the axial slice that was run (None: the volume)."""

    labels: np.ndarray
    table: dict
    record_id: str
    source: str = ""
    z: Optional[int] = None
    counts: Dict[int, int] = field(default_factory=dict)

    @classmethod
    def make(cls, labels: np.ndarray, table: dict, record_id: str, source: str = "",
             z: Optional[int] = None) -> "Proposal":
        arr = np.asarray(labels)
        if arr.ndim != 3 or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"a proposal is a 3D integer array, got {arr.dtype} {arr.shape}")
        if arr.flags.writeable:
            arr = arr.copy()
            arr.flags.writeable = False
        return cls(arr, dict(table or {}), str(record_id), str(source), z, value_counts(arr, z))

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
        region = arr[_region(arr.shape, axis, index)]
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


def _region(shape, axis: Optional[int], index: Optional[int]) -> tuple:
    sl = [slice(None)] * len(shape)
    if axis is not None:
        sl[int(axis)] = slice(int(index), int(index) + 1)
    return tuple(sl)


def label_mapping(proposal_table: dict, values, target: LabelTable,
                  present: Dict[int, int]) -> Tuple[Dict[int, int], list]:
    """Where each proposal value goes in the person's table ``target``: the label of the same
    name, else the same value when it is free (or an unused "Label v" placeholder), else a new
    value. ``present``: {value: voxels} of the person's label map. Returns (mapping, changes)
    with changes = [(value, name, colour, rename)] the table needs (add, or rename)."""
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
        elif cur is not None and cur.name == f"Label {v}" and not present.get(v):
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


def accept_selection(current: np.ndarray, proposal: np.ndarray, mapping: Dict[int, int],
                     value: Optional[int] = None, axis: Optional[int] = None,
                     index: Optional[int] = None, replace: bool = False):
    """(flat indices, new values, kept) that accepting changes in ``current``: the proposed
    voxels (of ``value`` only, on slice ``index`` along ``axis`` only, when given) mapped
    through ``mapping``; voxels a person labelled (non-zero in ``current``) are kept unless
    ``replace`` (``kept`` counts them). Indices are sorted; only voxels whose value changes
    are returned."""
    if current.shape != proposal.shape:
        raise ValueError(f"proposal {proposal.shape} does not fit the label map {current.shape}")
    region = _region(current.shape, axis, index)
    prop, cur = proposal[region], current[region]
    mask = prop != 0 if value is None else prop == int(value)
    kept = 0
    if not replace:
        painted = mask & (cur != 0)
        kept = int(np.count_nonzero(painted))
        mask &= ~painted
    coords = list(np.nonzero(mask))
    if axis is not None:
        coords[int(axis)] = coords[int(axis)] + int(index)
    flat = np.ravel_multi_index(tuple(coords), current.shape).astype(np.int64)
    lut = np.zeros(max([int(prop.max(initial=0))] + list(mapping)) + 1, dtype=np.int64)
    for src, dst in mapping.items():
        lut[int(src)] = int(dst)
    new = lut[prop[mask]]
    keep = new != cur[mask]
    return flat[keep], new[keep], kept


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
