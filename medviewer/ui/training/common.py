"""Small Qt pieces the learning-loop panels share: a read-only row table, one dialog per window."""
from __future__ import annotations

from typing import Callable, Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QWidget


def row_table(parent: QWidget, object_name: str, columns: Sequence[str]) -> QTableWidget:
    """A read-only table that selects one whole row, columns sized to their contents."""
    table = QTableWidget(0, len(columns), parent)
    table.setObjectName(object_name)
    table.setHorizontalHeaderLabels(list(columns))
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.verticalHeader().setVisible(False)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    return table


def window_dialog(win, attr: str, make: Callable[[], QWidget]):
    """The window's dialog kept in ``win.<attr>`` (made by ``make`` when there is none;
    non-modal, deleted when closed) -> (dialog, created: bool)."""
    dlg = getattr(win, attr, None)
    if dlg is not None:
        return dlg, False
    dlg = make()
    dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dlg.destroyed.connect(lambda *_: setattr(win, attr, None))
    setattr(win, attr, dlg)
    return dlg, True
