"""LabelOverlay: an integer label array on a volume's voxel grid, shown in colour over it, and
the boundaries of a 2D label slice (the outline display mode, proposals)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# distinct colours (RGB) for labels 1..N, cycled; label 0 is transparent
_PALETTE = np.array([
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
    (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128),
], dtype=np.uint8)


def label_lut(n_labels: int, opacity: float) -> np.ndarray:
    """(n_labels + 1, 4) uint8 RGBA lookup table; entry 0 fully transparent."""
    lut = np.zeros((n_labels + 1, 4), dtype=np.uint8)
    if n_labels:
        lut[1:, :3] = _PALETTE[np.arange(n_labels) % len(_PALETTE)]
        lut[1:, 3] = int(round(255 * float(np.clip(opacity, 0.0, 1.0))))
    return lut


@dataclass
class LabelOverlay:
    """Labels (z, y, x) of integer type with the same shape as the volume they lie on."""

    labels: np.ndarray
    name: str = "labels"
    opacity: float = 0.5
    visible: bool = True
    n_labels: int = field(default=0)

    def __post_init__(self):
        if self.labels.ndim != 3 or not np.issubdtype(self.labels.dtype, np.integer):
            raise ValueError(f"labels must be a 3D integer array, got {self.labels.dtype} {self.labels.shape}")
        if self.labels.size and self.labels.min() < 0:
            raise ValueError("labels must not be negative")
        if not self.n_labels:
            self.n_labels = int(self.labels.max()) if self.labels.size else 0

    def lut(self) -> np.ndarray:
        return label_lut(self.n_labels, self.opacity)


def label_boundaries(img: np.ndarray) -> np.ndarray:
    """``img`` with every voxel that is not on a label boundary set to 0.

    A labelled voxel is on the boundary when any of its 4 neighbours has another value;
    voxels on the image border count as boundary (the label continues outside the view)."""
    if img.ndim != 2 or img.size == 0:
        return img
    edge = np.zeros(img.shape, dtype=bool)
    edge[0, :] = edge[-1, :] = True
    edge[:, 0] = edge[:, -1] = True
    d = img[1:, :] != img[:-1, :]
    edge[1:, :] |= d
    edge[:-1, :] |= d
    d = img[:, 1:] != img[:, :-1]
    edge[:, 1:] |= d
    edge[:, :-1] |= d
    return np.where(edge, img, 0).astype(img.dtype, copy=False)
