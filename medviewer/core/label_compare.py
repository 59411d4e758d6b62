"""Comparing two label arrays of one image: Dice per label and the voxels that differ."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict

import numpy as np

CHUNK_SLICES = 16  # slices counted at a time (bounded temporary memory)


@dataclass(frozen=True)
class LabelComparison:
    dice: Dict[int, float] = field(default_factory=dict)  # value -> Dice in [0, 1]
    voxels_a: Dict[int, int] = field(default_factory=dict)
    voxels_b: Dict[int, int] = field(default_factory=dict)
    differ: int = 0  # voxels whose value differs
    total: int = 0  # voxels compared

    @property
    def identical(self) -> bool:
        return self.differ == 0


def compare_labels(a: np.ndarray, b: np.ndarray) -> LabelComparison:
    """Dice of every non-zero value present in ``a`` or ``b``, and the differing voxels."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"label arrays differ in shape: {a.shape} vs {b.shape}")
    hi = int(max(a.max(initial=0), b.max(initial=0))) + 1
    ca, cb, both = (np.zeros(hi, dtype=np.int64) for _ in range(3))
    differ = 0
    a3 = a.reshape((-1,) + a.shape[-2:]) if a.ndim >= 2 else a.reshape(1, 1, -1)
    b3 = b.reshape(a3.shape)
    for z in range(0, a3.shape[0], CHUNK_SLICES):
        pa = a3[z:z + CHUNK_SLICES].reshape(-1).astype(np.int64)
        pb = b3[z:z + CHUNK_SLICES].reshape(-1).astype(np.int64)
        ca += np.bincount(pa, minlength=hi)
        cb += np.bincount(pb, minlength=hi)
        same = pa == pb
        both += np.bincount(pa[same], minlength=hi)
        differ += int(same.size - np.count_nonzero(same))
    dice = {}
    for v in range(1, hi):
        if ca[v] or cb[v]:
            dice[v] = float(2.0 * both[v] / (ca[v] + cb[v]))
    return LabelComparison(dice, {v: int(ca[v]) for v in range(1, hi) if ca[v]},
                           {v: int(cb[v]) for v in range(1, hi) if cb[v]}, differ, int(a.size))
