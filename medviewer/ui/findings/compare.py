"""ChangesDialog: the findings of two time points matched (label and centroid distance) with
their change — the label map (baseline) against the proposal on the same image, which is where
a registered follow-up's labels arrive (Registration > Carry labels over)."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QDialogButtonBox, QHeaderView, QLabel,
                               QTableWidget, QTableWidgetItem, QVBoxLayout)

COLUMNS = ("Label", "Status", "Volume ml", "Δ volume", "Long mm", "Δ long", "Short mm",
           "Δ short", "Moved mm")


def _num(v, fmt: str = "{:.1f}", signed: bool = False) -> str:
    if v is None:
        return ""
    return ("{:+.1f}" if signed else fmt).format(v)


def change_texts(c) -> list:
    """One row: the follow-up's values (the baseline's when gone) and the changes."""
    f = c.followup or c.baseline
    name = f"{f.name} #{f.component}" if f.component > 1 else f.name
    pct = c.volume_change_pct
    dvol = "" if c.volume_change_ml is None else (
        f"{c.volume_change_ml:+.2f} ml" + ("" if pct is None else f" ({pct:+.0f} %)"))
    base = c.baseline
    vols = f"{base.volume_ml:.2f} → {c.followup.volume_ml:.2f}" if c.status == "matched" \
        else f"{f.volume_ml:.2f}"
    return [name, c.status, vols, dvol, _num(f.long_mm), _num(c.long_change_mm, signed=True),
            _num(f.short_mm), _num(c.short_change_mm, signed=True), _num(c.distance_mm)]


class ChangesDialog(QDialog):
    def __init__(self, changes: list, parent=None):
        super().__init__(parent)
        self.setObjectName("findingsChanges")
        self.setWindowTitle("Findings: change from the label map to the proposal")
        self.changes = list(changes)
        lay = QVBoxLayout(self)
        n = {s: sum(c.status == s for c in self.changes) for s in ("matched", "gone", "new")}
        lay.addWidget(QLabel(f"Baseline: the label map; follow-up: the proposal (a registered "
                             f"series' labels carried over). {n['matched']} matched by label "
                             f"and centroid (≤ 20 mm), {n['gone']} gone, {n['new']} new.", self))
        self.table = QTableWidget(len(self.changes), len(COLUMNS), self)
        self.table.setObjectName("findingsChangesTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        for row, c in enumerate(self.changes):
            for col, text in enumerate(change_texts(c)):
                item = QTableWidgetItem(text)
                if col > 1:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, col, item)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.resizeColumnsToContents()
        lay.addWidget(self.table, 1)
        box = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        box.rejected.connect(self.close)
        lay.addWidget(box)
        self.resize(820, 420)
