"""SeriesBrowser: the patient / study / series tree of scanned catalogues (+ non-image, skipped).

With patient details hidden (:meth:`show_patient_details`), patients are "Patient 1", "Patient
2"… in the order found, study dates are left out, and a name or ID that a description repeats
is shown as "(hidden)"."""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem

from medviewer.core.deid import redact
from medviewer.services.studies import Catalogue, SeriesEntry

from .thumbnails import THUMB_SIZE, array_to_icon

COLUMNS = ("Name", "Modality", "Images")
ENTRY_ROLE = Qt.ItemDataRole.UserRole


class SeriesBrowser(QTreeWidget):
    """Double-click (or Enter) on a series asks for it to be loaded: ``sig_load_requested``."""

    sig_load_requested = Signal(object)  # SeriesEntry

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("seriesBrowser")
        self.setColumnCount(len(COLUMNS))
        self.setHeaderLabels(list(COLUMNS))
        self.setIconSize(QSize(THUMB_SIZE // 2 + 8, THUMB_SIZE // 2 + 8))
        self.setToolTip("Patients, studies and series found. Double-click a series to show it.")
        self.series_items: Dict[str, QTreeWidgetItem] = {}
        self._patients: Dict[str, QTreeWidgetItem] = {}
        self._studies: Dict[tuple, QTreeWidgetItem] = {}
        self._non_image: Optional[QTreeWidgetItem] = None
        self._skipped: Optional[QTreeWidgetItem] = None
        self._texts: Dict[int, tuple] = {}  # id(item) -> (item, shown text, hidden text)
        self._hide_patient = False
        self.itemActivated.connect(self._on_activated)

    def show_patient_details(self, show: bool) -> None:
        """Show the patients' names and IDs and the study dates, or hide them."""
        self._hide_patient = not show
        for item, full, hidden in self._texts.values():
            item.setText(0, hidden if self._hide_patient else full)

    def _set_private(self, item: QTreeWidgetItem, full: str, hidden: str) -> None:
        self._texts[id(item)] = (item, full, hidden)
        item.setText(0, hidden if self._hide_patient else full)

    def add_catalogue(self, cat: Catalogue) -> None:
        for entry in cat.series:
            self._add_series(entry)
        for obj in cat.non_image:
            parent = self._special("_non_image", "Non-image objects")
            item = QTreeWidgetItem(parent, [obj.kind, obj.modality, ""])
            item.setToolTip(0, obj.path)
        for sk in cat.skipped:
            parent = self._special("_skipped", "Skipped files")
            item = QTreeWidgetItem(parent, [f"{sk.path.rsplit('/', 1)[-1]}: {sk.reason}"])
            item.setToolTip(0, f"{sk.path}\n{sk.reason}")
        self.expandToDepth(1)
        for attr, title in (("_non_image", "Non-image objects"), ("_skipped", "Skipped files")):
            node = getattr(self, attr)
            if node is not None:  # keep these below the patients, folded (they can be long)
                node.setText(0, f"{title} ({node.childCount()})")
                self.addTopLevelItem(self.takeTopLevelItem(self.indexOfTopLevelItem(node)))
                node.setExpanded(False)
        self.setColumnWidth(0, 200)
        self.resizeColumnToContents(1)
        self.resizeColumnToContents(2)

    def _special(self, attr: str, title: str) -> QTreeWidgetItem:
        node = getattr(self, attr)
        if node is None:
            node = QTreeWidgetItem(self, [title])
            node.setFirstColumnSpanned(False)
            setattr(self, attr, node)
        return node

    def _add_series(self, e: SeriesEntry) -> None:
        if e.key in self.series_items:
            return
        pkey = e.patient_key or e.patient_label or "(unknown patient)"
        secret = [p for p in e.patient_label.replace("^", " ").split() if len(p) >= 3]
        patient = self._patients.get(pkey)
        if patient is None:
            patient = QTreeWidgetItem(self, [""])
            self._set_private(patient, e.patient_label or "(unknown patient)",
                              f"Patient {len(self._patients) + 1}")
            self._patients[pkey] = patient
        skey = (pkey, e.study_uid or e.study_description or e.study_date)
        study = self._studies.get(skey)
        if study is None:
            label = " ".join(x for x in (e.study_date, e.study_description) if x) or "(study)"
            study = QTreeWidgetItem(patient, [""])
            self._set_private(study, label, redact(e.study_description, secret) or "(study)")
            self._studies[skey] = study
        # a volume file's slice count is only known once it is read (update_loaded)
        n = "" if e.kind == "file" else (e.n_frames or e.n_images)
        name = f"#{e.series_number} " if e.series_number is not None else ""
        name += e.description or (e.paths[0].rsplit("/", 1)[-1] if e.kind == "file" else "(series)")
        item = QTreeWidgetItem(study, ["", e.modality, str(n)])
        self._set_private(item, name, redact(name, secret))
        item.setData(0, ENTRY_ROLE, e)
        size = f"{e.columns}×{e.rows}, {n} image(s)" if e.kind != "file" else e.paths[0]
        tip = size + ("\n" + "\n".join(e.notes) if e.notes else "")
        item.setToolTip(0, tip)
        self.series_items[e.key] = item

    def update_loaded(self, key: str, modality: str, n_slices: int) -> None:
        """Fill in what only loading tells (volume files: modality, number of slices)."""
        item = self.series_items.get(key)
        if item is not None:
            if modality and not item.text(1):
                item.setText(1, modality)
            item.setText(2, str(n_slices))

    def entry_for(self, item: QTreeWidgetItem) -> Optional[SeriesEntry]:
        return item.data(0, ENTRY_ROLE) if item is not None else None

    def set_thumbnail(self, key: str, arr: np.ndarray) -> None:
        item = self.series_items.get(key)
        if item is not None and arr is not None and arr.size:
            item.setIcon(0, array_to_icon(arr))

    def mark_active(self, key: str) -> None:
        for k, item in self.series_items.items():
            font = item.font(0)
            font.setBold(k == key)
            item.setFont(0, font)

    def _on_activated(self, item: QTreeWidgetItem, column: int) -> None:
        entry = self.entry_for(item)
        if entry is not None:
            self.sig_load_requested.emit(entry)
