"""The promptable model (task "interactive") in a models folder: `medviewer models` lists it,
`medviewer predict` refuses it with a clear message, the automatic model lists leave it out,
and `medviewer finetune --model interactive-promptable` trains it from a workspace's prompt
records and prints the click gate. A tiny model trained for 0 steps (random weights) in
$MEDVIEWER_MODELS; real CT slices and TotalSegmentator masks as the prompt records."""
import json
import sys
from pathlib import Path

import pytest

from medviewer.cli import main
from medviewer.services.ai_runs import ModelLane
from medviewer.services.models import ModelCatalog, ModelError
from medviewer.storage.store import LabelStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "ai"))
from _interactive_models import CT, NAME, store_ct_records, write_tiny_model  # noqa: E402


@pytest.fixture
def interactive(user_models):
    write_tiny_model(user_models, "1.0.0", steps=0)
    return user_models


def test_models_lists_it_and_automatic_runs_leave_it_out(interactive, capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["models"]
    mine = [r for r in rows if r["name"] == NAME]
    assert mine and mine[0]["task"] == "interactive"
    assert main(["models"]) == 0 and f"{NAME}:1.0.0" in capsys.readouterr().out
    assert main(["models", "versions", NAME]) == 0
    cat = ModelCatalog()
    assert NAME in {c.name for c in cat.list()}
    assert NAME not in {c.name for c in cat.automatic()}
    assert cat.automatic()  # the built-in automatic models are still offered
    with pytest.raises(ModelError, match="Prompt tool"):
        ModelLane("cpu").model(cat.get(NAME))


def test_predict_refuses_it_with_a_clear_message(interactive, capsys):
    assert main(["predict", "--model", NAME, str(CT), "--out", "-"]) == 1
    err = capsys.readouterr().err
    assert "interactive (promptable) model" in err and "medviewer prompt" in err


def test_finetune_trains_it_from_prompt_records_and_prints_the_gate(interactive, tmp_path,
                                                                    capsys):
    ws = tmp_path / "ws"
    with LabelStore(ws) as store:
        store_ct_records(store, [3, 11, 19, 27], 5)
    assert main(["finetune", "--workspace", str(ws), "--model", NAME, "--manifest-only"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["event"] == "manifest" and line["validation"]["ok"] is True
    assert line["train_entries"] + line["val_entries"] == 4 and line["val_entries"] >= 1
    code = main(["finetune", "--workspace", str(ws), "--model", NAME, "--steps", "2",
                 "--replay", "none", "--threads", "1", "--max-clicks", "3"])
    out = capsys.readouterr()
    assert code == 0, out.err[-2000:]
    events = [json.loads(x) for x in out.out.splitlines() if x.startswith("{")]
    gate = next(e for e in events if e["event"] == "gate")
    assert gate["metric"] == "mean_noc85" and gate["active"]["n"] == line["val_entries"]
    assert "gate: passed" in out.err or "gate: not passed" in out.err
    assert events[-1]["event"] == "done" and events[-1]["version"] == "1.1.0"
