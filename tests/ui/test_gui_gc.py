"""GuiThreadCollector: cyclic garbage made on a worker thread is collected on the GUI thread
(a worker-thread collection of a QObject wrapper once deadlocked the app in CI)."""
from __future__ import annotations

import gc
import threading

from PySide6.QtCore import QObject

from medviewer.ui.gui_gc import GuiThreadCollector


def _cycles(n: int) -> None:
    for _ in range(n):
        a = {}
        a["self"] = a  # unreachable once the loop moves on: only the cyclic collector frees it


def test_worker_garbage_is_collected_on_the_gui_thread_only(qtbot, _collect_on_the_gui_thread):
    assert not gc.isenabled()  # the autouse fixture (as run_gui) turned automatic collection off
    threads = []

    def seen(phase, info):
        if phase == "start":
            threads.append(threading.get_ident())

    gc.callbacks.append(seen)
    try:
        worker = threading.Thread(target=_cycles, args=(20 * gc.get_threshold()[0],))
        worker.start()
        worker.join()
        assert threads == []  # thresholds crossed many times over: nothing ran on the worker
        qtbot.waitUntil(lambda: bool(threads), timeout=5000)  # the GUI thread's timer
        assert set(threads) == {threading.main_thread().ident}
    finally:
        gc.callbacks.remove(seen)


def test_stop_gives_collection_back_and_collects_what_the_gui_left(qapp):
    before = gc.isenabled()
    col = GuiThreadCollector()
    col.start()
    col.start()  # twice: still one start, the state to restore is the first one's
    assert not gc.isenabled() and col.active
    holder = QObject()
    holder.loop = holder  # a QObject wrapper in a reference cycle
    destroyed = []
    holder.destroyed.connect(lambda: destroyed.append(True))
    del holder
    assert not destroyed  # only the cyclic collector can free it
    col.stop(collect=True)
    assert destroyed and not col.active
    assert gc.isenabled() == before
    col.deleteLater()
