"""The Prompt tool (interactive segmentation) on the real chest CT and a real radiograph:
clicks, boxes and scribbles on any plane become a proposal (run on a worker), prompts are
undoable, Accept is one undoable edit that keeps the prompts' record, 3D propagation fills the
neighbouring slices, and the GUI keeps turning while the engine runs."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from medviewer.services.prompt_records import list_prompt_records, load_prompt_mask
from PySide6.QtCore import Qt
from PySide6.QtGui import QCursor

from annot_helpers import click, drag, line, viewport_pos
from medviewer.ui.stall_probe import StallProbe, run_until

LUNG = (50, 256, 120)  # a voxel in the right lung of the demo chest CT (about -840 HU)


def _tool(win, engine="classical"):
    """The Prompt tool with ``engine`` (the checks below were measured with the classical
    engine; the learned one, the default where installed, has its own test)."""
    win.set_tool("prompt")
    pc = win.annotation.prompt.pc
    pc.set_engine(engine)
    return pc


def _click(win, plane, zyx, button=Qt.MouseButton.LeftButton):
    view = win.tri.views[plane]
    win.session.set_cursor_index(zyx)
    row, col = view.reslicer.to_display(plane, zyx)
    pos = viewport_pos(view, row, col)
    if button == Qt.MouseButton.LeftButton:
        click(view.viewport(), pos)
    else:
        from annot_helpers import _send
        from PySide6.QtCore import QEvent
        _send(view.viewport(), QEvent.Type.MouseButtonPress, pos, button, button)
        _send(view.viewport(), QEvent.Type.MouseButtonRelease, pos, button, Qt.MouseButton.NoButton)
    return view


def _result(pc, timeout=120000):
    assert run_until(lambda: not pc.running and pc.proposal is not None, timeout)
    return pc.proposal.labels > 0


def test_click_in_the_lung_proposes_the_lung_on_that_slice(annot):
    win, vol = annot, annot.session.active
    assert vol.array[LUNG] < -700
    pc = _tool(win)
    _click(win, "axial", LUNG)
    assert len(pc.entries) == 1 and pc.entries[0].positive and pc.entries[0].voxels[0] == LUNG
    mask = _result(pc)
    ctl = win.annotation.ctl
    assert ctl.proposal is pc.proposal  # the shared proposal layer shows it
    assert mask[LUNG] and mask.sum() == mask[LUNG[0]].sum()  # only on the clicked slice
    hu = vol.array[mask]
    assert mask.sum() > 3000 and np.median(hu) < -700  # a large air-filled region
    assert not mask[LUNG[0], 256, 256]  # not the mediastinum
    assert set(np.unique(pc.proposal.labels)) == {0, ctl.active_label}
    # drawn: a marker on the axial view, the proposal item on its slice
    assert win.annotation.prompt.tools["axial"].marker_count >= 1
    assert win.tri.views["axial"].proposal.item.isVisible()


def test_negative_click_removes_and_undo_restores(annot):
    win = annot
    pc = _tool(win)
    _click(win, "axial", LUNG)
    first = _result(pc).copy()
    ys, xs = np.nonzero(first[LUNG[0]])
    far = int(np.argmax((ys - LUNG[1]) ** 2 + (xs - LUNG[2]) ** 2))
    neg = (LUNG[0], int(ys[far]), int(xs[far]))  # inside the result, far from the click
    _click(win, "axial", neg, Qt.MouseButton.RightButton)
    assert len(pc.entries) == 2 and not pc.entries[1].positive
    assert run_until(lambda: not pc.running and pc.proposal is not None
                     and not pc.proposal.labels[neg], 120000)
    second = pc.proposal.labels > 0
    assert second.sum() < first.sum() and second[LUNG]
    win.actions_by_name["undo"].trigger()  # Ctrl+Z in the Prompt tool: the last prompt
    assert len(pc.entries) == 1
    restored = _result(pc)
    assert run_until(lambda: not pc.running and np.array_equal(pc.proposal.labels > 0, first), 120000)
    assert win.annotation.ctl.labelmap is None or not win.annotation.ctl.labelmap.labels.any()
    assert restored is not None


def test_accept_merges_in_one_undo_step_and_keeps_the_record(annot):
    win = annot
    ctl, pc = win.annotation.ctl, _tool(win)
    _click(win, "axial", LUNG)
    mask = _result(pc).copy()
    win.actions_by_name["prompt_accept"].trigger()  # Enter
    lm = ctl.labelmap
    assert lm is not None and np.array_equal(lm.labels > 0, mask)
    assert np.all(lm.labels[mask] == ctl.active_label)
    assert ctl.proposal is None and not pc.entries
    rec = pc.records[-1]
    assert rec["engine"] == "classical" and rec["plane"] == "axial" and rec["slice"] == LUNG[0]
    assert rec["prompts"] == [{"kind": "point", "positive": True, "plane": "axial",
                               "voxels_zyx": [list(LUNG)]}]
    assert rec["voxels"] == int(mask.sum()) and rec["image_hash"] == ctl.state.image_hash
    # kept in the label store, with its prompts, for fine-tuning the promptable model
    assert run_until(lambda: "record_id" in rec, 60000)
    stored = list_prompt_records(ctl.store, rec["image_hash"])
    assert [r.id for r in stored] == [rec["record_id"]]
    assert np.array_equal(load_prompt_mask(ctl.store, rec["record_id"]), mask[LUNG[0]])
    ctl.undo()  # one step takes it all out
    assert not lm.labels.any()


def test_three_d_propagation_and_correction_on_another_slice(annot):
    win = annot
    pc = _tool(win)
    _click(win, "axial", LUNG)
    _result(pc)
    probe = StallProbe()
    probe.start()
    win.actions_by_name["prompt_3d"].trigger()  # G
    assert pc.running
    mask = _result(pc, 300000)
    probe.stop()
    print(f"\nprompt 3D propagation: {probe.ticks} ticks, longest GUI gap {1000 * probe.longest:.0f} ms")
    zs = np.flatnonzero(mask.any(axis=(1, 2)))
    assert zs[0] <= LUNG[0] - 10 and zs[-1] >= LUNG[0] + 10  # the neighbouring slices filled
    assert probe.ticks >= 20 and probe.longest < 1.0  # the goal is 50 ms; see the report
    # a negative click on another slice of the 3D result corrects it there
    z2 = LUNG[0] + 5
    depth = ndimage.distance_transform_edt(mask[z2])  # a click well inside the result
    neg = (z2,) + tuple(int(v) for v in np.unravel_index(int(np.argmax(depth)), depth.shape))
    _click(win, "axial", neg, Qt.MouseButton.RightButton)
    assert pc.session.three_d
    assert run_until(lambda: not pc.running and pc.proposal is not None
                     and not pc.proposal.labels[neg], 300000)


def test_prompt_on_the_coronal_view(annot):
    win = annot
    pc = _tool(win)
    view = _click(win, "coronal", LUNG)
    assert pc.entries[0].axis == view.reslicer.fixed_axis("coronal") == 1
    mask = _result(pc)
    assert mask[LUNG] and mask.sum() == mask[:, LUNG[1], :].sum()  # one coronal slice
    assert mask.sum() > 1500 and np.median(win.session.active.array[mask]) < -700
    assert mask.any(axis=(1, 2)).sum() > 20  # spans many axial slices
    assert win.annotation.prompt.tools["coronal"].marker_count >= 1


def test_box_and_scribble(annot):
    win = annot
    pc = _tool(win)
    view = win.tri.views["axial"]
    win.session.set_cursor_index(LUNG)
    pc.set_mode("box")
    a = viewport_pos(view, *view.reslicer.to_display("axial", (LUNG[0], 200, 60)))
    b = viewport_pos(view, *view.reslicer.to_display("axial", (LUNG[0], 330, 200)))
    drag(view.viewport(), line(a, b))
    assert pc.entries[-1].kind == "box"
    mask = _result(pc)
    ys, xs = np.nonzero(mask[LUNG[0]])
    assert mask.any() and ys.min() >= 198 and ys.max() <= 332 and xs.min() >= 58 and xs.max() <= 202
    pc.clear()
    pc.set_mode("scribble")
    a = viewport_pos(view, *view.reslicer.to_display("axial", (LUNG[0], 240, 110)))
    b = viewport_pos(view, *view.reslicer.to_display("axial", (LUNG[0], 280, 125)))
    drag(view.viewport(), line(a, b))
    assert pc.entries[-1].kind == "scribble" and len(pc.entries[-1].voxels) >= 10
    assert _result(pc)[LUNG[0], 260, 117]


def test_engines_cursor_and_history_panel(annot):
    win = annot
    pc = _tool(win)
    panel = win.annotation.prompt.panel
    combo = panel.engine
    names = [combo.itemData(i) for i in range(combo.count())]
    assert names == ["classical", "learned"]
    assert combo.model().item(0).isEnabled() and combo.model().item(1).isEnabled()
    view = win.tri.views["axial"]
    assert view.cursor().shape() == Qt.CursorShape.BitmapCursor
    _click(win, "axial", LUNG)
    _result(pc)
    assert panel.history.count() == 1 and "+ click" in panel.history.item(0).text()
    panel.history.setCurrentRow(0)
    panel.buttons["prompt_remove"].click()
    assert panel.history.count() == 0
    assert run_until(lambda: not pc.running, 60000)
    assert win.annotation.ctl.proposal is None
    win.set_tool("navigate")
    assert win.actions_by_name["tool_navigate"].shortcut().toString() == "Esc"
    assert not win.actions_by_name["prompt_accept"].isEnabled()


def test_click_on_a_radiograph(qtbot, window, mono1_volume):
    win = window
    win.session.add_volume(mono1_volume)
    ctl = win.annotation.ctl
    qtbot.waitUntil(lambda: ctl.state is not None and ctl.state.ready, timeout=30000)
    pc = _tool(win)
    arr = mono1_volume.array[0]
    h, w = arr.shape
    said = []
    ctl.sig_message.connect(said.append)
    _click(win, "axial", (0, h // 2, w // 2))
    mask = _result(pc)
    assert mask[0, h // 2, w // 2] and 0 < mask.sum() < arr.size
    # no pixel spacing in the file: the prompts ran on an estimate, and the status says so
    assert any("pixel spacing unknown: prompts assume 0.20 mm" in m for m in said)


def test_the_learned_engine_is_the_default_and_segments_the_heart(annot):
    win = annot
    win.set_tool("prompt")
    pc = win.annotation.prompt.pc
    assert pc.session.engine == "learned"  # the default where its model is installed
    heart = (15, 210, 290)  # the heart of the demo chest CT (a class never trained on)
    vol = win.session.active
    from medviewer.services.interactive import resolve_engine, use_model_version

    assert resolve_engine("auto") == "learned"
    use_model_version(None)  # the app preloads torch at start-up; here before the probe
    probe = StallProbe()
    probe.start()
    _click(win, "axial", heart)
    mask = _result(pc)
    probe.stop()
    print(f"\nlearned prompt: {probe.ticks} ticks, longest GUI gap {1000 * probe.longest:.0f} ms")
    assert probe.ticks >= 3 and probe.longest < 1.0  # the goal is 50 ms; see the report
    z = heart[0]
    assert mask[heart] and mask.sum() == mask[z].sum()
    area_mm2 = mask[z].sum() * 0.898 ** 2
    assert 3000 < area_mm2 < 15000  # a heart's cross-section (measured about 7300 mm²)
    hu = vol.array[mask]
    assert 0 < np.median(hu) < 400 and (hu < -500).mean() < 0.05  # blood and muscle, no lung
    win.actions_by_name["prompt_accept"].trigger()
    assert pc.records[-1]["engine"] == "learned"
