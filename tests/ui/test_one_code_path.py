"""The app and `medviewer predict` run a model through the same code path
(medviewer.services.ai_runs): the same real DICOM radiograph, opened by the app's loader and
classified from the AI panel, gets the same probabilities as from the command line."""
import json

import pydicom.data
import pytest
from PySide6.QtCore import Qt

from ai_helpers import CLS_MODEL, models_isolated  # noqa: F401  (fixture)

from medviewer.cli import main as cli_main


def test_app_and_cli_classify_a_radiograph_identically(qtbot, window, tmp_path):
    path = pydicom.data.get_testdata_file("RG1_UNCI.dcm")
    with qtbot.waitSignal(window.loader.sig_finished, timeout=60000):
        window.open_paths([path])
    ann, ai = window.annotation.ctl, window.ai.ctl
    qtbot.waitUntil(lambda: ann.state is not None and ann.state.ready, timeout=30000)
    vol = window.session.active
    assert vol.invert and vol.shape[0] == 1  # MONOCHROME1, one image
    ai.select(next(c.ref for c in ai.cards if c.name == CLS_MODEL))
    with qtbot.waitSignal(ai.sig_classification, timeout=60000,
                          check_params_cb=lambda run: run is not None):
        qtbot.mouseClick(window.ai.panel.run_slice_button, Qt.MouseButton.LeftButton)
    app_run = ai.last_class

    out = tmp_path / "pred.jsonl"
    assert cli_main(["predict", "--model", CLS_MODEL, "--device", "cpu", str(path),
                     "--out", str(out)]) == 0
    (rec,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert rec["model"] == app_run.ref and rec["class"] == app_run.label
    assert rec["probabilities"] == pytest.approx(app_run.probs, abs=1e-6)
    stored = ann.store.get(app_run.record.id)
    assert stored.payload["prediction"]["probabilities"] == pytest.approx(rec["probabilities"],
                                                                          abs=1e-6)
    from medviewer.services.annotations import ood_score

    assert rec["in_domain"] == stored.payload["prediction"]["ood"]["in_domain"]
    assert ood_score(stored.payload) == pytest.approx(rec["ood_score"], abs=1e-6)


def test_app_and_cli_segment_a_ct_slice_identically(qtbot, window, tmp_path, chest_ct_dir):
    from medviewer.services.annotations import ood_score, read_label_file

    with qtbot.waitSignal(window.loader.sig_finished, timeout=120000):
        window.open_paths([str(chest_ct_dir)])
    ann, ai = window.annotation.ctl, window.ai.ctl
    qtbot.waitUntil(lambda: ann.state is not None and ann.state.ready, timeout=30000)
    vol = window.session.active
    z = 50
    _, y, x = window.session.cursor_zyx
    window.session.set_cursor_index((z, y, x))
    ai.select(next(c.ref for c in ai.cards if c.name == "ct-abdomen-organs"))
    with qtbot.waitSignal(ai.sig_segmentation, timeout=120000):
        ai.run_slice()
    app_run = ai.last_seg
    assert app_run.z == z and app_run.labels[z].any()

    out = tmp_path / "seg.nii.gz"
    assert cli_main(["predict", "--model", "ct-abdomen-organs", "--device", "cpu", "--slice",
                     str(z), str(chest_ct_dir), "--out", str(out)]) == 0
    labels, _table, _warnings = read_label_file(out, vol.geometry)
    assert (labels == app_run.labels).all()  # every voxel, on the volume grid
    side = json.loads(out.with_name("seg.labels.json").read_text())
    assert side["uncertainty"] == pytest.approx(app_run.uncertainty, abs=1e-6)
    stored = ann.store.get(app_run.record.id)
    assert stored.payload["extra"]["case_uncertainty"] == pytest.approx(side["uncertainty"],
                                                                         abs=1e-6)
    # the same out-of-distribution score, and the label history reads it from the record
    assert ood_score(stored.payload) == pytest.approx(side["ood_score"], abs=1e-6)
