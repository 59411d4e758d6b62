"""AI segmentation in the UI on the real chest CT: a slice prediction becomes a 'predicted'
label-map record and a proposal that, once accepted, is edited and saved as a 'corrected'
child; the entropy
overlay lies in all three planes and 'Go to most uncertain slice' goes to its argmax."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from medviewer.core.foreground import foreground_slice

from ai_helpers import models_isolated, seg_card, wait_until  # noqa: F401  (fixtures)
from annot_helpers import drag, line, viewport_pos




def _segment(qtbot, window, card, button: str, timeout: int = 120000):
    ai = window.ai.ctl
    ai.select(card.ref)
    before = ai.last_seg
    qtbot.mouseClick(getattr(window.ai.panel, button), Qt.MouseButton.LeftButton)
    wait_until(lambda: ai.last_seg is not before and not ai.running, timeout)
    return ai.last_seg


def test_slice_prediction_is_a_proposal_and_accepted_saves_a_corrected_child(qtbot, chest_window,
                                                                            seg_card):
    win = chest_window
    ctl = win.annotation.ctl
    wait_until(lambda: ctl.state is not None and ctl.state.ready, 30000)
    st = ctl.state
    z = 60
    win.session.set_cursor_index((z, 256, 256))
    run = _segment(qtbot, win, seg_card, "run_slice_button")
    assert run.z == z
    store = ctl.store
    preds = store.records(st.image_hash, kind="labelmap", tag="predicted")
    assert [p.id for p in preds] == [run.record.id]
    pred = preds[0]
    assert (pred.source.kind, pred.source.name, pred.source.version) == ("model", seg_card.name, seg_card.version)
    assert pred.preprocessing["input"]["spacing"] == seg_card.input["spacing"]
    assert "case_uncertainty" in pred.payload["extra"]
    stored = store.load_labels(pred)
    assert np.array_equal(stored, run.labels)
    assert not stored[:z].any() and not stored[z + 1:].any()  # only the slice that was run
    # the prediction is a proposal over the (still absent) label map, not the label map
    prop = ctl.proposal
    assert prop is not None and prop.record_id == pred.id and prop.z == z
    assert np.array_equal(prop.labels, run.labels)
    assert ctl.labelmap is None and not st.dirty
    # accepting it makes it the label map (one undo step); the next save is its child
    win.actions_by_name["proposal_accept"].trigger()
    assert ctl.proposal is None and np.array_equal(ctl.labelmap.labels, run.labels)
    assert st.base_record_id == pred.id and st.dirty and len(ctl.undo_stack) == 1

    # paint a stroke with the brush on the axial view, then Save
    win.set_tool("brush")
    view = win.tri.views["axial"]
    before = ctl.labelmap.labels.copy()
    a, b = viewport_pos(view, 200, 150), viewport_pos(view, 260, 150)
    drag(view.viewport(), line(a, b))
    changed = np.flatnonzero(before.reshape(-1) != ctl.labelmap.labels.reshape(-1))
    assert changed.size > 0
    with qtbot.waitSignal(ctl.sig_saved, timeout=20000) as sig:
        win.actions_by_name["labels_save"].trigger()
    rec = sig.args[0]
    assert (rec.tag, rec.parent_id, rec.kind) == ("corrected", pred.id, "labelmap")
    saved = store.load_labels(rec)
    assert np.array_equal(saved, ctl.labelmap.labels)
    assert not np.array_equal(saved, stored)


def test_uncertainty_overlay_and_most_uncertain_slice(qtbot, chest_window, seg_card):
    win = chest_window
    ctl = win.annotation.ctl
    wait_until(lambda: ctl.state is not None and ctl.state.ready, 30000)
    win.session.set_cursor_index((10, 256, 256))
    run = _segment(qtbot, win, seg_card, "run_volume_button", timeout=300000)
    assert run.z is None and run.entropy is not None
    assert win.ai.heat.current() is None  # off by default: the labels are shown first
    win.ai.panel.uncertainty.setChecked(True)
    heat = win.ai.heat.current()
    assert heat is not None and heat.kind == "uncertainty" and heat.slice_z is None
    body = foreground_slice(win.session.active.array[10])
    assert not heat.data[10][~body].any()  # no heat on the air around the body
    for plane, view in win.tri.views.items():  # the entropy lies in all three planes
        img = view.heat.shown_image()
        assert img is not None, plane
        assert 0.0 <= img.min() and img.max() <= 1.0 and np.ptp(img) > 0.0, plane
    per_slice = heat.data.astype(np.float32).mean(axis=(1, 2))
    win.actions_by_name["ai_goto_uncertain"].trigger()
    assert win.session.cursor_zyx[0] == int(np.argmax(per_slice))
    rec = ctl.store.get(run.record.id)
    assert rec.payload["extra"]["most_uncertain_slice"] == int(np.argmax(per_slice))
    win.ai.panel.uncertainty.setChecked(False)
    assert all(v.heat.shown_image() is None for v in win.tri.views.values())


def _card(window, name: str):
    return next(c for c in window.ai.ctl.cards if c.name == name)


def test_mc_dropout_variance_overlay_on_a_slice(qtbot, chest_window, seg_card):
    """MC-dropout variance (the CT model has dropout 0.1) replaces the entropy in the overlay;
    the record notes the method; classifiers without dropout cannot choose it."""
    win, panel = chest_window, chest_window.ai.panel
    ctl = win.annotation.ctl
    wait_until(lambda: ctl.state is not None and ctl.state.ready, 30000)
    # the choices follow the real model cards
    panel_refs = {c.name: c for c in win.ai.ctl.cards}
    assert {"pneumonia-cxr", "pneumonia-cxr-smallcnn", seg_card.name} <= set(panel_refs)
    win.ai.ctl.select(_card(win, "pneumonia-cxr").ref)  # MONAI ResNet-18: no dropout
    assert not panel.method_enabled("mc_dropout") and panel.method_enabled("entropy")
    win.ai.ctl.select(_card(win, "pneumonia-cxr-smallcnn").ref)
    assert panel.method_enabled("mc_dropout")
    win.ai.ctl.select(seg_card.ref)
    assert panel.method_enabled("mc_dropout") and panel.method_enabled("tta")
    panel.uncertainty_method.setCurrentIndex(panel.uncertainty_method.findData("mc_dropout"))
    assert win.ai.ctl.uncertainty_method == "mc_dropout"
    assert "entropy" in panel.uncertainty_method.toolTip().lower()

    z = 60
    win.session.set_cursor_index((z, 256, 256))
    run = _segment(qtbot, win, seg_card, "run_slice_button")
    assert run.z == z and run.uncertainty_method == "mc_dropout" and run.variance is not None
    panel.uncertainty.setChecked(True)
    heat = win.ai.heat.current()
    assert heat is not None and heat.kind == "uncertainty" and heat.title == "mc_dropout"
    assert heat.slice_z == z
    shown = win.tri.views["axial"].heat.shown_image()
    assert shown is not None and np.ptp(shown) > 0.0
    var_z = heat.data[z].astype(np.float32)
    assert 0.0 <= var_z.min() and var_z.max() <= 1.0
    assert np.ptp(var_z) > 0.1  # not constant: high variance at organ borders
    ent_z = run.entropy[z].astype(np.float32)
    assert np.abs(var_z - ent_z).mean() > 1e-3  # a different map from the entropy
    assert not heat.data[:z].any() and not heat.data[z + 1:].any()
    # the case score and the most uncertain slice still come from the entropy
    rec = ctl.store.get(run.record.id)
    assert rec.preprocessing["uncertainty_method"] == "mc_dropout"
    assert rec.payload["extra"]["uncertainty_method"] == "mc_dropout"
    assert rec.payload["extra"]["variance_scale"] > 0.0
    assert rec.payload["extra"]["most_uncertain_slice"] == z
    import os

    if os.environ.get("MEDVIEWER_SCREENSHOT"):
        win.grab().save(os.environ["MEDVIEWER_SCREENSHOT"])
