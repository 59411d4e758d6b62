"""VersionsPanel: the versions of one model (metric, parent, active marked); Promote / Roll back.

The active version is the pointer file read by :mod:`medviewer.services.models`; the buttons call
``promote`` / ``rollback`` there on the I/O pool (they load the version's weights, check their
hash and run one small input through it first; a version that fails is refused), then
the table is re-read. ``VersionsDialog`` wraps the panel for "AI > Model versions…"."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QHBoxLayout, QLabel,
                               QPushButton, QTableWidgetItem, QVBoxLayout, QWidget)

from medviewer.services.models import ModelCatalog, metric_text

from .common import row_table, window_dialog
from .report_view import ReportDialog

COLUMNS = ("", "Version", "Parent", "Metric (split)", "Where", "Created")


def _created(card, user: bool) -> str:
    """When a version was made: its card's training.created_at, else (user versions) the
    time its model.json was written."""
    stamp = str((card.training or {}).get("created_at", "") or "")
    if stamp:
        return stamp[:19].replace("T", " ")
    if user and card.folder is not None:
        from datetime import datetime

        try:
            return datetime.fromtimestamp((card.folder / "model.json").stat().st_mtime).strftime("%Y-%m-%d %H:%M")
        except OSError:
            return ""
    return ""


class VersionsPanel(QWidget):
    sig_changed = Signal(str, str)  # model name, new active version
    sig_error = Signal(str, str)

    def __init__(self, bridge, catalog: Optional[ModelCatalog] = None,
                 model: Optional[str] = None, parent=None):
        super().__init__(parent)
        self.setObjectName("versionsPanel")
        self.bridge = bridge
        self.catalog = catalog if catalog is not None else ModelCatalog()
        self.cards: List = []
        self.active: Optional[str] = None
        self.busy = False
        self.last_message = ""
        self.report_dialog: Optional[ReportDialog] = None

        self.model_combo = QComboBox(self)
        self.model_combo.setObjectName("versionsModel")
        self.model_combo.currentTextChanged.connect(lambda _t: self.refresh_table())
        self.table = row_table(self, "versionsTable", COLUMNS)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.itemDoubleClicked.connect(lambda _i: self.open_report())

        self.promote_button = QPushButton("Promote", self)
        self.promote_button.setObjectName("promoteButton")
        self.promote_button.setToolTip("Make the selected version the active one (its weights "
                                       "are loaded and run once first)")
        self.promote_button.clicked.connect(self.promote_selected)
        self.rollback_button = QPushButton("Roll back", self)
        self.rollback_button.setObjectName("rollbackButton")
        self.rollback_button.setToolTip("Go back to the selected earlier version "
                                        "(no selection, or the active one selected: the previously active version)")
        self.rollback_button.clicked.connect(self.rollback)
        self.report_button = QPushButton("Open report", self)
        self.report_button.setObjectName("openReportButton")
        self.report_button.setToolTip("The gate report of the selected version (active vs candidate "
                                      "per class, intervals, calibration), shown here")
        self.report_button.clicked.connect(self.open_report)
        refresh = QPushButton("Refresh", self)
        refresh.clicked.connect(lambda: self.refresh(self.model_name))
        self.status = QLabel("", self)
        self.status.setObjectName("versionsStatus")
        self.status.setWordWrap(True)

        top = QHBoxLayout()
        top.addWidget(QLabel("Model:", self))
        top.addWidget(self.model_combo, 1)
        top.addWidget(refresh)
        buttons = QHBoxLayout()
        for b in (self.promote_button, self.rollback_button, self.report_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.table, 1)
        lay.addLayout(buttons)
        lay.addWidget(self.status)
        self.refresh(model)

    # ------------------------------------------------------------------ reading
    @property
    def model_name(self) -> str:
        return self.model_combo.currentText()

    def refresh(self, model: Optional[str] = None) -> None:
        """Re-scan the registry; keep (or select) ``model``."""
        self.catalog.reload()
        names = sorted({c.name for c in self.catalog.list()})
        want = model or self.model_name
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        self.model_combo.addItems(names)
        if want in names:
            self.model_combo.setCurrentText(want)
        self.model_combo.blockSignals(False)
        self.refresh_table()

    def refresh_table(self) -> None:
        name = self.model_name
        catalog = self.catalog
        self.cards = [c for c in catalog.list() if c.name == name] if name else []
        try:
            self.active = catalog.active_version(name) if name else None
        except Exception as exc:  # an unreadable pointer file: show it, keep the table usable
            self.active = None
            self._say(f"Cannot read the active version: {exc}")
        shown_active = self.active or (self._default_version() if self.cards else None)
        selected = self.selected_version()
        self.table.setRowCount(len(self.cards))
        bold = QFont()
        bold.setBold(True)
        for row, card in enumerate(reversed(self.cards)):  # newest first
            is_active = card.version == shown_active
            where = "built-in" if catalog.is_builtin(card) else "user"
            created = _created(card, where == "user")
            values = ("●" if is_active else "", card.version, card.parent_version or "—",
                      metric_text(card), where, created)
            for col, text in enumerate(values):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, card.version)
                if is_active:
                    item.setFont(bold)
                    item.setToolTip("active" + ("" if self.active else " (no pointer: highest built-in)"))
                self.table.setItem(row, col, item)
        self.table.resizeColumnsToContents()
        if selected is not None:
            self.select_version(selected)
        self._update_buttons()

    def _default_version(self) -> Optional[str]:
        try:
            return self.catalog.get(self.model_name).version
        except Exception:
            return None

    def versions(self) -> List[str]:
        return [c.version for c in self.cards]

    def active_row_version(self) -> Optional[str]:
        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).text():
                return self.table.item(row, 1).text()
        return None

    def selected_version(self) -> Optional[str]:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 1)
        return item.text() if item is not None else None

    def select_version(self, version: str) -> bool:
        for row in range(self.table.rowCount()):
            if self.table.item(row, 1).text() == version:
                self.table.selectRow(row)
                return True
        return False

    def _selected_card(self):
        v = self.selected_version()
        return next((c for c in self.cards if c.version == v), None)

    def _update_buttons(self) -> None:
        sel = self.selected_version()
        current = self.active_row_version()
        self.promote_button.setEnabled(not self.busy and sel is not None and sel != current)
        self.rollback_button.setEnabled(not self.busy and len(self.cards) > 1)
        card = self._selected_card()
        self.report_button.setEnabled(card is not None and card.folder is not None
                                      and (card.folder / "report.md").is_file())

    def _say(self, text: str) -> None:
        self.last_message = text
        self.status.setText(text)

    # ------------------------------------------------------------------ actions
    def promote_selected(self) -> None:
        version = self.selected_version()
        if version is None:
            return
        name, catalog = self.model_name, self.catalog

        def work(reporter):
            return catalog.promote(name, version, reason="promoted in the Model versions panel")

        self._run(work, f"Promoting {name}:{version}…", "Could not promote")

    def rollback(self) -> None:
        sel = self.selected_version()
        target = sel if sel is not None and sel != self.active_row_version() else None
        name, catalog = self.model_name, self.catalog

        def work(reporter):
            return catalog.rollback(name, target)

        where = target or "the previously active version"
        self._run(work, f"Rolling {name} back to {where}…", "Could not roll back")

    def _run(self, work, message: str, error_title: str) -> None:
        self.busy = True
        self._update_buttons()
        self._say(message)
        name = self.model_name

        def done(version):
            self.busy = False
            self.refresh_table()
            self._say(f"{name}: active version is now {version}")
            self.sig_changed.emit(name, str(version))

        def failed(msg):
            self.busy = False
            self.refresh_table()
            self._say(f"{error_title}: {msg}")
            self.sig_error.emit(error_title, msg)

        self.bridge.submit(work, "model-versions", on_done=done, on_error=failed,
                           on_cancelled=lambda: failed("cancelled"))

    def open_report(self) -> Optional[Path]:
        card = self._selected_card()
        if card is None or card.folder is None:
            return None
        report = card.folder / "report.md"
        if not report.is_file():
            self._say(f"{card.ref} has no report (built-in versions have none)")
            return None
        if self.report_dialog is not None:
            self.report_dialog.close()
        self.report_dialog = ReportDialog(report, f"Gate report — {card.ref}", self)
        self.report_dialog.show()
        self.report_dialog.raise_()
        return report


class VersionsDialog(QDialog):
    """Non-modal window around a VersionsPanel (AI > Model versions…)."""

    def __init__(self, bridge, catalog: Optional[ModelCatalog] = None, model: Optional[str] = None,
                 parent=None):
        super().__init__(parent)
        self.setObjectName("versionsDialog")
        self.setWindowTitle("Model versions")
        self.panel = VersionsPanel(bridge, catalog, model, self)
        box = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        box.rejected.connect(self.close)
        lay = QVBoxLayout(self)
        lay.addWidget(self.panel, 1)
        lay.addWidget(box)
        self.resize(720, 380)


def show_versions_dialog(win, bridge, catalog: ModelCatalog,
                         model: Optional[str] = None) -> VersionsDialog:
    """Raise the window's Model versions dialog, or open one (non-modal; deleted when closed)."""
    dlg, created = window_dialog(win, "_versions_dialog",
                                 lambda: VersionsDialog(bridge, catalog, model=model, parent=win))
    if not created:
        dlg.panel.refresh(model)
    dlg.show()
    dlg.raise_()
    dlg.activateWindow()
    return dlg
