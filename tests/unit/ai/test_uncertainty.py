"""Uncertainty: entropy bounds, MC-dropout and TTA variance on real inputs, slice and case scores."""
import numpy as np
import pytest
import torch

from medviewer.ai.architectures import build
from medviewer.ai.cards import ModelCard
from medviewer.ai.inference import segment
from medviewer.jobs import drive
from medviewer.ai.preprocess import prepare_image_2d
from medviewer.ai.registry import ModelRegistry
from medviewer.ai.uncertainty import (case_score, class_entropy, dropout_enabled, entropy,
                                      has_dropout, mc_dropout, most_uncertain_slice, tta)
from medviewer.io.load import open_first


@pytest.fixture(scope="module")
def pneumonia(shared_data):
    """The classic small CNN (it has dropout), seeded, on real PneumoniaMNIST test images
    prepared as the built-in pneumonia model's card says."""
    card = ModelRegistry().get("pneumonia-cxr")
    data = np.load(shared_data / "medmnist_pneumonia/pneumoniamnist_reconstructed_full.npz")
    x = np.stack([prepare_image_2d(im, card) for im in data["test_images"][:8]])
    torch.manual_seed(0)
    net = build("small_cnn", {"in_channels": 1, "num_classes": 2, "input_size": 28}).eval()
    return net, card, x


def test_entropy_is_one_for_uniform_and_zero_for_one_hot():
    for c in (2, 3, 7):
        uniform = np.full((c, 4, 5), 1.0 / c, np.float16)
        assert np.allclose(entropy(uniform), 1.0, atol=2e-3)
        assert np.allclose(entropy(uniform, normalise=False), np.log(c), atol=5e-3)
        one_hot = np.zeros((c, 4, 5), np.float32)
        one_hot[c - 1] = 1.0
        assert np.array_equal(entropy(one_hot), np.zeros((4, 5), np.float32))
    mixed = np.array([[0.5, 0.9, 1.0], [0.5, 0.1, 0.0]])
    e = entropy(mixed)
    assert e[0] == pytest.approx(1.0) and 0 < e[1] < 1 and e[2] == 0.0
    assert class_entropy({"normal": 0.5, "pneumonia": 0.5}) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        entropy(np.ones((1, 3)))


def test_mc_dropout_varies_with_dropout_and_restores_modes(pneumonia):
    model, card, x = pneumonia
    assert has_dropout(model)
    mean, var = mc_dropout(model, x, n=8, seed=0)
    assert mean.shape == (8, 2) and var.shape == (8,)
    np.testing.assert_allclose(mean.sum(1), 1.0, atol=1e-5)
    assert var.max() > 1e-4
    assert not any(m.training for m in model.modules())  # eval restored everywhere


def test_mc_dropout_is_zero_without_dropout_and_leaves_batchnorm_alone(pneumonia):
    _, _, x = pneumonia
    from monai.networks.nets import ResNet

    torch.manual_seed(0)
    resnet = ResNet("basic", [1, 1, 1, 1], [8, 16, 32, 64], spatial_dims=2, n_input_channels=1,
                    num_classes=2).eval()
    assert not has_dropout(resnet)
    bn = [m for m in resnet.modules() if isinstance(m, torch.nn.BatchNorm2d)][0]
    before = bn.running_mean.clone()
    mean, var = mc_dropout(resnet, x, n=4)
    assert np.array_equal(var, np.zeros_like(var))
    assert torch.equal(bn.running_mean, before)  # BatchNorm stayed in eval mode
    with dropout_enabled(resnet):
        assert not bn.training


def test_tta_variance_zero_for_symmetric_input_positive_otherwise(pneumonia):
    model, _, x = pneumonia
    symmetric = (x + x[..., ::-1]) / 2.0  # left-right mirrored halves: flips change nothing
    _, var_sym = tta(model, symmetric, flips=((), (-1,)))
    _, var = tta(model, x, flips=((), (-1,)))
    assert var_sym.shape == var.shape == (8,)
    assert var_sym.max() == 0.0 and var.max() > 1e-9, var  # mirrored input: flips change nothing


def test_segmentation_variance_maps_on_a_ct_slice(chest_ct_dir):
    vol = open_first([chest_ct_dir])
    sx, sy, sz = vol.geometry.spacing
    card = ModelCard.from_dict({
        "name": "drop-seg", "version": "0.1.0", "task": "segmentation",
        "labels": ["background", "a", "b"],
        "input": {"dims": 2, "channels": 1, "spacing": [2.0, 2.0], "patch": [240, 240],
                  "intensity": {"type": "ct_window", "center": 40, "width": 400}},
        "architecture": {"name": "monai_unet", "params": {
            "spatial_dims": 2, "out_channels": 3, "channels": [4, 8, 16], "strides": [2, 2],
            "num_res_units": 0, "dropout": 0.3}},
        "weights": {"file": "weights.safetensors", "sha256": "0" * 64}})
    torch.manual_seed(0)
    net = build(card.architecture["name"], card.architecture["params"]).eval()
    for mode in ("mc_dropout", "tta"):
        res = drive(segment(net, card, vol.array, (sz, sy, sx), slice_index=45, variance=mode,
                            n_samples=4, want_probs=True))
        assert res.variance.shape == (1, 512, 512) and res.variance.dtype == np.float16
        assert res.variance.max() > 0 and res.variance.min() >= 0
        assert res.probs.shape == (3, 1, 512, 512)
    assert not any(m.training for m in net.modules())
    e = entropy(res.probs)
    assert e.shape == (1, 512, 512) and 0 <= e.min() and e.max() <= 1.0 + 1e-3
    assert res.entropy.shape == e.shape and np.abs(res.entropy - e).mean() < 0.01


def test_most_uncertain_slice_and_case_score():
    e = np.zeros((10, 8, 8), np.float32)
    e[7] = 0.5
    e[2, :2, :2] = 1.0  # a small, very uncertain spot
    assert most_uncertain_slice(e) == 7
    labels = np.zeros(e.shape, np.uint8)
    labels[2, 0, 0] = 1
    assert most_uncertain_slice(e, labels=labels) == 2  # judged over foreground and its band
    assert most_uncertain_slice(e, axis=1) == 0
    band_score = case_score(e, labels)
    z, y, x = np.indices(e.shape)
    band = (abs(z - 2) + y + x) <= 2  # the voxel and everything within 2 face-steps of it
    assert band.sum() == 14
    assert band_score == pytest.approx(e[band].mean())
    assert case_score(e, np.zeros_like(labels)) == pytest.approx(float(e.mean()))
    with pytest.raises(ValueError):
        case_score(e, labels[:5])
