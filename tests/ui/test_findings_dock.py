"""The Findings dock on the real chest CT: strokes painted with the real annotation controller
become findings, clicking a finding (or Enter) moves the slice to it and draws its axes,
edits update the list, exports write CSV and JSON."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from annot_helpers import click, index_at, viewport_pos
from medviewer.services import findings as svc


def _findings(win):
    return win.findings.findings


def _show_dock(qtbot, win):
    """The list is measured while its dock shows (tabbed behind Label history at start)."""
    dock = win.docks["findingsDock"]
    dock.raise_()
    qtbot.waitUntil(lambda: win.findings.shown, timeout=5000)


def _paint_disc(win, row, col, radius_mm):
    ax = win.tri.views["axial"]
    win.set_tool("brush")
    win.annotation.options.set(radius_mm=radius_mm)
    pos = viewport_pos(ax, row, col)
    click(ax.viewport(), pos)
    return np.round(index_at(ax, pos)).astype(int)


def test_painted_labels_become_findings_and_a_click_jumps_to_one(qtbot, annot):
    win, ctl = annot, annot.annotation.ctl
    feat = win.findings
    assert win.docks["findingsDock"].widget() is feat.panel
    assert not feat.shown  # a tab behind Label history: nothing is measured
    _paint_disc(win, 100, 100, 3.0)
    QTest.qWait(600)
    assert _findings(win) == [] and feat._stale
    win.annotation.undo()
    _show_dock(qtbot, win)
    ax = win.tri.views["axial"]
    z0 = ax.slice_index
    _paint_disc(win, 200, 300, 8.0)
    qtbot.waitUntil(lambda: len(_findings(win)) == 1, timeout=20000)
    ax.step_slice(-10)  # another slice: a second, smaller finding
    z1 = ax.slice_index
    assert z1 != z0
    _paint_disc(win, 300, 150, 4.0)
    qtbot.waitUntil(lambda: len(_findings(win)) == 2, timeout=20000)
    big, small = _findings(win)  # one label: largest first
    assert big.volume_ml > small.volume_ml
    assert {big.measure_slice, small.measure_slice} == {z0, z1}
    labels = ctl.labelmap.labels
    sp = ctl.volume.geometry.spacing
    assert big.n_voxels + small.n_voxels == int((labels == 1).sum())
    assert big.volume_ml == pytest.approx(big.n_voxels * sp[0] * sp[1] * sp[2] / 1000)
    assert 16.0 - 2 * sp[0] <= big.long_mm <= 16.0  # a disc of 8 mm radius
    table = feat.panel.table
    model = feat.panel.model
    assert model.rowCount() == 2 and model.index(0, 1).data() == big.name

    # click the small one: the cursor moves to it, the axial view shows its slice and axes
    rect = table.visualRect(model.index(1, 0))
    QTest.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert tuple(win.session.cursor_zyx) == tuple(int(round(v)) for v in small.centre_zyx)
    assert ax.slice_index == small.measure_slice
    lines = dict(feat.lines.visible_lines())
    assert set(lines) == {"findingAxis_long", "findingAxis_short"}
    (x0, y0), (x1, y1) = lines["findingAxis_long"]
    assert np.hypot(x1 - x0, y1 - y0) == pytest.approx(small.long_mm, rel=1e-6)
    ax.step_slice(1)  # off its slice: the axes are hidden
    assert feat.lines.visible_lines() == []

    # keyboard: Up to the first finding, Enter jumps there
    table.setFocus()
    QTest.keyClick(table, Qt.Key.Key_Up)
    assert table.currentIndex().row() == 0
    QTest.keyClick(table, Qt.Key.Key_Return)
    assert ax.slice_index == big.measure_slice
    assert set(dict(feat.lines.visible_lines())) == {"findingAxis_long", "findingAxis_short"}

    # an edit (undo of the second disc) updates the list
    win.annotation.undo()
    qtbot.waitUntil(lambda: len(_findings(win)) == 1, timeout=20000)
    assert _findings(win)[0].n_voxels == big.n_voxels
    # another label: only the edited labels are measured again, and the list is what a
    # measurement of the whole label map gives
    ctl.active_label = 2
    _paint_disc(win, 120, 120, 5.0)
    qtbot.waitUntil(lambda: len(_findings(win)) == 2, timeout=20000)
    assert _findings(win) == svc.case_findings(ctl.volume, ctl.labelmap.labels,
                                               ctl.labelmap.table.to_dict())


def test_findings_export_csv_and_json(qtbot, annot, tmp_path):
    win = annot
    _show_dock(qtbot, win)
    _paint_disc(win, 220, 260, 6.0)
    qtbot.waitUntil(lambda: len(_findings(win)) == 1, timeout=20000)
    feat = win.findings
    for kind in ("csv", "json"):
        feat.export(kind, tmp_path / f"f.{kind}")
    qtbot.waitUntil(lambda: (tmp_path / "f.csv").exists() and (tmp_path / "f.json").exists(),
                    timeout=20000)
    doc = json.loads((tmp_path / "f.json").read_text())
    assert doc["findings"][0]["n_voxels"] == _findings(win)[0].n_voxels
    assert "patient_name" not in doc["subject"]
    assert (tmp_path / "f.csv").read_text().splitlines()[0].startswith("number,label,name")


def test_findings_of_the_model_proposal(qtbot, annot):
    """'AI proposal' measures the proposal shown over the label map, not the label map."""
    from medviewer.core.proposal import Proposal

    win, ctl = annot, annot.annotation.ctl
    feat = win.findings
    _show_dock(qtbot, win)
    _paint_disc(win, 220, 260, 6.0)
    qtbot.waitUntil(lambda: len(_findings(win)) == 1, timeout=20000)
    prop = np.zeros(ctl.volume.shape, np.uint8)
    prop[40:44, 100:120, 300:330] = 4  # a box of 4 slices
    prop[60, 400:405, 100:103] = 4  # and a small second part
    ctl.show_proposal(ctl.volume, Proposal.make(prop, {"labels": [
        {"value": 4, "name": "Nodule", "color": [255, 0, 0]}]}, ""))
    _show_dock(qtbot, win)  # a proposal brings the Segmentation dock (its Accept box) forward
    feat.panel.source.setCurrentIndex(feat.panel.source.findData("proposal"))
    qtbot.waitUntil(lambda: [f.source for f in _findings(win)] == ["proposal"] * 2, timeout=20000)
    box, small = _findings(win)
    assert (box.name, box.n_voxels, box.slices) == ("Nodule", 4 * 20 * 30, (40, 43))
    assert small.n_voxels == 15 and small.component == 2
    sp = ctl.volume.geometry.spacing
    assert box.long_mm == pytest.approx(np.hypot(19 * sp[1], 29 * sp[0]))
    feat.panel.source.setCurrentIndex(feat.panel.source.findData("labels"))
    qtbot.waitUntil(lambda: [f.source for f in _findings(win)] == ["labels"], timeout=20000)


def test_sr_export_needs_a_dicom_image(qtbot, window, shared_data, tmp_path):
    """A NIfTI image: the SR export says why it cannot, and writes nothing."""
    from medviewer.io.load import open_first

    ref = shared_data / "totalseg/tests/reference_files"
    ct = open_first([ref / "example_ct_sm.nii.gz"])
    seg = np.asarray(open_first([ref / "example_seg.nii.gz"]).array).astype(np.uint8)
    window.session.add_volume(ct)
    _show_dock(qtbot, window)
    ctl = window.annotation.ctl
    qtbot.waitUntil(lambda: ctl.state is not None and ctl.state.ready, timeout=30000)
    ctl.replace_labels(seg, None)
    qtbot.waitUntil(lambda: len(_findings(window)) > 40, timeout=30000)
    window.findings.export_dialog("sr")
    assert any("loaded from DICOM" in e for e in window.errors)
    assert not list(tmp_path.glob("*.dcm"))


@pytest.mark.slow
def test_sr_export_from_the_dock(qtbot, annot, tmp_path):
    from medviewer.io.dicom_sr_write import read_findings_sr

    win = annot
    _show_dock(qtbot, win)
    _paint_disc(win, 220, 260, 6.0)
    qtbot.waitUntil(lambda: len(_findings(win)) == 1, timeout=20000)
    win.findings.export("sr", tmp_path / "r.dcm")
    qtbot.waitUntil(lambda: (tmp_path / "r.dcm").exists(), timeout=60000)
    (group,) = read_findings_sr(tmp_path / "r.dcm")
    f = _findings(win)[0]
    assert group["measurements"]["Long axis"][0] == pytest.approx(f.long_mm)
    assert (tmp_path / "r_seg.dcm").exists()


def test_compare_the_label_map_with_a_follow_up_proposal(qtbot, annot):
    """The proposal as a registered follow-up's labels: one nodule grown and moved 3 voxels,
    one gone, one new."""
    from medviewer.core.proposal import Proposal

    win, ctl = annot, annot.annotation.ctl
    _show_dock(qtbot, win)
    sp = ctl.volume.geometry.spacing
    base = ctl.ensure_labelmap()
    lab = np.zeros(ctl.volume.shape, np.uint8)
    lab[48:52, 200:210, 200:210] = 1  # a nodule
    lab[30:32, 300:304, 100:104] = 1  # one that goes away
    ctl.replace_labels(lab, base.table.to_dict())
    qtbot.waitUntil(lambda: len(_findings(win)) == 2, timeout=20000)
    follow = np.zeros_like(lab)
    follow[48:53, 203:215, 200:212] = 1  # grown and moved
    follow[70:72, 100:103, 400:403] = 1  # new
    ctl.show_proposal(ctl.volume, Proposal.make(follow, base.table.to_dict(), ""))
    win.findings.panel.compare.click()
    qtbot.waitUntil(lambda: win.findings.changes_dialog is not None, timeout=20000)
    dlg = win.findings.changes_dialog
    changes = dlg.changes
    assert [c.status for c in changes] == ["matched", "gone", "new"]
    grown = changes[0]
    voxel_ml = sp[0] * sp[1] * sp[2] / 1000
    assert grown.volume_change_ml == pytest.approx((5 * 12 * 12 - 4 * 10 * 10) * voxel_ml)
    assert grown.long_change_mm > 0
    assert grown.distance_mm == pytest.approx(np.linalg.norm(
        np.asarray(grown.followup.centroid_lps) - np.asarray(grown.baseline.centroid_lps)))
    assert dlg.table.rowCount() == 3 and dlg.table.item(0, 1).text() == "matched"
    assert dlg.table.item(0, 3).text().startswith("+")
    dlg.close()
