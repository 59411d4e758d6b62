"""ReviewQueuePanel: the active-learning review queue dock — open predictions ranked by the
model's case-level uncertainty; open a case, open the next one, mark a case as validation.

The store is read and cases are loaded on the job bridge (never on the GUI thread); the
worker-side work is in :mod:`medviewer.services.review`."""
from __future__ import annotations

import math
from typing import Callable, Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QPushButton, QTableWidgetItem,
                               QVBoxLayout, QWidget)

from medviewer.services.review import OpenedCase, load_case, mark_validation, review_queue

from ..shortcuts import KEYS
from .common import row_table

COLUMNS = ("Rank", "Uncertainty", "Model", "Kind", "Date")
NEXT_CASE_KEY = KEYS["review_next"]
ALL_MODELS = "All models"
KIND_TEXT = {"labelmap": "segmentation", "case": "classification"}


def _fmt_uncertainty(value) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "—"
    if not math.isfinite(v):
        return "—"
    return f"{v:.3f}" if v >= 0.001 or v == 0 else f"{v:.1e}"


def _fmt_date(iso: str) -> str:
    s = str(iso or "")
    return s[:19].replace("T", " ") if len(s) >= 19 else s


class ReviewQueuePanel(QWidget):
    """Widgets plus the jobs behind them. ``store_fn()`` gives the workspace's LabelStore;
    ``open_fn(OpenedCase)`` shows a reopened case (the main window adds it to the session);
    ``current_hash_fn()`` the image hash of the active image (for "next case");
    ``dims_fn(model_name)`` a model's input dims (2D segmentation splits by slabs)."""

    sig_refreshed = Signal(list)  # QueueItems shown (after the model filter)
    sig_opened = Signal(object)  # OpenedCase
    sig_marked = Signal(str, dict)  # model name, {unit: split}
    sig_status = Signal(str)
    sig_error = Signal(str, str)

    def __init__(self, bridge, store_fn: Callable, open_fn: Optional[Callable] = None,
                 current_hash_fn: Optional[Callable] = None,
                 dims_fn: Optional[Callable] = None, parent=None):
        super().__init__(parent)
        self.setObjectName("reviewQueuePanel")
        self.bridge, self.store_fn = bridge, store_fn
        self.open_fn, self.current_hash_fn, self.dims_fn = open_fn, current_hash_fn, dims_fn
        self.all_items: list = []
        self.items: list = []  # shown, in rank order
        self.busy = False
        self._refresh_again = False

        self.model_combo = QComboBox(self)
        self.model_combo.setObjectName("reviewQueueModel")
        self.model_combo.setToolTip("Show the open predictions of one model, or of all")
        self.model_combo.addItem(ALL_MODELS, None)
        self.model_combo.currentIndexChanged.connect(lambda _i: self._fill())
        self.refresh_button = QPushButton("Refresh", self)
        self.refresh_button.setObjectName("reviewQueueRefresh")
        self.refresh_button.setToolTip("Read the open predictions from the label store again")
        self.table = row_table(self, "reviewQueueTable", COLUMNS)
        self.table.setToolTip("Predictions not yet corrected, most uncertain first; "
                              "double-click opens the case")
        self.open_button = QPushButton("Open", self)
        self.open_button.setObjectName("reviewQueueOpen")
        self.open_button.setToolTip("Open the selected case (double-click a row)")
        self.next_button = QPushButton("Next case", self)
        self.next_button.setObjectName("reviewQueueNext")
        self.next_button.setToolTip(f"Open the next case in the queue ({NEXT_CASE_KEY})")
        self.val_button = QPushButton("Mark as validation", self)
        self.val_button.setObjectName("reviewQueueMarkValidation")
        self.val_button.setToolTip("Freeze the selected case in the model's validation set: "
                                   "it is never trained on")
        self.status = QLabel("", self)
        self.status.setObjectName("reviewQueueStatus")
        self.status.setWordWrap(True)

        top = QHBoxLayout()
        top.addWidget(self.model_combo, 1)
        top.addWidget(self.refresh_button)
        buttons = QHBoxLayout()
        for b in (self.open_button, self.next_button, self.val_button):
            buttons.addWidget(b)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.table, 1)
        lay.addLayout(buttons)
        lay.addWidget(self.status)

        self.refresh_button.clicked.connect(self.refresh)
        self.open_button.clicked.connect(lambda: self.open_row(self.selected_row()))
        self.next_button.clicked.connect(self.open_next)
        self.val_button.clicked.connect(lambda: self.mark_validation(self.selected_row()))
        self.table.cellDoubleClicked.connect(lambda row, _col: self.open_row(row))
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.sig_status.connect(self.status.setText)
        self._update_buttons()

    # ------------------------------------------------------------------ reading
    def refresh(self):
        """Read the queue on the bridge; the table follows when it is back."""
        if self.busy:
            self._refresh_again = True
            return None
        store = self.store_fn()
        self.busy = True
        self._update_buttons()

        def work(reporter):
            return review_queue(store)

        def done(items):
            self.busy = False
            self.all_items = list(items)
            self._fill_models()
            self._fill()
            if self._refresh_again:
                self._refresh_again = False
                self.refresh()

        return self.bridge.submit(work, "review-queue", on_done=done,
                                  on_error=lambda msg: self._failed("Could not read the review queue", msg),
                                  on_cancelled=lambda: self._failed("", ""))

    def _failed(self, title: str, msg: str) -> None:
        self.busy = False
        self._update_buttons()
        if title:
            self.sig_status.emit(f"{title}: {msg.splitlines()[0] if msg else ''}")
            self.sig_error.emit(title, msg)

    def _fill_models(self) -> None:
        names = sorted({self.model_name(it) for it in self.all_items})
        keep = self.model_combo.currentData()
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        self.model_combo.addItem(ALL_MODELS, None)
        for n in names:
            self.model_combo.addItem(n, n)
        self.model_combo.setCurrentIndex(max(0, self.model_combo.findData(keep)) if keep else 0)
        self.model_combo.blockSignals(False)

    @staticmethod
    def model_name(item) -> str:
        return str(item.model_ref).split(":")[0]

    def _fill(self) -> None:
        """Rows in queue order (the store's ranking), restricted to the chosen model."""
        want = self.model_combo.currentData()
        keep = self.selected_item()
        self.items = [it for it in self.all_items if want is None or self.model_name(it) == want]
        t = self.table
        t.setRowCount(len(self.items))
        for row, it in enumerate(self.items):
            cells = (QTableWidgetItem(str(row + 1)), QTableWidgetItem(_fmt_uncertainty(it.uncertainty)),
                     QTableWidgetItem(str(it.model_ref)),
                     QTableWidgetItem(KIND_TEXT.get(it.kind, str(it.kind))),
                     QTableWidgetItem(_fmt_date(it.created_at)))
            for col, cell in enumerate(cells):
                cell.setData(Qt.ItemDataRole.UserRole, row)
                cell.setToolTip(f"Image {it.image_hash[:16]}…")
                t.setItem(row, col, cell)
        if keep is not None and keep in self.items:
            t.selectRow(self.items.index(keep))
        n = len(self.items)
        # the panel's own line, not the status bar: a refresh after every stored record
        # would cover the message that confirms the action that stored it
        self.status.setText(f"{n} open prediction{'s' if n != 1 else ''} to review" if n
                            else "No open predictions: run a model on an image to fill the queue")
        self._update_buttons()
        self.sig_refreshed.emit(list(self.items))

    # ------------------------------------------------------------------ selection
    def selected_row(self) -> Optional[int]:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        cell = self.table.item(rows[0].row(), 0)
        return None if cell is None else int(cell.data(Qt.ItemDataRole.UserRole))

    def selected_item(self):
        row = self.selected_row()
        return None if row is None or row >= len(self.items) else self.items[row]

    def _update_buttons(self) -> None:
        has = self.selected_row() is not None
        self.open_button.setEnabled(has)
        self.val_button.setEnabled(has)
        self.next_button.setEnabled(bool(self.items))
        self.refresh_button.setEnabled(not self.busy)

    def _select(self, item) -> None:
        if item in self.items:
            self.table.selectRow(self.items.index(item))

    # ------------------------------------------------------------------ opening
    def next_item(self):
        """The queue entry after the active image's (the first when it is not queued)."""
        if not self.items:
            return None
        current = self.current_hash_fn() if self.current_hash_fn else None
        idx = next((i for i, it in enumerate(self.items) if it.image_hash == current), None)
        if idx is None:
            return self.items[0]
        for it in self.items[idx + 1:] + self.items[:idx]:
            if it.image_hash != current:
                return it
        return None

    def open_next(self):
        item = self.next_item()
        if item is None:
            self.sig_status.emit("No other case in the review queue")
            return None
        return self.open_item(item)

    def open_row(self, row: Optional[int]):
        if row is None or not 0 <= row < len(self.items):
            return None
        return self.open_item(self.items[row])

    def open_item(self, item):
        """Load the case on the bridge (its sources, else the store's snapshot), then show it."""
        self._select(item)
        store = self.store_fn()
        self.sig_status.emit(f"Opening the case ({self.model_name(item)}, "
                             f"uncertainty {_fmt_uncertainty(item.uncertainty)})…")

        def done(opened: OpenedCase):
            if self.open_fn is not None:
                self.open_fn(opened)
            where = "its source files" if opened.origin == "sources" else "the stored snapshot"
            self.sig_status.emit(f"Opened the case from {where}"
                                 + ("".join(f". {n}" for n in opened.notes[1:])))
            self.sig_opened.emit(opened)

        return self.bridge.submit(lambda rep: load_case(store, item, rep), "review-open",
                                  on_done=done,
                                  on_error=lambda msg: self._failed("Could not open the case", msg))

    # ------------------------------------------------------------------ validation
    def mark_validation(self, row: Optional[int] = None):
        """Freeze the case's split units (per the predicting model) as validation."""
        item = self.selected_item() if row is None else (
            self.items[row] if 0 <= row < len(self.items) else None)
        if item is None:
            self.sig_status.emit("Select a case first")
            return None
        store, name = self.store_fn(), self.model_name(item)
        dims = self.dims_fn(name) if self.dims_fn else None

        def done(res):
            model, splits = res
            n = len(splits)
            self.sig_status.emit(f"Marked {n} unit{'s' if n != 1 else ''} of the case as "
                                 f"validation for {model}: never trained on")
            self.sig_marked.emit(model, dict(splits))

        return self.bridge.submit(lambda rep: mark_validation(store, item, dims), "review-validation",
                                  on_done=done,
                                  on_error=lambda msg: self._failed("Could not mark the case", msg))
