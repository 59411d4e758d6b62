"""Post-processing of a segmentation's label volume, as the model card's
``input.postprocess`` asks: ``{"largest_component": [label names], "min_component_ml": v,
"inside_body_hu": t}``.

``inside_body_hu`` (CT): per axial slice, labels outside the body become background. The body
is the largest region above ``t`` HU with its holes (the lungs, bowel gas) filled, grown by
5 mm; the table and the air around are outside. A slice whose body reaches the edge of the
field of view on more than 5 % of the border (a cropped or small-field reconstruction, where
the lungs may open onto the edge and would not be "holes") is left as it is.

Each listed structure keeps only its largest 3D connected component (an organ is one piece:
a patch of "liver" in the heart is noise); every other label loses its components smaller
than ``min_component_ml``. Removed voxels become background. Components are found on a grid
halved in-plane (a quarter of the voxels, ``int32`` labels of that size only), so the extra
memory stays well under the label volume's own size times four; a voxel is removed when its
half-grid cell belongs to a removed component.
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
    grow = max(1, int(round(5.0 / max(pixel_mm, 1e-3))))
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
    sub = labels[:, ::2, ::2]
    cell_ml = float(np.prod(spacing_zyx)) * 4.0 / 1000.0  # one half-grid cell
    min_cells = spec["min_component_ml"] / cell_ml if cell_ml > 0 else 0.0
    present = np.flatnonzero(np.bincount(sub.ravel(), minlength=len(label_names)))
    for value in present:
        if value == 0 or value >= len(label_names):
            continue
        if check is not None:
            check()
        mask = sub == value
        zs, ys, xs = (np.flatnonzero(mask.any(axis=axes)) for axes in ((1, 2), (0, 2), (0, 1)))
        box = (slice(zs[0], zs[-1] + 1), slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1))
        comp, _ = ndimage.label(mask[box])
        sizes = np.bincount(comp.ravel())
        sizes[0] = 0
        drop = sizes < (sizes.max() if value in keep else min_cells)
        drop[0] = False
        if not drop.any():
            continue
        drop_cells = drop[comp]
        full_box = (box[0], slice(box[1].start * 2, box[1].stop * 2),
                    slice(box[2].start * 2, box[2].stop * 2))
        region = labels[full_box]
        up = np.repeat(np.repeat(drop_cells, 2, axis=1), 2, axis=2)
        up = up[:, :region.shape[1], :region.shape[2]]
        gone = up & (region == value)
        removed[label_names[value]] = int(np.count_nonzero(gone))
        region[gone] = 0
    return removed
