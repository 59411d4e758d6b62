"""Review queue dock on real predictions: ranked by the stored case uncertainty, double-click
reopens the right image (from its source files, or from the store's snapshot when they are
gone), 'Mark as validation' freezes the case's split units, 'next case' walks the queue and a
reviewed case leaves it."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from PySide6.QtCore import Qt

from ai_helpers import CLS_MODEL, models_isolated, pneumonia_volume, seg_card, wait_until  # noqa: F401
from queue_helpers import (CHEST_CT, chest_ct_io, classify, double_click_row, open_ready, refresh,
                           segment_slice, wait_opened, wait_store_idle)


def _uncertainty(rec) -> float:
    if rec.kind == "case":
        return rec.payload["prediction"]["case_uncertainty"]
    return rec.payload["extra"]["case_uncertainty"]


def test_classification_queue_order_open_snapshot_validation_next(qtbot, window):
    vols = [pneumonia_volume(i)[0] for i in (0, 5, 11, 17)]
    hashes = []
    for v in vols:
        st = open_ready(qtbot, window, v)
        hashes.append(st.image_hash)
        classify(window)
    wait_store_idle(window)
    panel = window.review.queue
    store = window.annotation.ctl.store
    items = refresh(panel)
    preds = store.records(kind="case", tag="predicted")
    assert len(preds) == 4 and {p.image_hash for p in preds} == set(hashes)
    expected = sorted(preds, key=lambda r: -_uncertainty(r))
    assert [it.record_id for it in items] == [r.id for r in expected]
    assert [it.uncertainty for it in items] == pytest.approx([_uncertainty(r) for r in expected])
    assert len({round(it.uncertainty, 6) for it in items}) == 4  # a real ranking, not ties
    table = panel.table
    assert table.rowCount() == 4
    assert [table.item(r, 0).text() for r in range(4)] == ["1", "2", "3", "4"]
    shown = [float(table.item(r, 1).text()) for r in range(4)]
    assert shown == sorted(shown, reverse=True)
    assert {table.item(r, 2).text() for r in range(4)} == {f"{CLS_MODEL}:1.0.0"}
    assert {table.item(r, 3).text() for r in range(4)} == {"classification"}

    # double-click a case whose image was closed: no source files -> the store's snapshot
    row = next(r for r, it in enumerate(items) if it.image_hash != hashes[-1])
    target = items[row]
    original = vols[hashes.index(target.image_hash)]
    window.session.remove_volume(original)
    opened = wait_opened(window, panel, lambda: double_click_row(table, row))
    assert opened.origin == "snapshot" and opened.image_hash == target.image_hash
    active = window.session.active
    assert active is opened.volume
    assert np.array_equal(active.array, original.array) and active.array.dtype == original.array.dtype
    assert window.annotation.ctl.state.image_hash == target.image_hash  # labels attach to it
    assert window.annotation.ctl.state.case_record_id == target.record_id

    # double-click a case that is still open: that volume becomes active again (no copy)
    row_open = next(r for r, it in enumerate(items) if it.image_hash == hashes[-1])
    opened2 = wait_opened(window, panel, lambda: double_click_row(table, row_open))
    assert window.session.active is vols[-1] and opened2.image_hash == hashes[-1]

    # 'next case' opens the queue entry after the active image's
    acts = window.actions_by_name
    assert acts["review_next"].shortcut().toString() == "N"
    nxt = items[(row_open + 1) % 4]
    wait_opened(window, panel, acts["review_next"].trigger)
    assert window.annotation.ctl.state.image_hash == nxt.image_hash

    # Mark as validation: the image hash is the unit of a classification model
    panel.table.selectRow(2)
    marked = []
    panel.sig_marked.connect(lambda m, s: marked.append((m, s)))
    qtbot.mouseClick(panel.val_button, Qt.MouseButton.LeftButton)
    wait_until(lambda: bool(marked), 30000)
    assert marked[0] == (CLS_MODEL, {items[2].image_hash: "val"})
    assert store.splits(CLS_MODEL) == {items[2].image_hash: "val"}
    assert store.split_of(CLS_MODEL, items[2].image_hash) == "val"

    # accepting a prediction takes the case out of the queue (refreshed by itself)
    ai = window.ai.ctl
    st = open_ready(qtbot, window, pneumonia_volume(23)[0])
    classify(window)
    wait_store_idle(window)
    assert len(panel.items) == 5
    with qtbot.waitSignal(ai.sig_reviewed, timeout=20000):
        ai.accept()
    wait_store_idle(window)
    assert st.image_hash not in {it.image_hash for it in panel.items}
    assert [it.record_id for it in panel.items] == [it.record_id for it in items]


def test_segmentation_case_reopens_from_sources_then_snapshot(qtbot, window, seg_card, tmp_path):
    copy = tmp_path / "ct"
    shutil.copytree(CHEST_CT, copy)
    vol = chest_ct_io(copy)
    assert vol.source_paths and all(str(p).startswith(str(copy)) for p in vol.source_paths)
    st = open_ready(qtbot, window, vol)
    z = 60
    run = segment_slice(window, seg_card, z)
    wait_store_idle(window)
    store = window.annotation.ctl.store
    assert store.has_image(st.image_hash)  # the snapshot went in with the prediction
    panel = window.review.queue
    items = refresh(panel)
    assert [it.record_id for it in items] == [run.record.id]
    assert items[0].uncertainty == pytest.approx(_uncertainty(run.record))
    assert items[0].kind == "labelmap" and panel.table.item(0, 3).text() == "segmentation"

    # closed, reopened from its DICOM files: same hash, the prediction's slice, its labels
    window.session.remove_volume(vol)
    opened = wait_opened(window, panel, lambda: double_click_row(panel.table, 0))
    assert opened.origin == "sources"
    ctl = window.annotation.ctl
    assert ctl.state.image_hash == st.image_hash and window.session.cursor_zyx[0] == z
    wait_until(lambda: ctl.proposal is not None, 30000)  # offered again, not applied
    assert ctl.proposal.record_id == run.record.id and ctl.proposal.z == z
    assert np.array_equal(ctl.proposal.labels, run.labels) and ctl.labelmap is None

    # Mark as validation: a 2D model splits by slabs of 8 slices that hold labels
    labels = store.load_labels(run.record)
    zs = np.flatnonzero(labels.reshape(labels.shape[0], -1).any(axis=1))
    slabs = sorted({f"{st.image_hash}:z{int(k) // 8}" for k in zs}) or \
        [f"{st.image_hash}:z{k}" for k in range((labels.shape[0] + 7) // 8)]
    marked = []
    panel.sig_marked.connect(lambda m, s: marked.append(s))
    panel.mark_validation(0)
    wait_until(lambda: bool(marked), 30000)
    assert sorted(marked[0]) == slabs
    assert store.splits(seg_card.name) == {u: "val" for u in slabs}

    # the sources are gone: the snapshot gives the same image back
    window.session.remove_volume(window.session.active)
    shutil.rmtree(copy)
    opened = wait_opened(window, panel, lambda: double_click_row(panel.table, 0))
    assert opened.origin == "snapshot"
    assert np.array_equal(window.session.active.array, vol.array)
    assert ctl.state.image_hash == st.image_hash
