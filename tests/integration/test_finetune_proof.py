"""Proof on real data: fine-tuning on scripted corrections raises the frozen-validation metric.

Segmentation: the starter CT model's prediction on TotalSegmentator's example CT, 20 slices
corrected to the reference labels (tests/learn_fixtures.seg_case), ``medviewer finetune``
(manifest built from the store) -> mean Dice on the frozen validation slices rises and the new
version is promoted. Classification: PneumoniaMNIST in a shifted domain, predicted by the
starter classifier and corrected (learn_fixtures.cls_cases) -> accuracy on the frozen
validation images rises.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from medviewer.ai import versions
from medviewer.ai.registry import ModelRegistry
from medviewer.cli_train import main as finetune
from medviewer.core.manifest import Manifest
from medviewer.storage.store import LabelStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import learn_fixtures  # noqa: E402


def _run(capsys, argv) -> list[dict]:
    code = finetune(["finetune"] + argv)
    out = capsys.readouterr()
    events = [json.loads(x) for x in out.out.splitlines() if x.startswith("{")]
    assert code == 0, (events[-1:], out.err[-2000:])
    return events


def _val_units(ws: Path, model: str) -> set:
    paths = sorted((ws / "training" / model).glob("manifest-*.json"))
    assert paths
    return {e.unit for e in Manifest.load(paths[-1]).val_entries()}


def test_segmentation_dice_rises_on_frozen_validation(tmp_path, capsys):
    ws, models = tmp_path / "ws", tmp_path / "models"
    with LabelStore(ws) as store:
        learn_fixtures.seg_case(store, n_slices=20, seed=0)
    events = _run(capsys, ["--workspace", str(ws), "--model", "ct-abdomen-organs:1.0.0",
                           "--models-dir", str(models), "--epochs", "15", "--patience", "5",
                           "--seed", "0"])
    start = events[0]
    assert start["train"] + start["val"] == 20 and start["val"] >= 1
    gate = next(e for e in events if e["event"] == "gate")
    before, after = gate["active"]["value"], gate["candidate"]["value"]
    print(f"frozen-val mean Dice {before:.3f} -> {after:.3f}")
    assert after > before + 0.02
    done = events[-1]
    assert done["event"] == "done" and done["promoted"] is True
    registry = ModelRegistry(user_dir=models)
    assert versions.active_version(registry, "ct-abdomen-organs") == done["version"]
    assert registry.get("ct-abdomen-organs").version == done["version"]
    # the validation split is frozen: building the manifest again keeps the same val units
    units = _val_units(ws, "ct-abdomen-organs")
    with LabelStore(ws) as store:
        from medviewer.storage.manifest_build import build_manifest

        card = registry.get("ct-abdomen-organs:1.0.0")
        again, _ = build_manifest(store, card.name, card.task, card.labels, 2)
    assert {e.unit for e in again.val_entries()} == units


def test_classification_accuracy_rises_on_shifted_domain(tmp_path, capsys):
    ws, models = tmp_path / "ws", tmp_path / "models"
    with LabelStore(ws) as store:
        learn_fixtures.cls_cases(store, n=60, seed=0)
    events = _run(capsys, ["--workspace", str(ws), "--model", "pneumonia-cxr:1.0.0",
                           "--models-dir", str(models), "--epochs", "12", "--seed", "0"])
    start = events[0]
    assert start["train"] + start["val"] == 60 and start["val"] >= 5
    gate = next(e for e in events if e["event"] == "gate")
    before, after = gate["active"]["value"], gate["candidate"]["value"]
    print(f"frozen-val accuracy {before:.3f} -> {after:.3f}")
    assert after > before
    assert gate["passed"] is True and events[-1]["promoted"] is True
