"""AI segmentation in the UI on the real chest CT: a slice prediction becomes a 'predicted'
label-map record and the editable label map (Save writes a 'corrected' child); the entropy
overlay lies in all three planes and 'Go to most uncertain slice' goes to its argmax."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from ai_helpers import isolate_user_models, segmentation_cards
from annot_helpers import drag, line, viewport_pos


@pytest.fixture(autouse=True)
def _models(tmp_path, monkeypatch):
    isolate_user_models(tmp_path, monkeypatch)


@pytest.fixture
def seg_card(_models):
    cards = segmentation_cards()
    if not cards:
        pytest.fail("the built-in segmentation model is missing from models/")
    return cards[-1]


def _segment(qtbot, window, card, button: str, timeout: int = 120000):
    ai = window.ai.ctl
    ai.select(card.ref)
    with qtbot.waitSignal(ai.sig_segmentation, timeout=timeout):
        qtbot.mouseClick(getattr(window.ai.panel, button), Qt.MouseButton.LeftButton)
    return ai.last_seg


def test_slice_prediction_becomes_editable_and_saves_a_corrected_child(qtbot, chest_window, seg_card):
    win = chest_window
    ctl = win.annotation.ctl
    qtbot.waitUntil(lambda: ctl.state is not None and ctl.state.ready, timeout=30000)
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
    # the prediction is the editable label map, based on the predicted record
    assert ctl.labelmap is not None and np.array_equal(ctl.labelmap.labels, run.labels)
    assert st.base_record_id == pred.id and not st.dirty
    assert win.session.overlay is ctl.labelmap

    # paint a stroke with the brush on the axial view, then Save
    win.set_tool("brush")
    view = win.tri.views["axial"]
    before = ctl.labelmap.labels.copy()
    a, b = viewport_pos(view, 200, 150), viewport_pos(view, 260, 150)
    drag(view.viewport(), line(a, b))
    assert st.dirty
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
    qtbot.waitUntil(lambda: ctl.state is not None and ctl.state.ready, timeout=30000)
    win.session.set_cursor_index((10, 256, 256))
    run = _segment(qtbot, win, seg_card, "run_volume_button", timeout=300000)
    assert run.z is None and run.entropy is not None
    heat = win.ai.heat.current()
    assert heat is not None and heat.kind == "uncertainty" and heat.slice_z is None
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
