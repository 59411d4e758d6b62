"""Post-processing of a segmentation's label volume, as the model card's
``input.postprocess`` asks: ``{"largest_component": [label names], "min_component_ml": v,
"inside_body_hu": t, "trim_tails": {label name: fraction}}``.

``inside_body_hu`` (CT): per axial slice, labels outside the body become background. The body
is the largest region above ``t`` HU with its holes (the lungs, bowel gas) filled, grown by
2 mm; the table and the air around are outside. A slice whose body reaches the edge of the
field of view on more than 5 % of the border (a cropped or small-field reconstruction, where
the lungs may open onto the edge and would not be "holes") is left as it is.

Each listed structure keeps only its largest 3D connected component (an organ is one piece:
a patch of "liver" in the heart is noise); every label loses its components smaller
than ``min_component_ml``. ``trim_tails``: from a listed organ's largest cross-section, up
and down, the slices from the first one under that fraction of its area are cleared (a vessel
joined to the heart by a thin bridge). Removed voxels become background. Components are found
on a grid halved in-plane (a cell is set when any of its 2x2 voxels is; ``int32`` labels of that size
only), so the extra memory stays well under the label volume's own size times four; a voxel is
removed when its half-grid cell belongs to a removed component.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

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
    (``"outside body"``: all labels removed there). ``image``: the volume the labels belong
    to (needed by ``inside_body_hu``; without it that step is skipped)."""
    from scipy import ndimage

    spec = validate_postprocess(spec, label_names)
    if spec is None or labels.size == 0:
        return {}
    removed = {}
    if "inside_body_hu" in spec and image is not None:
        removed["outside body"] = _clear_outside_body(labels, image, spacing_zyx,
                                                      spec["inside_body_hu"], check)
    if labels.shape[0] < 2:  # one slice: no 3D components
        return removed
    keep = {label_names.index(n) for n in spec["largest_component"]}
    cell_ml = float(np.prod(spacing_zyx)) * 4.0 / 1000.0  # one half-grid cell
    min_cells = spec["min_component_ml"] / cell_ml if cell_ml > 0 else 0.0
    counts = np.zeros(256, np.int64)
    for z0 in range(0, labels.shape[0], _CHUNK):
        counts += np.bincount(labels[z0:z0 + _CHUNK].ravel(), minlength=256)[:256]
    for value in np.flatnonzero(counts):
        if value == 0 or value >= len(label_names):
            continue
        if check is not None:
            check()
        mask = _half_grid(labels, value)
        zs, ys, xs = (np.flatnonzero(mask.any(axis=axes)) for axes in ((1, 2), (0, 2), (0, 1)))
        box = (slice(zs[0], zs[-1] + 1), slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1))
        comp, _ = ndimage.label(mask[box])
        sizes = np.bincount(comp.ravel())
        sizes[0] = 0
        # an organ's largest piece goes too when it is no bigger than a speck
        drop = (sizes < sizes.max() if value in keep else sizes < min_cells) | (sizes < min_cells)
        drop[0] = False
        if not drop.any():
            continue
        rows = slice(box[1].start * 2, box[1].stop * 2)
        cols = slice(box[2].start * 2, box[2].stop * 2)
        n = 0
        for c0 in range(0, comp.shape[0], _CHUNK):  # full-grid temporaries of a few slices
            cells = drop[comp[c0:c0 + _CHUNK]]
            if not cells.any():
                continue
            z0 = box[0].start + c0
            region = labels[z0:z0 + cells.shape[0], rows, cols]
            up = np.repeat(np.repeat(cells, 2, axis=1), 2, axis=2)
            gone = up[:, :region.shape[1], :region.shape[2]] & (region == value)
            n += int(np.count_nonzero(gone))
            region[gone] = 0
        removed[label_names[value]] = n
    if spec.get("trim_tails"):
        _trim_tails(labels, label_names, spec["trim_tails"], removed)
    return removed


_CHUNK = 64  # slices per step of the full-grid passes (bounded temporary memory)


def _half_grid(labels: np.ndarray, value: int) -> np.ndarray:
    """``labels == value`` on a grid halved in-plane, a cell set when any of its 2x2 voxels
    is: every voxel belongs to a cell (a strided pick would miss small pieces, which then
    could never be removed)."""
    nz, h, w = labels.shape
    out = np.zeros((nz, (h + 1) // 2, (w + 1) // 2), bool)
    for z0 in range(0, nz, _CHUNK):
        m = labels[z0:z0 + _CHUNK] == value
        if h % 2 or w % 2:
            m = np.pad(m, ((0, 0), (0, h % 2), (0, w % 2)))
        out[z0:z0 + _CHUNK] = m.reshape(m.shape[0], m.shape[1] // 2, 2,
                                        m.shape[2] // 2, 2).any(axis=(2, 4))
    return out


def _trim_tails(labels, label_names, fractions: dict, removed: dict) -> None:
    """From each listed organ's largest cross-section, up and down the slices, everything
    from the first slice whose area falls under ``fraction`` of that largest area: a vessel
    or a bowel loop that a thin bridge joins to the organ is not the organ."""
    counts = np.stack([np.bincount(s.ravel(), minlength=256)[:256] for s in labels])
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
            part = labels[sl]
            gone = part == value
            n += int(np.count_nonzero(gone))
            part[gone] = 0
        if n:
            removed[name] = removed.get(name, 0) + n
