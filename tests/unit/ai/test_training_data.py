"""Fine-tuning data: manifest entries -> tensors exactly as inference preprocesses them."""
from __future__ import annotations

import numpy as np
import pytest

from medviewer.ai.preprocess import prepare_image_2d, volume_to_model
from medviewer.ai.registry import ModelRegistry
from medviewer.ai.training import data
from medviewer.core.manifest import Manifest

from _training_manifests import cls_workspace, seg_workspace


@pytest.fixture(scope="module")
def seg_manifest(tmp_path_factory):
    ws = tmp_path_factory.mktemp("seg")
    return Manifest.load(seg_workspace(ws, [70, 71, 72], [90, 91]))


@pytest.fixture(scope="module")
def seg_card():
    return ModelRegistry().get("ct-abdomen-organs:1.0.0")


def test_seg_items_match_inference_preprocessing(seg_manifest, seg_card):
    entry = seg_manifest.train_entries()[0]
    items = data.seg_train_items(seg_manifest, [entry], seg_card)
    assert len(items) == 3
    vol, spacing = data.read_nifti_zyx(seg_manifest.resolve(entry.image))
    assert vol.shape == (112, 101, 122) and spacing == (3.0, 3.0, 3.0)
    ref, info = volume_to_model(vol, spacing, seg_card)  # what inference feeds the network
    assert info.model_shape == (112, 152, 183)  # 3 mm -> 2 mm in-plane
    for k, z in enumerate([70, 71, 72]):
        assert items[k]["image"].shape == (1, 152, 183)
        np.testing.assert_allclose(items[k]["image"], ref[:, z], atol=1e-6)
        lab = items[k]["label"]
        assert lab.shape == (1, 152, 183) and lab.dtype == np.int64
    present = np.unique(np.concatenate([it["label"].ravel() for it in items]))
    assert present.min() == 0 and present.max() <= 6 and len(present) >= 3


def test_seg_eval_cases_keep_original_grid(seg_manifest, seg_card):
    cases = data.seg_eval_cases(seg_manifest, seg_manifest.val_entries(), seg_card)
    assert len(cases) == 1
    case = cases[0]
    assert tuple(case.inputs.shape) == (2, 1, 152, 183)
    assert case.reference.shape == (2, 101, 122)
    # liver (label 1) is large in these slices of the reference
    assert (case.reference == 1).sum() > 1000


def test_label_lut_maps_names_and_drops_unknown_values():
    labels = ["background", "liver", "spleen"]
    lut = data.label_lut({"spleen": 7, "liver": 3, "tumour": 5}, labels, 9)
    assert lut[7] == 2 and lut[3] == 1
    assert lut[5] == 0 and lut[0] == 0 and lut[9] == 0


def test_cls_arrays_match_prepare_image(tmp_path):
    man = Manifest.load(cls_workspace(tmp_path, 5, 2))
    card = ModelRegistry().get("pneumonia-cxr:1.0.0")
    x, y = data.cls_arrays(man, man.train_entries(), card)
    assert x.shape == (5, 1, 28, 28) and x.dtype == np.float32
    assert set(y.tolist()) <= {0, 1}
    first = man.train_entries()[0]
    vol, _ = data.read_nifti_zyx(man.resolve(first.image))
    assert vol.dtype == np.uint8 and vol.shape == (1, 28, 28)
    np.testing.assert_array_equal(x[0], prepare_image_2d(vol[0], card))
    assert y[0] == card.labels.index(first.target["class"])


def test_manifest_for_another_model_is_refused(seg_manifest):
    card = ModelRegistry().get("pneumonia-cxr:1.0.0")
    with pytest.raises(data.DataError, match="not 'pneumonia-cxr'"):
        data.check_manifest_fits(seg_manifest, card)


def test_slices_outside_the_image_are_bad_input(seg_manifest, seg_card):
    entry = seg_manifest.train_entries()[0]
    bad = type(entry)(**{**entry.__dict__, "target": {**entry.target, "slices": [500]}})
    with pytest.raises(data.DataError, match="outside the image"):
        data.seg_train_items(seg_manifest, [bad], seg_card)


def test_a_ras_nifti_is_read_for_training_as_the_starters_and_inference_see_it(shared_data):
    """Fine-tuning reads store files in the LPS order that inference feeds the network and
    that the starter models were trained in (a RAS file mirrored would teach it mirrored)."""
    from medviewer.ai.starters.ct_data import _canonical_nifti

    path = shared_data / "totalseg/tests/reference_files/example_ct.nii.gz"
    stored, _ = data.read_nifti_zyx(path)
    lps, spacing = data.read_nifti_zyx(path, lps=True)
    canonical, canonical_spacing = _canonical_nifti(path)
    assert np.array_equal(lps, canonical) and spacing == canonical_spacing
    assert not np.array_equal(stored, canonical)  # stored RAS: x and y mirrored
    assert np.array_equal(stored[:, ::-1, ::-1], canonical)
