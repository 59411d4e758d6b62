"""QtJobBridge: results, progress, errors and cancellation arrive as signals on the GUI thread."""
import threading
import time

import pytest
from PySide6.QtCore import QThread

from medviewer.ui.qt_jobs import QtJobBridge


@pytest.fixture
def bridge(qtbot):
    b = QtJobBridge()
    yield b
    b.shutdown()


def test_result_and_progress_on_gui_thread(qtbot, bridge):
    seen = {}

    def work(reporter):
        seen["worker"] = threading.current_thread().name
        for i in range(5):
            reporter(i + 1, 5, "step")
        return 42

    progress = []

    def on_done(value):
        seen["done_thread"] = QThread.currentThread()
        seen["value"] = value

    with qtbot.waitSignal(bridge.sig_idle, timeout=5000):
        bridge.submit(work, on_done=on_done, on_progress=progress.append)
    assert seen["value"] == 42 and seen["worker"].startswith("medviewer-io")
    assert seen["done_thread"] is QThread.currentThread()  # delivered on the GUI thread
    assert progress and progress[-1].done == 5  # the last step is never throttled away


def test_error_is_delivered_not_raised(qtbot, bridge):
    errors = []
    with qtbot.waitSignal(bridge.sig_failed, timeout=5000) as blocker:
        bridge.submit(lambda r: 1 / 0, on_error=errors.append)
    assert "ZeroDivisionError" in blocker.args[1] and errors == [blocker.args[1]]


def test_cancel_stops_a_cooperative_job(qtbot, bridge):
    started = threading.Event()
    cancelled = []

    def work(reporter):
        started.set()
        for i in range(1000):
            reporter(i, 1000, "busy")
            time.sleep(0.005)
        return "finished"

    done = []
    job = bridge.submit(work, on_done=done.append, on_cancelled=lambda: cancelled.append(True))
    assert started.wait(5)
    assert bridge.busy
    with qtbot.waitSignal(bridge.sig_cancelled, timeout=5000):
        job.cancel()
    assert cancelled == [True] and done == [] and not bridge.busy


def test_submit_after_shutdown_is_a_noop(qtbot):
    b = QtJobBridge()
    b.shutdown()
    job = b.submit(lambda r: 1)
    assert job.cancel_token.cancelled and not b.busy
