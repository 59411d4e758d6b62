"""`medviewer models versions | promote | rollback` and `predict` following the active version.

Real model folders: pneumonia-cxr 1.0.0 (built-in) and copies with perturbed weights in a
temporary user models folder; predictions on real PneumoniaMNIST images."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medviewer.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "ai"))
from _model_versions import (NAME, REPO, SMALL, TAMPERED, make_small_version,  # noqa: E402
                             make_version, tamper)


pytestmark = pytest.mark.usefixtures("user_models")  # an empty $MEDVIEWER_MODELS per test


@pytest.fixture
def versions_made(user_models):
    fv = {"metric": "accuracy", "value": 0.8125, "per_class": {"normal": 0.75}, "n": 32}
    make_version(user_models, "1.1.0", noise=0.05, frozen_val=fv)
    make_version(user_models, "1.2.0", parent="1.1.0", noise=0.6, seed=1)
    return user_models


def _table(capsys) -> dict:
    """`models versions` rows by version: (active mark, parent, metric text)."""
    out = capsys.readouterr().out.splitlines()
    rows = {}
    for line in out[1:]:
        parts = line[2:].split()
        if parts and parts[0][0].isdigit():
            rows[parts[0]] = (line[:2].strip(), parts[1], " ".join(parts[2:-1]))
    return rows


def test_versions_table_promote_and_rollback(versions_made, capsys):
    assert main(["models", "versions", NAME]) == 0
    rows = _table(capsys)
    assert set(rows) == {"1.0.0", "1.1.0", "1.2.0"}
    assert rows["1.0.0"][0] == "*" and not rows["1.1.0"][0] and not rows["1.2.0"][0]
    assert rows["1.1.0"][1] == "1.0.0" and rows["1.2.0"][1] == "1.1.0"
    assert rows["1.1.0"][2] == "accuracy 0.8125 (frozen val)"
    assert rows["1.0.0"][2].startswith("accuracy 0.9790 (validation)")

    assert main(["models", "promote", NAME, "1.2.0", "--reason", "test"]) == 0
    assert "active version 1.2.0 (was 1.0.0)" in capsys.readouterr().out
    assert main(["models", "promote", NAME, "1.1.0"]) == 0
    capsys.readouterr()
    assert main(["models", "rollback", NAME]) == 0  # to the previously active version
    assert "active version 1.2.0 (was 1.1.0)" in capsys.readouterr().out
    assert main(["models", "rollback", NAME, "1.0.0"]) == 0
    capsys.readouterr()
    assert main(["models", "versions", NAME, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["active"] == "1.0.0" and doc["pointer"] is True
    assert [(h["action"], h["version"]) for h in doc["history"]] == [
        ("promote", "1.2.0"), ("promote", "1.1.0"), ("rollback", "1.2.0"), ("rollback", "1.0.0")]
    assert doc["history"][0]["reason"] == "test"
    assert [v["version"] for v in doc["versions"] if v["active"]] == ["1.0.0"]
    pointer = json.loads((versions_made / NAME / "active.json").read_text())
    assert pointer["version"] == "1.0.0"


def test_refusals_leave_the_pointer_alone(versions_made, capsys):
    tamper(versions_made / NAME / "1.2.0")
    assert main(["models", "rollback", NAME]) == 1
    assert "no previously active version" in capsys.readouterr().err
    assert main(["models", "promote", NAME, "1.2.0"]) == 1
    assert "sha256" in capsys.readouterr().err
    assert main(["models", "promote", NAME, "3.0.0"]) == 1
    assert "no version 3.0.0" in capsys.readouterr().err
    assert main(["models", "promote", "nope", "1.0.0"]) == 1
    assert "no model named 'nope'" in capsys.readouterr().err
    assert main(["models", "versions", "nope"]) == 1
    assert main(["models", "promote", NAME]) == 2  # usage
    assert "usage: medviewer models promote NAME VERSION" in capsys.readouterr().err
    assert main(["models", "versions"]) == 2
    assert main(["models", "list", "extra"]) == 2
    assert not (versions_made / NAME / "active.json").exists()
    assert main(["models"]) == 0  # list is unchanged
    out = capsys.readouterr().out
    assert f"{NAME}:1.1.0" in out and f"{NAME}:1.0.0" in out


def _xrays(shared_data: Path, folder: Path, n: int = 4) -> Path:
    data = np.load(shared_data / "medmnist_pneumonia" / "pneumoniamnist_reconstructed_full.npz")
    folder.mkdir()
    for i in range(n):
        Image.fromarray(data["val_images"][i]).save(folder / f"case{i}.png")
    return folder


def test_promote_refuses_every_tampered_version_and_predict_keeps_the_active_one(
        user_models, shared_data, tmp_path, capsys):
    """`models promote` on smallcnn copies broken in each way: exit 1, a message naming the
    version and why (never torch's weights_only advice), the pointer where it was, and predict
    still running the active version."""
    make_small_version(user_models, "1.1.0")
    assert main(["models", "promote", SMALL, "1.1.0"]) == 0
    capsys.readouterr()
    pointer = (user_models / SMALL / "active.json").read_text()
    refused = {}
    for i, kind in enumerate(TAMPERED, start=2):
        version = f"1.{i}.0"
        make_small_version(user_models, version, tampered=kind)
        code = main(["models", "promote", SMALL, version])
        err = capsys.readouterr().err
        assert code == 1 and f"refusing to promote {SMALL}:{version}: " in err, (kind, err)
        assert TAMPERED[kind] in err and "weights_only" not in err, (kind, err)
        refused[kind] = version
    assert len(refused) == len(TAMPERED) == 8
    assert (user_models / SMALL / "active.json").read_text() == pointer
    out = tmp_path / "out.jsonl"
    rows = _predict(_xrays(shared_data, tmp_path / "xrays"), out, SMALL)
    assert {r["model"] for r in rows} == {f"{SMALL}:1.1.0"}
    # asked for by name, a pickled module is refused in MedViewer's words
    code = main(["predict", "--model", f"{SMALL}:{refused['pickled-module']}",
                 str(tmp_path / "xrays"), "--out", str(tmp_path / "bad.jsonl")])
    err = capsys.readouterr().err
    assert code != 0 and "pickled Python objects" in err and "weights_only" not in err, err


def _predict(folder: Path, out: Path, model: str) -> list:
    assert main(["predict", "--model", model, str(folder), "--out", str(out)]) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_predict_without_a_version_uses_the_active_one(versions_made, shared_data, tmp_path):
    data = np.load(shared_data / "medmnist_pneumonia" / "pneumoniamnist_reconstructed_full.npz")
    folder = tmp_path / "xrays"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(data["val_images"][i]).save(folder / f"case{i}.png")
    out = tmp_path / "out.jsonl"
    first = _predict(folder, out, NAME)
    assert {r["model"] for r in first} == {f"{NAME}:1.0.0"}  # no pointer: highest built-in
    assert main(["models", "promote", NAME, "1.2.0"]) == 0
    noisy = _predict(folder, out, NAME)
    assert {r["model"] for r in noisy} == {f"{NAME}:1.2.0"}
    diff = [abs(a["probabilities"]["pneumonia"] - b["probabilities"]["pneumonia"])
            for a, b in zip(first, noisy)]
    assert max(diff) > 0.01  # other weights really ran
    pinned = _predict(folder, out, f"{NAME}:1.1.0")  # an explicit version wins
    assert {r["model"] for r in pinned} == {f"{NAME}:1.1.0"}
    assert main(["models", "rollback", NAME]) == 0
    again = _predict(folder, out, NAME)
    assert {r["model"] for r in again} == {f"{NAME}:1.0.0"}
    assert [r["probabilities"] for r in again] == [r["probabilities"] for r in first]


def test_the_app_entry_point_dispatches_models_promote(versions_made):
    env_code = ("import sys; from medviewer.app import main; "
                "sys.exit(main(['models', 'promote', 'pneumonia-cxr', '1.1.0']))")
    import os

    env = dict(os.environ, MEDVIEWER_MODELS=str(versions_made))
    res = subprocess.run([sys.executable, "-c", env_code], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "active version 1.1.0" in res.stdout
    res = subprocess.run([sys.executable, "-m", "medviewer", "models", "versions", NAME],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "* 1.1.0" in res.stdout
    assert "torch" not in res.stderr
