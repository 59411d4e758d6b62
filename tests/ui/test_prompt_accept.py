"""Accepting a large 3D prompt result on the real chest CT: the GUI keeps turning (the edit is
planned on a worker from the proposal's bounding box; the GUI thread only commits it), the
accept is one undoable step, the stroke journal can rebuild it after a crash, and a stroke
painted while the accept was being planned is kept."""
from __future__ import annotations

import numpy as np

from medviewer.storage.journal import read_journal
from medviewer.ui.annotation.proposals import BACKGROUND_VOXELS
from medviewer.ui.stall_probe import StallProbe, run_until

from test_prompt_tool import LUNG, _click, _result, _tool


def test_accepting_a_large_3d_result_keeps_the_gui_turning(annot):
    win = annot
    ctl, pc = win.annotation.ctl, _tool(win, "learned")
    _click(win, "axial", LUNG)
    _result(pc, 600000)  # (minutes on a loaded machine: no timing is asserted here)
    win.actions_by_name["prompt_3d"].trigger()  # G
    mask = _result(pc, 600000).copy()
    box = pc.proposal.box
    zs = np.flatnonzero(mask.any(axis=(1, 2)))
    assert mask.sum() > 300_000 and len(zs) > 40  # the lung over many slices
    assert np.prod([s.stop - s.start for s in box]) > BACKGROUND_VOXELS  # planned on a worker

    probe = StallProbe()
    probe.start()
    win.actions_by_name["prompt_accept"].trigger()  # Enter
    assert ctl.state.accepting  # planning on the worker
    assert run_until(lambda: not ctl.state.accepting, 60000)
    run_until(lambda: False, 300)  # and the repaint that follows
    probe.stop()
    print(f"\naccept of {int(mask.sum())} voxels over {len(zs)} slices: {probe.ticks} ticks, "
          f"longest GUI gap {1000 * probe.longest:.0f} ms")
    assert probe.ticks >= 5 and probe.longest < 1.0  # the goal is 50 ms; see the report

    lm = ctl.labelmap
    assert np.array_equal(lm.labels > 0, mask) and ctl.proposal is None and not pc.entries
    assert len(ctl.undo_stack) == 1 and lm.voxel_counts() == {ctl.active_label: int(mask.sum())}
    assert run_until(lambda: "record_id" in pc.records[-1], 60000)
    # the journal rebuilds the label map (what crash recovery replays)
    assert np.array_equal(read_journal(ctl.state.journal.path).replay(), lm.labels)
    ctl.undo()  # one step takes it all out, and brings the proposal back
    assert not lm.labels.any() and ctl.proposal is not None
    ctl.redo()
    assert np.array_equal(lm.labels > 0, mask)
    ctl.undo()

    # a stroke painted while the accept is planned: the commit plans again and keeps it
    painted = np.flatnonzero(mask.reshape(-1))[::97]
    win.actions_by_name["proposal_accept"].trigger()
    assert ctl.state.accepting
    ctl.apply_voxels(painted, 2, "brush")
    assert run_until(lambda: not ctl.state.accepting, 60000)
    assert np.all(lm.labels.reshape(-1)[painted] == 2)
    rest = mask.copy().reshape(-1)
    rest[painted] = False
    assert np.all(lm.labels.reshape(-1)[rest] == ctl.active_label)
    assert np.array_equal(read_journal(ctl.state.journal.path).replay(), lm.labels)
