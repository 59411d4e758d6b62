"""The gate's metric: mean Dice on the original grid / accuracy, AUC, per-class sensitivity."""
from __future__ import annotations

import numpy as np
import pytest

from medviewer.ai.registry import ModelRegistry, load_model
from medviewer.ai.training.evaluate import cls_metrics, evaluate, seg_metrics
from medviewer.core.manifest import Manifest

from _training_manifests import seg_workspace

LABELS = ["background", "a", "b", "c"]


def test_seg_metrics_perfect_partial_and_absent():
    ref = np.zeros((2, 8, 8), np.uint8)
    ref[:, :4, :4] = 1
    ref[:, 4:, 4:] = 2
    perfect = seg_metrics([ref], [ref], LABELS)
    assert perfect["value"] == pytest.approx(1.0)
    assert perfect["per_class"] == {"a": 1.0, "b": 1.0, "c": None}  # c not in the reference
    pred = ref.copy()
    pred[:, 4:, 4:] = 0  # misses b entirely
    half = seg_metrics([pred], [ref], LABELS)
    assert half["per_class"]["a"] == pytest.approx(1.0)
    assert half["per_class"]["b"] == pytest.approx(0.0)
    assert half["value"] == pytest.approx(0.5) and half["metric"] == "mean_dice"
    assert half["n"] == 1


def test_cls_metrics():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    y = np.array([0, 1, 1, 1])
    m = cls_metrics(probs, y, ["normal", "pneumonia"])
    assert m["metric"] == "accuracy" and m["value"] == pytest.approx(0.75)
    assert m["per_class"] == {"normal": 1.0, "pneumonia": pytest.approx(2 / 3, abs=1e-6)}
    assert m["auc"] == pytest.approx(1.0)  # every positive scores above the negative
    assert m["n"] == 4


def test_starter_seg_model_on_trained_and_unseen_slices(tmp_path):
    """The starter did well on z 82..111 (its training crop) and worse below it."""
    card = ModelRegistry().get("ct-abdomen-organs:1.0.0")
    model = load_model(card)
    man = Manifest.load(seg_workspace(tmp_path, [66, 67], [94, 95, 96, 97]))
    seen = evaluate(model, card, man, man.val_entries())
    unseen = evaluate(model, card, man, man.train_entries())
    assert seen["metric"] == "mean_dice" and seen["n"] == 1
    assert set(seen["per_class"]) == set(card.labels[1:])
    assert seen["value"] > 0.6
    assert unseen["value"] < seen["value"]
