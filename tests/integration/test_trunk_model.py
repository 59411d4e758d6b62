"""The whole-trunk CT model (models/ct-trunk-organs): its card's held-out Dice reproduces
through the app's inference pipeline, and on the demo chest CT, a scan from another source that
was never used in training, the anatomy lands where it is."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medviewer.ai.registry import ModelRegistry, load_model

REPO = Path(__file__).resolve().parents[2]
NAME = "ct-trunk-organs"

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not (REPO / "models" / NAME).is_dir(), reason=f"{NAME} is not trained yet (issue 12)")]


@pytest.fixture(scope="module")
def trunk(tmp_path_factory):
    reg = ModelRegistry(builtin_dir=REPO / "models", user_dir=tmp_path_factory.mktemp("user"))
    card = reg.get(NAME)
    return card, load_model(card)


def test_card_is_what_the_trainer_wrote(trunk):
    from medviewer.ai.starters import trunk_data

    card, _ = trunk
    assert card.labels == trunk_data.LABELS
    assert card.input["context_mm"] == trunk_data.CONTEXT_MM
    assert card.training["data_sha256"] == trunk_data.data_hashes()  # the same data
    assert card.domain["modalities"] == ["CT"] and "chest" in card.domain["body_region"]
    for organ in ("lung_left", "lung_right", "heart", "aorta", "liver", "spleen",
                  "kidney_left", "kidney_right", "stomach"):
        assert organ in card.labels


def test_held_out_dice_reproduces_the_card(trunk):
    from medviewer.ai.starters import trunk_data
    from medviewer.ai.starters.trunk_ct import heldout_dice

    card, model = trunk
    got = heldout_dice(model, card, trunk_data.load_cases(), log=lambda *a, **k: None)
    for organ, value in card.metrics["dice"].items():
        if value is None:
            continue
        assert got["dice"][organ] >= value - 0.005, organ
    # the lungs, against the rule that labelled the chest crop's lungs (held out too)
    card_rule = card.metrics["rule_reference"]["dice"]
    assert set(card_rule) == {"C"}
    for case, runs in card_rule.items():
        for how, figures in runs.items():
            for organ, value in figures.items():
                assert got["rule_reference"]["dice"][case][how][organ] >= value - 0.005, \
                    (case, how, organ)


@pytest.fixture(scope="module")
def chest(trunk, chest_ct_dir):
    from medviewer.ai.inference import segment
    from medviewer.io.load import open_first
    from medviewer.jobs import drive

    card, model = trunk
    vol = open_first([chest_ct_dir])
    arr = np.asarray(vol.array, dtype=np.float32)
    spacing = tuple(float(v) for v in vol.geometry.spacing[::-1])
    res = drive(segment(model, card, arr, spacing, want_entropy=False))
    return card, arr, spacing, res.labels


def _mask(card, labels, name):
    return labels == card.labels.index(name)


def test_chest_ct_lungs_heart_aorta_where_they_are(chest):
    """Anatomy a radiologist checks first, on a scan no model here was trained on."""
    card, arr, spacing, lab = chest
    voxel_ml = float(np.prod(spacing)) / 1000.0
    left, right = _mask(card, lab, "lung_left"), _mask(card, lab, "lung_right")
    heart, aorta = _mask(card, lab, "heart"), _mask(card, lab, "aorta")
    for m in (left, right):
        assert m.sum() * voxel_ml > 800  # each lung over the chest: litres, not a patch
        assert np.median(arr[m]) < -700  # aerated lung
    # arrays are x towards the patient's left: the left lung lies at larger x
    assert np.nonzero(left)[2].mean() > np.nonzero(right)[2].mean() + 100
    assert 300 < heart.sum() * voxel_ml < 1500
    assert -50 < np.median(arr[heart]) < 400  # blood and muscle, not fat or air
    hz, hy, hx = (v.mean() for v in np.nonzero(heart))
    rz = np.nonzero(right)[0]
    assert rz.min() < hz < rz.max()  # the heart sits between the lungs
    assert aorta.sum() * voxel_ml > 30
    assert np.median(arr[aorta]) > 0


def test_chest_ct_nothing_outside_the_body_and_no_liver_in_the_chest(chest):
    from scipy import ndimage

    card, arr, spacing, lab = chest
    body = np.zeros(arr.shape, bool)
    for z in range(arr.shape[0]):  # the body outline, lungs included
        body[z] = ndimage.binary_fill_holes(ndimage.binary_opening(arr[z] > -400, iterations=2))
    body = ndimage.binary_dilation(body, iterations=3)
    assert (lab[~body] != 0).sum() < 1e-4 * lab.size
    liver = _mask(card, lab, "liver")
    heart = _mask(card, lab, "heart")
    if liver.any():
        # the liver lies below the heart's centre, never around it
        assert np.nonzero(liver)[0].mean() < np.nonzero(heart)[0].mean()
        assert (liver & ndimage.binary_dilation(heart, iterations=2)).sum() < 0.05 * heart.sum()


def test_chest_ct_no_slice_to_slice_streaks(chest):
    """Every organ's cross-section area changes smoothly from slice to slice: no slice where
    an organ vanishes and comes back (the streaks of a per-slice model in coronal views)."""
    card, arr, spacing, lab = chest
    for name in ("lung_left", "lung_right", "heart", "liver"):
        area = _mask(card, lab, name).sum(axis=(1, 2)).astype(float)
        zs = np.nonzero(area)[0]
        if len(zs) < 5:
            continue
        inside = area[zs.min():zs.max() + 1]
        gaps = (inside == 0).sum()
        assert gaps == 0, f"{name}: {gaps} empty slices inside its extent"
        jumps = np.abs(np.diff(inside)) / max(inside.max(), 1)
        assert jumps.max() < 0.35, f"{name}: area jumps by {jumps.max():.2f} of its maximum"


def test_chest_ct_lungs_whole_and_the_trachea_not_lung(chest):
    """Each slice's lung fields (aerated regions over 10 cm2 inside the body) are labelled
    lung nearly all through, and the trachea's lumen is not."""
    from scipy import ndimage

    card, arr, spacing, lab = chest
    lungs = np.isin(lab, [card.labels.index("lung_left"), card.labels.index("lung_right")])
    px = spacing[1] * spacing[2]
    covered, total = 0, 0
    for z in range(arr.shape[0]):
        if not lungs[z].any():
            continue
        body = ndimage.binary_fill_holes(ndimage.binary_opening(arr[z] > -400, iterations=2))
        comp, n = ndimage.label((arr[z] < -400) & ndimage.binary_erosion(body, iterations=3))
        size = np.bincount(comp.ravel(), minlength=n + 1)
        on = np.bincount(comp[lungs[z]], minlength=n + 1)
        big = (size * px > 1000) & (on > 0.5 * size)
        big[0] = False
        covered += int(on[big].sum())
        total += int(size[big].sum())
    assert total > 0 and covered >= 0.98 * total, covered / max(total, 1)
    # the trachea above the carina (found by eye on this scan): air, and not lung
    z, y, x = 69, 240, 241
    assert arr[z, y, x] < -900 and not lungs[z, y, x]


def test_a_nifti_stored_the_other_way_round_is_segmented_like_an_lps_series(trunk):
    """example_ct.nii.gz is stored RAS: x runs to the patient's right, y to the front, the
    mirror of an axial DICOM series. The app reads it as stored; the model must still see
    the patient as it was trained (LPS), or the liver comes out as spleen."""
    from medviewer.ai.starters import trunk_data
    from medviewer.io.load import open_first
    from medviewer.services.ai_runs import InferenceContext, ModelLane, segment_volume

    card, _ = trunk
    vol = open_first([trunk_data.REF_DIR / "example_ct.nii.gz"])
    assert vol.geometry.orientation_code() == "RAS"
    ref = trunk_data.map_labels(np.asarray(
        open_first([trunk_data.REF_DIR / "example_seg_fast_force_split.nii.gz"]).array))
    run = segment_volume(InferenceContext(ModelLane("cpu")), card, vol, keep_entropy=False,
                         force=True)
    # measured: liver 0.92, spleen 0.92, kidneys 0.85 and 0.78; all 0.0 fed mirrored
    for organ, least in (("liver", 0.85), ("spleen", 0.85), ("kidney_left", 0.7),
                         ("kidney_right", 0.7)):
        k = card.labels.index(organ)
        a, b = run.labels == k, ref == k
        dice = 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)
        assert dice > least, (organ, dice)
