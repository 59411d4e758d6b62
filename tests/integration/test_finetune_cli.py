"""The cluster path and a hard crash: ``medviewer finetune --manifest-only`` builds a manifest that a
separate training process consumes, and a training process killed with SIGKILL (no chance to
clean up) leaves no version, no pointer change, and a staging folder the next run removes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from medviewer.ai import versions
from medviewer.ai.registry import ModelRegistry
from medviewer.core.manifest import Manifest
from medviewer.storage.store import LabelStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import learn_fixtures  # noqa: E402

pytestmark = pytest.mark.slow  # training child processes

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    ws = tmp_path_factory.mktemp("ws")
    with LabelStore(ws) as store:
        learn_fixtures.cls_cases(store, n=24, seed=0)
    return ws


def _env():
    return dict(os.environ, PYTHONPATH=str(REPO))


def test_manifest_only_then_a_separate_training_process(workspace, tmp_path):
    out = subprocess.run([sys.executable, "-m", "medviewer", "finetune", "--workspace",
                          str(workspace), "--base", "pneumonia-cxr:1.0.0", "--manifest-only"],
                         capture_output=True, text=True, env=_env(), cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    line = json.loads(out.stdout.strip().splitlines()[-1])
    assert line["event"] == "manifest" and line["model"] == "pneumonia-cxr"
    manifest = Manifest.load(line["path"])
    manifest.verify()  # every image and label file is there with its hash
    assert manifest.sha256 == line["sha256"]
    assert line["train_entries"] + line["val_entries"] == 24 and line["val_entries"] >= 1
    assert not any(Path(e.image).is_absolute() for e in manifest.entries)  # movable with its root

    models = tmp_path / "models"
    run = subprocess.run([sys.executable, "-m", "medviewer.ai.training", "--manifest",
                          line["path"], "--base", "pneumonia-cxr:1.0.0", "--models-dir",
                          str(models), "--epochs", "2", "--no-promote"],
                         capture_output=True, text=True, env=_env(), cwd=REPO, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    done = json.loads(run.stdout.strip().splitlines()[-1])
    assert done["event"] == "done" and done["promoted"] is False
    card = json.loads((Path(done["folder"]) / "model.json").read_text())
    assert card["training"]["manifest_sha256"] == manifest.sha256
    assert card["parent_version"] == "1.0.0"


def test_sigkill_leaves_no_version_and_the_pointer_untouched(workspace, tmp_path):
    models = tmp_path / "models"
    reg = ModelRegistry(user_dir=models)
    manifest = subprocess.run([sys.executable, "-m", "medviewer", "finetune", "--workspace",
                               str(workspace), "--base", "pneumonia-cxr:1.0.0",
                               "--manifest-only"], capture_output=True, text=True, env=_env(),
                              cwd=REPO, timeout=300)
    path = json.loads(manifest.stdout.strip().splitlines()[-1])["path"]
    proc = subprocess.Popen([sys.executable, "-m", "medviewer.ai.training", "--manifest", path,
                             "--base", "pneumonia-cxr:1.0.0", "--models-dir", str(models),
                             "--epochs", "500", "--patience", "500"],
                            stdout=subprocess.PIPE, text=True, env=_env(), cwd=REPO)
    try:
        for line in proc.stdout:  # training under way: the staging folder exists
            if json.loads(line).get("event") == "epoch":
                break
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    folder = models / "pneumonia-cxr"
    left = [p for p in folder.iterdir() if p.is_dir()]
    assert left and all(p.name.startswith(versions.STAGING_PREFIX) for p in left)
    assert [c.version for c in reg.list() if c.name == "pneumonia-cxr"] == ["1.0.0"]
    assert versions.active_version(reg, "pneumonia-cxr") is None
    assert reg.get("pneumonia-cxr").version == "1.0.0"
    # the owner is dead: the next run's clean-up removes it (here without the age limit)
    assert versions.clean_staging(reg, "pneumonia-cxr", min_age_s=0) == left
    assert not any(p.is_dir() for p in folder.iterdir())


def test_a_worse_model_is_written_but_not_promoted(tmp_path):
    """The gate: a run that wrecks the model (learning rate 1.0) ends with a new version on
    disk, a report saying the gate failed, and the active version unchanged."""
    ws, models = tmp_path / "ws", tmp_path / "models"
    with LabelStore(ws) as store:
        learn_fixtures.seg_case(store, n_slices=20, seed=0)
    run = subprocess.run([sys.executable, "-m", "medviewer", "finetune", "--workspace", str(ws),
                          "--base", "ct-abdomen-organs:1.0.0", "--models-dir", str(models),
                          "--epochs", "2", "--lr", "1.0", "--margin", "0.0", "--no-augment"],
                         capture_output=True, text=True, env=_env(), cwd=REPO, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    events = [json.loads(x) for x in run.stdout.splitlines() if x.startswith("{")]
    gate = next(e for e in events if e["event"] == "gate")
    done = events[-1]
    assert gate["passed"] is False and gate["candidate"]["value"] < gate["active"]["value"]
    assert done["event"] == "done" and done["promoted"] is False and done["version"] == "1.1.0"
    assert "FAILED" in Path(done["report"]).read_text().upper()
    reg = ModelRegistry(user_dir=models)
    assert versions.active_version(reg, "ct-abdomen-organs") is None
    assert reg.get("ct-abdomen-organs").version == "1.0.0"  # still the one in use
    assert reg.get("ct-abdomen-organs:1.1.0").parent_version == "1.0.0"  # kept for the record
    card = reg.get("ct-abdomen-organs:1.1.0")
    assert versions.headline_metric(card) == ("mean_dice", pytest.approx(
        gate["candidate"]["value"]), "frozen val")
    assert versions.parent_on_same_val(card) == pytest.approx(gate["active"]["value"])
    table = subprocess.run([sys.executable, "-m", "medviewer", "models", "versions",
                            "ct-abdomen-organs"], capture_output=True, text=True,
                           env=dict(_env(), MEDVIEWER_MODELS=str(models)), cwd=REPO, timeout=120)
    row = next(x for x in table.stdout.splitlines() if x.strip().startswith("1.1.0"))
    assert "frozen val" in row and f"parent on the same set: {gate['active']['value']:.4f}" in row
    assert table.stdout.splitlines()[1].startswith("* 1.0.0")  # the active one
