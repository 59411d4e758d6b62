"""Helpers for the annotation UI tests: real mouse events on SliceView viewports."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication


def viewport_pos(view, row: float, col: float) -> QPoint:
    """Widget (viewport) position of a display pixel of a SliceView."""
    scene = view.vb.mapViewToScene(view.display_to_view(row, col))
    return view.mapFromScene(scene)


def index_at(view, pos: QPoint) -> np.ndarray:
    """The continuous (z, y, x) index under a viewport position."""
    return view.view_to_index(view.vb.mapSceneToView(view.mapToScene(pos)))


def _send(widget, kind, pos: QPoint, button, buttons, modifiers=Qt.KeyboardModifier.NoModifier):
    p = QPointF(pos)
    ev = QMouseEvent(kind, p, QPointF(widget.mapToGlobal(pos)), button, buttons, modifiers)
    QApplication.sendEvent(widget, ev)


def drag(widget, points, button=Qt.MouseButton.LeftButton, wait_ms: int = 15,
         modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    """Press at points[0], move (button held) through the others, release at the last
    (``modifiers`` held throughout, e.g. Ctrl).

    pyqtgraph drops move events closer than 10 ms apart, so the moves are paced."""
    _send(widget, QEvent.Type.MouseButtonPress, points[0], button, button, modifiers)
    for p in points[1:]:
        QTest.qWait(wait_ms)
        _send(widget, QEvent.Type.MouseMove, p, Qt.MouseButton.NoButton, button, modifiers)
    _send(widget, QEvent.Type.MouseButtonRelease, points[-1], button, Qt.MouseButton.NoButton, modifiers)


def line(a: QPoint, b: QPoint, steps: int = 6):
    return [a + (b - a) * i / steps for i in range(steps + 1)]


def click(widget, pos: QPoint, double: bool = False) -> None:
    b = Qt.MouseButton.LeftButton
    _send(widget, QEvent.Type.MouseButtonPress, pos, b, b)
    _send(widget, QEvent.Type.MouseButtonRelease, pos, b, Qt.MouseButton.NoButton)
    if double:
        _send(widget, QEvent.Type.MouseButtonDblClick, pos, b, b)
        _send(widget, QEvent.Type.MouseButtonRelease, pos, b, Qt.MouseButton.NoButton)


def rendered_rgb(widget) -> np.ndarray:
    img = widget.grab().toImage().convertToFormat(widget.grab().toImage().Format.Format_RGB32)
    arr = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine() // 4, 4)
    return arr[:, :img.width(), 2::-1].astype(int)  # BGRA -> RGB


def close_discarding(win) -> None:
    """Close a window; unsaved strokes a test left behind are discarded (the question that
    closing asks is answered 'Discard')."""
    from PySide6.QtWidgets import QMessageBox

    win.close()
    feature = win.features.get("annotation")
    question = None if feature is None else feature.unsaved.question
    if question is not None:
        question.button(QMessageBox.StandardButton.Discard).click()
