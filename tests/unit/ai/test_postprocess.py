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


def test_pieces_found_a_slab_at_a_time_match_whole_volume_labelling(labels):
    """Components are labelled 64 slices at a time and joined across slab boundaries (no
    label volume of the whole organ in memory): the same pieces as labelling it whole."""
    from scipy import ndimage

    from medviewer.ai.postprocess import _half_grid, _Pieces

    lab, _ = labels
    assert lab.shape[0] > 64  # the real labels cross a slab boundary
    for value in np.unique(lab)[1:]:
        whole, n = ndimage.label(_half_grid(lab, int(value)))
        expected = np.sort(np.bincount(whole.ravel(), minlength=n + 1)[1:])
        pieces = _Pieces(lab, int(value))
        assert np.array_equal(np.sort(pieces.sizes.astype(np.int64)), expected), value


@pytest.mark.parametrize("kept", [True, False], ids=["labels-kept", "labelled-again"])
def test_a_piece_joined_only_across_a_slab_boundary_is_one_piece(kept, monkeypatch):
    from medviewer.ai import postprocess
    from medviewer.ai.postprocess import _Pieces

    if not kept:  # a big box: each slab is labelled again to find the pieces' cells
        monkeypatch.setattr(postprocess, "_KEEP_VOXELS", 0)

    lab = np.zeros((100, 64, 64), np.uint8)
    liver = LABELS.index("liver")
    # a U whose two arms (slices 40..70) meet only below the slab boundary (slices 66..70)
    lab[40:71, 10:14, 10:14] = liver
    lab[40:71, 10:14, 40:44] = liver
    lab[66:71, 10:14, 10:44] = liver
    lab[20:24, 50:54, 50:54] = liver  # and a small separate piece
    pieces = _Pieces(lab, liver)
    assert sorted(pieces.sizes.astype(int)) == [2 * 2 * 4, 2 * 31 * 2 * 2 + 5 * 2 * 13]
    u = lab.copy()
    u[20:24] = 0
    clean_labels(lab, (3.0, 1.0, 1.0), LABELS, {"largest_component": ["liver"]})
    assert np.array_equal(lab, u)  # the U whole, the small piece gone


@pytest.fixture(scope="module")
def chest_volume(chest_ct_dir):
    from medviewer.io.load import open_first

    vol = open_first([chest_ct_dir])
    return np.asarray(vol.array), tuple(float(v) for v in vol.geometry.spacing[::-1])


def _crude_lungs(arr):
    """Every aerated voxel inside the body labelled lung, sided at the image's middle: what
    a network that cannot tell the trachea from the lung would give."""
    from scipy import ndimage

    from medviewer.ai.postprocess import body_mask

    lab = np.zeros(arr.shape, np.uint8)
    for z in range(arr.shape[0]):  # the body without its 2 mm margin: no air outside it
        body = ndimage.binary_erosion(body_mask(arr[z], 0.9, -500.0), iterations=3)
        air = (arr[z] < -400) & body
        lab[z][air] = LABELS.index("lung_left")
        lab[z][:, :arr.shape[2] // 2][air[:, :arr.shape[2] // 2]] = LABELS.index("lung_right")
    return lab


LUNGS = {"largest_component": [], "min_component_ml": 0.0,
         "aerated_labels": ["lung_left", "lung_right"]}
TRACHEA = (69, 240, 241)  # the demo chest CT: the trachea's lumen, above the carina (by eye)


def test_the_trachea_loses_its_lung_label_and_the_lungs_keep_theirs(chest_volume):
    arr, spacing = chest_volume
    lab = _crude_lungs(arr[60:75])
    before = np.isin(lab, [1, 2]).sum()
    assert lab[TRACHEA[0] - 60, TRACHEA[1], TRACHEA[2]] != 0
    removed = clean_labels(lab, spacing, LABELS, LUNGS, image=arr[60:75])
    assert lab[TRACHEA[0] - 60, TRACHEA[1], TRACHEA[2]] == 0
    assert removed["airway lumen"] > 0
    # the trachea is a few hundred voxels per slice; the lungs (~20,000 each) stay
    assert np.isin(lab, [1, 2]).sum() >= 0.97 * before


def test_a_stretch_of_lung_the_network_left_out_is_completed_with_its_own_side(chest_volume):
    arr, spacing = chest_volume
    part = arr[20:40]
    lab = _crude_lungs(part)
    clean_labels(lab, spacing, LABELS, LUNGS, image=part)  # the trachea off first
    truth = lab.copy()
    right = LABELS.index("lung_right")
    wedge = (truth == right) & (np.arange(arr.shape[2]) < 130)[None, None, :]
    assert wedge.sum() > 5_000  # the lateral right lung, as the network left it out
    lab[wedge] = 0
    removed = clean_labels(lab, spacing, LABELS, LUNGS, image=part)
    assert removed["lung added"] >= 0.97 * wedge.sum()
    assert (lab[wedge] == right).mean() >= 0.97
    extra = (lab != 0) & (truth == 0)
    assert (part[extra] < -400).all()  # only aerated voxels are ever added
    assert extra.sum() <= 0.01 * (truth != 0).sum(), extra.sum()


def test_bowel_gas_never_becomes_lung(labels):
    from medviewer.ai.starters.ct_data import _canonical_nifti
    from medviewer.ai.starters.trunk_data import REF_DIR

    lab, spacing = labels
    ct, _ = _canonical_nifti(REF_DIR / "example_ct.nii.gz")
    lungs = np.isin(lab, [1, 2])
    lowest = int(np.flatnonzero(lungs.any(axis=(1, 2)))[0])
    gas = (ct < -400)[:lowest - 3]  # slices below the lung bases: gas in the bowel
    assert gas.sum() > 1000
    before = lab.copy()
    clean_labels(lab, spacing, LABELS, LUNGS, image=ct)
    assert not np.isin(lab[:lowest], [1, 2]).any()
    changed = lab != before
    # TotalSegmentator's lungs nearly untouched: at most their edge's partial-volume voxels
    # (3 mm here, below -400 HU) are added
    assert changed.sum() <= 0.1 * lungs.sum()
    assert (ct[changed] < -400).all() and np.isin(before[changed], [0]).all()
