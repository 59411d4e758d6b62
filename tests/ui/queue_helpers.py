"""Helpers for the review-queue and effort UI tests: real predictions in a MainWindow."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from ai_helpers import CLS_MODEL, REPO, open_ready, wait_until

CHEST_CT = REPO / ".." / "shared" / "data" / "tcia_cmb_crc_ct_chest"


def classify(window):
    """Run the PneumoniaMNIST classifier on the active image; the ClassificationRun."""
    ai = window.ai.ctl
    ai.select(next(c.ref for c in ai.cards if c.name == CLS_MODEL))
    before = ai.last_class
    assert ai.run_slice() is not None
    wait_until(lambda: ai.last_class is not before and not ai.running, 60000)
    return ai.last_class


def segment_slice(window, card, z: int):
    ai = window.ai.ctl
    ai.select(card.ref)
    _, y, x = window.session.cursor_zyx
    window.session.set_cursor_index((z, y, x))
    before = ai.last_seg
    assert ai.run_slice() is not None
    wait_until(lambda: ai.last_seg is not before and not ai.running, 120000)
    return ai.last_seg


def chest_ct_io(folder=CHEST_CT):
    """The chest CT read by the app's own reader (so reopening it from its files gives back
    the same content hash)."""
    from medviewer.io.load import open_first

    return open_first([str(folder)])


def refresh(panel) -> list:
    panel.refresh()
    wait_until(lambda: not panel.busy, 30000)
    return panel.items


def wait_store_idle(window) -> None:
    """The queue and effort panels refresh themselves after each stored record."""
    rv = window.review
    wait_until(lambda: not rv.queue.busy and not rv.effort.busy and not window.bridge.busy, 60000)


def double_click_row(table, row: int) -> None:
    rect = table.visualRect(table.model().index(row, 1))
    QTest.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    QTest.mouseDClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def wait_opened(window, panel, action) -> object:
    """Run ``action`` (which opens a case) and wait until the case is active and its
    annotation state knows the hash; the OpenedCase."""
    got = []
    panel.sig_opened.connect(got.append)
    try:
        action()
        wait_until(lambda: bool(got), 120000)
    finally:
        panel.sig_opened.disconnect(got.append)
    ctl = window.annotation.ctl
    wait_until(lambda: ctl.state is not None and ctl.state.ready, 60000)
    return got[0]


__all__ = ["classify", "segment_slice", "chest_ct_io", "refresh", "wait_store_idle",
           "double_click_row", "wait_opened", "open_ready"]
