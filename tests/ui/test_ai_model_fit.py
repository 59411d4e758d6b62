"""The AI dock offers only the models that fit the image: on the real CR chest radiograph
(opened with the app's loader) the CT organ model is greyed with its reason and the default is
the radiograph classifier; on the chest CT it is the other way round. A model run anyway is
marked forced, and a result outside the training data carries the warning."""
from __future__ import annotations

import pydicom.data
from PySide6.QtCore import Qt

from ai_helpers import CLS_MODEL, models_isolated  # noqa: F401  (fixture)

CT_MODEL = "ct-abdomen-organs"


def _item(panel, name):
    for i in range(panel.models.count()):
        item = panel.models.item(i)
        if item.data(Qt.ItemDataRole.UserRole).split(":")[0] == name:
            return item
    raise AssertionError(f"{name} is not in the model list")


def _open(qtbot, window, path):
    with qtbot.waitSignal(window.loader.sig_finished, timeout=60000):
        window.open_paths([str(path)])
    ann = window.annotation.ctl
    qtbot.waitUntil(lambda: ann.state is not None and ann.state.ready, timeout=30000)


def test_ct_model_is_disabled_on_a_radiograph_with_its_reason(qtbot, window, chest_ct_dir):
    ai, panel = window.ai.ctl, window.ai.panel
    _open(qtbot, window, pydicom.data.get_testdata_file("RG1_UNCI.dcm"))
    assert window.session.active.modality == "CR"
    ct_item, cxr_item = _item(panel, CT_MODEL), _item(panel, CLS_MODEL)
    assert not ct_item.flags() & Qt.ItemFlag.ItemIsEnabled  # greyed, cannot be picked
    assert "not for this image" in ct_item.text()
    tip = ct_item.toolTip()
    assert "Not for this image" in tip and "CR" in tip and "CT" in tip
    assert "heart" in tip  # where it fails, from its card
    assert cxr_item.flags() & Qt.ItemFlag.ItemIsEnabled
    assert ai.card is not None and ai.card.name == CLS_MODEL  # the default fits the image
    assert panel.models.currentItem() is cxr_item
    assert panel.limits.isVisibleTo(panel) and "28x28" in panel.limits.text()
    ai.select(ai.cards[[c.name for c in ai.cards].index(CT_MODEL)].ref)
    assert ai.run_slice() is None  # not without "Run anyway"
    assert not panel.run_slice_button.isEnabled() and not panel.run_volume_button.isEnabled()

    _open(qtbot, window, chest_ct_dir)  # the active image changes: the list is re-checked
    assert _item(panel, CT_MODEL).flags() & Qt.ItemFlag.ItemIsEnabled
    assert not _item(panel, CLS_MODEL).flags() & Qt.ItemFlag.ItemIsEnabled
    assert ai.card.name == CT_MODEL and "heart" in panel.limits.text()


def test_run_anyway_is_marked_forced_and_out_of_distribution(qtbot, window, chest_ct_dir):
    ai, panel = window.ai.ctl, window.ai.panel
    _open(qtbot, window, chest_ct_dir)
    ref = next(c.ref for c in ai.cards if c.name == CLS_MODEL)
    with qtbot.waitSignal(ai.sig_classification, timeout=60000,
                          check_params_cb=lambda run: run is not None):
        ai.run_anyway(ref)
    run = ai.last_class
    assert run.forced and run.ood["in_domain"] is False
    stored = window.annotation.ctl.store.get(run.record.id)
    assert stored.preprocessing["forced"] is True and "CT" in stored.preprocessing["domain_mismatch"]
    pred = stored.payload["prediction"]
    assert pred["forced"] is True and pred["ood"]["in_domain"] is False
    assert pred["ood"]["ood_score"] == run.ood["ood_score"] > 1
    assert panel.trust.isVisibleTo(panel)
    text = panel.trust.text()
    assert "Forced run" in text and "Outside what this model was trained on" in text
