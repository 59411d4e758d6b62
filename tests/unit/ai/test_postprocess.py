"""Label clean-up after a whole-volume segmentation (card ``input.postprocess``), on the real
TotalSegmentator labels of the abdomen-pelvis CT mapped to the trunk model's labels."""
from __future__ import annotations

import numpy as np
import pytest

from medviewer.ai.postprocess import clean_labels
from medviewer.ai.starters.ct_data import _canonical_nifti
from medviewer.ai.starters.trunk_data import LABELS, REF_DIR, map_labels

SPEC = {"largest_component": ["liver", "spleen", "lung_left"], "min_component_ml": 1.0}


@pytest.fixture()
def labels():
    seg, spacing = _canonical_nifti(REF_DIR / "example_seg_fast_force_split.nii.gz")
    return map_labels(seg), spacing


def test_a_stray_piece_of_an_organ_is_removed_and_the_organ_kept(labels):
    lab, spacing = labels
    liver = LABELS.index("liver")
    original = lab.copy()
    lab[10:14, 40:48, 20:28] = liver  # a "liver" island in the pelvis, 8 ml at 3 mm
    removed = clean_labels(lab, spacing, LABELS, SPEC)
    assert not (lab[10:14, 40:48, 20:28] == liver).any()
    assert removed["liver"] >= 4 * 8 * 8
    # the real liver is one piece: nothing of it goes
    assert np.array_equal(lab == liver, original == liver)


def test_small_specks_go_and_large_pieces_stay_for_other_labels(labels):
    lab, spacing = labels
    vert = LABELS.index("vertebrae")
    before = int((lab == vert).sum())
    lab[5, 10:12, 10:12] = vert  # 0.1 ml speck (3 mm voxels) outside the spine
    clean_labels(lab, spacing, LABELS, SPEC)
    assert not (lab[5, 10:12, 10:12] == vert).any()
    after = int((lab == vert).sum())
    assert after >= 0.97 * before  # separate vertebrae (> 1 ml each) are all kept


def test_bad_spec_is_refused(labels):
    lab, spacing = labels
    with pytest.raises(ValueError, match="unknown labels"):
        clean_labels(lab, spacing, LABELS, {"largest_component": ["pancreas"]})
