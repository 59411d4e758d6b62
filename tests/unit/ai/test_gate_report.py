"""The promotion gate and its report (report.md table, report.png bar chart, report.json).

The gate is fed real evaluations: the built-in pneumonia-cxr 1.0.0 and a copy with perturbed
weights, both run on real PneumoniaMNIST validation images."""
import json
import math

import numpy as np
import pytest
from PIL import Image

from medviewer.ai.cards import ModelCard
from medviewer.ai.training.gate import gate
from medviewer.ai.training.report import ACTIVE_RGB, CANDIDATE_RGB, report_rows, write_report

from _model_versions import BASE, make_version, pneumonia_val


def _ev(value, per_class, metric="accuracy", version="1.0.0", n=10):
    return {"metric": metric, "value": value, "per_class": per_class, "n": n, "version": version}


def test_gate_compares_the_main_metric_with_a_margin():
    act = _ev(0.80, {"normal": 0.7, "pneumonia": 0.9})
    ok = gate(act, _ev(0.795, {"normal": 0.71, "pneumonia": 0.895}, version="1.1.0"), 0.01)
    assert ok["passed"] and ok["metric"] == "accuracy" and ok["margin"] == 0.01
    assert ok["active"] == {"version": "1.0.0", "value": 0.8, "n": 10,
                            "per_class": {"normal": 0.7, "pneumonia": 0.9}}
    assert ok["candidate"]["version"] == "1.1.0" and ok["candidate"]["value"] == 0.795
    assert ok["class_falls"] == []
    # the same headline, but one class falls by more than the margin: refused
    fall = gate(act, _ev(0.795, {"normal": 0.8, "pneumonia": 0.79}, version="1.1.0"), 0.01)
    assert not fall["passed"] and [f["class"] for f in fall["class_falls"]] == ["pneumonia"]
    assert "fails per class: pneumonia -0.1100" in fall["reason"]
    assert not gate(act, _ev(0.785, {}, version="1.1.0"), 0.01)["passed"]
    assert gate(act, _ev(0.79, {}, version="1.1.0"), 0.01)["passed"]  # exactly at the margin
    assert not gate(act, _ev(0.799, {}, version="1.1.0"), 0.0)["passed"]
    assert gate(act, _ev(0.80, {}, version="1.1.0"), 0.0)["passed"]  # a tie passes
    assert "fails" in gate(act, _ev(0.5, {}), 0.01)["reason"]


def test_gate_without_values_and_bad_input():
    nan = float("nan")
    act = _ev(0.8, {"a": None})
    failed = gate(act, _ev(nan, {"a": nan}), 0.01)
    assert not failed["passed"] and failed["candidate"]["value"] is None
    assert failed["candidate"]["per_class"] == {"a": None}
    assert "no accuracy" in failed["reason"]
    assert gate(_ev(None, {}), _ev(0.1, {}), 0.01)["passed"]  # nothing to compare against
    json.dumps(failed, allow_nan=False)  # the event is strict JSON
    with pytest.raises(ValueError, match="cannot compare"):
        gate(_ev(0.8, {}, metric="mean_dice"), _ev(0.8, {}), 0.01)
    for margin in (-0.1, nan, "0.1"):
        with pytest.raises(ValueError, match="margin"):
            gate(act, act, margin)


@pytest.fixture(scope="module")
def real_evals(shared_data, tmp_path_factory):
    """Evaluations of pneumonia-cxr 1.0.0 and of a noisy copy 1.1.0 on 200 val images."""
    from medviewer.ai.preprocess import prepare_image_2d
    from medviewer.ai.registry import load_model
    from medviewer.ai.training.evaluate import evaluate_prepared

    user = tmp_path_factory.mktemp("user")
    base = ModelCard.load(BASE)
    noisy = ModelCard.load(make_version(user, "1.1.0", noise=0.3, seed=0))
    images, labels = pneumonia_val(shared_data)
    x = np.stack([prepare_image_2d(im, base) for im in images]).astype(np.float32)
    evs = {}
    for card in (base, noisy):
        evs[card.version] = dict(evaluate_prepared(load_model(card), card, (x, labels), "cpu"),
                                 version=card.version)
    return base, noisy, evs


def test_gate_on_real_evaluations(real_evals):
    base, noisy, evs = real_evals
    good, bad = evs["1.0.0"], evs["1.1.0"]
    assert good["value"] > 0.9 and good["n"] == 200  # the starter model on its own domain
    assert bad["value"] < good["value"] - 0.02  # the perturbation hurts
    assert not gate(good, bad, 0.01)["passed"]
    assert gate(bad, good, 0.01)["passed"]
    # a margin that forgives the headline's fall does not forgive a class's larger fall: the
    # noisy copy calls almost every image pneumonia, so "normal" collapses
    loose = gate(good, bad, margin=good["value"] - bad["value"] + 0.001)
    assert loose["ci"] is not None and not loose["passed"]
    assert [f["class"] for f in loose["class_falls"]] == ["normal"]
    drop = good["per_class"]["normal"] - bad["per_class"]["normal"]
    assert drop > 0.3 and "fails per class: normal" in loose["reason"]
    assert gate(good, bad, margin=drop + 0.001)["passed"]


def test_report_files_hold_the_table_chart_and_json(real_evals, tmp_path):
    base, noisy, evs = real_evals
    g = gate(evs["1.0.0"], evs["1.1.0"], 0.01)
    md = write_report(tmp_path, g, base, noisy)
    assert md == tmp_path / "report.md"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "report.md", "report.png"]
    text = md.read_text()
    assert "candidate 1.1.0 vs active 1.0.0" in text and "**FAILED**" in text
    rows = report_rows(g)
    assert [r["label"] for r in rows] == ["accuracy (main)", "normal", "pneumonia"]
    for r in rows:
        line = next(ln for ln in text.splitlines() if ln.startswith(f"| ") and r["label"] in ln)
        assert f"{r['active']:.4f}" in line and f"{r['candidate']:.4f}" in line
        assert f"{r['candidate'] - r['active']:+.4f}" in line
    assert "![per-class comparison](report.png)" in text
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["passed"] is False and doc["active"]["ref"] == "pneumonia-cxr:1.0.0"
    assert doc["candidate"]["parent_version"] == "1.0.0"
    assert doc["rows"] == rows and doc["gate"]["candidate"]["value"] == evs["1.1.0"]["value"]
    _check_chart(tmp_path / "report.png", rows)


def _bar_heights(img: np.ndarray, rgb) -> list:
    """Heights in pixels of the bars of colour ``rgb``, left to right (legend swatch excluded:
    it sits above the plot area)."""
    mask = np.all(img == np.asarray(rgb, np.uint8), axis=-1)
    mask[:60] = False
    cols = mask.sum(axis=0)
    heights, x = [], 0
    while x < len(cols):
        if cols[x]:
            start = x
            while x < len(cols) and cols[x]:
                x += 1
            heights.append(int(cols[start:x].max()))
        x += 1
    return heights


def _check_chart(path, rows):
    img = np.asarray(Image.open(path).convert("RGB"))
    assert img.shape[1] >= 120 * len(rows)
    plot_h = img.shape[0] - 140  # the chart's plot area (0..1)
    for key, rgb in (("active", ACTIVE_RGB), ("candidate", CANDIDATE_RGB)):
        want = [r[key] * plot_h for r in rows if round(r[key] * plot_h) > 0]  # 0: no bar
        got = _bar_heights(img, rgb)
        assert len(got) == len(want)
        for h, w in zip(got, want):
            assert math.isclose(h, w, abs_tol=2)


def test_report_marks_missing_classes(tmp_path):
    g = gate(_ev(0.62, {"liver": 0.9, "spleen": None, "lung": 0.34}, metric="mean_dice"),
             _ev(0.70, {"liver": 0.93, "spleen": 0.5, "lung": 0.47}, metric="mean_dice",
                 version="1.1.0"), 0.01)
    write_report(tmp_path, g, None, None)
    text = (tmp_path / "report.md").read_text()
    assert "**PASSED**" in text
    assert "| spleen | n/a | 0.5000 | n/a |" in text
    img = np.asarray(Image.open(tmp_path / "report.png").convert("RGB"))
    assert len(_bar_heights(img, ACTIVE_RGB)) == 3 and len(_bar_heights(img, CANDIDATE_RGB)) == 4


def _ece(conf, right, bins=15):
    """Expected calibration error, written out bin by bin."""
    conf, right = np.asarray(conf, float).ravel(), np.asarray(right, float).ravel()
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        sel = (conf >= lo) & ((conf < hi) if b < bins - 1 else (conf <= hi))
        if sel.any():
            total += sel.sum() / len(conf) * abs(right[sel].mean() - conf[sel].mean())
    return total


def test_bootstrap_intervals_and_calibration_on_real_evaluations(real_evals, shared_data):
    from medviewer.ai.preprocess import prepare_image_2d
    from medviewer.ai.registry import load_model
    from medviewer.ai.training.evaluate import cls_probs

    base, noisy, evs = real_evals
    good, bad = evs["1.0.0"], evs["1.1.0"]
    g = gate(good, bad, 0.01)
    ci = g["ci"]
    assert ci["units"] == 200 and ci["resamples"] == 2000 and ci["level"] == 0.95
    assert ci["active"][0] < good["value"] < ci["active"][1]
    assert ci["candidate"][0] < bad["value"] < ci["candidate"][1]
    assert 0.02 < ci["active"][1] - ci["active"][0] < 0.12  # ~4 standard errors of 200 images
    assert ci["difference"][1] < 0  # the noisy copy is worse beyond resampling noise
    assert gate(good, bad, 0.01)["ci"] == ci  # seeded: the same intervals every time
    # calibration: the expected calibration error of the top probability, checked by hand
    images, labels = pneumonia_val(shared_data)
    x = np.stack([prepare_image_2d(im, base) for im in images]).astype(np.float32)
    for card, ev in ((base, good), (noisy, bad)):
        probs = cls_probs(load_model(card), x, "cpu")
        want = _ece(probs.max(1), probs.argmax(1) == labels)
        assert ev["ece_n"] == 200 and ev["ece"] == pytest.approx(want, abs=1e-5)
        assert g["active" if card is base else "candidate"]["ece"] == ev["ece"]
    assert 0 < good["ece"] < bad["ece"]  # the perturbed copy is confidently wrong more often


@pytest.fixture(scope="module")
def seg_eval(tmp_path_factory):
    """ct-abdomen-organs 1.0.0 on real validation slabs of example_ct: two pelvis slabs (no
    organ in the reference), two organ slabs, one slab of its own training crop."""
    from medviewer.ai.registry import ModelRegistry, load_model
    from medviewer.ai.training import data
    from medviewer.ai.training.evaluate import evaluate_prepared, predict_seg_case
    from medviewer.core.manifest import Manifest

    from _training_manifests import seg_workspace

    card = ModelRegistry().get("ct-abdomen-organs:1.0.0")
    model = load_model(card)
    val = [18, 20, 34, 36, 64, 66, 74, 76, 98, 100]
    man = Manifest.load(seg_workspace(tmp_path_factory.mktemp("seg"), [70], val, by_slab=True))
    cases = data.seg_eval_cases(man, man.val_entries(), card)
    ev = evaluate_prepared(model, card, cases, "cpu")
    preds = [predict_seg_case(model, card, c, "cpu", confidence=True) for c in cases]
    return card, man, cases, ev, preds


def test_fp_volume_and_calibration_of_a_real_segmentation(seg_eval):
    card, man, cases, ev, preds = seg_eval
    assert ev["n"] == 5 and len(ev["rows"]) == 5 and ev["units"] == [e.unit for e in
                                                                   man.val_entries()]
    voxel_ml = 3.0 * 3.0 * 3.0 / 1000  # example_ct: 3 mm voxels
    fp = {name: 0.0 for name in card.labels[1:]}
    for (pred, _), case in zip(preds, cases):
        for k in range(len(pred)):
            for value, name in enumerate(card.labels[1:], start=1):
                if not (case.reference[k] == value).any():
                    fp[name] += float((pred[k] == value).sum()) * voxel_ml
    got = ev["fp_volume_ml"]
    for name, ml in fp.items():
        assert got["per_class"][name] == pytest.approx(ml, abs=1e-3)
    assert got["total"] == pytest.approx(sum(fp.values()), abs=1e-2)
    assert got["total"] > 1.0  # the starter paints organs in the pelvis
    for value, name in enumerate(card.labels[1:], start=1):
        assert got["slices"][name] == sum(int(not (c.reference[k] == value).any())
                                          for c in cases for k in range(len(c.reference)))
    assert got["slices"]["liver"] < 10 and got["slices"]["lung"] > 0
    conf = np.concatenate([c[((p > 0) | (case.reference > 0))] for (p, c), case in
                           zip(preds, cases)])
    right = np.concatenate([(p == case.reference)[((p > 0) | (case.reference > 0))]
                            for (p, _), case in zip(preds, cases)])
    assert ev["ece_n"] == len(conf) > 1000
    assert ev["ece"] == pytest.approx(_ece(conf, right), abs=1e-5)
    # the per-unit rows give back the headline, and the pelvis slabs have no Dice at all
    from medviewer.ai.training.stats import headline

    assert headline(ev["rows"]) == pytest.approx(ev["value"], abs=1e-6)
    pelvis = [u for u, cls in ev["unit_classes"].items() if not cls]
    assert len(pelvis) == 2


def test_gate_refuses_a_one_unit_validation_set(seg_eval, tmp_path):
    """A real evaluation on one slab: not gated, never passed, and the report says why."""
    card, man, cases, ev, preds = seg_eval
    from medviewer.ai.registry import load_model
    from medviewer.ai.training.evaluate import evaluate_prepared

    one = evaluate_prepared(load_model(card), card, cases[2:3], "cpu")
    assert one["n"] == 1
    g = gate(dict(one, version="1.0.0"), dict(one, version="1.1.0"), 0.01)
    assert g["gated"] is False and g["passed"] is False and g["ci"] is None
    assert g["reason"].startswith("not gated: validation set too small")
    assert "1 validation unit, at least 5 needed (4 more)" in g["reason"]
    assert "lung in 0" in g["reason"]
    write_report(tmp_path, g, None, None)
    text = (tmp_path / "report.md").read_text()
    assert "**NOT GATED**" in text and "too small: not gated" in text
    # five slabs, but not every organ in two of them: still not gated
    five = gate(dict(ev, version="1.0.0"), dict(ev, version="1.1.0"), 0.01)
    assert five["validation"]["units"] == 5 and five["gated"] is False
    assert five["validation"]["missing"] == [
        "classes in fewer than 2 validation units: spleen in 1, stomach in 1, lung in 0"]
    relaxed = gate(dict(ev, version="1.0.0"), dict(ev, version="1.1.0"), 0.0, min_per_class=0)
    assert relaxed["gated"] and relaxed["passed"]  # a version against itself: a tie passes
    assert relaxed["ci"]["difference"] == [0.0, 0.0]
    write_report(tmp_path, relaxed, None, None)
    text = (tmp_path / "report.md").read_text()
    for section in ("## Validation set", "bootstrap 95 % intervals", "## Calibration",
                    "## False positives on slices without the organ", "| **all organs** |"):
        assert section in text


# ---------------------------------------------------------------------------- first version
def _cls_eval(pred, y, labels=("axial", "coronal", "sagittal")):
    from medviewer.ai.training.evaluate import cls_metrics

    probs = np.eye(len(labels))[np.asarray(pred)]
    return cls_metrics(probs, np.asarray(y), list(labels))


def test_the_trivial_predictor_is_the_majority_class_of_the_frozen_set():
    from medviewer.ai.training.evaluate import trivial_evaluation

    class Card:
        task, labels = "classification", ["axial", "coronal", "sagittal"]

    y = np.array([0, 2, 2, 1, 2, 0, 1, 2])
    ev = trivial_evaluation(Card, (np.zeros((8, 1, 4, 4), np.float32), y))
    assert ev["value"] == 0.5 and ev["reference"]["class"] == "sagittal"
    assert ev["per_class"] == {"axial": 0.0, "coronal": 0.0, "sagittal": 1.0}
    assert "'sagittal' for every image (4 of 8)" in ev["reference"]["text"]


def test_a_first_version_must_beat_the_majority_class_by_more_than_the_margin():
    from medviewer.ai.training.evaluate import trivial_evaluation
    from medviewer.ai.training.gate import first_gate

    class Card:
        task, labels = "classification", ["axial", "coronal", "sagittal"]

    y = [0, 0, 1, 1, 2, 2, 2, 2, 2, 2]  # majority: sagittal, 0.6
    ref = dict(trivial_evaluation(Card, (None, np.asarray(y))), version="majority-class baseline")
    better = first_gate(ref, dict(_cls_eval([0, 0, 1, 1, 2, 2, 2, 2, 0, 1], y), version="1.0.0"),
                        0.01, min_units=5, min_per_class=2)
    assert better["passed"] and better["first_version"] and better["gated"]
    assert better["class_falls"] == []  # sagittal falls from 1.0 to 0.67: not gated on
    assert "must beat that by more than the margin 0.01: passes" in better["reason"]
    assert better["active"]["per_class"]["sagittal"] == 1.0  # shown in the report
    same = first_gate(ref, dict(_cls_eval([2] * 10, y), version="1.0.0"), 0.01, 5, 2)
    assert not same["passed"] and "fails" in same["reason"]  # a constant answer never passes
    close = first_gate(ref, dict(_cls_eval([0, 1, 1, 1, 2, 2, 2, 2, 0, 0], y), version="1.0.0"),
                       0.1, 5, 2)  # 0.7 vs 0.6: not by more than 0.1
    assert not close["passed"]
    small = first_gate(ref, dict(_cls_eval([0, 0, 1, 1, 2, 2, 2, 2, 2, 2], y), version="1.0.0"),
                       0.01, min_units=20, min_per_class=2)
    assert small["gated"] is False and small["passed"] is False


def test_a_segmentation_first_version_is_judged_against_an_all_background_map():
    from medviewer.ai.training.evaluate import seg_metrics, trivial_evaluation
    from medviewer.ai.training.gate import first_gate

    ref_maps = [np.zeros((1, 8, 8), np.uint8) for _ in range(5)]
    for k, r in enumerate(ref_maps):
        r[0, 2:6, 2:6] = 1
        r[0, 6:, 6:] = 2 if k % 2 == 0 or k == 1 else 0

    class Info:
        spacing_zyx = (1.0, 1.0, 1.0)

    class Case:
        def __init__(self, i, r):
            self.reference, self.unit, self.entry_id, self.info = r, f"u{i}", f"e{i}", Info

    class Card:
        task, labels = "segmentation", ["background", "liver", "spleen"]

    ref = trivial_evaluation(Card, [Case(i, r) for i, r in enumerate(ref_maps)])
    assert ref["value"] == 0.0 and ref["reference"]["kind"] == "all_background"
    cand = seg_metrics([r.copy() for r in ref_maps], ref_maps, Card.labels,
                       [f"u{i}" for i in range(5)])
    out = first_gate(dict(ref, version="all-background baseline"), dict(cand, version="1.0.0"),
                     0.01, min_units=5, min_per_class=2)
    assert out["passed"] and cand["value"] == 1.0
