"""The body / image foreground of a slice: where heat maps (saliency, uncertainty) are drawn.

Per axial slice, in the orientation a person sees (MONOCHROME1 inverted first): values above
a tenth of the way from the background level (1st percentile, ignoring the constant padding
outside a CT's field of view) to the bright tissue (99th) count, enclosed holes (lungs, bowel
gas) are filled, and parts under 0.5 % of the slice or a fifth of the largest part (cables,
a detached table) are dropped. Air around a CT body, the direct-exposure area of a radiograph
and the empty field around an MR head fall outside."""
from __future__ import annotations

import numpy as np

MIN_FRACTION = 0.005  # components smaller than this share of the slice are noise
MIN_OF_LARGEST = 0.2  # ... and those under this share of the largest (a CT table, cables)
STEP = 0.1  # threshold: this far from the background level towards bright tissue


def foreground_slice(image: np.ndarray, invert: bool = False) -> np.ndarray:
    """Boolean (h, w) foreground of one grey slice (an RGB slice: of its mean)."""
    from scipy import ndimage

    a = np.asarray(image, dtype=np.float32)
    if a.ndim == 3:
        a = a.mean(axis=-1)
    if invert:
        a = -a
    sample = a[::max(1, a.shape[0] // 256), ::max(1, a.shape[1] // 256)].reshape(-1)
    pad = sample.min()
    if (sample == pad).mean() > 0.02:  # padding outside a CT's field of view: not background
        sample = sample[sample > pad]
    if sample.size == 0:
        return np.ones(a.shape, dtype=bool)
    lo, hi = np.percentile(sample, (1.0, 99.0))
    if not np.isfinite(lo) or hi <= lo:
        return np.ones(a.shape, dtype=bool)
    mask = a > lo + STEP * (hi - lo)
    mask = ndimage.binary_fill_holes(mask)
    labels, n = ndimage.label(mask)
    if n > 1:
        sizes = np.bincount(labels.reshape(-1), minlength=n + 1)
        sizes[0] = 0
        keep = (sizes >= MIN_FRACTION * mask.size) & (sizes >= MIN_OF_LARGEST * sizes.max())
        mask = keep[labels]
    return mask if mask.any() else np.ones(a.shape, dtype=bool)


def mask_to_foreground(heat: np.ndarray, volume_array: np.ndarray, invert: bool = False,
                       z_range=None) -> np.ndarray:
    """``heat`` (z, y, x) with zeros outside each slice's foreground, for the slices in
    ``z_range`` (default: all; the others are left as they are). Changes ``heat`` in place
    and returns it."""
    z0, z1 = z_range if z_range is not None else (0, heat.shape[0])
    for z in range(int(z0), int(z1)):
        heat[z][~foreground_slice(volume_array[z], invert)] = 0
    return heat
