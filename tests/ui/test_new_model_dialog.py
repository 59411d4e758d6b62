"""AI > New model…: the form is checked as it is typed (the same service as ``models new``),
Create makes the untrained first version on the AI worker, and the AI panel never offers it
for runs; the Fine-tune dialog lists it as a base."""
from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt

from ai_helpers import isolate_user_models


@pytest.fixture(autouse=True)
def _models(tmp_path, monkeypatch):
    isolate_user_models(tmp_path, monkeypatch)


def _dialog(window):
    from medviewer.ui.ai.new_model_dialog import NewModelDialog

    window.actions_by_name["ai_new_model"].trigger()
    dlg = window.findChild(NewModelDialog, "newModelDialog")
    assert dlg is not None and dlg.isVisible()
    return dlg


def test_the_form_says_what_is_wrong_before_anything_is_made(qtbot, window):
    assert window.actions_by_name["ai_new_model"].text() == "&New model…"
    dlg = _dialog(window)
    assert not dlg.create_button.isEnabled()  # empty name
    assert "name" in dlg.message.text()
    qtbot.keyClicks(dlg.name, "U S/")  # the validator keeps only what a folder name allows
    assert dlg.name.text() == ""
    qtbot.keyClicks(dlg.name, "pneumonia-cxr")
    assert "exists already" in dlg.message.text() and not dlg.create_button.isEnabled()
    dlg.name.setText("us-anatomy")
    qtbot.keyClicks(dlg.labels, "femur")
    assert "at least two classes" in dlg.message.text()
    qtbot.keyClicks(dlg.labels, ", neck, heart")
    assert dlg.create_button.isEnabled()
    assert "us-anatomy:0.0.0" in dlg.message.text() and "untrained" in dlg.message.text()
    # a segmentation base is offered only for a segmentation model
    bases = [dlg.base.itemData(i) for i in range(dlg.base.count())]
    assert "pneumonia-cxr:1.0.0" in bases and "ct-abdomen-organs:1.0.0" not in bases
    dlg.task.setCurrentText("segmentation")
    bases = [dlg.base.itemData(i) for i in range(dlg.base.count())]
    assert "ct-abdomen-organs:1.0.0" in bases and "pneumonia-cxr:1.0.0" not in bases
    assert dlg.spacing.isEnabled()
    dlg.size.setValue(100)
    assert "multiple of 16" in dlg.message.text() and not dlg.create_button.isEnabled()
    dlg.close()


def test_create_makes_an_untrained_model_the_panel_does_not_offer(qtbot, window, tmp_path):
    dlg = _dialog(window)
    dlg.name.setText("us-anatomy")
    dlg.labels.setText("femur, neck, heart")
    dlg.base.setCurrentIndex(dlg.base.findData("pneumonia-cxr:1.0.0"))
    dlg.size.setValue(48)
    dlg.modality.setCurrentText("US")
    dlg.region.setText("neck and thigh")
    ctl = window.ai.ctl
    with qtbot.waitSignal(ctl.sig_model_created, timeout=300000):
        qtbot.mouseClick(dlg.create_button, Qt.MouseButton.LeftButton)
    assert dlg.created is not None and dlg.created.ref == "us-anatomy:0.0.0"
    assert "Made <b>us-anatomy:0.0.0</b>" in dlg.message.text()
    assert "123 weight tensors copied from pneumonia-cxr:1.0.0, 2 skipped" in dlg.message.text()
    assert not dlg.create_button.isEnabled()
    folder = tmp_path / "user-models" / "us-anatomy" / "0.0.0"
    card = json.loads((folder / "model.json").read_text())
    assert card["training"]["untrained"] is True
    assert card["input"]["size"] == [48, 48] and card["domain"]["modalities"] == ["US"]
    assert card["training"]["command"] == "AI > New model… in the app"
    # listed nowhere a model runs from, but a base to fine-tune
    assert "us-anatomy" not in {c.name for c in ctl.cards}
    panel = window.ai.panel
    assert not any(panel.models.item(i).text().startswith("us-anatomy")
                   for i in range(panel.models.count()))
    assert "us-anatomy" in {c.name for c in ctl.catalog.list()}
    dlg.close()
