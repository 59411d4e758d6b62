"""The trunk model's loss for partially labelled scans: a label-0 voxel of a case that does not
outline the lungs may be lung, so predicting lung there costs nothing; where lungs are
outlined, it costs as plain cross-entropy would."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from medviewer.ai.starters.trunk_ct import partial_label_loss  # noqa: E402


def _logits(cls: int, n: int = 4, size: int = 8, strength: float = 20.0):
    x = torch.zeros(1, n, size, size)
    x[0, cls] = strength
    return x


def test_unlabelled_class_is_not_pushed_to_background():
    target = torch.zeros(1, 8, 8, dtype=torch.long)  # all label 0
    lung_allowed = torch.tensor([[True, True, False, False]])
    only_bg = torch.tensor([[True, False, False, False]])
    says_lung = _logits(1)
    free = partial_label_loss(says_lung, target, lung_allowed)
    punished = partial_label_loss(says_lung, target, only_bg)
    assert float(free) < 0.05
    assert float(punished) > 5.0
    # a class not allowed is still wrong, whatever else is allowed
    assert float(partial_label_loss(_logits(3), target, lung_allowed)) > 5.0


def test_labelled_voxels_and_dice_as_usual():
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target[0, 2:6, 2:6] = 2
    right = torch.zeros(1, 4, 8, 8)
    right[0, 0] = 20.0
    right[0, 0, 2:6, 2:6] = 0.0
    right[0, 2, 2:6, 2:6] = 20.0
    allowed = torch.tensor([[True, True, False, False]])
    good = float(partial_label_loss(right, target, allowed))
    bad = float(partial_label_loss(_logits(0), target, allowed))  # misses class 2
    assert good < 0.05 < 1.0 < bad


def test_one_of_group_and_ignored_voxels():
    """'Left or right lung' voxels cost nothing for either lung and a lot for anything else;
    ignored voxels (outside the scan) cost nothing whatever is predicted."""
    target = torch.full((1, 8, 8), 200, dtype=torch.long)
    allowed = torch.tensor([[True, False, False, False]])
    groups = {200: [1, 2]}
    assert float(partial_label_loss(_logits(1), target, allowed, groups)) < 0.05
    assert float(partial_label_loss(_logits(2), target, allowed, groups)) < 0.05
    assert float(partial_label_loss(_logits(3), target, allowed, groups)) > 5.0
    ignored = torch.full((1, 8, 8), 255, dtype=torch.long)
    ignored[0, 0, 0] = 0
    assert float(partial_label_loss(_logits(0), ignored, allowed, groups)) < 0.05
