"""``models new``: a new model's untrained first version — options checked before any torch
work, the backbone copied from a real built-in model where the shapes fit, written as 0.0.0
with the active pointer on it, and never run, promoted or offered as if it were trained."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medviewer.ai import versions
from medviewer.ai.cards import ModelCard, ModelError
from medviewer.ai.new_model import NewModelOptions, card_for_new_model, create_model
from medviewer.ai.registry import ModelRegistry
from medviewer.ai.weights import read_state_dict
from medviewer.services.models import ModelCatalog, require_automatic

REPO = Path(__file__).resolve().parents[3]
BUILTIN = REPO / "models"
# the CT model's U-Net tensors whose shape depends on the number of labels
SEG_OUTPUT_LAYERS = ["model.2.0.conv.weight", "model.2.0.conv.bias",
                     "model.2.1.conv.unit0.conv.weight", "model.2.1.conv.unit0.conv.bias"]


@pytest.fixture
def reg(tmp_path):
    return ModelRegistry(builtin_dir=BUILTIN, user_dir=tmp_path / "user")


def _opts(**kw) -> NewModelOptions:
    base = dict(name="us-views", task="classification", labels=("femur", "neck", "heart"))
    base.update(kw)
    return NewModelOptions(**base)


@pytest.mark.parametrize("kw, words", [
    ({"name": "US Views"}, "lower-case letters"),
    ({"name": "../escape"}, "lower-case letters"),
    ({"name": "pneumonia-cxr"}, "exists already"),
    ({"task": "regression"}, "task must be one of"),
    ({"labels": ("only",)}, "at least two classes"),
    ({"labels": ("a", "B", "b")}, "unique (ignoring case): B, b"),
    ({"task": "segmentation", "labels": ()}, "at least one label"),
    ({"task": "segmentation", "labels": ("background", "liver")}, "do not list 'background'"),
    ({"base": "ct-abdomen-organs"}, "a classification model starts only from a classification"),
    ({"base": "no-such-model"}, "no model named"),
    ({"task": "segmentation", "labels": ("liver",), "input_size": 100}, "multiple of 16"),
    ({"input_size": 4}, "8..512"),
    ({"channels": 40}, "1..16"),
    ({"family": "unet"}, "unet is for segmentation"),
    ({"image_type": "photo"}, "image type must be one of"),
    ({"window": (40, 0)}, "width must be > 0"),
])
def test_bad_options_are_refused_with_the_reason_before_any_work(reg, kw, words):
    with pytest.raises(ModelError) as info:
        card_for_new_model(_opts(**kw), reg)
    assert words in str(info.value)
    assert not reg.user_dir.exists() or not any(reg.user_dir.iterdir())


def test_a_classifier_from_the_pneumonia_model_copies_all_but_its_output_layer(reg):
    card, report = create_model(reg, _opts(base="pneumonia-cxr", input_size=64, modality="us",
                                           body_region="neck and thigh", seed=3))
    assert card.ref == "us-views:0.0.0" and card.untrained
    assert card.folder == reg.user_dir / "us-views" / "0.0.0"
    assert card.labels == ["femur", "neck", "heart"] and card.input["size"] == [64, 64]
    assert card.architecture["name"] == "monai_resnet18"
    assert card.architecture["params"]["num_classes"] == 3
    assert card.domain["modalities"] == ["US"] and card.domain["image_type"] == "any"
    assert card.domain["body_region"] == "neck and thigh" and card.limits
    skipped = {s["layer"]: s["reason"] for s in report["skipped"]}
    assert skipped == {"fc.weight": "shape [2, 256] in the base, [3, 256] here",
                       "fc.bias": "shape [2] in the base, [3] here"}
    base = read_state_dict(BUILTIN / "pneumonia-cxr" / "1.0.0" / "weights.safetensors")
    mine = read_state_dict(card.weights_path)
    assert len(report["copied"]) == len(base) - 2 == len(mine) - 2
    for key in report["copied"]:
        assert np.array_equal(mine[key].numpy(), base[key].numpy())
    assert card.training["initialised_from"] == "pneumonia-cxr:1.0.0"
    assert card.training["initialisation"]["copied"] == len(report["copied"])
    card.verify()
    assert "untrained" in (card.folder / "README.md").read_text().lower()
    # its name means this version (the pointer says so), and it exists once only
    assert reg.get("us-views").version == "0.0.0"
    pointer = versions.read_pointer(reg.user_dir, "us-views")
    assert pointer["history"][0]["action"] == "create"
    with pytest.raises(ModelError, match="exists already"):
        create_model(reg, _opts())


def test_an_untrained_version_is_never_run_promoted_nor_offered(reg):
    create_model(reg, _opts(base="pneumonia-cxr"))
    card = reg.get("us-views")
    with pytest.raises(ModelError, match="untrained.*medviewer finetune --workspace"):
        require_automatic(card)
    with pytest.raises(ModelError, match="untrained"):
        versions.promote(reg, "us-views", "0.0.0")
    catalog = ModelCatalog(user_dir=reg.user_dir, builtin_dir=BUILTIN)
    assert "us-views" in {c.name for c in catalog.list()}
    assert "us-views" not in {c.name for c in catalog.automatic()}
    assert catalog.record(card)["untrained"] is True
    assert versions.next_version(reg, "us-views", "0.0.0") == "1.0.0"  # the first trained one


def test_a_segmentation_model_from_the_ct_model_keeps_its_input_spec_and_backbone(reg):
    card, report = create_model(reg, NewModelOptions(
        name="ct-kidney", task="segmentation", labels=("kidney_left", "kidney_right"),
        base="ct-abdomen-organs", modality="CT"))
    base = ModelCard.load(BUILTIN / "ct-abdomen-organs" / "1.0.0")
    assert card.labels == ["background", "kidney_left", "kidney_right"]
    assert card.input["spacing"] == base.input["spacing"]
    assert card.input["patch"] == base.input["patch"]
    assert card.input["intensity"] == base.input["intensity"]  # the CT window, not percentiles
    assert card.domain["image_type"] == "volume" and card.domain["modalities"] == ["CT"]
    assert report["skipped"] and all("in the base" in s["reason"] for s in report["skipped"])
    # only the tensors that depend on the number of labels differ: the output convolution
    assert [s["layer"] for s in report["skipped"]] == SEG_OUTPUT_LAYERS
    assert len(report["copied"]) == 59
    # another channel count: the first convolution (and its residual) stay random as well
    _, two = create_model(reg, NewModelOptions(
        name="ct-kidney-2ch", task="segmentation", labels=("kidney_left", "kidney_right"),
        base="ct-abdomen-organs", channels=2))
    assert [s["layer"] for s in two["skipped"]] == [
        "model.0.conv.unit0.conv.weight", "model.0.residual.weight"] + SEG_OUTPUT_LAYERS


def test_random_initialisation_is_seeded(reg):
    a, _ = create_model(reg, _opts(name="a-model", family="small_cnn", input_size=32, seed=7))
    b, _ = create_model(reg, _opts(name="b-model", family="small_cnn", input_size=32, seed=7))
    c, _ = create_model(reg, _opts(name="c-model", family="small_cnn", input_size=32, seed=8))
    assert a.weights["sha256"] == b.weights["sha256"] != c.weights["sha256"]
    assert a.architecture["params"]["input_size"] == 32
    assert a.domain["modalities"] == []  # no modality given: not checked
