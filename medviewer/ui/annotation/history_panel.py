"""HistoryPanel: the Label history dock — the active image's label-map records (tag, source,
time, effort, OOD score), open one, compare two (Dice per label, differing voxels), revert to
one as a new record. History is never edited."""
from __future__ import annotations

from datetime import datetime

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QPushButton,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

COLUMNS = ("", "Tag", "Source", "Saved", "Effort", "OOD")
OOD_COLUMN = 5
SOURCE_CHARS = 18  # longer model names are elided (the full one is in the tooltip)


def local_time(iso_utc: str, short: bool = False) -> str:
    try:
        t = datetime.fromisoformat(iso_utc).astimezone()
    except ValueError:
        return iso_utc[:19]
    if short:
        return t.strftime("%H:%M:%S" if t.date() == datetime.now().astimezone().date() else "%d %b %H:%M")
    return t.strftime("%Y-%m-%d %H:%M:%S")


def effort_text(effort: tuple) -> str:
    s, n, v = effort
    return f"{s:.0f} / {n} / {v}"


def entry_text(e) -> str:
    """One record in words (the line under the table for a single selection)."""
    s, n, v = e.effort
    parts = [f"<b>{e.tag}</b> by {e.source}, {local_time(e.created_at)}",
             f"{s:.0f} s, {n} stroke{'s' if n != 1 else ''}, {v} voxels changed"]
    if e.ood is not None:
        parts.append(f"OOD score {e.ood:.3f}")
    if e.note:
        parts.append(e.note)
    parts.append(f"record {e.id[:8]}" + (f", child of {e.parent_id[:8]}" if e.parent_id else ""))
    return "; ".join(parts)


def comparison_text(a, b, cmp, names: dict) -> str:
    """Rich text of a LabelComparison of records ``a`` and ``b`` (HistoryEntry)."""
    head = (f"<b>{a.tag}</b> {local_time(a.created_at)} vs <b>{b.tag}</b> "
            f"{local_time(b.created_at)}: ")
    if cmp.identical:
        return head + "identical"
    rows = [f"{names.get(v, f'Label {v}')}: Dice {d:.3f} ({cmp.voxels_a.get(v, 0)} / "
            f"{cmp.voxels_b.get(v, 0)} vox)" for v, d in cmp.dice.items()]
    return head + f"{cmp.differ} voxels differ ({100.0 * cmp.differ / max(cmp.total, 1):.3f} %)" \
        + "<br>" + "<br>".join(rows)


class HistoryPanel(QWidget):
    """Widgets only: reads ``controller.history()``; open/revert go through ``commands``
    (which ask about unsaved strokes first), compare through the controller."""

    def __init__(self, controller, commands, parent=None):
        super().__init__(parent)
        self.setObjectName("historyPanel")
        self.ctl, self.commands = controller, commands
        self.entries = []
        self.last_comparison = None  # the LabelComparison shown
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setObjectName("historyTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.horizontalHeaderItem(4).setToolTip("Seconds / strokes / voxels a person changed")
        self.table.horizontalHeaderItem(5).setToolTip("Out-of-distribution score of the image")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setToolTip("● marks the record the label map is based on. Select one record to "
                              "open or revert to it, two to compare them.")
        self.open_button = QPushButton("Open", self)
        self.open_button.setObjectName("historyOpen")
        self.open_button.setToolTip("Load the record as the label map (Ctrl+Z goes back)")
        self.compare_button = QPushButton("Compare", self)
        self.compare_button.setObjectName("historyCompare")
        self.compare_button.setToolTip("Dice per label and differing voxels of two records")
        self.revert_button = QPushButton("Revert to", self)
        self.revert_button.setObjectName("historyRevert")
        self.revert_button.setToolTip("Store the record again as a NEW 'corrected' record")
        self.result = QLabel("", self)
        self.result.setObjectName("historyResult")
        self.result.setWordWrap(True)
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.table, 1)
        row = QHBoxLayout()
        for b in (self.open_button, self.compare_button, self.revert_button):
            row.addWidget(b)
        lay.addLayout(row)
        lay.addWidget(self.result)
        self.open_button.clicked.connect(lambda: self._with_one(commands.open_record))
        self.revert_button.clicked.connect(lambda: self._with_one(commands.revert_to))
        self.compare_button.clicked.connect(self.compare_selected)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        for sig in (controller.sig_ready, controller.sig_saved, controller.sig_base_changed,
                    controller.sig_labelmap_changed):
            sig.connect(lambda *_: self.refresh())
        self.refresh()

    # ------------------------------------------------------------------ contents
    def refresh(self) -> None:
        selected = set(self.selected_ids())
        self.entries = self.ctl.history()
        base = None if self.ctl.state is None else self.ctl.state.base_record_id
        self.table.setRowCount(len(self.entries))
        for r, e in enumerate(self.entries):
            ood = "" if e.ood is None else f"{e.ood:.3f}"
            source = e.source if len(e.source) <= SOURCE_CHARS else e.source[:SOURCE_CHARS - 1] + "…"
            tag = e.tag + (" ↩" if e.note.startswith("reverted") else "")
            cells = ("●" if e.id == base else "", tag, source, local_time(e.created_at, True),
                     effort_text(e.effort), ood)
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, e.id)
                item.setToolTip(entry_text(e))
                if e.id == base:
                    f = QFont(item.font())
                    f.setBold(True)
                    item.setFont(f)
                self.table.setItem(r, c, item)
        self.table.setColumnHidden(OOD_COLUMN, all(e.ood is None for e in self.entries))
        self.select_ids(selected)
        self._update_buttons()

    def selected_ids(self) -> list:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        return [self.entries[r].id for r in rows if r < len(self.entries)]

    def select_ids(self, ids) -> None:
        self.table.clearSelection()
        mode = self.table.selectionMode()
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        for r, e in enumerate(self.entries):
            if e.id in ids:
                self.table.selectRow(r)
        self.table.setSelectionMode(mode)

    def _update_buttons(self) -> None:
        ids = self.selected_ids()
        n = len(ids)
        if n == 1:
            self.result.setText(entry_text(next(e for e in self.entries if e.id == ids[0])))
        elif n == 2:
            self.result.setText("Two records selected: Compare gives the Dice of each label and "
                                "the voxels that differ")
        self.open_button.setEnabled(n == 1)
        self.revert_button.setEnabled(n == 1)
        self.compare_button.setEnabled(n == 2)

    # ------------------------------------------------------------------ commands
    def _with_one(self, fn) -> None:
        ids = self.selected_ids()
        if len(ids) == 1:
            fn(ids[0])

    def compare_selected(self):
        ids = self.selected_ids()
        if len(ids) != 2:
            self.result.setText("Select two records to compare")
            return None
        by_id = {e.id: e for e in self.entries}
        a, b = by_id[ids[1]], by_id[ids[0]]  # the older one first

        def done(res):
            cmp, names = res
            self.result.setText(comparison_text(a, b, cmp, names))
            self.last_comparison = cmp

        self.result.setText("Comparing…")
        return self.ctl.compare(a.id, b.id, done)
