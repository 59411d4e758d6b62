"""The domain check: the built-in models' cards against the metadata of real images read by the
app's readers (a CR chest radiograph, the chest CT, the MNI152 brain MR, a PNG), and the card
validation of ``domain`` / ``ood`` / ``limits``."""
import copy

import numpy as np
import pydicom.data
import pytest

from medviewer.ai.cards import AUTOMATIC_TASKS, ModelCard, ModelError
from medviewer.ai.domain import ImageFacts, check_domain
from medviewer.ai.registry import ModelRegistry
from medviewer.io.load import open_first
from medviewer.services.model_fit import DomainMismatch, fits_by_ref, require_fit

CT_MODEL, CXR_MODEL = "ct-abdomen-organs", "pneumonia-cxr"


@pytest.fixture(scope="module")
def cards():
    reg = ModelRegistry(user_dir="/nonexistent-medviewer-user-models")
    return {c.name: c for c in reg.list()}


@pytest.fixture(scope="module")
def radiograph():
    return open_first([pydicom.data.get_testdata_file("RG1_UNCI.dcm")])


@pytest.fixture(scope="module")
def chest_ct(chest_ct_dir):
    return open_first([str(chest_ct_dir)])


@pytest.fixture(scope="module")
def brain_mr(shared_data):
    return open_first([str(shared_data / "nilearn_mni152"
                           / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")])


def test_every_builtin_model_declares_its_domain_limits_and_ood_reference(cards):
    assert {CT_MODEL, CXR_MODEL, "pneumonia-cxr-smallcnn"} <= set(cards)
    for card in cards.values():
        if card.task not in AUTOMATIC_TASKS:  # the promptable model: any 2D image, no OOD
            assert card.domain["image_type"] == "any" and card.limits
            card.verify()
            continue
        assert card.domain["modalities"] and card.domain["image_type"] in ("volume", "projection")
        assert card.limits and card.ood["threshold"] >= 1.0
        card.verify()  # the weights and the OOD reference file match their hashes
        assert card.ood_features_path.is_file()
    assert cards[CT_MODEL].domain["modalities"] == ["CT"]
    assert any("heart" in x for x in cards[CT_MODEL].limits)
    assert cards[CXR_MODEL].domain["image_type"] == "projection"


def test_the_ct_model_does_not_fit_a_radiograph_and_says_why(cards, radiograph):
    facts = ImageFacts.from_volume(radiograph)
    assert facts.modality == "CR" and facts.image_type == "projection"
    assert facts.spacing_yx is None  # the file has PixelSpacing 0: 1 mm was only assumed
    fit = check_domain(cards[CT_MODEL], facts)
    assert not fit.fits
    assert "CT" in fit.reason and "CR" in fit.reason and "\n" not in fit.reason
    assert check_domain(cards[CXR_MODEL], facts).fits
    with pytest.raises(DomainMismatch, match="does not fit"):
        require_fit(cards[CT_MODEL], fit, force=False)
    assert require_fit(cards[CT_MODEL], fit, force=True) is True  # forced: marked so


def test_chest_ct_fits_the_ct_model_only(cards, chest_ct):
    fits = fits_by_ref(cards.values(), chest_ct)
    assert fits[cards[CT_MODEL].ref].fits
    assert not fits[cards[CXR_MODEL].ref].fits
    assert "projection radiograph" in fits[cards[CXR_MODEL].ref].reason


def test_a_volume_of_unknown_modality_is_a_volume_not_a_radiograph(cards, brain_mr):
    facts = ImageFacts.from_volume(brain_mr)
    assert facts.modality == "" and facts.image_type == "volume"
    assert not check_domain(cards[CXR_MODEL], facts).fits
    ct_fit = check_domain(cards[CT_MODEL], facts)  # the file cannot say it is not CT ...
    assert ct_fit.fits and any("modality unknown" in n for n in ct_fit.notes)  # ... noted


def test_a_png_fits_the_radiograph_classifier_with_a_note(cards, shared_data):
    with np.load(shared_data / "medmnist_pneumonia/pneumoniamnist_reconstructed_full.npz") as d:
        image = d["test_images"][0]
    fit = check_domain(cards[CXR_MODEL], ImageFacts.from_image_file(image))
    assert fit.fits and fit.notes
    assert not check_domain(cards[CT_MODEL], ImageFacts.from_image_file(image)).fits


def test_spacing_range_slice_count_and_body_part(cards):
    ct = cards[CT_MODEL]
    lo, hi = ct.domain["spacing_mm"]
    assert check_domain(ct, ImageFacts("CT", 40, (lo, lo))).fits
    coarse = check_domain(ct, ImageFacts("CT", 40, (hi * 2, hi * 2)))
    assert not coarse.fits and "spacing" in coarse.reason
    chest = check_domain(ct, ImageFacts("CT", 40, (0.9, 0.9), body_part="CHEST"))
    assert chest.fits and any("CHEST" in n for n in chest.notes)  # a note, not a refusal
    d3 = copy.deepcopy(ct.domain)
    d3.update(dims=3, min_slices=16)
    card3 = ModelCard(**{**ct.__dict__, "domain": d3})
    assert not check_domain(card3, ImageFacts("CT", 8, (1.0, 1.0))).fits
    no_domain = ModelCard(**{**ct.__dict__, "domain": {}})
    assert check_domain(no_domain, ImageFacts("CR", 1, None)).fits


def test_card_validation_of_domain_ood_and_limits(cards):
    good = cards[CT_MODEL].to_dict()
    for field, value, msg in [
            ("domain", {**good["domain"], "image_type": "photo"}, "image_type"),
            ("domain", {**good["domain"], "spacing_mm": [3, 1]}, "spacing_mm"),
            ("domain", {**good["domain"], "dims": 3}, "dims"),
            ("limits", "not a list", "limits"),
            ("ood", {**good["ood"], "threshold": 0}, "threshold"),
            ("ood", {**good["ood"], "scale": {"histogram": 1.0}}, "scale.features"),
            ("ood", {**good["ood"], "features": {**good["ood"]["features"],
                                                 "file": "../x.safetensors"}}, "file")]:
        bad = copy.deepcopy(good)
        bad[field] = value
        with pytest.raises(ModelError, match=msg):
            ModelCard.from_dict(bad)
    assert ModelCard.from_dict(good).domain == cards[CT_MODEL].domain  # round trip


def test_a_tampered_ood_reference_refuses_the_model(cards, tmp_path):
    import shutil

    src = cards[CXR_MODEL].folder
    dst = tmp_path / CXR_MODEL / "1.0.0"
    shutil.copytree(src, dst)
    card = ModelCard.load(dst)
    card.verify()
    with open(card.ood_features_path, "r+b") as fh:
        fh.seek(-8, 2)
        fh.write(b"\x00" * 8)
    with pytest.raises(ModelError, match="OOD reference"):
        card.verify()


def test_a_fine_tuned_card_inherits_the_domain_and_the_histogram_reference(cards):
    from medviewer.ai.training.card_writer import candidate_card_dict

    base = cards[CXR_MODEL]
    d = candidate_card_dict(base, "1.1.0", {"accuracy": 0.9}, {"epochs": 1})
    assert d["domain"] == base.domain and d["limits"] == base.limits
    assert d["ood"]["histogram"] == base.ood["histogram"] and "features" not in d["ood"]
    assert d["ood"]["threshold"] == 1.0
    d["weights"]["sha256"] = base.weights["sha256"]
    ModelCard.from_dict(d)  # valid
