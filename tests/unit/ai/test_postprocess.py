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


@pytest.fixture(scope="module")
def chest(chest_ct_dir):
    from medviewer.io.load import open_first

    vol = open_first([chest_ct_dir])
    arr = np.asarray(vol.array[40:44], dtype=np.float32)  # four slices through the lungs
    return arr, tuple(float(v) for v in vol.geometry.spacing[::-1])


BODY = {"largest_component": [], "min_component_ml": 0.0, "inside_body_hu": -500.0}


def test_labels_outside_the_body_go_and_the_lungs_stay(chest):
    from scipy import ndimage

    arr, spacing = chest
    lab = np.zeros(arr.shape, np.uint8)
    lung = LABELS.index("lung_left")
    lab[arr < -400] = lung  # every air voxel called lung: inside (the lungs) and outside
    def trunk(s):  # the largest piece of tissue with its holes (the lungs): not the table
        comp, _ = ndimage.label(s > -500)
        return ndimage.binary_fill_holes(comp == np.argmax(np.bincount(comp.ravel())[1:]) + 1)

    inside_air = np.stack([trunk(s) for s in arr]) & (arr < -400)
    table_row = arr.shape[1] - 30  # the air under the patient, above the image's bottom edge
    assert lab[:, 5:15, 5:15].all() and (lab[:, table_row] != 0).any()
    removed = clean_labels(lab, spacing, LABELS, BODY, image=arr)
    assert removed["outside body"] > 0
    assert not lab[:, 5:15, 5:15].any()  # the corner's air
    assert not (lab[:, table_row] != 0).any()
    kept = (lab == lung) & inside_air
    assert kept.sum() >= 0.99 * inside_air.sum()  # both lungs, whole


def test_a_crop_whose_body_reaches_the_edge_is_left_alone(chest):
    arr, spacing = chest
    crop = arr[:, 150:350, 150:350]  # the mediastinum and the lungs open onto the crop's edge
    lab = np.where(crop < -400, LABELS.index("lung_right"), 0).astype(np.uint8)
    before = lab.copy()
    clean_labels(lab, spacing, LABELS, BODY, image=crop)
    assert np.array_equal(lab, before)


def test_one_slice_gets_the_body_step_only(chest):
    arr, spacing = chest
    lab = np.zeros(arr[:1].shape, np.uint8)
    lab[0, 5:9, 5:9] = LABELS.index("liver")  # outside the body
    lab[0, 256, 200] = LABELS.index("liver")  # a one-voxel speck inside: kept (no 3D step)
    clean_labels(lab, spacing, LABELS, {**BODY, "min_component_ml": 5.0}, image=arr[:1])
    assert not lab[0, 5:9, 5:9].any() and lab[0, 256, 200] == LABELS.index("liver")


def test_body_threshold_must_be_a_number(labels):
    lab, spacing = labels
    with pytest.raises(ValueError, match="inside_body_hu"):
        clean_labels(lab, spacing, LABELS, {"inside_body_hu": float("nan")})


def test_a_piece_between_the_half_grid_samples_is_still_removed(labels):
    """One voxel at odd coordinates, away from the organ: no strided sample sees it."""
    lab, spacing = labels
    liver = LABELS.index("liver")
    lab[5, 11, 11] = liver
    clean_labels(lab, spacing, LABELS, SPEC)
    assert lab[5, 11, 11] != liver


def test_trim_tails_cuts_a_thin_vessel_off_an_organ_and_keeps_the_organ(labels):
    lab, spacing = labels
    liver = LABELS.index("liver")
    area = (lab == liver).sum(axis=(1, 2))
    top = int(np.flatnonzero(area)[-1])
    yy, xx = np.nonzero(lab[top] == liver)
    y, x = int(yy.mean()), int(xx.mean())
    original = lab.copy()
    lab[top + 1:, y - 1:y + 2, x - 1:x + 2] = liver  # a 3x3-voxel "vessel" up to the top
    spec = {**SPEC, "trim_tails": {"liver": 0.02}}
    removed = clean_labels(lab, spacing, LABELS, spec)
    assert not (lab[top + 1:] == liver).any()  # the vessel is gone
    assert removed["liver"] >= 9 * (lab.shape[0] - top - 1)
    kept = (lab == liver) & (original == liver)
    assert kept.sum() >= 0.99 * (original == liver).sum()  # the organ is (nearly) whole


def test_trim_tails_refuses_unknown_labels_and_bad_fractions(labels):
    lab, spacing = labels
    with pytest.raises(ValueError, match="trim_tails"):
        clean_labels(lab, spacing, LABELS, {"trim_tails": {"pancreas": 0.02}})
    with pytest.raises(ValueError, match="trim_tails"):
        clean_labels(lab, spacing, LABELS, {"trim_tails": {"liver": 1.5}})
