"""FindingsPanel: the Findings dock's widgets — which labels to measure (the label map or the
model's proposal), the findings table (label, slices, volume, long/short axis, mean ± SD),
export buttons and a status line. Widgets only: the FindingsFeature fills and reads it."""
from __future__ import annotations

from typing import Callable, List, Optional

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QHBoxLayout, QHeaderView, QLabel,
                               QPushButton, QTableView, QVBoxLayout, QWidget)

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


class FindingsModel(QAbstractTableModel):
    """The findings as table rows, made on demand (thousands of findings cost nothing until
    they are scrolled to)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.findings: List = []
        self.position: Callable[[int], int] = lambda z: z + 1
        self.units = ""

    def set(self, findings: list, position: Optional[Callable[[int], int]] = None) -> None:
        self.beginResetModel()
        self.findings = list(findings)
        self.position = position or (lambda z: z + 1)
        self.units = next((f.units for f in self.findings if f.units and f.mean is not None), "")
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.findings)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self.findings):
            return None
        f = self.findings[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return row_texts(f, self.position)[index.column()]
        if role == Qt.ItemDataRole.ToolTipRole:
            return row_tip(f, self.position)
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() != 1:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            if section == len(COLUMNS) - 1:
                return f"{self.units} mean ± SD".strip()
            return COLUMNS[section]
        return None


class FindingsTable(QTableView):
    """Up/Down move through the findings; Enter (or a click) asks to jump to one."""

    sig_jump = Signal(int)  # row

    def keyPressEvent(self, ev):
        row = self.currentIndex().row()
        if ev.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and row >= 0:
            self.sig_jump.emit(row)
            ev.accept()
            return
        super().keyPressEvent(ev)


class FindingsPanel(QWidget):
    sig_jump = Signal(int)  # row of the finding to show
    sig_source = Signal(str)  # "labels" or "proposal"
    sig_export = Signal(str)  # "csv", "json" or "sr"
    sig_compare = Signal()  # the label map against the proposal (a registered follow-up)

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
        self.model = FindingsModel(self)
        self.table = FindingsTable(self)
        self.table.setObjectName("findingsTable")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        head = self.table.horizontalHeader()
        head.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        head.setMinimumSectionSize(24)
        head.setResizeContentsPrecision(200)  # widths from the first rows, not thousands
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.setToolTip("Click a finding (or Enter) to go to the slice where it is "
                              "longest and draw its long and short axis; Up/Down move")
        self.table.clicked.connect(lambda index: self.sig_jump.emit(index.row()))
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
        self.compare = QPushButton("Compare label map → proposal…", self)
        self.compare.setObjectName("findingsCompare")
        self.compare.setToolTip("Match the findings of the label map (baseline) and of the "
                                "proposal (e.g. a registered follow-up's labels carried over) by "
                                "label and centroid distance, and show their change")
        self.compare.clicked.connect(self.sig_compare)
        lay.addWidget(self.compare)
        self.status = QLabel("", self)
        self.status.setObjectName("findingsStatus")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)

    @property
    def source_key(self) -> str:
        return self.source.currentData()

    def set_findings(self, findings: list, position: Optional[Callable[[int], int]] = None) -> None:
        """Show ``findings``, keeping the selected finding (same label and component)
        selected; ``position`` numbers slices as the slice view does."""
        old = self.selected()
        keep = None if old is None else (old.label, old.component)
        self.findings = list(findings)
        t = self.table
        t.blockSignals(True)
        self.model.set(self.findings, position)
        t.resizeColumnsToContents()
        select = next((i for i, f in enumerate(self.findings)
                       if (f.label, f.component) == keep), -1)
        if select >= 0:
            t.selectRow(select)
        t.blockSignals(False)

    def selected(self) -> Optional[object]:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows or not 0 <= rows[0].row() < len(self.findings):
            return None
        return self.findings[rows[0].row()]
