"""Saving while painting, on the real chest CT with real mouse events and shortcuts: Ctrl+S in
the middle of a stroke stores none of it, Esc drops a stroke (never on disk), two saves at
once chain; a read-only or removed workspace is said at once while painting goes on, and
Save as… (Ctrl+Alt+S) rescues the labels with their history into another folder."""
from __future__ import annotations

import shutil

import numpy as np
from PySide6.QtCore import QEvent, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox

from annot_helpers import _send, drag, line, viewport_pos
from read_only import make_read_only, make_writable

from medviewer.storage.journal import read_journal
from medviewer.storage.store import LabelStore

LB, NB = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton


def _press_and_move(view, pts) -> None:
    _send(view.viewport(), QEvent.Type.MouseButtonPress, pts[0], LB, LB)
    for p in pts[1:]:
        QTest.qWait(15)
        _send(view.viewport(), QEvent.Type.MouseMove, p, NB, LB)


def _release(view, p) -> None:
    _send(view.viewport(), QEvent.Type.MouseButtonRelease, p, LB, NB)


def _stroke(win, row: int, col: int) -> None:
    ax = win.tri.views["axial"]
    drag(ax.viewport(), line(viewport_pos(ax, row, col), viewport_pos(ax, row + 20, col + 50), 5))


def _ctrl_s(qtbot, win):
    ax, ctl = win.tri.views["axial"], win.annotation.ctl
    ax.setFocus()
    with qtbot.waitSignal(ctl.sig_saved, timeout=60000) as sig:
        qtbot.keyClick(ax, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    return sig.args[0]


def test_ctrl_s_mid_stroke_stores_none_of_it_esc_drops_a_stroke_saves_chain(qtbot, annot,
                                                                           tmp_path):
    ctl, ax = annot.annotation.ctl, annot.tri.views["axial"]
    annot.set_tool("brush")
    _stroke(annot, 200, 200)
    first = ctl.labelmap.labels.copy()
    pts = line(viewport_pos(ax, 300, 300), viewport_pos(ax, 320, 360), 8)
    _press_and_move(ax, pts[:5])  # half a stroke, the button still down
    assert ctl.in_stroke and not np.array_equal(ctl.labelmap.labels, first)
    rec = _ctrl_s(qtbot, annot)
    np.testing.assert_array_equal(ctl.store.load_labels(rec), first)
    assert rec.effort.strokes == 1
    out = tmp_path / "mid_stroke.nii.gz"  # an export taken now holds none of the stroke either
    annot.annotation.io.export_labelmap(str(out))
    qtbot.waitUntil(out.exists, timeout=60000)
    import nibabel as nib

    exported = np.asarray(nib.load(str(out)).dataobj)
    assert int(np.count_nonzero(exported)) == int(np.count_nonzero(first))
    assert int(np.count_nonzero(ctl.labelmap.labels)) > int(np.count_nonzero(first))
    for p in pts[5:]:
        QTest.qWait(15)
        _send(ax.viewport(), QEvent.Type.MouseMove, p, NB, LB)
    _release(ax, pts[-1])
    second = ctl.labelmap.labels.copy()
    assert not np.array_equal(second, first) and ctl.state.dirty

    ctl.active_label = 2  # a stroke of label 2, dropped with Esc before the button is up
    pts = line(viewport_pos(ax, 150, 300), viewport_pos(ax, 170, 380), 8)
    _press_and_move(ax, pts)
    assert (ctl.labelmap.labels == 2).sum() > 20
    qtbot.keyClick(ax, Qt.Key.Key_Escape)
    assert not ctl.in_stroke and not (ctl.labelmap.labels == 2).any()
    assert ax.tool == "navigate"  # Esc is the Navigate tool: the next moves paint nothing
    _release(ax, pts[-1])
    np.testing.assert_array_equal(ctl.labelmap.labels, second)
    journal = read_journal(ctl.state.journal.path)  # what a crash now would bring back
    assert not any((e.new == 2).any() for e in journal.edits)
    np.testing.assert_array_equal(journal.replay(ctl.store.load_labels(rec)), second)

    saved = []  # Ctrl+S, and Mark final before that save is done: one chain
    ctl.sig_saved.connect(saved.append)
    annot.set_tool("brush")
    ctl.active_label = 1
    _stroke(annot, 100, 100)
    ax.setFocus()
    qtbot.keyClick(ax, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    annot.actions_by_name["labels_final"].trigger()
    qtbot.waitUntil(lambda: len(saved) == 2, timeout=60000)
    a, b = sorted(saved, key=lambda r: r.seq)
    assert (a.parent_id, b.parent_id, b.tag) == (rec.id, a.id, "final")
    np.testing.assert_array_equal(ctl.store.load_labels(b), ctl.labelmap.labels)


def _close_dialogs(win) -> None:
    """Press OK on the (window-modal) error dialogs, as the person does."""
    for box in win.findChildren(QMessageBox, "errorDialog"):
        if box.isVisible():
            box.button(QMessageBox.StandardButton.Ok).click()


def _rescue(qtbot, win, folder):
    ctl = win.annotation.ctl
    with qtbot.waitSignal(ctl.sig_saved, timeout=60000) as sig:
        win.annotation.save_as(str(folder))
    return sig.args[0]


def test_read_only_workspace_is_said_at_once_painting_goes_on_save_as_rescues(qtbot, annot,
                                                                             tmp_path):
    ctl, feature = annot.annotation.ctl, annot.annotation
    annot.set_tool("brush")
    _stroke(annot, 200, 200)
    first = _ctrl_s(qtbot, annot)
    _stroke(annot, 260, 200)
    folder = ctl.workspace
    locked = make_read_only(folder)
    try:
        n_errors = len(annot.errors)
        _stroke(annot, 320, 200)  # the first stroke that cannot reach the disk
        said = f"The workspace {folder} is read-only"
        assert said in annot.banner.text() and annot.banner.isVisible()
        assert feature.workspace_badge.isVisible() and said in feature.workspace_badge.text()
        assert len(annot.errors) == n_errors + 1 and said in annot.errors[-1]
        _close_dialogs(annot)
        ax = annot.tri.views["axial"]
        ax.setFocus()
        qtbot.keyClick(ax, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
        qtbot.waitUntil(lambda: len(annot.errors) == n_errors + 2, timeout=60000)
        assert annot.errors[-1].startswith(f"Saving the label map failed: {said}")
        assert "Save labels as" in annot.errors[-1]
        assert not any("Errno" in e or "PermissionError" in e for e in annot.errors)
        _close_dialogs(annot)
        _stroke(annot, 380, 200)  # painting goes on
        painted = ctl.labelmap.labels.copy()
        assert ctl.undo_stack.can_undo and len(ctl.undo_stack) == 4
        rescue = tmp_path / "rescue"
        rec = _rescue(qtbot, annot, rescue)
    finally:
        make_writable(folder, locked)
    assert ctl.workspace == rescue and not feature.workspace_badge.isVisible()
    assert said not in annot.banner.text()  # it holds no more
    with LabelStore(rescue) as store:
        old, new = store.records(rec.image_hash, kind="labelmap")
        assert old.id == first.id and new.id == rec.id and new.parent_id == first.id
        np.testing.assert_array_equal(store.load_labels(new), painted)
        assert new.effort.strokes == 3  # every stroke since the last good save
    assert not ctl.state.dirty and ctl.undo_stack.can_undo  # the history stays undoable


def test_removed_workspace_is_said_at_once_and_save_as_rescues(qtbot, annot, tmp_path):
    ctl = annot.annotation.ctl
    annot.set_tool("brush")
    _stroke(annot, 200, 200)
    _ctrl_s(qtbot, annot)
    _stroke(annot, 260, 200)
    folder = ctl.workspace
    shutil.rmtree(folder)
    _stroke(annot, 320, 200)
    assert f"The workspace {folder} no longer exists" in annot.errors[-1]
    assert not folder.exists()
    _close_dialogs(annot)
    painted = ctl.labelmap.labels.copy()
    rec = _rescue(qtbot, annot, tmp_path / "rescue")
    assert not folder.exists() and ctl.workspace == tmp_path / "rescue"
    with LabelStore(tmp_path / "rescue") as store:
        np.testing.assert_array_equal(store.load_labels(rec), painted)
