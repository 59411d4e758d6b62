"""The AI lane keeps the GUI responsive: a whole-volume segmentation of the real chest CT runs
on the AI worker thread while the GUI thread keeps processing timer ticks; Cancel (and Esc)
ends the job as cancelled with nothing stored."""
from __future__ import annotations

import os
import threading
import time

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest

from ai_helpers import models_isolated, seg_card  # noqa: F401  (fixtures)
from medviewer.ui.stall_probe import StallProbe


def _ready(qtbot, win, card):
    ctl = win.annotation.ctl
    qtbot.waitUntil(lambda: ctl.state is not None and ctl.state.ready, timeout=30000)
    win.ai.ctl.select(card.ref)
    return ctl.state


def test_whole_volume_segmentation_runs_off_the_gui_thread(qtbot, chest_window, seg_card):
    win = chest_window
    _ready(qtbot, win, seg_card)
    ai, panel = win.ai.ctl, win.ai.panel
    steps = []
    ai.sig_progress.connect(lambda msg, done, total: steps.append((done, total)))
    probe = StallProbe()
    probe.start()
    from medviewer.services import ai_process

    child, runs = ai_process.shared(), ai_process.shared().runs
    qtbot.mouseClick(panel.run_volume_button, Qt.MouseButton.LeftButton)
    assert ai.running and panel.cancel_button.isEnabled() and not panel.run_volume_button.isEnabled()
    assert win.actions_by_name["ai_cancel"].isEnabled()
    # a second job is refused while one runs: never two at once
    assert ai.worker.submit(lambda ctx: None, "second") is None
    with qtbot.waitSignal(ai.sig_segmentation, timeout=300000):
        pass
    probe.stop()
    print(f"\nAI responsiveness: {probe.ticks} ticks, longest GUI gap {1000 * probe.longest:.0f} ms")
    assert ai.worker.last_thread is not None and ai.worker.last_thread != threading.get_ident()
    # the network ran in the app's inference process, not in this interpreter
    assert ai.worker.lane.process is child and child.runs == runs + 1
    assert child.alive and child.pid != os.getpid()
    assert probe.thread == threading.get_ident()
    assert len(steps) >= 3 and steps[-1][0] == steps[-1][1]  # progress reached the GUI
    assert probe.ticks >= 20  # the GUI thread kept turning while the model ran
    assert not ai.running and panel.run_volume_button.isEnabled()


def test_cancel_after_first_progress_stores_nothing(qtbot, chest_window, seg_card):
    win = chest_window
    st = _ready(qtbot, win, seg_card)
    ai, panel = win.ai.ctl, win.ai.panel
    cancelled_at = []

    def on_progress(msg, done, total):
        if done >= 1 and not cancelled_at:  # after the first real step
            cancelled_at.append(time.perf_counter())
            qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)

    ai.sig_progress.connect(on_progress)
    with qtbot.waitSignal(ai.worker.sig_cancelled, timeout=60000):
        qtbot.mouseClick(panel.run_volume_button, Qt.MouseButton.LeftButton)
    print(f"\ncancel -> cancelled: {1000 * (time.perf_counter() - cancelled_at[0]):.0f} ms")
    assert cancelled_at
    assert not ai.running and ai.last_seg is None
    assert ctl_records(win, st) == []
    assert win.annotation.ctl.labelmap is None
    assert "uncertainty" not in win.ai.heat.maps
    # the app is responsive: timers fire, and the next run can start
    fired = []
    QTimer.singleShot(0, lambda: fired.append(True))
    qtbot.waitUntil(lambda: bool(fired), timeout=1000)
    assert panel.run_slice_button.isEnabled()
    assert win.actions_by_name["tool_navigate"].shortcut().toString() == "Esc"


def test_escape_cancels_while_running(qtbot, chest_window, seg_card):
    win = chest_window
    st = _ready(qtbot, win, seg_card)
    ai = win.ai.ctl
    with qtbot.waitSignal(ai.sig_progress, timeout=60000):
        win.actions_by_name["ai_run_volume"].trigger()
    assert win.actions_by_name["ai_cancel"].shortcut().toString() == "Esc"
    assert win.actions_by_name["tool_navigate"].shortcut().isEmpty()
    with qtbot.waitSignal(ai.worker.sig_cancelled, timeout=60000):
        QTest.keyClick(win.tri.views["axial"], Qt.Key.Key_Escape)
    assert ctl_records(win, st) == []
    assert win.actions_by_name["tool_navigate"].shortcut().toString() == "Esc"


def ctl_records(win, st):
    return win.annotation.ctl.store.records(st.image_hash, kind="labelmap")
