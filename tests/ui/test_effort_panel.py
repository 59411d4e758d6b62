"""Effort dock on real corrections: a painted correction of a CT slice prediction and a
rejected classification each show up under the model version that made the prediction, with
the record's time, strokes and voxels; corrected cases leave the review queue."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from ai_helpers import CLS_MODEL, models_isolated, pneumonia_volume, seg_card, wait_until  # noqa: F401
from annot_helpers import drag, line, viewport_pos
from queue_helpers import classify, open_ready, segment_slice, wait_store_idle


def test_corrections_grouped_by_model_version(qtbot, chest_window, seg_card):
    win = chest_window
    ctl = win.annotation.ctl
    wait_until(lambda: ctl.state is not None and ctl.state.ready, 30000)
    st = ctl.state
    run = segment_slice(win, seg_card, 60)
    wait_store_idle(win)
    assert run.record.id in {it.record_id for it in win.review.queue.items}
    panel = win.review.effort
    assert panel.versions == [] and "No corrections" in panel.summary.text()

    win.actions_by_name["proposal_accept"].trigger()  # the proposal becomes the label map
    win.set_tool("brush")
    view = win.tri.views["axial"]
    drag(view.viewport(), line(viewport_pos(view, 200, 150), viewport_pos(view, 260, 150)))
    drag(view.viewport(), line(viewport_pos(view, 300, 300), viewport_pos(view, 300, 360)))
    with qtbot.waitSignal(ctl.sig_saved, timeout=30000) as sig:
        win.actions_by_name["labels_save"].trigger()
    rec = sig.args[0]
    assert rec.parent_id == run.record.id and rec.effort.voxels > 0 and rec.effort.strokes == 2
    wait_store_idle(win)
    assert run.record.id not in {it.record_id for it in win.review.queue.items}

    # a classification rejected on another image
    cls_st = open_ready(qtbot, win, pneumonia_volume(7)[0])
    classify(win)
    with qtbot.waitSignal(win.ai.ctl.sig_reviewed, timeout=20000) as sig2:
        win.ai.ctl.reject()
    review = sig2.args[0]
    wait_store_idle(win)

    by_ref = {v.model_ref: v for v in panel.versions}
    assert set(by_ref) == {seg_card.ref, f"{CLS_MODEL}:1.0.0"}
    seg = by_ref[seg_card.ref]
    assert (seg.cases, seg.strokes, seg.voxels) == (1, rec.effort.strokes, rec.effort.voxels)
    assert seg.seconds == pytest.approx(rec.effort.seconds)
    assert seg.voxels_per_case == pytest.approx(rec.effort.voxels)
    cls = by_ref[f"{CLS_MODEL}:1.0.0"]
    assert (cls.cases, cls.strokes, cls.voxels) == (1, 1, 0)
    assert cls.seconds == pytest.approx(review.effort.seconds)

    row = panel.version_row(seg_card.ref)
    assert row is not None and row.text(1) == "1" and row.text(4) == f"{rec.effort.voxels:,}".replace(",", " ")
    assert row.childCount() == 1
    child = row.child(0)
    assert child.data(0, Qt.ItemDataRole.UserRole) == rec.id
    assert child.text(0).startswith(st.image_hash[:12]) and "(corrected)" in child.text(0)
    crow = panel.version_row(f"{CLS_MODEL}:1.0.0")
    assert crow.childCount() == 1 and crow.child(0).text(0).startswith(cls_st.image_hash[:12])
    assert crow.child(0).data(0, Qt.ItemDataRole.UserRole) == review.id
    assert "2 model version(s), 2 corrected case(s)" in panel.summary.text()

    # the records the app made are a training set: the painted slice and the rejected class
    from medviewer.storage.manifest_build import build_manifest

    store = ctl.store
    seg_m, skipped = build_manifest(store, seg_card.name, "segmentation", list(seg_card.labels),
                                    2, out_dir=None)
    assert skipped == [] and [e.record_id for e in seg_m.entries] == [rec.id]
    entry = seg_m.entries[0]
    assert entry.target["slices"] == [60] and entry.predicted_by == seg_card.ref
    assert entry.image_hash == st.image_hash and entry.tag == "corrected"
    seg_m.verify()  # the image snapshot and the label file exist with their hashes
    cls_m, skipped = build_manifest(store, CLS_MODEL, "classification", ["normal", "pneumonia"],
                                    2)
    assert skipped == [] and len(cls_m.entries) == 1
    predicted = review.payload["review"]["prediction"]
    assert cls_m.entries[0].target["class"] == ({"normal", "pneumonia"} - {predicted}).pop()
    cls_m.verify()
