"""Fine-tuning UI with the REAL training child process on a small real workspace (shifted-domain
PneumoniaMNIST corrections from tests/learn_fixtures.py): events stream into the dialog and its
plot, closing the dialog leaves the run going, Cancel stops the child and leaves no version,
and the Model versions panel's Promote / Roll back move the active pointer."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from ai_helpers import MODELS, isolate_user_models, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: learn_fixtures

BASE = "pneumonia-cxr:1.0.0"
N_CASES = 24  # small: the child trains a few epochs on ~20 images


@pytest.fixture(autouse=True)
def _models(tmp_path, monkeypatch):
    isolate_user_models(tmp_path, monkeypatch)


@pytest.fixture(scope="module")
def cls_workspace(tmp_path_factory) -> Path:
    """A workspace with N_CASES real predictions of pneumonia-cxr corrected/accepted from the
    true labels (built once per module, copied into each test's workspace)."""
    import learn_fixtures
    from medviewer.storage.store import LabelStore

    ws = tmp_path_factory.mktemp("finetune-ws") / "workspace"
    store = LabelStore(ws)
    learn_fixtures.cls_cases(store, n=N_CASES, seed=0)
    close = getattr(store, "close", None)
    if close is not None:
        close()
    return ws


def _use_workspace(src: Path) -> Path:
    import os

    dst = Path(os.environ["MEDVIEWER_WORKSPACE"])
    shutil.copytree(src, dst)
    return dst


def _user_dir() -> Path:
    import os

    return Path(os.environ["MEDVIEWER_MODELS"])


def _registry():
    from medviewer.ai.registry import ModelRegistry

    return ModelRegistry()


def _open_dialog(window):
    window.actions_by_name["ai_finetune"].trigger()
    dlg = window._finetune_dialog
    dlg.select_base(BASE)
    assert dlg.base_ref() == BASE
    return dlg


def _kinds(events) -> list:
    return [e["event"] for e in events]


def test_menu_entries(window):
    acts = window.actions_by_name
    assert acts["ai_finetune"].shortcut().toString() == "Ctrl+Shift+F"
    menu_texts = [a.text() for a in window.ai.menu.actions()]
    assert "&Fine-tune…" in menu_texts and "Model &versions…" in menu_texts


def test_partial_json_lines_are_buffered(window):
    """A real child writes an event in two pieces, a non-JSON line and a last line without
    newline: each event arrives whole, once, in order."""
    ctl = window.finetune
    script = ("import sys, time\n"
              "w = sys.stdout.write\n"
              "w('{\"event\": \"sta'); sys.stdout.flush(); time.sleep(0.3)\n"
              "w('rt\", \"epochs\": 2}\\nnot json\\n'); sys.stdout.flush(); time.sleep(0.2)\n"
              "w('{\"event\": \"epoch\", \"epoch\": 1, \"train_loss\": 0.5, \"val_metric\": 0.7}\\n')\n"
              "w('{\"event\": \"done\", \"version\": \"9.9.9\"}')\n")
    seen = []
    ctl.sig_event.connect(seen.append)
    ctl._launch([], command=["-c", script])
    wait_until(lambda: not ctl.running, 30000)
    assert _kinds(seen) == ["start", "epoch", "done"]
    assert seen[0]["epochs"] == 2 and seen[1]["val_metric"] == 0.7
    assert "not json" in ctl.log_lines
    assert ctl.outcome == "done" and ctl.exit_code == 0


@pytest.mark.slow  # a training child process
def test_run_streams_events_and_survives_closing_the_dialog(window, qtbot, cls_workspace):
    from medviewer.ai.versions import active_version

    _use_workspace(cls_workspace)
    ctl = window.finetune
    dlg = _open_dialog(window)
    dlg.epochs.setValue(2)
    assert not dlg.advanced.body.isVisible() and dlg.advanced.extra_args() == []  # defaults
    dlg.advanced.setChecked(True)  # unfold: seed, learning rate and batch size reach the run
    dlg.advanced.seed.setValue(3)
    dlg.advanced.lr.setValue(0.001)
    dlg.advanced.batch.setValue(8)
    qtbot.mouseClick(dlg.start_button, Qt.MouseButton.LeftButton)
    assert ctl.running and not dlg.start_button.isEnabled() and dlg.cancel_button.isEnabled()

    wait_until(lambda: "epoch" in _kinds(ctl.events) or not ctl.running, 180000)
    assert ctl.running, f"run ended early: {ctl.outcome} {ctl.error} {ctl.stderr_tail()[-2000:]}"
    n_epochs = _kinds(ctl.events).count("epoch")
    assert len(dlg.plot.points()["train_loss"]) == n_epochs >= 1
    assert len(dlg.plot.points()["val_metric"]) == n_epochs
    assert dlg.progress.value() > 0

    dlg.close()  # the run belongs to the window's controller, not to the dialog
    wait_until(lambda: window._finetune_dialog is None, 5000)
    assert ctl.running and ctl.process is not None

    wait_until(lambda: not ctl.running, 240000)
    assert ctl.outcome == "done", f"{ctl.error}\n{ctl.stderr_tail()[-3000:]}"
    assert ctl.exit_code == 0
    kinds = _kinds(ctl.events)
    assert kinds[0] == "start" and kinds[-1] == "done" and "gate" in kinds
    epochs = [e for e in ctl.events if e["event"] == "epoch"]
    assert [e["epoch"] for e in epochs] == list(range(1, len(epochs) + 1)) and len(epochs) <= 2
    start, gate, done = ctl.events[0], ctl.gate, ctl.result
    assert start["base"] == BASE and done["version"] == start["candidate"].partition(":")[2]
    folder = Path(done["folder"])
    card = json.loads((folder / "model.json").read_text())
    assert card["parent_version"] == "1.0.0" and folder.parent.parent == _user_dir()
    cfg = card["training"]["config"]
    assert (cfg["seed"], cfg["lr"], cfg["batch_size"]) == (3, 0.001, 8)
    pointer = active_version(_registry(), "pneumonia-cxr")
    if done["promoted"]:
        assert gate["passed"] and pointer == done["version"]
    else:
        assert pointer != done["version"]
    assert any(c.ref == f"pneumonia-cxr:{done['version']}" for c in window.ai.ctl.cards)

    # opened again, the dialog replays the finished run: plot, gate result, report
    window.actions_by_name["ai_finetune"].trigger()
    dlg2 = window._finetune_dialog
    pts = dlg2.plot.points()
    assert [y for _, y in pts["val_metric"]] == [pytest.approx(e["val_metric"]) for e in epochs]
    assert len(pts["train_loss"]) == len(epochs) and pts["steps"]
    assert "Gate" in dlg2.result.text() and done["version"] in dlg2.result.text()
    assert dlg2.progress.value() == dlg2.progress.maximum()
    if Path(done["report"]).is_file():
        assert dlg2.report_button.isEnabled() and dlg2.report_view.toPlainText().strip()
    dlg2.close()

    # the versions panel lists the new version with its parent and metric
    window.actions_by_name["ai_versions"].trigger()
    panel = window._versions_dialog.panel
    panel.refresh("pneumonia-cxr")
    assert done["version"] in panel.versions()
    row = next(r for r in range(panel.table.rowCount())
               if panel.table.item(r, 1).text() == done["version"])
    assert panel.table.item(row, 2).text() == "1.0.0"
    assert panel.table.item(row, 3).text() != "—"
    window._versions_dialog.close()


@pytest.mark.slow  # a training child process
def test_cancel_stops_the_child_and_leaves_no_version(window, qtbot, cls_workspace):
    _use_workspace(cls_workspace)
    ctl = window.finetune
    dlg = _open_dialog(window)
    # many epochs and no early stopping, so the run is surely still training when cancelled
    assert ctl.start(BASE, epochs=300, margin=0.01, extra_args=["--patience", "1000"])
    wait_until(lambda: "progress" in _kinds(ctl.events) or not ctl.running, 180000)
    assert ctl.running, f"run ended early: {ctl.outcome} {ctl.error} {ctl.stderr_tail()[-2000:]}"
    pid = ctl.process.processId()
    assert dlg.cancel_button.isEnabled()
    qtbot.mouseClick(dlg.cancel_button, Qt.MouseButton.LeftButton)
    wait_until(lambda: not ctl.running, 30000)
    assert ctl.outcome == "cancelled" and ctl.exit_code == 130, ctl.stderr_tail()[-2000:]
    assert "done" not in _kinds(ctl.events)
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    model_dir = _user_dir() / "pneumonia-cxr"
    left = sorted(p.name for p in model_dir.iterdir()) if model_dir.is_dir() else []
    assert left == [], f"a cancelled run left {left}"  # no version, no staging, no pointer
    assert "Cancelled" in dlg.status.text() and dlg.start_button.isEnabled()


def test_build_failure_starts_no_process(window):
    """An empty workspace gives no training entries: nothing runs, the reason is shown."""
    ctl = window.finetune
    dlg = _open_dialog(window)
    assert dlg.start()
    wait_until(lambda: not ctl.running, 60000)
    assert ctl.outcome in ("rejected", "failed") and ctl.exit_code is None
    assert ctl.error and ctl.error in dlg.result.text().replace("&lt;", "<").replace("&gt;", ">")
    assert not (_user_dir() / "pneumonia-cxr").exists()


def _copy_version(version: str, corrupt: bool = False) -> Path:
    """The built-in pneumonia-cxr 1.0.0 copied into the user folder as another version."""
    src = MODELS / "pneumonia-cxr" / "1.0.0"
    dst = _user_dir() / "pneumonia-cxr" / version
    shutil.copytree(src, dst)
    card = json.loads((dst / "model.json").read_text())
    card.update(version=version, parent_version="1.0.0")
    (dst / "model.json").write_text(json.dumps(card, indent=1))
    if corrupt:
        with open(dst / card["weights"]["file"], "r+b") as fh:
            fh.seek(-16, 2)
            fh.write(b"\0" * 16)
    return dst


def test_versions_panel_promote_and_rollback(window, qtbot):
    from medviewer.ai.versions import active_version

    _copy_version("1.1.0")
    _copy_version("1.2.0", corrupt=True)
    window.actions_by_name["ai_versions"].trigger()
    panel = window._versions_dialog.panel
    panel.refresh("pneumonia-cxr")
    assert panel.versions() == ["1.0.0", "1.1.0", "1.2.0"]
    assert panel.active_row_version() == "1.0.0"  # no pointer: the highest built-in

    def click(button, version=None):
        if version is not None:
            assert panel.select_version(version)
        else:
            panel.table.clearSelection()
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        wait_until(lambda: not panel.busy, 30000)

    click(panel.promote_button, "1.1.0")
    assert active_version(_registry(), "pneumonia-cxr") == "1.1.0"
    assert panel.active_row_version() == "1.1.0"
    assert _registry().get("pneumonia-cxr").version == "1.1.0"

    click(panel.promote_button, "1.2.0")  # weights do not match their hash: refused
    assert "Could not promote" in panel.last_message
    assert active_version(_registry(), "pneumonia-cxr") == "1.1.0"

    click(panel.rollback_button, "1.0.0")
    assert active_version(_registry(), "pneumonia-cxr") == "1.0.0"
    assert panel.active_row_version() == "1.0.0"

    click(panel.rollback_button)  # nothing selected: back to the previously active version
    assert active_version(_registry(), "pneumonia-cxr") == "1.1.0"
    pointer = json.loads((_user_dir() / "pneumonia-cxr" / "active.json").read_text())
    assert [h["action"] for h in pointer["history"]][-3:] == ["promote", "rollback", "rollback"]


@pytest.mark.slow  # a training child process
def test_closing_the_window_stops_the_run(qtbot, cls_workspace):
    """The run outlives its dialog, not the app: closing the main window terminates the child,
    which removes its staging folder."""
    from medviewer.ui.main_window import MainWindow

    _use_workspace(cls_workspace)
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    ctl = win.finetune
    assert ctl.start(BASE, epochs=300, extra_args=["--patience", "1000"])
    wait_until(lambda: "start" in _kinds(ctl.events) or not ctl.running, 120000)
    assert ctl.running and ctl.process is not None
    pid = ctl.process.processId()
    win.close()
    win.bridge.shutdown()
    assert not ctl.running and ctl.outcome == "cancelled"
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    model_dir = _user_dir() / "pneumonia-cxr"
    assert not model_dir.is_dir() or list(model_dir.iterdir()) == []


def test_too_small_validation_set_is_explained_and_nothing_starts(window, tmp_path):
    """Four real corrected cases, one of them frozen for validation: the dialog says what the
    validation set lacks, no training process starts, no version appears."""
    import os

    import learn_fixtures
    from medviewer.storage.store import LabelStore

    with LabelStore(Path(os.environ["MEDVIEWER_WORKSPACE"])) as store:
        case = learn_fixtures.cls_cases(store, n=4, seed=0, val_minimum=False)
    n_val = sum(c["split"] == "val" for c in case["cases"])
    assert 1 <= n_val < 5
    ctl = window.finetune
    dlg = _open_dialog(window)
    assert dlg.start()
    wait_until(lambda: not ctl.running, 60000)
    assert ctl.outcome == "rejected" and ctl.process is None and ctl.exit_code is None
    assert ctl.validation["units"] == n_val and not ctl.validation["ok"]
    shown = dlg.result.toPlainText() if hasattr(dlg.result, "toPlainText") else dlg.result.text()
    assert "not gated: validation set too small" in shown
    assert f"{n_val} validation unit" in shown and "at least 5 needed" in shown
    assert "Not started" in dlg.status.text()
    assert any(line.strip().startswith("missing:") for line in ctl.log_lines)
    assert not (_user_dir() / "pneumonia-cxr").exists()
    # the minimum is an Advanced option, and reaches the trainer as flags
    dlg.advanced.setChecked(True)
    dlg.advanced.min_units.setValue(1)
    dlg.advanced.min_per_class.setValue(0)
    assert dlg.advanced.val_minimum() == (1, 0)
    args = dlg.advanced.extra_args()
    assert args[args.index("--min-val-units") + 1] == "1"
    assert args[args.index("--min-val-per-class") + 1] == "0"
    dlg.close()


def test_versions_panel_shows_the_gate_report_inside_the_app(window, qtbot):
    from medviewer.ai.training.gate import gate
    from medviewer.ai.training.report import write_report

    folder = _copy_version("1.1.0")
    ev = {"metric": "accuracy", "value": 0.9, "per_class": {"normal": 0.85, "pneumonia": 0.95},
          "n": 6, "rows": [[1.0]] * 5 + [[0.0]], "units": list("abcdef"),
          "unit_classes": {u: ["normal" if i % 2 else "pneumonia"] for i, u in
                           enumerate("abcdef")}, "ece": 0.05}
    g = gate(dict(ev, version="1.0.0"), dict(ev, version="1.1.0"), 0.01)
    write_report(folder, g, None, None)
    window.actions_by_name["ai_versions"].trigger()
    panel = window._versions_dialog.panel
    panel.refresh("pneumonia-cxr")
    assert panel.select_version("1.1.0") and panel.report_button.isEnabled()
    qtbot.mouseClick(panel.report_button, Qt.MouseButton.LeftButton)
    dlg = panel.report_dialog
    assert dlg is not None and dlg.isVisible()
    text = dlg.view.toPlainText()
    assert "candidate 1.1.0 vs active 1.0.0" in text and "PASSED" in text
    assert "bootstrap 95 % intervals" in text and "Calibration" in text
    from PIL import Image

    assert dlg.view.chart_size() == Image.open(folder / "report.png").size
    dlg.close()
    window._versions_dialog.close()
