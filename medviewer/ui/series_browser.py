"""SeriesBrowser: the patient / study / series tree of scanned catalogues (+ non-image, skipped)."""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem

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
        self.itemActivated.connect(self._on_activated)

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
        patient = self._patients.get(pkey)
        if patient is None:
            patient = QTreeWidgetItem(self, [e.patient_label or "(unknown patient)"])
            self._patients[pkey] = patient
        skey = (pkey, e.study_uid or e.study_description or e.study_date)
        study = self._studies.get(skey)
        if study is None:
            label = " ".join(x for x in (e.study_date, e.study_description) if x) or "(study)"
            study = QTreeWidgetItem(patient, [label])
            self._studies[skey] = study
        # a volume file's slice count is only known once it is read (update_loaded)
        n = "" if e.kind == "file" else (e.n_frames or e.n_images)
        name = f"#{e.series_number} " if e.series_number is not None else ""
        name += e.description or (e.paths[0].rsplit("/", 1)[-1] if e.kind == "file" else "(series)")
        item = QTreeWidgetItem(study, [name, e.modality, str(n)])
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
