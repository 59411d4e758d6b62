"""The out-of-distribution score on real data, through the prediction path the app and
`medviewer predict` share (services.ai_runs): in-domain images score at most the calibrated
threshold (nearly all), out-of-domain ones above it."""
import numpy as np
import pydicom.data
import pytest

from medviewer.ai import ood
from medviewer.ai.registry import ModelRegistry
from medviewer.io.load import open_first
from medviewer.services.ai_runs import (InferenceContext, ModelLane, classify_image,
                                        segment_volume, volume_window)
from medviewer.services.model_fit import DomainMismatch

MNI = "nilearn_mni152/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
TOTALSEG = "totalseg/tests/reference_files"


@pytest.fixture(scope="module")
def reg():
    return ModelRegistry(user_dir="/nonexistent-medviewer-user-models")


@pytest.fixture(scope="module")
def ctx():
    return InferenceContext(ModelLane("cpu", strict=True))


@pytest.fixture(scope="module")
def pneumonia_test(shared_data):
    with np.load(shared_data / "medmnist_pneumonia/pneumoniamnist_reconstructed_full.npz") as d:
        return np.array(d["test_images"][:60])


def test_primitives():
    h = ood.input_histograms(np.linspace(0, 1, 64, dtype=np.float32).reshape(1, 1, 8, 8), 4)
    np.testing.assert_allclose(h, [[0.25, 0.25, 0.25, 0.25]])
    assert ood.hist_distance(h, [1, 1, 1, 1])[0] == pytest.approx(0.0)
    assert ood.hist_distance([[1, 0, 0, 0]], [0, 0, 0, 1])[0] == pytest.approx(0.75)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 50))  # fewer samples than dimensions: shrinkage keeps it usable
    mean, precision, shrink = ood.ledoit_wolf(x)
    assert 0 < shrink <= 1 and np.all(np.isfinite(precision))
    near, far = ood.mahalanobis(np.stack([mean, mean + 10]), mean, precision)
    assert near == pytest.approx(0.0) and far > 1
    assert ood.slice_sample((0, 100)) == [0, 14, 28, 42, 57, 71, 85, 99]
    assert ood.slice_sample((40, 41)) == [40]


def test_pneumonia_classifier_in_domain_on_its_test_images_out_on_ct_and_mr(
        reg, ctx, pneumonia_test, chest_ct_dir, shared_data):
    card = reg.get("pneumonia-cxr")
    runs = [classify_image(ctx, card, im) for im in pneumonia_test]
    scores = np.array([r.ood["ood_score"] for r in runs])
    assert np.mean([r.ood["in_domain"] for r in runs]) >= 0.95  # threshold: val p99
    assert all(r.to_dict()["in_domain"] == r.ood["in_domain"] for r in runs)
    ct = open_first([str(chest_ct_dir)])
    mr = open_first([str(shared_data / MNI)])
    for vol in (ct, mr):  # a slice of a volume, forced past the domain check
        for z in (vol.shape[0] // 3, vol.shape[0] // 2):
            run = classify_image(ctx, card, vol.array[z], z, window=volume_window(vol),
                                 facts=None, force=True)
            assert run.ood["in_domain"] is False and run.ood["ood_score"] > scores.max() * 0.9
            assert run.ood["ood_score"] > np.median(scores) * 1.5


def test_a_classifier_refuses_a_ct_slice_unless_forced(reg, ctx, chest_ct_dir):
    from medviewer.services.model_fit import ImageFacts

    card, ct = reg.get("pneumonia-cxr"), open_first([str(chest_ct_dir)])
    with pytest.raises(DomainMismatch):
        classify_image(ctx, card, ct.array[50], 50, facts=ImageFacts.from_volume(ct))
    run = classify_image(ctx, card, ct.array[50], 50, facts=ImageFacts.from_volume(ct),
                         force=True)
    assert run.forced and "CT" in run.domain_reason and run.to_dict()["forced"] is True


def test_ct_model_in_domain_on_abdominal_ct_out_on_chest_ct_mr_and_a_radiograph(
        reg, ctx, chest_ct_dir, shared_data):
    card = reg.get("ct-abdomen-organs")
    abdomen = open_first([str(shared_data / TOTALSEG / "example_ct_sm.nii.gz")])
    run = segment_volume(ctx, card, abdomen, z=20)  # a held-out slice of training case A
    assert run.ood["in_domain"] is True and not run.forced
    whole = segment_volume(ctx, card, abdomen)  # median over 8 slices of the scan
    assert whole.ood["in_domain"] is True and whole.ood["n_samples"] == 8
    chest = segment_volume(ctx, card, open_first([str(chest_ct_dir)]), z=20)  # heart level
    assert chest.ood["in_domain"] is False and chest.ood["ood_score"] > 1.5
    mr = segment_volume(ctx, card, open_first([str(shared_data / MNI)]), z=90)
    assert mr.ood["in_domain"] is False and mr.ood["ood_score"] > 3
    rg = open_first([pydicom.data.get_testdata_file("RG1_UNCI.dcm")])
    with pytest.raises(DomainMismatch, match="CR"):
        segment_volume(ctx, card, rg)
    forced = segment_volume(ctx, card, rg, force=True)
    assert forced.forced and forced.ood["in_domain"] is False and forced.ood["ood_score"] > 10
