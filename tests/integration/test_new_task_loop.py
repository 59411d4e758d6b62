"""The proof of a new task through the learning loop, end to end through the commands a person
types: ``models new`` -> ``labels import`` -> ``finetune`` -> ``predict``.

The task (see ``tests/mr_planes.py``): which plane a 2D brain MR image shows — axial, coronal
or sagittal — from real reformats of the MNI152 template and the pyradiomics brain MR studies
(MR brain images: no built-in model has seen any). The labels are imported as PNG files plus a
CSV, as a team with a spreadsheet would hand them over; one subject (brain2) is never imported
and is only predicted at the end."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import mr_planes  # noqa: E402

from medviewer.cli import main as cli  # noqa: E402

pytestmark = pytest.mark.slow  # a real training run: 10 epochs on 53 images

NAME = "mr-planes"


def _json_lines(text: str) -> list:
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def test_a_new_three_class_task_from_models_new_to_predict(shared_data, user_models, tmp_path,
                                                           capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    rows = mr_planes.make_plane_pngs(shared_data, tmp_path / "images", ("mni152", "brain1"),
                                     per_plane=12)
    csv = mr_planes.write_csv(rows, tmp_path / "images" / "planes.csv")
    held = mr_planes.make_plane_pngs(shared_data, tmp_path / "held-out", ("brain2",),
                                     per_plane=8)
    ws = tmp_path / "workspace"

    # 1. an untrained first version, its backbone from the pneumonia classifier
    assert cli(["models", "new", NAME, "--task", "classification", "--labels",
                "axial,coronal,sagittal", "--from", "pneumonia-cxr", "--input-size", "32",
                "--modality", "MR", "--body-region", "head"]) == 0
    out = capsys.readouterr().out
    assert f"created {NAME}:0.0.0 (untrained)" in out
    assert "copied 123 of 125 weight tensors" in out and "skipped fc.weight" in out
    card = json.loads((user_models / NAME / "0.0.0" / "model.json").read_text())
    assert card["training"]["untrained"] is True and card["domain"]["modalities"] == ["MR"]

    # an untrained model is never run
    assert cli(["predict", "--model", NAME, str(held[0][0]), "--out", "-"]) == 1
    assert "untrained" in capsys.readouterr().err

    # 2. the labels, as a person's final records; importing them again adds nothing
    assert cli(["labels", "import", str(ws), str(csv), "--model", NAME, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert (first["kind"], first["rows"], first["added"]) == ("case", len(rows), len(rows))
    assert cli(["labels", "import", str(ws), str(csv), "--model", NAME, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["added"], again["unchanged"]) == (0, len(rows))

    # 3. the first fine-tune: version 1.0.0, gated against the majority class, promoted
    assert cli(["finetune", "--workspace", str(ws), "--base", NAME, "--epochs", "10",
                "--patience", "10", "--lr", "1e-3", "--seed", "0", "--device", "cpu"]) == 0
    events = _json_lines(capsys.readouterr().out)
    start = next(e for e in events if e["event"] == "start")
    assert start["base"] == f"{NAME}:0.0.0" and start["candidate"] == f"{NAME}:1.0.0"
    assert start["train"] + start["val"] == len(rows)
    gate = next(e for e in events if e["event"] == "gate")
    assert gate["first_version"] is True and gate["reference"]["kind"] == "majority_class"
    majority = gate["active"]["value"]
    assert majority == pytest.approx(max(gate["validation"]["per_class"].values())
                                     / gate["validation"]["units"], abs=1e-6)
    assert gate["passed"] is True and gate["candidate"]["value"] > majority + 0.01
    done = next(e for e in events if e["event"] == "done")
    assert done["version"] == "1.0.0" and done["promoted"] is True
    assert "first version 1.0.0 vs the majority-class baseline" in Path(
        done["report"]).read_text()
    assert cli(["models", "versions", NAME, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["active"] == "1.0.0"

    # 4. predict uses the promoted version, on a subject it never saw
    preds = tmp_path / "held-out.jsonl"
    assert cli(["predict", "--model", NAME, str(tmp_path / "held-out"), "--out",
                str(preds)]) == 0
    capsys.readouterr()
    results = {Path(r["case"]).name: r for r in _json_lines(preds.read_text())}
    assert len(results) == len(held)
    assert {r["model"] for r in results.values()} == {f"{NAME}:1.0.0"}
    right = sum(results[Path(p).name]["class"] == plane for p, plane in held)
    assert right / len(held) >= 0.5  # chance is 1/3; see the README for the measured value
