"""The fine-tuning entry point end to end: exit codes, events, the version folder, cancel."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medviewer.ai.registry import ModelRegistry, load_model
from medviewer.ai.training.run import main
from medviewer.core.manifest import Manifest

from _training_manifests import REPO, cls_workspace, seg_workspace


def _events(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def cls_manifest(tmp_path_factory) -> Path:
    return cls_workspace(tmp_path_factory.mktemp("cls"), 24, 12)


def _bad(capsys, argv) -> dict:
    assert main(argv) == 2
    events = _events(capsys.readouterr().out)
    assert events[-1]["event"] == "error"
    return events[-1]


def test_bad_inputs_exit_2(tmp_path, capsys, cls_manifest):
    models = str(tmp_path / "models")
    ev = _bad(capsys, ["--manifest", str(tmp_path / "nope.json"), "--base", "pneumonia-cxr",
                       "--models-dir", models])
    assert "does not exist" in ev["message"]
    ev = _bad(capsys, ["--manifest", str(cls_manifest), "--base", "no-such-model",
                       "--models-dir", models])
    assert "no-such-model" in ev["message"]
    ev = _bad(capsys, ["--manifest", str(cls_manifest), "--base", "ct-abdomen-organs",
                       "--models-dir", models])
    assert "pneumonia-cxr" in ev["message"]
    man = Manifest.load(cls_manifest)  # drop the validation entries
    only_train = Manifest(man.model, man.task, man.labels, man.train_entries(), root=man.root)
    path = only_train.save(cls_manifest.parent / "train-only.json")
    ev = _bad(capsys, ["--manifest", str(path), "--base", "pneumonia-cxr", "--models-dir",
                       models])
    assert "no validation entries" in ev["message"]
    broken = cls_manifest.parent / "broken.json"
    broken.write_text("{not json")
    ev = _bad(capsys, ["--manifest", str(broken), "--base", "pneumonia-cxr", "--models-dir",
                       models])
    assert "not valid JSON" in ev["message"]
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").rglob("*.json"))


def test_a_one_unit_validation_set_is_refused_before_training(tmp_path, capsys):
    """Real slices of example_ct, one validation slab: exit 2 with what is missing, nothing
    trained or written; the minimum is the user's to lower."""
    man = seg_workspace(tmp_path / "ws", [70, 71, 72], [74, 75, 76])
    models = tmp_path / "models"
    argv = ["--manifest", str(man), "--base", "ct-abdomen-organs:1.0.0", "--models-dir",
            str(models), "--epochs", "1"]
    ev = _bad(capsys, argv)
    assert ev["kind"] == "validation_too_small"
    assert ev["message"].startswith("not gated: validation set too small — 1 validation unit, "
                                    "at least 5 needed (4 more)")
    assert ev["validation"]["units"] == 1 and ev["validation"]["per_class"]["lung"] == 0
    assert ev["validation"]["per_class"]["liver"] == 1  # counted from the real label file
    assert not models.exists() or not any(models.rglob("*"))
    assert main(argv + ["--min-val-units", "1", "--min-val-per-class", "0", "--no-promote"]) == 0
    events = _events(capsys.readouterr().out)
    gate = next(e for e in events if e["event"] == "gate")
    assert gate["gated"] and gate["validation"]["units"] == 1 and events[-1]["event"] == "done"


def test_finetune_cli_needs_a_workspace_or_a_manifest(capsys):
    from medviewer.cli.finetune import main as finetune

    with pytest.raises(SystemExit) as exc:
        finetune(["finetune", "--model", "pneumonia-cxr"])
    assert exc.value.code == 2
    assert "--workspace" in capsys.readouterr().err


def test_classifier_run_writes_a_new_version(tmp_path, capsys, cls_manifest):
    models = tmp_path / "models"
    code = main(["--manifest", str(cls_manifest), "--base", "pneumonia-cxr:1.0.0",
                 "--models-dir", str(models), "--epochs", "3", "--seed", "1",
                 "--no-promote"])
    events = _events(capsys.readouterr().out)
    assert code == 0, events[-1]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    assert kinds.count("epoch") == 3 and "gate" in kinds and "progress" in kinds
    start, done = events[0], events[-1]
    assert start["base"] == "pneumonia-cxr:1.0.0" and start["candidate"] == "pneumonia-cxr:1.1.0"
    assert start["train"] == 24 and start["val"] == 12 and start["world_size"] == 1
    assert start["manifest_sha256"] == Manifest.load(cls_manifest).sha256
    assert done["version"] == "1.1.0" and done["promoted"] is False
    folder = Path(done["folder"])
    assert folder == models / "pneumonia-cxr" / "1.1.0"
    card = ModelRegistry(user_dir=models).get("pneumonia-cxr:1.1.0")
    card.verify()
    assert card.parent_version == "1.0.0"
    assert card.training["manifest_sha256"] == start["manifest_sha256"]
    assert card.training["config"]["epochs"] == 3 and card.training["seed"] == 1
    assert len(card.training["history"]) == 3
    assert card.metrics["frozen_val"]["n"] == 12
    assert 0.0 <= card.metrics["accuracy"] <= 1.0
    for name in ("README.md", "report.md", "report.png", "report.json", "weights.safetensors"):
        assert (folder / name).is_file()
    assert Path(done["report"]).is_file()
    model = load_model(card)
    assert sum(p.numel() for p in model.parameters()) > 0
    # no staging folder or temporary file is left (the lock file that serialises commits stays)
    assert not [p for p in (models / "pneumonia-cxr").iterdir()
                if p.name.startswith(".") and p.name != ".active.lock"]
    gate = next(e for e in events if e["event"] == "gate")
    assert gate["candidate"]["version"] == "1.1.0" and gate["active"]["version"] == "1.0.0"


@pytest.mark.slow
def test_sigterm_cancels_quickly_and_leaves_nothing(tmp_path):
    man = seg_workspace(tmp_path / "ws", list(range(56, 66)), [66, 67, 68])
    models = tmp_path / "models"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "medviewer.ai.training", "--manifest", str(man), "--base",
         "ct-abdomen-organs", "--models-dir", str(models), "--epochs", "200",
         "--min-val-units", "1", "--min-val-per-class", "0"],  # cancelling, not gating
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    events = []
    try:
        for line in proc.stdout:
            events.append(json.loads(line))
            if events[-1]["event"] == "progress":
                break
        assert events and events[-1]["event"] == "progress", proc.stderr.read()
        staging = [p for p in (models / "ct-abdomen-organs").iterdir()
                   if p.name.startswith(".staging")]
        assert staging  # the run works in a hidden staging folder
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rest, _err = proc.communicate(timeout=30)
        stopped_after = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert _events(rest)[-1] == {"event": "cancelled"}
    print(f"stopped {stopped_after:.2f} s after SIGTERM")
    left = list((models / "ct-abdomen-organs").iterdir())
    assert left == []  # no version, no staging folder, no active pointer
