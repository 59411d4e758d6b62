"""Label table, display modes, case labels, saving to the store and label-map import."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from medviewer.storage.store import LabelStore

from annot_helpers import click, drag, line, rendered_rgb, viewport_pos
from conftest import DATA

TOTALSEG = DATA / "totalseg" / "tests" / "reference_files"


def _paint_disc(win, row, col, label, radius=8.0, tool="brush"):
    ax = win.tri.views["axial"]
    win.set_tool(tool)
    win.annotation.options.set(radius_mm=radius)
    if label:
        win.annotation.ctl.active_label = label
    click(ax.viewport(), viewport_pos(ax, row, col))


def _set_check(panel, value, col, on):
    item = panel.table.item(panel.row_of(value), col)
    item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)


def test_lock_keeps_a_label_from_being_painted_over_or_erased(qtbot, annot):
    from medviewer.ui.annotation.label_panel import COL_LOCK

    ctl, panel = annot.annotation.ctl, annot.annotation.label_panel
    _paint_disc(annot, 250, 250, 1)
    one = ctl.labelmap.labels[50] == 1
    _set_check(panel, 1, COL_LOCK, True)
    assert ctl.labelmap.table.get(1).locked
    _paint_disc(annot, 250, 262, 2)  # overlaps label 1
    lab = ctl.labelmap.labels[50]
    assert ((lab == 1) == one).all()  # label 1 untouched
    assert (lab == 2).sum() > 100 and not ((lab == 2) & one).any()
    _paint_disc(annot, 250, 256, 0, radius=30.0, tool="eraser")
    assert ((ctl.labelmap.labels[50] == 1) == one).all()  # the eraser leaves it too
    assert not (ctl.labelmap.labels[50] == 2).any()
    _set_check(panel, 1, COL_LOCK, False)
    _paint_disc(annot, 250, 256, 0, radius=30.0, tool="eraser")
    assert not ctl.labelmap.labels[50].any()


def test_visibility_hides_a_label_and_outline_shows_only_boundaries(qtbot, annot):
    from medviewer.ui.annotation.label_panel import COL_VISIBLE

    ctl, panel, ax = annot.annotation.ctl, annot.annotation.label_panel, annot.tri.views["axial"]
    _paint_disc(annot, 300, 300, 1, radius=12.0)
    _paint_disc(annot, 200, 200, 2, radius=12.0)
    px = viewport_pos(ax, 303, 303)
    r, g, b = rendered_rgb(ax)[px.y(), px.x()]
    assert r > g + 40  # red label 1 over grey
    _set_check(panel, 1, COL_VISIBLE, False)
    lut = ax.overlay_item.lut
    assert lut[1][3] == 0 and lut[2][3] > 0
    r, g, b = rendered_rgb(ax)[px.y(), px.x()]
    assert abs(r - g) < 8 and abs(g - b) < 8  # plain grey image again
    _set_check(panel, 1, COL_VISIBLE, True)
    panel.outline.setChecked(True)
    img = ax.overlay_item.image
    lab = ctl.labelmap.labels[50]
    pad = np.pad(lab, 1, mode="edge")
    edge = ((pad[1:-1, 1:-1] != pad[:-2, 1:-1]) | (pad[1:-1, 1:-1] != pad[2:, 1:-1])
            | (pad[1:-1, 1:-1] != pad[1:-1, :-2]) | (pad[1:-1, 1:-1] != pad[1:-1, 2:]))
    np.testing.assert_array_equal(img, np.where(edge, lab, 0))
    assert img[300, 300] == 0 and (img == 1).sum() > 40  # a ring, not a disc
    panel.opacity.setValue(90)
    assert ax.overlay_item.lut[1][3] == round(0.9 * 255)


def test_label_table_editing_import_and_remove(qtbot, annot):
    from medviewer.ui.annotation.label_panel import COL_NAME, LABEL_LISTS, RESOURCES

    ctl, panel = annot.annotation.ctl, annot.annotation.label_panel
    qtbot.mouseClick(panel.new_button, Qt.MouseButton.LeftButton)
    assert panel.table.rowCount() == 5
    panel.table.item(panel.row_of(2), COL_NAME).setText("liver")
    assert ctl.labelmap.table.get(2).name == "liver"
    lab = panel.add_label()
    assert lab.value == 6 and panel.table.rowCount() == 6 and ctl.active_label == 6
    panel.set_color(6, (10, 20, 30))
    assert tuple(annot.tri.views["axial"].overlay_item.lut[6][:3]) == (10, 20, 30)
    dlg = panel.choose_color(3)  # the colour swatch opens a colour dialog
    dlg.setCurrentColor(Qt.GlobalColor.green)
    dlg.accept()
    assert ctl.labelmap.table.get(3).color == (0, 255, 0)
    # TotalSegmentator CT class names from the bundled resource
    csv = RESOURCES / LABEL_LISTS["Import TotalSegmentator CT class names"]
    panel.import_file(csv)
    t = ctl.labelmap.table
    assert len(t) == 117 and t.get(1).name == "spleen" and t.get(2).name == "kidney_right"
    assert panel.table.rowCount() == 117
    assert annot.tri.views["axial"].overlay_item.lut.shape == (118, 4)
    # remove a label: its voxels go (undoably) and it leaves the table
    _paint_disc(annot, 250, 250, 5)
    ctl.active_label = 5
    panel.table.selectRow(panel.row_of(5))
    qtbot.mouseClick(panel.remove_button, Qt.MouseButton.LeftButton)
    assert 5 not in t and not (ctl.labelmap.labels == 5).any()
    ctl.undo()
    assert 5 in t and (ctl.labelmap.labels == 5).sum() > 100


def test_case_label_shortcuts_and_save_write_a_record_with_effort(qtbot, annot):
    ctl, panel = annot.annotation.ctl, annot.annotation.case_panel
    annot.annotation.case_dock.raise_()
    ax = annot.tri.views["axial"]
    ax.setFocus()
    qtbot.keyClick(ax, Qt.Key.Key_2, Qt.KeyboardModifier.AltModifier)  # pneumonia
    cl = ctl.state.case_labels
    assert cl.get("pneumonia") is True
    assert panel.boxes["pneumonia"].isChecked() and "present" in panel.boxes["pneumonia"].text()
    qtbot.keyClick(ax, Qt.Key.Key_2, Qt.KeyboardModifier.AltModifier)
    assert cl.get("pneumonia") is False
    qtbot.keyClick(ax, Qt.Key.Key_3, Qt.KeyboardModifier.AltModifier)
    assert cl.get("nodule") is True and cl.get("effusion") is None
    panel.slice_level.setChecked(True)
    qtbot.keyClick(ax, Qt.Key.Key_4, Qt.KeyboardModifier.AltModifier)
    assert cl.get_slice(50, "effusion") is True and cl.get("effusion") is None
    ax.step_slice(1)
    assert not panel.boxes["effusion"].isChecked()  # another slice: not set there
    with qtbot.waitSignal(ctl.sig_saved, timeout=30000) as sig:
        qtbot.mouseClick(panel.save_button, Qt.MouseButton.LeftButton)
    rec = sig.args[0]
    store = LabelStore(ctl.workspace)
    (got,) = store.records(kind="case")
    assert got.id == rec.id and got.tag == "corrected" and got.source.kind == "person"
    assert got.payload["series"] == {"pneumonia": False, "nodule": True}
    assert got.payload["slices"] == {"50": {"effusion": True}}
    assert got.effort.strokes == 4 and got.effort.seconds >= 0
    assert got.image_hash == ctl.state.image_hash and len(got.image_hash) == 64
    assert "Saved" in panel.status.text()
    out = Path(ctl.workspace) / "cases.csv"
    annot.annotation.io.export_case_labels(out)
    qtbot.waitUntil(lambda: out.exists(), timeout=30000)
    assert "nodule" in out.read_text()


def test_ctrl_s_saves_a_corrected_record_then_mark_final(qtbot, annot):
    ctl, ax = annot.annotation.ctl, annot.tri.views["axial"]
    annot.set_tool("brush")
    drag(ax.viewport(), line(viewport_pos(ax, 200, 200), viewport_pos(ax, 220, 260), 5))
    _paint_disc(annot, 300, 300, 2)
    journal = ctl.state.journal.path
    assert journal.exists()
    voxels = int(np.count_nonzero(ctl.labelmap.labels))
    ax.setFocus()
    with qtbot.waitSignal(ctl.sig_saved, timeout=30000) as sig:
        qtbot.keyClick(ax, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    rec = sig.args[0]
    assert rec.kind == "labelmap" and rec.tag == "corrected" and rec.parent_id is None
    assert rec.effort.strokes == 2 and rec.effort.voxels == voxels
    assert not journal.exists()  # the saved strokes' journal is closed and removed
    store = LabelStore(ctl.workspace)
    np.testing.assert_array_equal(store.load_labels(rec), ctl.labelmap.labels)
    assert store.get(rec.id).payload["table"]["labels"][0]["name"] == "Label 1"
    _paint_disc(annot, 100, 100, 3)
    with qtbot.waitSignal(ctl.sig_saved, timeout=30000) as sig:
        annot.actions_by_name["labels_final"].trigger()
    final = sig.args[0]
    assert final.tag == "final" and final.parent_id == rec.id and final.effort.strokes == 1
    assert [r.id for r in store.lineage(final.id)] == [final.id, rec.id]


def test_saved_labels_come_back_in_a_new_window_and_the_next_save_points_to_them(qtbot, window,
                                                                              chest_volume):
    from medviewer.ui.main_window import MainWindow

    ctl = window.annotation.ctl
    window.session.add_volume(chest_volume)
    qtbot.waitUntil(lambda: ctl.state is not None and ctl.state.ready, timeout=30000)
    _paint_disc(window, 250, 250, 4)
    with qtbot.waitSignal(ctl.sig_saved, timeout=30000) as sig:
        ctl.save()
    first, saved = sig.args[0], ctl.labelmap.labels.copy()
    window.close()

    win2 = MainWindow()  # a new start of the app on the same workspace
    qtbot.addWidget(win2)
    win2.show()
    ctl2 = win2.annotation.ctl
    win2.session.add_volume(chest_volume)
    qtbot.waitUntil(lambda: ctl2.state is not None and ctl2.state.ready, timeout=30000)
    assert ctl2.labelmap is not None and ctl2.state.base_record_id == first.id
    np.testing.assert_array_equal(ctl2.labelmap.labels, saved)
    _paint_disc(win2, 100, 100, 2)
    with qtbot.waitSignal(ctl2.sig_saved, timeout=30000) as sig:
        ctl2.save()
    assert sig.args[0].parent_id == first.id and sig.args[0].effort.strokes == 1
    win2.close()
    win2.bridge.shutdown()


def test_import_example_seg_onto_example_ct_sm(qtbot, window):
    ctl, io = window.annotation.ctl, window.annotation.io
    with qtbot.waitSignal(window.loader.sig_finished, timeout=60000):
        window.open_paths([str(TOTALSEG / "example_ct_sm.nii.gz")])
    qtbot.waitUntil(lambda: ctl.state is not None and ctl.state.ready, timeout=30000)
    io.import_labelmap(TOTALSEG / "example_seg.nii.gz")
    qtbot.waitUntil(lambda: ctl.labelmap is not None and ctl.labelmap.labels.any(), timeout=30000)
    ref = np.asarray(nib.load(str(TOTALSEG / "example_seg.nii.gz")).dataobj)
    lab = ctl.labelmap.labels
    assert lab.shape == ref.shape[::-1]
    np.testing.assert_array_equal(np.bincount(lab.ravel(), minlength=118),
                                  np.bincount(ref.ravel(), minlength=118))
    assert ctl.undo_stack.peek_undo().tool == "import"
    view = window.tri.views["axial"]
    assert view.overlay_item.image.any() or lab[view.current.index].sum() == 0


def test_import_on_another_grid_asks_and_resamples(qtbot, window, tmp_path):
    ctl, io = window.annotation.ctl, window.annotation.io
    with qtbot.waitSignal(window.loader.sig_finished, timeout=60000):
        window.open_paths([str(TOTALSEG / "example_ct_sm.nii.gz")])
    qtbot.waitUntil(lambda: ctl.state is not None and ctl.state.ready, timeout=30000)
    seg = nib.load(str(TOTALSEG / "example_seg.nii.gz"))
    data = np.asarray(seg.dataobj)
    crop = tmp_path / "cropped.nii.gz"  # x 10..109 of the same grid: same voxels, other shape
    aff = seg.affine.copy()
    aff[:3, 3] = seg.affine[:3, :3] @ [10, 0, 0] + seg.affine[:3, 3]
    nib.save(nib.Nifti1Image(data[10:110], aff), str(crop))
    io.import_labelmap(crop)
    qtbot.waitUntil(lambda: io.question is not None, timeout=30000)
    box = io.question
    assert "does not match" in box.text() or "another voxel grid" in box.text()
    box.button(QMessageBox.StandardButton.Yes).click()
    qtbot.waitUntil(lambda: ctl.labelmap is not None and ctl.labelmap.labels.any(), timeout=30000)
    want = np.zeros_like(data)
    want[10:110] = data[10:110]
    np.testing.assert_array_equal(ctl.labelmap.labels, want.transpose(2, 1, 0))


def test_export_nifti_and_dicom_seg_then_import_the_seg_back(qtbot, annot, tmp_path):
    from medviewer.io.dicom_seg import read_seg

    ctl, io = annot.annotation.ctl, annot.annotation.io
    _paint_disc(annot, 250, 200, 1, radius=10.0)
    _paint_disc(annot, 250, 320, 3, radius=10.0)
    labels = ctl.labelmap.labels.copy()
    assert annot.actions_by_name["labels_export_seg"].isEnabled()  # a DICOM series
    nii = tmp_path / "labels.nii.gz"
    io.export_labelmap(nii)
    qtbot.waitUntil(lambda: nii.exists() and not ctl.busy, timeout=30000)
    back = np.asarray(nib.load(str(nii)).dataobj)
    np.testing.assert_array_equal(back.transpose(2, 1, 0), labels)
    seg = tmp_path / "labels.seg.dcm"
    io.export_seg(seg)
    qtbot.waitUntil(lambda: seg.exists() and not ctl.busy, timeout=60000)
    vol = ctl.volume
    got, table, _ = read_seg(seg, geometry=vol.geometry, source_paths=vol.source_paths)
    np.testing.assert_array_equal(got > 0, labels > 0)
    ctl.new_labelmap()
    io.import_seg(seg)  # Labels > Import DICOM SEG puts it back on the image
    qtbot.waitUntil(lambda: ctl.labelmap.labels.any() and not ctl.busy, timeout=60000)
    np.testing.assert_array_equal(ctl.labelmap.labels > 0, labels > 0)
    assert len(np.unique(ctl.labelmap.labels)) == 3
