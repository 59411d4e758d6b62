"""AI proposals on the real chest CT with the real ct-abdomen-organs model: 'Run on slice'
after saved corrections proposes for that slice only and never touches the label map;
accepting merges in one undoable step keeping every corrected voxel (unless 'replace');
Reject leaves the map identical; the proposal is drawn outlined and hatched in all planes."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from ai_helpers import models_isolated, seg_card, wait_until  # noqa: F401  (fixtures)
from annot_helpers import drag, line, viewport_pos

Z = 60  # the model finds liver, spleen, kidneys, stomach and lung on this slice


def _paint_corrections(win):
    """Brush strokes of two labels across the middle of slice Z and one stroke on slice Z-10."""
    ctl, ax = win.annotation.ctl, win.tri.views["axial"]
    win.set_tool("brush")
    win.annotation.options.set(radius_mm=12.0)
    for z, label, row in ((Z, 1, 250), (Z, 2, 300), (Z - 10, 1, 250)):
        win.session.set_cursor_index((z, 256, 256))
        ctl.active_label = label
        drag(ax.viewport(), line(viewport_pos(ax, row, 90), viewport_pos(ax, row, 420), 12))
    win.session.set_cursor_index((Z, 256, 256))


def _saved_corrections(qtbot, win):
    ctl = win.annotation.ctl
    _paint_corrections(win)
    with qtbot.waitSignal(ctl.sig_saved, timeout=30000) as sig:
        win.actions_by_name["labels_save"].trigger()
    return sig.args[0]


def _run_on_slice(qtbot, win, card):
    ai = win.ai.ctl
    ai.select(card.ref)
    before = ai.last_seg
    qtbot.mouseClick(win.ai.panel.run_slice_button, Qt.MouseButton.LeftButton)
    wait_until(lambda: ai.last_seg is not before and not ai.running, 120000)
    return ai.last_seg


def test_run_on_slice_after_corrections_keeps_them_and_undo_removes_the_accepted_proposal(
        qtbot, annot, seg_card):
    win = annot
    ctl = win.annotation.ctl
    corrected = _saved_corrections(qtbot, win)
    saved = ctl.labelmap.labels.copy()
    assert saved[Z].any() and saved[Z - 10].any()

    run = _run_on_slice(qtbot, win, seg_card)
    prop = ctl.proposal
    assert run.z == Z and prop is not None and prop.z == Z
    assert not prop.labels[:Z].any() and not prop.labels[Z + 1:].any()  # this slice only
    assert np.array_equal(ctl.labelmap.labels, saved)  # a proposal changes nothing
    assert not ctl.state.dirty and ctl.state.base_record_id == corrected.id
    # the proposal is drawn in its own layer (outline + hatching) in all three planes
    win.session.set_cursor_index((Z, 240, 240))
    for plane, view in win.tri.views.items():
        img = view.proposal.shown_image()
        assert img is not None and img.shape[-1] == 4, plane
        alphas = set(np.unique(img[..., 3]).tolist())
        assert 255 in alphas, plane  # opaque outline
    ax = win.tri.views["axial"].proposal.shown_image()
    assert {0, 150, 255} <= set(np.unique(ax[..., 3]).tolist())  # hatched inside, not filled
    inside = prop.labels[Z] != 0
    assert np.count_nonzero(ax[..., 3][inside] == 0) > 0.3 * inside.sum()
    overlap = (prop.labels[Z] != 0) & (saved[Z] != 0)
    assert overlap.sum() > 100  # the model disagrees with some of the painted voxels

    panel = win.annotation.proposal_panel
    assert panel.isVisible() and not panel.replace.isChecked()
    n_undo = len(ctl.undo_stack)
    qtbot.mouseClick(panel.button("proposal_accept"), Qt.MouseButton.LeftButton)
    after = ctl.labelmap.labels
    assert len(ctl.undo_stack) == n_undo + 1  # ONE undoable step
    painted = saved != 0
    assert np.array_equal(after[painted], saved[painted])  # every corrected voxel kept
    assert np.array_equal(after[:Z], saved[:Z]) and np.array_equal(after[Z + 1:], saved[Z + 1:])
    new = (saved[Z] == 0) & (prop.labels[Z] != 0)
    assert new.sum() > 1000 and np.all(after[Z][new] != 0)
    names = {lab.value: lab.name for lab in ctl.labelmap.table}
    model_names = prop.names()
    for v in model_names:  # each model label landed on a label of its own name
        got = np.unique(after[Z][new & (prop.labels[Z] == v)])
        assert [names[int(g)] for g in got] == [model_names[v]]
    assert ctl.proposal is None and not panel.isVisible()
    assert all(v.proposal.shown_image() is None for v in win.tri.views.values())
    assert "kept" in win.statusBar().currentMessage()

    win.actions_by_name["undo"].trigger()  # Ctrl+Z removes the accepted proposal
    assert np.array_equal(ctl.labelmap.labels, saved)
    assert ctl.proposal is prop and ctl.state.base_record_id == corrected.id
    win.actions_by_name["redo"].trigger()
    assert np.array_equal(ctl.labelmap.labels, after)
    with qtbot.waitSignal(ctl.sig_saved, timeout=30000) as sig:
        win.actions_by_name["labels_save"].trigger()
    rec = sig.args[0]  # a 'corrected' child of the prediction, noting what it merged into
    assert (rec.tag, rec.parent_id) == ("corrected", run.record.id)
    assert rec.payload["extra"]["merged_into"] == corrected.id
    assert np.array_equal(ctl.store.load_labels(rec), after)


def test_reject_leaves_the_map_identical_and_replace_or_parts_are_accepted(qtbot, annot, seg_card):
    win = annot
    ctl = win.annotation.ctl
    _saved_corrections(qtbot, win)
    saved = ctl.labelmap.labels.copy()
    run = _run_on_slice(qtbot, win, seg_card)
    panel = win.annotation.proposal_panel
    qtbot.mouseClick(panel.button("proposal_reject"), Qt.MouseButton.LeftButton)
    assert ctl.proposal is None and np.array_equal(ctl.labelmap.labels, saved)
    assert not ctl.state.dirty and "unchanged" in win.statusBar().currentMessage()
    assert ctl.store.get(run.record.id) is not None  # the prediction stays in the history

    # run again: accept only the label under the cursor, replacing painted voxels
    run = _run_on_slice(qtbot, win, seg_card)
    prop = ctl.proposal
    liver = next(v for v, n in prop.names().items() if n == "liver")
    ys, xs = np.nonzero(prop.labels[Z] == liver)
    win.session.set_cursor_index((Z, int(ys[len(ys) // 2]), int(xs[len(xs) // 2])))
    assert panel.chosen_label() == liver  # the label combo follows the cursor
    panel.replace.setChecked(True)
    win.actions_by_name["proposal_accept_label"].trigger()
    after = ctl.labelmap.labels.copy()
    liver_value = ctl.labelmap.table.by_name("liver").value
    is_liver = prop.labels == liver
    assert np.all(after[is_liver] == liver_value)  # replaced, painted or not
    assert np.array_equal(after[~is_liver], saved[~is_liver])
    rest = ctl.proposal  # the other labels are still proposed
    assert rest is not None and liver not in rest.counts and set(rest.counts) == set(prop.counts) - {liver}

    # accept the rest on this slice, keeping painted voxels
    panel.replace.setChecked(False)
    win.annotation.last_plane = "axial"
    win.actions_by_name["proposal_accept_slice"].trigger()
    final = ctl.labelmap.labels
    assert ctl.proposal is None
    assert np.array_equal(final[after != 0], after[after != 0])
    assert np.all(final[(after == 0) & (rest.labels != 0)] != 0)


def test_a_new_start_shows_the_person_s_labels_and_the_prediction_only_as_a_proposal(
        qtbot, annot, seg_card, chest_volume):
    from annot_helpers import close_discarding
    from medviewer.ui.main_window import MainWindow

    win = annot
    ctl = win.annotation.ctl
    corrected = _saved_corrections(qtbot, win)
    saved = ctl.labelmap.labels.copy()
    run = _run_on_slice(qtbot, win, seg_card)  # newer than the correction, not accepted
    win.close()  # nothing unsaved: no question
    assert not win.isVisible()

    win2 = MainWindow()  # the app started again on the same workspace
    qtbot.addWidget(win2)
    win2.show()
    ctl2 = win2.annotation.ctl
    win2.session.add_volume(chest_volume)
    wait_until(lambda: ctl2.state is not None and ctl2.state.ready, 30000)
    assert ctl2.state.base_record_id == corrected.id
    assert np.array_equal(ctl2.labelmap.labels, saved)  # never the prediction
    assert ctl2.proposal is not None and ctl2.proposal.record_id == run.record.id
    assert ctl2.proposal.z == Z and np.array_equal(ctl2.proposal.labels, run.labels)
    close_discarding(win2)
    win2.bridge.shutdown()
