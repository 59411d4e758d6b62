"""The committed starter models load through the registry and reproduce their cards' metrics."""
from pathlib import Path

import numpy as np
import pytest

from medviewer.ai.registry import ModelRegistry, load_model

REPO = Path(__file__).resolve().parents[2]
CLASSIFIERS = ["pneumonia-cxr", "pneumonia-cxr-smallcnn"]
SEGMENTER = "ct-abdomen-organs"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    return ModelRegistry(builtin_dir=REPO / "models", user_dir=tmp_path_factory.mktemp("user"))


@pytest.fixture(scope="module")
def test_split(shared_data):
    from medviewer.ai.starters import pneumonia

    assert pneumonia.DATA_FILE.resolve() == (shared_data / "medmnist_pneumonia" /
                                             pneumonia.DATA_FILE.name).resolve()
    images, labels = pneumonia.load_split("test")
    return images, labels, pneumonia.prepare(images)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_reproduces_its_card_test_metrics(registry, test_split, name):
    from medviewer.ai.starters.common import binary_metrics, file_sha256
    from medviewer.ai.starters.pneumonia import DATA_FILE, predict_proba

    card = registry.get(name)
    assert registry.is_builtin(card) and card.task == "classification"
    assert card.training["data_sha256"] == file_sha256(DATA_FILE)  # same data as trained on
    model = load_model(card)  # verifies the weights hash
    images, labels, x = test_split
    p = predict_proba(model, x)[:, 1]
    got = binary_metrics(labels, p, threshold=card.metrics["threshold"])
    assert got["n"] == 624
    for key in ("accuracy", "auc", "sensitivity", "specificity"):
        assert got[key] == pytest.approx(card.metrics[key], abs=1e-6), key
    # MONAI's ROC AUC agrees with ours
    import torch
    from monai.metrics import compute_roc_auc

    auc = compute_roc_auc(torch.from_numpy(p), torch.from_numpy(labels))
    assert auc == pytest.approx(got["auc"], abs=1e-9)
    assert got["accuracy"] > 0.8 and got["auc"] > 0.9  # a real classifier, not chance


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_app_preprocessing_gives_the_same_predictions(registry, test_split, name):
    """ai.preprocess (what the app and CLI use) feeds the model what training fed it."""
    from medviewer.ai.preprocess import prepare_image_2d
    from medviewer.ai.starters.pneumonia import predict_proba

    card = registry.get(name)
    model = load_model(card)
    images, _, x = test_split
    x_app = np.stack([prepare_image_2d(im, card) for im in images[:200]])
    assert x_app.shape == x[:200].shape
    np.testing.assert_allclose(x_app, x[:200], atol=1e-5)
    p_ref = predict_proba(model, x[:200])
    p_app = predict_proba(model, x_app)
    np.testing.assert_allclose(p_app, p_ref, atol=1e-4)


def test_segmenter_reproduces_its_card_dice_on_held_out_slices(registry):
    from medviewer.ai.starters import ct_data

    card = registry.get(SEGMENTER)
    assert card.task == "segmentation" and card.labels == ct_data.LABELS
    assert card.input["spacing"] == ct_data.SPACING and card.input["patch"] == ct_data.PATCH
    assert card.training["data_sha256"] == ct_data.data_hashes()
    model = load_model(card)
    assert any(type(m).__name__.startswith("Dropout") for m in model.modules())  # MC-dropout
    cases = ct_data.load_cases()
    dice = ct_data.dice_per_organ(model, cases)
    assert set(dice) == set(card.metrics["dice"])
    for organ, value in card.metrics["dice"].items():
        if value is None:
            assert dice[organ] is None
        else:
            assert dice[organ] == pytest.approx(value, abs=1e-4), organ
    assert dice["liver"] > 0.8  # the largest organ is found


def test_segmenter_ood_reference_reproduces_its_card(registry):
    """`python -m medviewer.ai.starters ood-reference` gives the committed statistics back."""
    from safetensors.numpy import load_file

    from medviewer.ai.starters.ood_reference import card_texts, reference_stats

    card = registry.get(SEGMENTER)
    tensors, block, _ = reference_stats(load_model(card), card)
    assert block["threshold"] == pytest.approx(card.ood["threshold"], rel=1e-4)
    for key, value in card.ood["scale"].items():
        assert block["scale"][key] == pytest.approx(value, rel=1e-4)
    np.testing.assert_allclose(block["histogram"]["reference"],
                               card.ood["histogram"]["reference"], atol=1e-6)
    stored = load_file(str(card.ood_features_path))
    np.testing.assert_allclose(tensors["mean"], stored["mean"], rtol=1e-4, atol=1e-5)
    texts = card_texts(card.to_dict())  # the card's domain and limits are the starter's
    assert card.domain == texts["domain"] and card.limits == texts["limits"]
