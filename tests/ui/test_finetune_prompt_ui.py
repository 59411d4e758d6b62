"""The Fine-tune dialog with the promptable model: it is listed, shows how many prompt records
the workspace holds, trains in steps with the click gate ("mean clicks to Dice 0.85 (lower is
better)"), and a workspace with too few records is explained without starting a process.
Real CT slices and TotalSegmentator masks stored as prompt records; a tiny model folder."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from ai_helpers import isolate_user_models, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "ai"))
from _interactive_models import NAME, store_ct_records, write_tiny_model  # noqa: E402


@pytest.fixture(autouse=True)
def _models(tmp_path, monkeypatch):
    isolate_user_models(tmp_path, monkeypatch)
    write_tiny_model(Path(os.environ["MEDVIEWER_MODELS"]), "1.0.0", steps=0)


def _records(slices):
    from medviewer.storage.store import LabelStore

    with LabelStore(Path(os.environ["MEDVIEWER_WORKSPACE"])) as store:
        store_ct_records(store, slices, 5)


def test_dialog_lists_it_with_records_steps_and_the_click_gate(window):
    _records([3, 11, 19])
    window.actions_by_name["ai_finetune"].trigger()
    dlg = window._finetune_dialog
    names = [dlg.model_combo.itemText(i) for i in range(dlg.model_combo.count())]
    assert NAME in names and "pneumonia-cxr" in names
    dlg.select_base("pneumonia-cxr")
    assert dlg.epochs_label.text() == "Epochs:" and not dlg.task_info.isVisible()
    dlg.select_base(NAME)
    assert dlg.base_ref() == f"{NAME}:1.0.0"
    assert dlg.epochs_label.text() == "Steps:" and dlg.margin.value() == 0.5
    info = dlg.task_info.text()
    assert "3 prompt record(s)" in info
    assert "mean clicks to Dice 0.85 (lower is better)" in info
    dlg.epochs.setValue(7)
    epochs, extra = dlg.prompt_mode.run_args(dlg.advanced.extra_args())
    assert epochs == 1 and extra[extra.index("--steps") + 1] == "7"
    gate = {"metric": "mean_noc85", "passed": False, "margin": 0.5, "gated": True,
            "active": {"version": "1.0.0", "value": 3.0},
            "candidate": {"version": "1.1.0", "value": 6.0}}
    assert "mean clicks to Dice 0.85 (lower is better)" in dlg._gate_text(gate)
    dlg.select_base("pneumonia-cxr")  # back to the automatic form
    assert dlg.epochs_label.text() == "Epochs:" and dlg.margin.value() == 0.01
    dlg.close()


def test_too_few_prompt_records_are_explained_and_nothing_starts(window):
    _records([11])
    ctl = window.finetune
    window.actions_by_name["ai_finetune"].trigger()
    dlg = window._finetune_dialog
    dlg.select_base(NAME)
    assert "1 prompt record(s)" in dlg.task_info.text()
    assert dlg.start()
    wait_until(lambda: not ctl.running, 60000)
    assert ctl.outcome == "rejected" and ctl.process is None
    assert "too few prompt records" in ctl.error
    assert not (Path(os.environ["MEDVIEWER_MODELS"]) / NAME / "1.1.0").exists()
    dlg.close()
