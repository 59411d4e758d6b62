"""Import / export of label maps (NIfTI/NRRD, DICOM SEG) and case labels, run on the bridge.

A geometry mismatch on import asks "Resample to the image?" (a non-modal question) and
retries with resampling when the answer is yes. Exports are anonymised unless File >
Anonymise exports is off (:mod:`medviewer.services.exports`); the message says which."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox

from medviewer.services import annotations as ann
from medviewer.services import exports

from .. import settings as st

LABEL_FILTER = "Label maps (*.nii.gz *.nii *.nrrd *.nhdr);;All files (*)"


is_dicom_volume = ann.is_dicom_volume


class LabelIO:
    """File dialogs and jobs for the Labels menu (owned by AnnotationFeature)."""

    def __init__(self, window, controller, settings):
        self.win, self.ctl, self.settings = window, controller, settings
        self.question: Optional[QMessageBox] = None  # the open resample question (tests answer it)

    def _folder(self) -> str:
        return st.last_folder(self.settings)

    # ------------------------------------------------------------------ import
    def import_labelmap_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.win, "Import label map", self._folder(), LABEL_FILTER)
        if path:
            self.import_labelmap(path)

    def import_labelmap(self, path, resample: bool = False):
        vol = self.ctl.volume
        if vol is None:
            self.ctl.sig_message.emit("Open an image first")
            return None
        geo = vol.geometry

        def work(reporter):
            return ann.read_label_file(path, geo, resample)

        return self.ctl.submit(work, "import-labels", lambda res: self._imported(path, res, vol),
                               f"Importing {Path(path).name}…")

    def _imported(self, path, res, vol) -> None:
        if isinstance(res, Exception):  # GeometryMismatch
            self._ask_resample(path, str(res))
            return
        if vol is not self.ctl.volume:
            return
        labels, table, warnings = res
        self.ctl.replace_labels(labels, table, "import")
        self.ctl.sig_message.emit(f"Imported {Path(path).name}" + (f" ({'; '.join(warnings)})" if warnings else ""))

    def _ask_resample(self, path, message: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Question, "Label map does not fit the image",
                          f"{Path(path).name} is on another voxel grid:\n\n{message}\n\n"
                          "Resample to the image? (nearest neighbour)",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self.win)
        box.setObjectName("resampleQuestion")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def answered(button):
            self.question = None
            if box.standardButton(button) == QMessageBox.StandardButton.Yes:
                self.import_labelmap(path, resample=True)
            else:
                self.ctl.sig_message.emit("Import cancelled: the label map does not fit the image")

        box.buttonClicked.connect(answered)
        self.question = box
        box.open()

    def import_seg_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.win, "Import DICOM SEG", self._folder(),
                                              "DICOM SEG (*.dcm *.seg *);;All files (*)")
        if path:
            self.import_seg(path)

    def import_seg(self, path):
        vol = self.ctl.volume
        if vol is None:
            return None
        geo, sources = vol.geometry, list(vol.source_paths or [])

        def work(reporter):
            return ann.read_seg_file(path, geo, sources)

        return self.ctl.submit(work, "import-seg", lambda res: self._imported(path, res, vol),
                               f"Reading DICOM SEG {Path(path).name}…")

    # ------------------------------------------------------------------ export
    def _anonymise(self) -> bool:
        return st.anonymise_exports(self.settings)

    def _exported(self, what: str, anonymise: bool):
        note = "anonymised" if anonymise else "with the patient's name and ID"
        return lambda p: self.ctl.sig_message.emit(f"{what} {Path(p).name} ({note})")

    def _save_path(self, title: str, suggestion: str, filt: str) -> str:
        path, _ = QFileDialog.getSaveFileName(self.win, title, str(Path(self._folder()) / suggestion), filt)
        return path

    def export_labelmap_dialog(self) -> None:
        if self.ctl.labelmap is None:
            self.ctl.sig_message.emit("No label map to export")
            return
        path = self._save_path("Export label map", "labels.nii.gz", LABEL_FILTER)
        if path:
            self.export_labelmap(path)

    def export_labelmap(self, path):
        lm = self.ctl.labelmap
        if lm is None:
            return None
        vol, anonymise, keys = self.ctl.volume, self._anonymise(), self.ctl.workspace
        labels, table, geo = lm.snapshot(), lm.table.to_dict(), lm.geometry  # no open stroke

        def work(reporter):
            return exports.export_label_map(labels, table, geo, path, source=vol,
                                            anonymise=anonymise, key_folder=keys)

        return self.ctl.submit(work, "export-labels",
                               self._exported("Exported the label map to", anonymise),
                               f"Writing {Path(path).name}…")

    def export_seg_dialog(self) -> None:
        if self.ctl.labelmap is None or not is_dicom_volume(self.ctl.volume):
            self.ctl.sig_message.emit("DICOM SEG export needs a label map on a DICOM series")
            return
        path = self._save_path("Export DICOM SEG", "segmentation.seg.dcm", "DICOM (*.dcm);;All files (*)")
        if path:
            self.export_seg(path)

    def export_seg(self, path):
        lm, vol = self.ctl.labelmap, self.ctl.volume
        if lm is None or vol is None:
            return None
        labels, table = lm.snapshot(), lm.table.to_dict()  # no open stroke
        anonymise, keys = self._anonymise(), self.ctl.workspace

        def work(reporter):
            return exports.export_seg(labels, table, vol, path, anonymise=anonymise,
                                      key_folder=keys)

        return self.ctl.submit(work, "export-seg", self._exported("Wrote DICOM SEG", anonymise),
                               "Writing DICOM SEG…")

    def export_case_labels_dialog(self) -> None:
        path = self._save_path("Export case labels", "case_labels.csv",
                               "CSV (*.csv);;JSON (*.json)")
        if path:
            self.export_case_labels(path)

    def export_case_labels(self, path):
        store, anonymise = self.ctl.store, self._anonymise()

        def work(reporter):
            return exports.export_case_labels(store, path, anonymise=anonymise)

        return self.ctl.submit(work, "export-case",
                               self._exported("Exported case labels to", anonymise),
                               "Exporting case labels…")
