"""AI dock: classification on a real PneumoniaMNIST image (probabilities, 'predicted' record,
Accept / Reject / Change reviews), saliency overlay, device setting, model list."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PySide6.QtCore import Qt

from ai_helpers import CLS_MODEL, MODELS, REPO, isolate_user_models, open_ready, pneumonia_volume



@pytest.fixture(autouse=True)
def _models(tmp_path, monkeypatch):
    isolate_user_models(tmp_path, monkeypatch)


def _classify(qtbot, window, button: str = "run_slice_button", force: bool = False):
    ai = window.ai.ctl
    ref = next(c.ref for c in ai.cards if c.name == CLS_MODEL)
    ai.select(ref)
    with qtbot.waitSignal(ai.sig_classification, timeout=60000,
                          check_params_cb=lambda run: run is not None):
        if force:  # what "Run anyway" does once the user confirmed
            ai.run_anyway(ref)
        else:
            qtbot.mouseClick(getattr(window.ai.panel, button), Qt.MouseButton.LeftButton)
    return ai.last_class


def _store(window):
    return window.annotation.ctl.store


def test_startup_lists_models_without_torch(window):
    panel = window.ai.panel
    items = [panel.models.item(i).text() for i in range(panel.models.count())]
    assert any(t.startswith(f"{CLS_MODEL}:") and "classification" in t for t in items)
    tip = panel.models.item(0).toolTip()
    assert "accuracy" in tip or "dice" in tip.lower()
    assert panel.device_label.text().startswith(("CPU", "CUDA", "Auto", "MPS", "Apple"))
    combo = panel.device_combo
    enabled = {combo.itemData(i): combo.model().item(i).isEnabled() for i in range(combo.count())}
    assert enabled["auto"] and enabled["cpu"]


def test_device_preference_is_saved(window):
    panel = window.ai.panel
    panel.device_combo.setCurrentIndex(panel.device_combo.findData("cpu"))
    assert window.settings.value("ai/device") == "cpu"
    assert window.ai.ctl.worker.device_preference == "cpu"


def test_full_precision_setting_reaches_the_ai_lane(qtbot, window):
    panel, lane = window.ai.panel, window.ai.ctl.worker.lane
    assert lane.precision_preference == "auto" and not panel.fp32_check.isChecked()
    qtbot.mouseClick(panel.fp32_check, Qt.MouseButton.LeftButton)
    assert lane.precision_preference == "fp32"
    assert window.settings.value("ai/fp32") == "true"
    card = next(c for c in window.ai.ctl.cards if c.name == CLS_MODEL)
    assert lane.precision(card, "cpu") == "fp32"
    qtbot.mouseClick(panel.fp32_check, Qt.MouseButton.LeftButton)
    assert lane.precision_preference == "auto"


def test_classify_accept_stores_final_child(qtbot, window):
    vol, truth = pneumonia_volume(3)
    st = open_ready(qtbot, window, vol)
    run = _classify(qtbot, window)
    ai, panel = window.ai.ctl, window.ai.panel
    assert set(run.probs) == {"normal", "pneumonia"}
    assert sum(run.probs.values()) == pytest.approx(1.0, abs=1e-6)
    bars = panel.result.bar_values()
    assert sum(bars.values()) == pytest.approx(1.0, abs=2e-3)
    assert bars[run.label] == max(bars.values())
    assert window.ai.ctl.worker.last_thread != window.ai.ctl.worker.gui_thread

    store = _store(window)
    preds = store.records(st.image_hash, kind="case", tag="predicted")
    assert len(preds) == 1 and preds[0].id == run.record.id
    pred = preds[0]
    assert (pred.source.kind, pred.source.name, pred.source.version) == ("model", CLS_MODEL, "1.0.0")
    assert pred.payload["prediction"]["probabilities"] == pytest.approx(run.probs)
    assert 0.0 <= pred.payload["prediction"]["case_uncertainty"] <= 1.0
    assert pred.payload["series"] == {run.label: True}
    assert window.annotation.case_panel.get_state(run.label) is True  # the case panel shows it

    with qtbot.waitSignal(ai.sig_reviewed, timeout=10000) as sig:
        qtbot.mouseClick(panel.result.accept_button, Qt.MouseButton.LeftButton)
    rec = sig.args[0]
    assert (rec.tag, rec.parent_id, rec.source.kind) == ("final", pred.id, "person")
    assert rec.payload["series"] == {run.label: True}
    assert store.children(pred.id) == [rec]
    assert not panel.result.accept_button.isEnabled()  # one review per prediction


def test_change_and_reject_store_corrected_children(qtbot, window):
    vol, _ = pneumonia_volume(10)
    st = open_ready(qtbot, window, vol)
    ai, panel = window.ai.ctl, window.ai.panel
    run = _classify(qtbot, window)
    other = next(n for n in run.probs if n != run.label)
    assert panel.result.change_combo.currentText() == other
    with qtbot.waitSignal(ai.sig_reviewed, timeout=10000) as sig:
        qtbot.mouseClick(panel.result.change_button, Qt.MouseButton.LeftButton)
    changed = sig.args[0]
    assert (changed.tag, changed.parent_id) == ("corrected", run.record.id)
    assert changed.payload["series"] == {other: True, run.label: False}

    run2 = _classify(qtbot, window)  # the cached model runs again: a second prediction
    assert run2.record.id != run.record.id
    assert run2.probs == pytest.approx(run.probs)
    with qtbot.waitSignal(ai.sig_reviewed, timeout=10000) as sig:
        qtbot.mouseClick(panel.result.reject_button, Qt.MouseButton.LeftButton)
    rejected = sig.args[0]
    assert (rejected.tag, rejected.parent_id) == ("corrected", run2.record.id)
    assert rejected.payload["series"] == {run2.label: False}
    store = _store(window)
    assert len(store.records(st.image_hash, kind="case", tag="predicted")) == 2
    assert len(store.records(st.image_hash, kind="case", tag="corrected")) == 2


def test_saliency_overlay_on_the_image(qtbot, window):
    vol, _ = pneumonia_volume(0)
    open_ready(qtbot, window, vol)
    panel, ai = window.ai.panel, window.ai.ctl
    panel.saliency.setChecked(True)  # nothing classified yet: a message, no map
    assert "saliency" not in window.ai.heat.maps
    run = _classify(qtbot, window)
    assert run.saliency is not None and run.saliency_method == "grad_cam"
    view = window.tri.views[window.tri.views["axial"].reslicer.native_plane()]
    shown = view.heat.shown_image()
    assert shown is not None and shown.shape == (28, 28)
    assert shown.min() >= 0.0 and shown.max() <= 1.0 and np.ptp(shown) > 0.2  # not constant
    grad = shown.copy()

    with qtbot.waitSignal(ai.worker.sig_finished, timeout=60000):
        panel.saliency_method.setCurrentIndex(panel.saliency_method.findData("integrated_gradients"))
    ig = view.heat.shown_image()
    assert ig is not None and np.ptp(ig) > 0.2 and not np.allclose(ig, grad)
    assert window.actions_by_name["ai_saliency"].isChecked()

    panel.saliency.setChecked(False)
    assert view.heat.shown_image() is None
    panel.opacity.setValue(80)
    panel.colormap.setCurrentText("viridis")
    panel.saliency.setChecked(True)  # the map of the same method is shown again, no new job
    assert not ai.running
    lut = view.heat.item.lut
    assert lut[-1, 3] == round(255 * 0.8) and lut[0, 3] == 0


def test_main_window_with_the_ai_dock_starts_without_torch(tmp_path):
    code = ("import sys; from PySide6.QtWidgets import QApplication; app = QApplication([]); "
            "from medviewer.ui.main_window import MainWindow; w = MainWindow(); w.show(); "
            "app.processEvents(); n = w.ai.panel.models.count(); w.close(); "
            "print(n, 'torch' in sys.modules, 'monai' in sys.modules)")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", MEDVIEWER_SETTINGS_DIR=str(tmp_path / "s"),
               MEDVIEWER_WORKSPACE=str(tmp_path / "w"), MEDVIEWER_MODELS=str(tmp_path / "m"))
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    n, torch_loaded, monai_loaded = out.stdout.split()[-3:]
    assert int(n) >= 1 and torch_loaded == "False" and monai_loaded == "False"


def test_classify_a_ct_slice_is_slice_level_and_its_saliency_lies_on_that_slice(qtbot, chest_window):
    win = chest_window
    ctl = win.annotation.ctl
    qtbot.waitUntil(lambda: ctl.state is not None and ctl.state.ready, timeout=30000)
    win.ai.panel.saliency.setChecked(True)
    win.session.set_cursor_index((40, 256, 256))
    # the radiograph classifier does not fit a CT: it runs only when forced, and says so
    ai = win.ai.ctl
    ai.select(next(c.ref for c in ai.cards if c.name == CLS_MODEL))
    assert not win.ai.panel.is_model_enabled(ai.card.ref) and ai.run_slice() is None
    run = _classify(qtbot, win, force=True)
    assert run.z == 40 and run.forced and run.record.preprocessing["forced"] is True
    assert run.record.payload["slices"] == {"40": {run.label: True}} and run.record.payload["series"] == {}
    assert win.annotation.case_panel.labels().get_slice(40, run.label) is True
    axial, coronal = win.tri.views["axial"], win.tri.views["coronal"]
    assert axial.heat.shown_image() is not None and axial.heat.shown_image().shape == (512, 512)
    assert coronal.heat.shown_image() is None  # a slice's saliency is drawn on that slice only
    win.session.set_cursor_index((41, 256, 256))
    assert axial.heat.shown_image() is None
    win.session.set_cursor_index((40, 256, 256))
    assert axial.heat.shown_image() is not None


def test_import_model_folder_and_refuse_a_tampered_one(qtbot, window, tmp_path):
    ai = window.ai.ctl
    src = tmp_path / "incoming" / CLS_MODEL / "1.0.1"
    shutil.copytree(MODELS / CLS_MODEL / "1.0.0", src)
    card = json.loads((src / "model.json").read_text())
    card["version"], card["parent_version"] = "1.0.1", "1.0.0"
    (src / "model.json").write_text(json.dumps(card))
    with qtbot.waitSignal(ai.sig_models, timeout=60000):
        ai.import_folder(str(src))
    assert ai.card.ref == f"{CLS_MODEL}:1.0.1"
    panel = window.ai.panel
    assert any(panel.models.item(i).text().startswith(f"{CLS_MODEL}:1.0.1") for i in range(panel.models.count()))

    bad = tmp_path / "incoming2" / CLS_MODEL / "1.0.2"
    shutil.copytree(src, bad)
    card["version"] = "1.0.2"
    (bad / "model.json").write_text(json.dumps(card))
    with open(bad / card["weights"]["file"], "r+b") as fh:  # one flipped byte
        fh.seek(200)
        b = fh.read(1)
        fh.seek(200)
        fh.write(bytes([b[0] ^ 0xFF]))
    with qtbot.waitSignal(ai.sig_error, timeout=60000) as sig:
        ai.import_folder(str(bad))
    assert "import" in sig.args[0].lower() and ("hash" in sig.args[1].lower() or "sha" in sig.args[1].lower())
    assert f"{CLS_MODEL}:1.0.2" not in [c.ref for c in ai.cards]
