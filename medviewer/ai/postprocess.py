"""Post-processing of a segmentation's label volume, as the model card's
``input.postprocess`` asks: ``{"largest_component": [label names], "min_component_ml": v,
"inside_body_hu": t, "trim_tails": {label name: fraction}, "aerated_labels": [lung labels]}``,
applied in the order below.

``inside_body_hu`` (CT): per axial slice, labels outside the body become background. The body
is the largest region above ``t`` HU with its holes (the lungs, bowel gas) filled, grown by
2 mm; the table and the air around are outside. A slice whose body reaches the edge of the
field of view on more than 5 % of the border (a cropped or small-field reconstruction, where
the lungs may open onto the edge and would not be "holes") is left as it is.

``aerated_labels`` (CT lungs): per axial slice, lung labels on an airway's lumen are cleared
and the aerated voxels of a region the network mostly called lung are completed (see
:func:`_aerated_lungs`).

Each listed structure keeps only its largest 3D connected component (an organ is one piece:
a patch of "liver" in the heart is noise); every label loses its components smaller
than ``min_component_ml``. ``trim_tails``: from a listed organ's largest cross-section, up
and down, the slices from the first one under that fraction of its area are cleared (a vessel
joined to the heart by a thin bridge). Removed voxels become background. Components are found
on a grid halved in-plane (a cell is set when any of its 2x2 voxels is) a slab of 64 slices
at a time, pieces joined across slabs: the extra memory does not grow with the volume; a
voxel is removed when its half-grid cell belongs to a removed component.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .device import release_freed_memory

__all__ = ["clean_labels", "validate_postprocess"]


def validate_postprocess(spec, labels: Sequence[str]) -> Optional[dict]:
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise ValueError("input.postprocess must be an object")
    keep = spec.get("largest_component", [])
    unknown = [n for n in keep if n not in labels]
    if unknown:
        raise ValueError(f"input.postprocess.largest_component names unknown labels {unknown}")
    ml = float(spec.get("min_component_ml", 0.0))
    if not np.isfinite(ml) or ml < 0:
        raise ValueError("input.postprocess.min_component_ml must be >= 0")
    out = {"largest_component": list(keep), "min_component_ml": ml}
    if spec.get("inside_body_hu") is not None:
        hu = float(spec["inside_body_hu"])
        if not np.isfinite(hu):
            raise ValueError("input.postprocess.inside_body_hu must be a number")
        out["inside_body_hu"] = hu
    tails = spec.get("trim_tails") or {}
    if not isinstance(tails, dict) or any(n not in labels for n in tails):
        raise ValueError("input.postprocess.trim_tails must map known label names to fractions")
    for name, frac in tails.items():
        if not (isinstance(frac, (int, float)) and 0 <= float(frac) < 1):
            raise ValueError(f"input.postprocess.trim_tails[{name!r}] must be in [0, 1)")
    if tails:
        out["trim_tails"] = {n: float(f) for n, f in tails.items()}
    aerated = spec.get("aerated_labels") or []
    if not isinstance(aerated, list) or any(n not in labels for n in aerated):
        raise ValueError("input.postprocess.aerated_labels must list known label names")
    if aerated:
        out["aerated_labels"] = list(aerated)
    return out


def body_mask(image_slice: np.ndarray, pixel_mm: float, threshold: float):
    """The body of one axial CT slice (bool, same shape), or None when the body reaches the
    field of view's edge on more than 5 % of the border (nothing is then called outside)."""
    from scipy import ndimage

    tissue = image_slice > threshold
    border = np.concatenate([tissue[0], tissue[-1], tissue[:, 0], tissue[:, -1]])
    if border.mean() > 0.05:
        return None
    tissue = ndimage.binary_opening(tissue, iterations=1)  # blanket folds, noise
    comp, n = ndimage.label(tissue)
    if n == 0:
        return np.zeros(tissue.shape, bool)
    sizes = np.bincount(comp.ravel())
    sizes[0] = 0
    body = ndimage.binary_fill_holes(comp == int(np.argmax(sizes)))
    grow = max(1, int(round(2.0 / max(pixel_mm, 1e-3))))
    return ndimage.binary_dilation(body, iterations=grow)


def _clear_outside_body(labels, image, spacing_zyx, threshold, check) -> int:
    """Half-grid body masks (a quarter of the work), applied on the full grid."""
    removed = 0
    for z in range(labels.shape[0]):
        if check is not None and z % 32 == 0:
            check()
        lab = labels[z]
        if not lab.any():
            continue
        body = body_mask(np.asarray(image[z])[::2, ::2], 2.0 * float(spacing_zyx[1]), threshold)
        if body is None:
            continue
        full = np.repeat(np.repeat(body, 2, axis=0), 2, axis=1)[:lab.shape[0], :lab.shape[1]]
        out = (lab != 0) & ~full
        n = int(np.count_nonzero(out))
        if n:
            lab[out] = 0
            removed += n
    return removed


def clean_labels(labels: np.ndarray, spacing_zyx, label_names: Sequence[str], spec,
                 check=None, image=None) -> dict:
    """Clean ``labels`` (z, y, x) uint8 in place; returns {label name: voxels removed}
    (``"outside body"``: all labels removed there; ``"airway lumen"``: lung labels cleared
    on airways; ``"lung added"``: aerated voxels given a lung label, added not removed).
    ``image``: the volume the labels belong to (needed by ``inside_body_hu`` and
    ``aerated_labels``; without it those steps are skipped)."""
    spec = validate_postprocess(spec, label_names)
    if spec is None or labels.size == 0:
        return {}
    removed = {}
    if "inside_body_hu" in spec and image is not None:
        removed["outside body"] = _clear_outside_body(labels, image, spacing_zyx,
                                                      spec["inside_body_hu"], check)
    lungs = [label_names.index(n) for n in spec.get("aerated_labels", [])]
    if lungs and image is not None:  # before the pieces: what is left of an airway is a speck
        removed["airway lumen"] = _aerated_lungs(labels, image, spacing_zyx, lungs, check,
                                                 complete=False)
    if labels.shape[0] >= 2:  # one slice: no 3D components
        _clean_pieces(labels, spacing_zyx, label_names, spec, check, removed)
    if lungs and image is not None:  # after: fill in around what the network kept
        removed["lung added"] = _aerated_lungs(labels, image, spacing_zyx, lungs, check,
                                               complete=True)
    release_freed_memory()
    return removed


def _clean_pieces(labels, spacing_zyx, label_names, spec, check, removed) -> None:
    """Largest piece per listed organ, specks, tails (see the module's text)."""
    keep = {label_names.index(n) for n in spec["largest_component"]}
    cell_ml = float(np.prod(spacing_zyx)) * 4.0 / 1000.0  # one half-grid cell
    min_cells = spec["min_component_ml"] / cell_ml if cell_ml > 0 else 0.0
    from scipy import ndimage

    boxes = ndimage.find_objects(labels)  # each value's 3D bounding box, in one pass
    for value, box in enumerate(boxes, start=1):
        if box is None or value >= len(label_names):
            continue
        if check is not None:
            check()
        release_freed_memory()  # the previous organ's slab temporaries
        # the organ's own box, its in-plane start even: the half grid's cells stay those of
        # the whole slice
        part = labels[box[0], slice(box[1].start - box[1].start % 2, box[1].stop),
                      slice(box[2].start - box[2].start % 2, box[2].stop)]
        pieces = _Pieces(part, value)
        # an organ's largest piece goes too when it is no bigger than a speck
        sizes = pieces.sizes
        drop = (sizes < sizes.max() if value in keep else sizes < min_cells) | (sizes < min_cells)
        if not drop.any():
            continue
        n = 0
        for z0, cells in pieces.cells(drop):  # full-grid temporaries of one slab
            region = part[z0:z0 + cells.shape[0]]
            up = np.repeat(np.repeat(cells, 2, axis=1), 2, axis=2)
            gone = up[:, :region.shape[1], :region.shape[2]] & (region == value)
            n += int(np.count_nonzero(gone))
            region[gone] = 0
        removed[label_names[value]] = n
    if spec.get("trim_tails"):
        _trim_tails(labels, label_names, spec["trim_tails"], removed)


AIR_HU = -400.0  # aerated lung, airways and gas lie below this; soft tissue above
LUMEN_HU = -950.0  # an airway's lumen (and other gas pockets): nearly pure air
LUMEN_MM2 = (30.0, 1500.0)  # the cross-sections of a lumen that is looked at
LUMEN_WALL = 0.6  # enclosed: this share of the 1..4-voxel ring around it is soft tissue


def _aerated_lungs(labels, image, spacing_zyx, values, check, complete: bool) -> int:
    """Per axial slice, for the lung labels ``values``: ``complete=False``: a lumen of air
    (below ``LUMEN_HU``, ``LUMEN_MM2`` in area) mostly enclosed by soft tissue (the trachea,
    a main bronchus, the oesophagus, a gas pocket) is not lung: lung labels on it and 2 mm
    around it are cleared. ``complete=True``: every aerated voxel (below ``AIR_HU``, not in
    such a lumen) of a connected aerated region that the network mostly labelled lung, but
    left unlabelled itself, takes the nearest lung label (a network that loses a stretch of a
    lung's edge on an unfamiliar chest, while the parenchyma it leaves out is the same as the
    one it labels). Other labels are never overwritten. Returns the voxels changed."""
    from scipy import ndimage

    px = float(spacing_zyx[1]) * float(spacing_zyx[2])
    reach = max(1, int(round(10.0 / float(spacing_zyx[1]))))  # lumens: within 10 mm
    values = np.asarray(values, labels.dtype)
    changed = 0
    for z in range(labels.shape[0]):
        if check is not None and z % 32 == 0:
            check()
        lab = labels[z]
        lung = np.isin(lab, values)
        if not lung.any():
            continue
        img = np.asarray(image[z])
        if not complete:  # lumens the network called lung: near its lungs
            box = _box(lung, reach)
            lab, lung, img = lab[box], lung[box], img[box]
            lumen = _enclosed_lumens(img, lung, px)
            if lumen is not None:
                gone = ndimage.binary_dilation(lumen, iterations=max(
                    1, int(round(2.0 / float(spacing_zyx[1]))))) & lung
                changed += int(np.count_nonzero(gone))
                lab[gone] = 0
            continue
        # the whole slice: an aerated region may reach far from the labels
        comp, n = ndimage.label(img < AIR_HU)
        size = np.bincount(comp.ravel(), minlength=n + 1)
        in_lung = np.bincount(comp[lung], minlength=n + 1)
        mostly = in_lung * 2 >= size
        mostly[0] = False
        fill = mostly[comp] & (lab == 0)
        if not fill.any():
            continue
        near = _box(fill, 6)  # an airway's lumen among them stays out
        lumen = _enclosed_lumens(img[near], None, px)
        if lumen is not None:
            fill[near] &= ~lumen
            if not fill.any():
                continue
        box = _box(lung | fill, 1)  # every lung voxel a filled one could be nearest to
        lab, lung, fill = lab[box], lung[box], fill[box]
        _, (iy, ix) = ndimage.distance_transform_edt(~lung, return_indices=True)
        lab[fill] = lab[iy[fill], ix[fill]]
        changed += int(np.count_nonzero(fill))
    return changed


def _box(mask: np.ndarray, margin: int) -> tuple:
    """The slices of a 2D mask's bounding box grown by ``margin`` pixels."""
    rows, cols = (np.flatnonzero(mask.any(axis=a)) for a in (1, 0))
    return (slice(max(0, rows[0] - margin), rows[-1] + margin + 1),
            slice(max(0, cols[0] - margin), cols[-1] + margin + 1))


def _enclosed_lumens(img, lung, px_mm2: float):
    """Lumens of air that soft tissue encloses (bool, or None when there is none); with
    ``lung``, only those the network mostly labelled lung."""
    from scipy import ndimage

    comp, n = ndimage.label(img < LUMEN_HU)
    if n == 0:
        return None
    area = np.bincount(comp.ravel(), minlength=n + 1) * px_mm2
    cand = (area >= LUMEN_MM2[0]) & (area <= LUMEN_MM2[1])
    if lung is not None:
        cand &= np.bincount(comp[lung], minlength=n + 1) * 2 * px_mm2 >= area
    cand[0] = False
    if not cand.any():
        return None
    enclosed = np.zeros(n + 1, bool)
    grow = 4  # the ring: 2..4 voxels out from the lumen (its wall, past the partial voxels)
    chosen = np.flatnonzero(cand)
    # the candidates' boxes only: lung noise below LUMEN_HU makes thousands of components
    renumber = np.zeros(n + 1, np.int32)
    renumber[chosen] = np.arange(1, len(chosen) + 1, dtype=np.int32)
    objects = ndimage.find_objects(renumber[comp])
    for i, found in zip(chosen, objects):
        box = tuple(slice(max(0, a.start - grow), a.stop + grow) for a in found)
        own = comp[box] == i
        ring = ndimage.binary_dilation(own, iterations=grow) & ~ndimage.binary_dilation(own)
        enclosed[i] = ring.any() and (img[box][ring] > -500.0).mean() >= LUMEN_WALL
    return enclosed[comp] if enclosed.any() else None


def _slice_counts(labels: np.ndarray) -> np.ndarray:
    """(z, 256) voxels of each value per slice (one slice at a time: ``bincount`` works on
    an int64 copy of its input)."""
    return np.stack([np.bincount(s.ravel(), minlength=256)[:256] for s in labels])


class _Pieces:
    """The 3D connected pieces of ``labels == value`` on the half grid, found a slab at a
    time so that no label volume of the whole box is ever held: each slab is labelled on its
    own, pieces touching across a slab boundary are joined (face connectivity, as
    ``ndimage.label``'s default), and :meth:`cells` labels each slab again to mark the
    cells of chosen pieces. ``sizes``: cells per joined piece."""

    def __init__(self, labels: np.ndarray, value: int):
        from scipy import ndimage
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        self.labels, self.value = labels, value
        sizes, offsets, pairs, last, total = [], [], [], None, 0
        # a small box keeps its slabs' labels for :meth:`cells` (no second labelling)
        self._kept = [] if labels.size <= _KEEP_VOXELS else None
        for z0 in range(0, labels.shape[0], _CHUNK):
            comp, n = ndimage.label(_half_grid(labels[z0:z0 + _CHUNK], value))
            if self._kept is not None:
                self._kept.append(comp)
            offsets.append(total)
            sizes.append(np.bincount(comp.ravel(), minlength=n + 1)[1:])
            first = np.where(comp[0] > 0, comp[0] + total, 0)
            if last is not None:
                both = (last > 0) & (first > 0)
                pairs.append(np.stack([last[both], first[both]]))
            last = np.where(comp[-1] > 0, comp[-1] + total, 0)
            total += n
        self.offsets = offsets
        edges = np.concatenate(pairs, axis=1) - 1 if pairs else np.zeros((2, 0), np.int64)
        graph = coo_matrix((np.ones(edges.shape[1], np.int8), (edges[0], edges[1])),
                           shape=(total, total))
        _, self.piece_of = connected_components(graph, directed=False)  # slab piece -> piece
        self.sizes = np.bincount(self.piece_of, weights=np.concatenate(sizes) if sizes else None,
                                 minlength=int(self.piece_of.max(initial=-1)) + 1)

    def cells(self, drop: np.ndarray):
        """(z0, half-grid cells) per slab: the cells of the pieces where ``drop`` is True."""
        from scipy import ndimage

        gone = np.concatenate([[False], drop[self.piece_of]])  # 0: not this label
        ends = self.offsets[1:] + [len(self.piece_of)]
        for k, z0 in enumerate(range(0, self.labels.shape[0], _CHUNK)):
            if not gone[self.offsets[k] + 1:ends[k] + 1].any():
                continue  # nothing of this slab goes
            if self._kept is not None:
                comp = self._kept[k]
            else:
                comp, _ = ndimage.label(_half_grid(self.labels[z0:z0 + _CHUNK], self.value))
            comp[comp > 0] += self.offsets[k]
            cells = gone[comp]
            if cells.any():
                yield z0, cells


_CHUNK = 64  # slices per step of the full-grid passes (bounded temporary memory)
_KEEP_VOXELS = 32 << 20  # boxes up to this many voxels keep their slab labels (<= 32 MB)


def _half_grid(labels: np.ndarray, value: int) -> np.ndarray:
    """``labels == value`` on a grid halved in-plane, a cell set when any of its 2x2 voxels
    is: every voxel belongs to a cell (a strided pick would miss small pieces, which then
    could never be removed)."""
    nz, h, w = labels.shape
    out = np.zeros((nz, (h + 1) // 2, (w + 1) // 2), bool)
    for dy in (0, 1):  # the four voxels of each cell, as strided views: no reduction pass
        for dx in (0, 1):
            part = labels[:, dy::2, dx::2]
            out[:, :part.shape[1], :part.shape[2]] |= part == value
    return out


def _trim_tails(labels, label_names, fractions: dict, removed: dict) -> None:
    """From each listed organ's largest cross-section, up and down the slices, everything
    from the first slice whose area falls under ``fraction`` of that largest area: a vessel
    or a bowel loop that a thin bridge joins to the organ is not the organ."""
    counts = _slice_counts(labels)
    for name, frac in fractions.items():
        value = label_names.index(name)
        area = counts[:, value]
        if area.max() == 0:
            continue
        peak = int(np.argmax(area))
        low = area < frac * area[peak]
        above = np.flatnonzero(low[peak:])
        below = np.flatnonzero(low[:peak + 1][::-1])
        cut = []
        if above.size:
            cut.append(slice(peak + int(above[0]), None))
        if below.size:
            cut.append(slice(0, peak - int(below[0]) + 1))
        n = 0
        for sl in cut:
            for z in range(*sl.indices(labels.shape[0])):
                if counts[z, value]:
                    part = labels[z]
                    part[part == value] = 0
                    n += int(counts[z, value])
        if n:
            removed[name] = removed.get(name, 0) + n
