"""EffortPanel: annotation effort per model version (cases, minutes, voxels edited, means per
case), each version's row unfolding into its corrected cases.

Reads ``storage.effort`` on the job bridge; the tree follows when the numbers are back."""
from __future__ import annotations

from typing import Callable, Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QHBoxLayout, QHeaderView, QLabel, QPushButton, QTreeWidget,
                               QTreeWidgetItem, QVBoxLayout, QWidget)

COLUMNS = ("Model version / case", "Cases", "Time (min:s)", "Strokes", "Voxels", "Time / case",
           "Voxels / case")
_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter


def _minutes(seconds) -> str:
    """Annotation time as minutes:seconds (short reviews are seconds long)."""
    total = int(round(float(seconds or 0.0)))
    return f"{total // 60}:{total % 60:02d}"


def _int(v) -> str:
    return f"{int(round(float(v or 0))):,}".replace(",", " ")


class EffortPanel(QWidget):
    """``store_fn()`` gives the workspace's LabelStore."""

    sig_refreshed = Signal(list, list)  # VersionEffort rows, CaseEffort rows
    sig_error = Signal(str, str)

    def __init__(self, bridge, store_fn: Callable, parent=None):
        super().__init__(parent)
        self.setObjectName("effortPanel")
        self.bridge, self.store_fn = bridge, store_fn
        self.versions: list = []
        self.cases: list = []
        self.busy = False
        self._refresh_again = False

        self.tree = QTreeWidget(self)
        self.tree.setObjectName("effortTree")
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setRootIsDecorated(True)
        self.tree.setAlternatingRowColors(True)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.tree.setToolTip("Annotation time and voxels edited while correcting each model "
                             "version's predictions; unfold a version for its cases")
        self.refresh_button = QPushButton("Refresh", self)
        self.refresh_button.setObjectName("effortRefresh")
        self.summary = QLabel("", self)
        self.summary.setObjectName("effortSummary")
        self.summary.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(self.refresh_button)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.tree, 1)
        self.refresh_button.clicked.connect(self.refresh)

    def refresh(self):
        if self.busy:
            self._refresh_again = True
            return None
        store = self.store_fn()
        self.busy = True
        self.refresh_button.setEnabled(False)

        def work(reporter):
            from medviewer.services.review import effort_tables

            return effort_tables(store)

        def done(res):
            self._finish()
            self.show_effort(*res)
            if self._refresh_again:
                self._refresh_again = False
                self.refresh()

        def failed(msg):
            self._finish()
            self.summary.setText(f"Could not read the effort: {msg.splitlines()[0] if msg else ''}")
            self.sig_error.emit("Could not read the annotation effort", msg)

        return self.bridge.submit(work, "effort", on_done=done, on_error=failed,
                                  on_cancelled=self._finish)

    def _finish(self) -> None:
        self.busy = False
        self.refresh_button.setEnabled(True)

    def show_effort(self, versions: list, cases: list) -> None:
        self.versions, self.cases = list(versions), list(cases)
        self.tree.clear()
        for v in self.versions:
            row = QTreeWidgetItem([str(v.model_ref), str(v.cases), _minutes(v.seconds),
                                   _int(v.strokes), _int(v.voxels),
                                   _minutes(v.seconds_per_case), _int(v.voxels_per_case)])
            row.setData(0, Qt.ItemDataRole.UserRole, v.model_ref)
            for c in (c for c in self.cases if c.model_ref == v.model_ref):
                child = QTreeWidgetItem([f"{c.image_hash[:12]}… ({c.tag})", "",
                                         _minutes(c.seconds), _int(c.strokes), _int(c.voxels),
                                         "", ""])
                child.setData(0, Qt.ItemDataRole.UserRole, c.record_id)
                child.setToolTip(0, f"Image {c.image_hash}\nRecord {c.record_id}")
                row.addChild(child)
            for item in [row] + [row.child(i) for i in range(row.childCount())]:
                for col in range(1, len(COLUMNS)):
                    item.setTextAlignment(col, _RIGHT)
            self.tree.addTopLevelItem(row)
            row.setExpanded(True)
        for col in range(1, len(COLUMNS)):
            self.tree.headerItem().setTextAlignment(col, _RIGHT)
        n_cases = sum(int(v.cases) for v in self.versions)
        secs = sum(float(v.seconds) for v in self.versions)
        self.summary.setText(f"{len(self.versions)} model version(s), {n_cases} corrected "
                             f"case(s), {_minutes(secs)} min:s of annotation" if self.versions else
                             "No corrections of model predictions yet")
        self.sig_refreshed.emit(list(self.versions), list(self.cases))

    def version_row(self, model_ref: str) -> Optional[QTreeWidgetItem]:
        for i in range(self.tree.topLevelItemCount()):
            it = self.tree.topLevelItem(i)
            if it.data(0, Qt.ItemDataRole.UserRole) == model_ref:
                return it
        return None
