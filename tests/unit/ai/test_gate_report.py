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
    ok = gate(act, _ev(0.795, {"normal": 0.8, "pneumonia": 0.79}, version="1.1.0"), 0.01)
    assert ok["passed"] and ok["metric"] == "accuracy" and ok["margin"] == 0.01
    assert ok["active"] == {"version": "1.0.0", "value": 0.8, "n": 10,
                            "per_class": {"normal": 0.7, "pneumonia": 0.9}}
    assert ok["candidate"]["version"] == "1.1.0" and ok["candidate"]["value"] == 0.795
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
    loose = gate(good, bad, margin=good["value"] - bad["value"] + 0.001)
    assert loose["passed"]


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
