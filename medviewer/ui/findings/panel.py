"""FindingsPanel: the Findings dock's widgets — which labels to measure (the label map or the
model's proposal), the findings table (label, slices, volume, long/short axis, mean ± SD),
export buttons and a status line. Widgets only: the FindingsFeature fills and reads it."""
from __future__ import annotations

from typing import Callable, List, Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QHBoxLayout, QHeaderView, QLabel,
                               QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

COLUMNS = ("#", "Label", "Slices", "ml", "Long mm", "Short mm", "Mean ± SD")
SOURCES = (("labels", "Label map"), ("proposal", "AI proposal"))


def _mean_text(f) -> str:
    return "" if f.mean is None else f"{f.mean:.0f} ± {f.sd:.0f}"


def row_texts(f, position: Callable[[int], int] = lambda z: z + 1) -> list:
    """The table's cells for one finding; ``position``: array slice -> the number the slice
    view shows for it (default 1-based array order)."""
    a, b = sorted((position(f.slices[0]), position(f.slices[1])))
    return [str(f.number), f"{f.name} #{f.component}" if f.component > 1 else f.name,
            f"{a}–{b}" if a != b else str(a), f"{f.volume_ml:.2f}",
            f"{f.long_mm:.1f}", f"{f.short_mm:.1f}", _mean_text(f)]


def row_tip(f, position: Callable[[int], int] = lambda z: z + 1) -> str:
    lo, hi = f.bbox_min_lps, f.bbox_max_lps
    mean = "" if f.mean is None else f"\nmean {f.mean:.1f} ± {f.sd:.1f} {f.units}".rstrip()
    return (f"{f.name} (label {f.label}), component {f.component}: {f.n_voxels} voxels, "
            f"{f.volume_ml:.3f} ml\nlong axis {f.long_mm:.1f} mm, short axis {f.short_mm:.1f} mm"
            f" on slice {position(f.measure_slice)}\nbox L {lo[0]:.1f}..{hi[0]:.1f}, "
            f"P {lo[1]:.1f}..{hi[1]:.1f}, S {lo[2]:.1f}..{hi[2]:.1f} mm" + mean)


class FindingsTable(QTableWidget):
    """Up/Down move through the findings; Enter (or a click) asks to jump to one."""

    sig_jump = Signal(int)  # row

    def keyPressEvent(self, ev):
        if ev.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentRow() >= 0:
            self.sig_jump.emit(self.currentRow())
            ev.accept()
            return
        super().keyPressEvent(ev)


class FindingsPanel(QWidget):
    sig_jump = Signal(int)  # row of the finding to show
    sig_source = Signal(str)  # "labels" or "proposal"
    sig_export = Signal(str)  # "csv", "json" or "sr"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("findingsPanel")
        self.findings: List = []
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        top = QHBoxLayout()
        top.addWidget(QLabel("Measure:"))
        self.source = QComboBox(self)
        self.source.setObjectName("findingsSource")
        for key, text in SOURCES:
            self.source.addItem(text, key)
        self.source.setToolTip("Findings of the label map being edited, or of the model's "
                               "proposal (each connected component of a label, 26-connected)")
        self.source.currentIndexChanged.connect(
            lambda i: self.sig_source.emit(self.source.itemData(i)))
        top.addWidget(self.source, 1)
        lay.addLayout(top)
        self.table = FindingsTable(0, len(COLUMNS), self)
        self.table.setObjectName("findingsTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        head = self.table.horizontalHeader()
        head.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        head.setMinimumSectionSize(24)
        self.table.setToolTip("Click a finding (or Enter) to go to the slice where it is "
                              "longest and draw its long and short axis; Up/Down move")
        self.table.cellClicked.connect(lambda row, col: self.sig_jump.emit(row))
        self.table.sig_jump.connect(self.sig_jump)
        lay.addWidget(self.table, 1)
        buttons = QHBoxLayout()
        for key, text, tip in (("csv", "CSV…", "Export the findings as CSV"),
                               ("json", "JSON…", "Export the findings as JSON (anonymised)"),
                               ("sr", "DICOM SR…", "A DICOM SR (TID 1500) and the DICOM SEG it "
                                                   "references; for DICOM images only")):
            b = QPushButton(text, self)
            b.setObjectName(f"findingsExport_{key}")
            b.setToolTip(tip)
            b.clicked.connect(lambda _=False, key=key: self.sig_export.emit(key))
            buttons.addWidget(b)
        lay.addLayout(buttons)
        self.status = QLabel("", self)
        self.status.setObjectName("findingsStatus")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)

    @property
    def source_key(self) -> str:
        return self.source.currentData()

    def set_findings(self, findings: list, position: Optional[Callable[[int], int]] = None) -> None:
        """Fill the table, keeping the selected finding (same label and component) selected;
        ``position`` numbers slices as the slice view does."""
        position = position or (lambda z: z + 1)
        units = next((f.units for f in findings if f.units and f.mean is not None), "")
        self.table.horizontalHeaderItem(6).setText(f"{units} mean ± SD".strip())
        old = self.selected()
        keep = None if old is None else (old.label, old.component)
        self.findings = list(findings)
        t = self.table
        t.blockSignals(True)
        t.setRowCount(len(self.findings))
        select = -1
        for row, f in enumerate(self.findings):
            tip = row_tip(f, position)
            for col, text in enumerate(row_texts(f, position)):
                item = QTableWidgetItem(text)
                item.setToolTip(tip)
                if col != 1:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                t.setItem(row, col, item)
            if keep == (f.label, f.component):
                select = row
        if select >= 0:
            t.selectRow(select)
        else:
            t.clearSelection()
        t.blockSignals(False)

    def selected(self) -> Optional[object]:
        row = self.table.currentRow()
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows or not 0 <= row < len(self.findings):
            return None
        return self.findings[row]
