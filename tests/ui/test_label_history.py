"""Label history and saving on the real chest CT: open an earlier record (undoable), compare
two (Dice per label, differing voxels), revert to one as a NEW record; a save without change
stores nothing and says so where it can be seen; unsaved strokes are asked about on close and
on switching series (Save / Discard / Cancel)."""
from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QMessageBox

from annot_helpers import click, viewport_pos

from medviewer.core.label_compare import compare_labels

Button = QMessageBox.StandardButton


def _paint(win, row, col, label, z=50, radius=8.0):
    ax = win.tri.views["axial"]
    win.session.set_cursor_index((z, 256, 256))
    win.set_tool("brush")
    win.annotation.options.set(radius_mm=radius)
    win.annotation.ctl.active_label = label
    click(ax.viewport(), viewport_pos(ax, row, col))


def _save(qtbot, win):
    with qtbot.waitSignal(win.annotation.ctl.sig_saved, timeout=30000) as sig:
        win.actions_by_name["labels_save"].trigger()
    return sig.args[0]


def _two_records(qtbot, win):
    ctl = win.annotation.ctl
    _paint(win, 200, 200, 1)
    _paint(win, 300, 300, 2)
    first, a = _save(qtbot, win), ctl.labelmap.labels.copy()
    _paint(win, 205, 210, 2, radius=6.0)  # over label 1 in part
    _paint(win, 120, 350, 3)
    second, b = _save(qtbot, win), ctl.labelmap.labels.copy()
    return first, a, second, b


def test_open_compare_and_revert_from_the_history_panel(qtbot, annot):
    win = annot
    ctl, panel = win.annotation.ctl, win.annotation.history_panel
    first, a, second, b = _two_records(qtbot, win)
    win.actions_by_name["labels_history"].trigger()
    assert win.docks["historyDock"].isVisible()
    assert [e.id for e in panel.entries] == [second.id, first.id]  # newest first
    assert panel.table.item(0, 0).text() == "●" and panel.table.item(1, 0).text() == ""
    assert panel.table.item(1, 1).text() == "corrected"
    assert panel.table.item(0, 4).text().split(" / ")[1] == str(second.effort.strokes) == "2"
    assert panel.table.isColumnHidden(5)  # no record carries an OOD score

    # compare the two records
    panel.select_ids([first.id, second.id])
    assert panel.compare_button.isEnabled() and not panel.open_button.isEnabled()
    panel.compare_button.click()
    qtbot.waitUntil(lambda: panel.last_comparison is not None, timeout=30000)
    expected = compare_labels(a, b)
    got = panel.last_comparison
    assert got.differ == expected.differ == int(np.count_nonzero(a != b)) > 0
    assert set(got.dice) == {1, 2, 3} and got.dice == expected.dice
    assert 0.0 < got.dice[1] < 1.0 and got.dice[3] == 0.0
    assert "voxels differ" in panel.result.text() and "Dice" in panel.result.text()

    # open the earlier record: it is the label map, and Ctrl+Z goes back
    panel.select_ids([first.id])
    with qtbot.waitSignal(ctl.sig_base_changed, timeout=30000):
        panel.open_button.click()
    assert np.array_equal(ctl.labelmap.labels, a)
    assert ctl.state.base_record_id == first.id and not ctl.state.dirty
    assert panel.table.item(1, 0).text() == "●"
    win.actions_by_name["undo"].trigger()
    assert np.array_equal(ctl.labelmap.labels, b) and ctl.state.base_record_id == second.id
    win.actions_by_name["redo"].trigger()
    assert np.array_equal(ctl.labelmap.labels, a) and ctl.state.base_record_id == first.id

    # revert to the first record: a NEW record, child of it; nothing older changes. The
    # redo counts as an unsaved change, so reverting asks first (Discard: back to the base)
    n_before = len(ctl.store.records(ctl.state.image_hash, kind="labelmap"))
    panel.select_ids([first.id])
    with qtbot.waitSignal(ctl.sig_saved, timeout=30000) as sig:
        panel.revert_button.click()
        win.annotation.unsaved.question.button(QMessageBox.StandardButton.Discard).click()
    rev = sig.args[0]
    recs = ctl.store.records(ctl.state.image_hash, kind="labelmap")
    assert len(recs) == n_before + 1 and recs[-1].id == rev.id
    assert (rev.tag, rev.parent_id, rev.payload["extra"]["reverted_to"]) == ("corrected", first.id, first.id)
    assert np.array_equal(ctl.store.load_labels(rev), a)
    assert np.array_equal(ctl.store.load_labels(second), b)  # history untouched
    assert panel.entries[0].id == rev.id and panel.table.item(0, 0).text() == "●"
    assert panel.table.item(0, 1).text() == "corrected ↩"
    panel.select_ids([rev.id])
    assert f"reverted to {first.id[:8]}" in panel.result.text()


def test_save_without_change_stores_nothing_and_the_message_is_visible(qtbot, annot):
    win = annot
    ctl = win.annotation.ctl
    _paint(win, 220, 220, 1)
    _save(qtbot, win)
    n = len(ctl.store.records())
    win.actions_by_name["labels_save"].trigger()
    qtbot.wait(300)  # a store job would have been started synchronously; give it time anyway
    assert len(ctl.store.records()) == n and not ctl.busy
    msg = win.statusBar().currentMessage()
    assert msg == "No changes since the last save: nothing stored"
    # the message has room: the cursor readout no longer stretches over the status bar
    win.session.set_cursor_index((50, 100, 100))
    qtbot.wait(50)
    sb, readout = win.statusBar(), win.readout
    assert readout.text().startswith("Cursor:")
    assert readout.x() > sb.fontMetrics().horizontalAdvance(msg)
    # 'Mark final' is a new decision even without a change
    with qtbot.waitSignal(ctl.sig_saved, timeout=30000) as sig:
        win.actions_by_name["labels_final"].trigger()
    assert sig.args[0].tag == "final" and len(ctl.store.records()) == n + 1


def test_closing_with_unsaved_strokes_asks_save_discard_cancel(qtbot, annot):
    from medviewer.storage.journal import pending

    win = annot
    ctl, guard = win.annotation.ctl, win.annotation.unsaved
    _paint(win, 240, 240, 1)
    assert ctl.state.dirty
    win.close()
    box = guard.question
    assert box is not None and box.objectName() == "unsavedQuestion" and win.isVisible()
    box.button(Button.Cancel).click()  # Cancel: the window stays, nothing is stored
    assert win.isVisible() and guard.question is None and ctl.state.dirty
    assert ctl.store.records() == []
    win.close()
    with qtbot.waitSignal(ctl.sig_saved, timeout=30000) as sig:
        guard.question.button(Button.Save).click()  # Save: stored, then the window closes
    qtbot.waitUntil(lambda: not win.isVisible(), timeout=10000)
    rec = sig.args[0]
    assert rec.tag == "corrected" and np.array_equal(ctl.store.load_labels(rec) != 0,
                                                     ctl.labelmap.labels != 0)
    assert pending(ctl.workspace, ctl.state.image_hash) == []


def test_discard_on_close_and_on_switching_series(qtbot, annot):
    from medviewer.storage.journal import pending

    win = annot
    ctl, guard = win.annotation.ctl, win.annotation.unsaved
    _paint(win, 240, 240, 1)
    saved = _save(qtbot, win)
    base = ctl.labelmap.labels.copy()
    _paint(win, 100, 100, 2)
    # switching series: Discard puts the label map back to the saved record
    switched = []
    assert not win.confirm_leave("switching series", lambda: switched.append(True))
    guard.question.button(Button.Discard).click()
    qtbot.waitUntil(lambda: switched == [True], timeout=30000)
    assert np.array_equal(ctl.labelmap.labels, base) and not ctl.state.dirty
    assert ctl.state.base_record_id == saved.id and not ctl.undo_stack.can_undo
    assert win.confirm_leave("switching series", lambda: switched.append(False))  # nothing to ask
    # closing: Discard closes at once; no journal is left to recover next time
    _paint(win, 150, 150, 2)
    win.close()
    guard.question.button(Button.Discard).click()
    assert not win.isVisible()
    assert pending(ctl.workspace, ctl.state.image_hash) == []
    assert [r.id for r in ctl.store.records(kind="labelmap")] == [saved.id]


def test_opening_other_images_with_unsaved_strokes_asks_first(qtbot, annot):
    import pydicom.data

    win = annot
    ctl, guard = win.annotation.ctl, win.annotation.unsaved
    ct = win.session.active
    _paint(win, 240, 240, 1)
    path = pydicom.data.get_testdata_file("RG1_UNCI.dcm")
    win.open_paths([path])  # File > Open, recent files, drag and drop all come here
    assert guard.question is not None and win.session.active is ct  # nothing opened yet
    guard.question.button(Button.Cancel).click()
    assert win.session.active is ct and ctl.state.dirty
    win.open_paths([path])
    with qtbot.waitSignal(ctl.sig_saved, timeout=30000):
        guard.question.button(Button.Save).click()
    qtbot.waitUntil(lambda: win.session.active is not ct, timeout=60000)
    assert win.session.active.shape[0] == 1  # the radiograph, after the strokes were stored
