"""PacsPanel: the PACS dock's widget. A server list (persisted; add, edit, remove, test), a
search form (patient ID and name, date range, modality, accession), results by study with
their series unfolding underneath, and Retrieve (the selected series, or the whole study)
with a progress bar and Cancel, and "Send labels as SEG" (the current label map as a DICOM SEG
of the same study, to the server its image came from, else the selected one). Every call runs
on the job bridge, never on the GUI thread; patient columns follow the "hide patient details"
toggle."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QFormLayout, QGridLayout, QHBoxLayout, QHeaderView,
                               QLabel, QLineEdit, QProgressBar, QPushButton, QTreeWidget,
                               QTreeWidgetItem, QVBoxLayout, QWidget)

from medviewer.services import pacs

from .servers import ServerDialog, load_servers, save_servers

COLUMNS = ("Patient / series", "Date", "Modality", "Images", "Description")
MODALITIES = ("", "CT", "MR", "PT", "CR", "DX", "US", "MG", "NM", "XA", "SEG", "SR")
_UID = Qt.ItemDataRole.UserRole


def _message(text: str) -> str:
    """A job's error without the exception type the runner puts first."""
    head, sep, rest = str(text).partition(": ")
    return rest if sep and head.isidentifier() else str(text)


class PacsPanel(QWidget):
    """``open_paths(list)`` opens what a retrieve brought (as any local folder);
    ``labels_fn()`` gives (labels, table dict, volume) of the current label map, or None."""

    sig_retrieved = Signal(object)  # RetrieveResult
    sig_status = Signal(str)
    sig_error = Signal(str, str)

    def __init__(self, bridge, settings, open_paths: Callable[[List[str]], None],
                 hidden_fn: Callable[[], bool] = lambda: False, cache_dir=None,
                 labels_fn: Callable[[], Optional[tuple]] = lambda: None, parent=None):
        super().__init__(parent)
        self.setObjectName("pacsPanel")
        self.bridge, self.settings, self.open_paths = bridge, settings, open_paths
        self.hidden_fn, self.labels_fn = hidden_fn, labels_fn
        self.origins: Dict[str, pacs.PacsServer] = {}  # cache folder -> server it came from
        self.cache_dir = Path(cache_dir) if cache_dir else pacs.default_cache(settings)
        self.servers = load_servers(settings)
        self.matches: List[pacs.Match] = []
        self.job = None  # the running retrieve

        self.server_box = QComboBox(self)
        self.server_box.setObjectName("pacsServerCombo")
        self.server_box.setMinimumContentsLength(16)
        self.server_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        # two buttons a row: the dock shares the left side with the series browser and must
        # not push the slice views narrow (a row of four made it 540 px at least)
        buttons = QGridLayout()
        buttons.addWidget(self.server_box, 0, 0, 1, 2)
        self.add_button = self._button("Add…", "pacsAddServer", buttons, self.add_server)
        self.edit_button = self._button("Edit…", "pacsEditServer", buttons, self.edit_server)
        self.remove_button = self._button("Remove", "pacsRemoveServer", buttons, self.remove_server)
        self.test_button = self._button("Test", "pacsTestServer", buttons, self.test_server)

        self.patient_id = self._field("pacsPatientId", "e.g. 12345")
        self.patient_name = self._field("pacsPatientName", "DOE^J*  (wildcards: *)")
        self.date_from = self._field("pacsDateFrom", "YYYYMMDD")
        self.date_to = self._field("pacsDateTo", "YYYYMMDD")
        self.modality = QComboBox(self)
        self.modality.setObjectName("pacsModality")
        self.modality.setEditable(True)
        self.modality.addItems(list(MODALITIES))
        self.accession = self._field("pacsAccession", "")
        dates = QHBoxLayout()
        dates.addWidget(self.date_from)
        dates.addWidget(QLabel("to", self))
        dates.addWidget(self.date_to)
        form = QFormLayout()
        form.addRow("Patient ID", self.patient_id)
        form.addRow("Patient name", self.patient_name)
        form.addRow("Study date", dates)
        form.addRow("Modality", self.modality)
        form.addRow("Accession", self.accession)

        self.tree = QTreeWidget(self)
        self.tree.setObjectName("pacsResults")
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setAlternatingRowColors(True)
        header = self.tree.header()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.tree.itemExpanded.connect(self._on_expanded)
        self.tree.itemDoubleClicked.connect(lambda item, _c: self.retrieve())
        self.tree.itemSelectionChanged.connect(self._update_buttons)

        actions = QGridLayout()
        self.search_button = self._button("Search", "pacsSearch", actions, self.search)
        self.retrieve_button = self._button("Retrieve and open", "pacsRetrieve", actions,
                                            self.retrieve)
        self.cancel_button = self._button("Cancel", "pacsCancel", actions, self.cancel)
        self.send_button = self._button("Send labels as SEG", "pacsSendSeg", actions,
                                        self.send_seg)
        self.send_button.setToolTip("Send the current label map as a DICOM SEG of the same "
                                    "study to the server its image came from")
        self.progress = QProgressBar(self)
        self.progress.setObjectName("pacsProgress")
        self.progress.setVisible(False)
        self.status = QLabel("", self)
        self.status.setObjectName("pacsStatus")
        self.status.setWordWrap(True)

        lay = QVBoxLayout(self)
        lay.addLayout(buttons)
        lay.addLayout(form)
        lay.addLayout(actions)
        lay.addWidget(self.tree, 1)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        self._fill_servers()
        self._update_buttons()

    # ------------------------------------------------------------------ building
    def _button(self, text, name, layout, slot) -> QPushButton:
        b = QPushButton(text, self)
        b.setObjectName(name)
        b.clicked.connect(lambda _=False: slot())
        if isinstance(layout, QGridLayout):  # fill row by row, two a row
            n = sum(1 for i in range(layout.count())
                    if isinstance(layout.itemAt(i).widget(), QPushButton))
            layout.addWidget(b, 1 + n // 2, n % 2)
        else:
            layout.addWidget(b)
        return b

    def _field(self, name: str, placeholder: str) -> QLineEdit:
        f = QLineEdit(self)
        f.setObjectName(name)
        f.setPlaceholderText(placeholder)
        f.returnPressed.connect(self.search)
        return f

    def _fill_servers(self, select: int = -1) -> None:
        self.server_box.clear()
        for s in self.servers:  # the label never holds a password
            self.server_box.addItem(f"{s.label}  ({'DICOMweb' if s.url else 'DIMSE'})")
        if self.servers:
            self.server_box.setCurrentIndex(select if select >= 0 else 0)
        self._update_buttons()

    def _update_buttons(self) -> None:
        has = bool(self.servers)
        running = self.job is not None
        for b in (self.edit_button, self.remove_button, self.test_button, self.search_button):
            b.setEnabled(has)
        self.retrieve_button.setEnabled(has and not running and bool(self.tree.selectedItems()))
        self.cancel_button.setEnabled(running)
        self.send_button.setEnabled(has)

    def server(self) -> Optional[pacs.PacsServer]:
        i = self.server_box.currentIndex()
        return self.servers[i] if 0 <= i < len(self.servers) else None

    # ------------------------------------------------------------------ servers
    def set_servers(self, servers: List[pacs.PacsServer], select: int = -1) -> None:
        self.servers = list(servers)
        save_servers(self.settings, self.servers)
        self._fill_servers(select)

    def add_server(self) -> None:
        dlg = ServerDialog(parent=self)
        if dlg.exec():
            self.set_servers(self.servers + [dlg.server()], len(self.servers))

    def edit_server(self) -> None:
        i = self.server_box.currentIndex()
        if i < 0:
            return
        dlg = ServerDialog(self.servers[i], parent=self)
        if dlg.exec():
            servers = list(self.servers)
            servers[i] = dlg.server()
            self.set_servers(servers, i)

    def remove_server(self) -> None:
        i = self.server_box.currentIndex()
        if i >= 0:
            self.set_servers(self.servers[:i] + self.servers[i + 1:])

    def test_server(self) -> None:
        server = self.server()
        if server is None:
            return
        self._say(f"Checking {server.label}…")
        self.bridge.submit(lambda r: pacs.echo(server), "PACS echo",
                           on_done=lambda _r: self._say(f"{server.label} answered"),
                           on_error=lambda m: self._say(_message(m)))

    # ------------------------------------------------------------------ search
    def query(self) -> pacs.Query:
        return pacs.Query(level="study", patient_id=self.patient_id.text().strip(),
                          patient_name=self.patient_name.text().strip(),
                          date_from=self.date_from.text().strip(),
                          date_to=self.date_to.text().strip(),
                          modality=self.modality.currentText().strip().upper(),
                          accession=self.accession.text().strip())

    def search(self) -> None:
        server = self.server()
        if server is None:
            return
        try:
            query = self.query()
        except pacs.PacsError as exc:
            self._say(str(exc))
            return
        self._say(f"Searching {server.label}…")
        self.search_button.setEnabled(False)

        def done(matches):
            self.search_button.setEnabled(True)
            self.show_studies(matches)

        def failed(msg):
            self.search_button.setEnabled(True)
            self._say(_message(msg))

        self.bridge.submit(lambda r: pacs.find(server, query, r), "PACS search",
                           on_done=done, on_error=failed)

    def _patient_text(self, m: pacs.Match) -> str:
        if self.hidden_fn():
            return "(hidden)"
        name = m.patient_name.replace("^", " ").strip()
        pid = f"[{m.patient_id}]" if m.patient_id and m.patient_id != name else ""
        return "  ".join(t for t in (name, pid) if t) or "(no name)"

    def _date_text(self, m: pacs.Match) -> str:
        """The study date, hidden with the patient details (as the slice views' overlays)."""
        return "(hidden)" if self.hidden_fn() and m.study_date else m.study_date

    def show_studies(self, matches: List[pacs.Match]) -> None:
        self.matches = list(matches)
        self.tree.clear()
        for m in self.matches:
            item = QTreeWidgetItem([self._patient_text(m), self._date_text(m), m.modalities,
                                    str(m.n_instances or ""), m.study_description])
            item.setData(0, _UID, m)
            item.setChildIndicatorPolicy(QTreeWidgetItem.ChildIndicatorPolicy.ShowIndicator)
            self.tree.addTopLevelItem(item)
        self._say(f"{len(self.matches)} studies")
        self._update_buttons()

    def refresh_privacy(self, _hidden: bool = False) -> None:
        """Redraw the patient column (the "hide patient details" toggle changed)."""
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            item.setText(0, self._patient_text(item.data(0, _UID)))
            item.setText(1, self._date_text(item.data(0, _UID)))

    def _on_expanded(self, item: QTreeWidgetItem) -> None:
        if item.parent() is not None or item.childCount() or item.data(1, _UID) == "loading":
            return
        server, study = self.server(), item.data(0, _UID)
        if server is None:
            return
        item.setData(1, _UID, "loading")
        query = pacs.Query(level="series", study_uid=study.study_uid)

        def done(series):
            item.setData(1, _UID, None)
            self.add_series(item, series)

        def failed(msg):
            item.setData(1, _UID, None)
            self._say(_message(msg))

        self.bridge.submit(lambda r: pacs.find(server, query, r), "PACS series",
                           on_done=done, on_error=failed)

    def add_series(self, study_item: QTreeWidgetItem, series: List[pacs.Match]) -> None:
        for m in sorted(series, key=lambda s: (s.series_number is None, s.series_number or 0)):
            child = QTreeWidgetItem([f"Series {m.series_number or '?'}", "", m.modality,
                                     str(m.n_instances or ""), m.series_description])
            child.setData(0, _UID, m)
            study_item.addChild(child)
        if not series:
            study_item.setChildIndicatorPolicy(
                QTreeWidgetItem.ChildIndicatorPolicy.DontShowIndicator)

    # ------------------------------------------------------------------ retrieve
    def retrieve(self) -> None:
        server = self.server()
        items = self.tree.selectedItems()
        if server is None or not items or self.job is not None:
            return
        m = items[0].data(0, _UID)
        series = m.series_uid if m.level == "series" else ""
        what = "series" if series else "study"
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self._say(f"Retrieving the {what} from {server.label}…")
        self.job = self.bridge.submit(
            lambda r: pacs.retrieve(server, m.study_uid, series, out=self.cache_dir, reporter=r),
            "PACS retrieve", on_done=lambda res: self._on_retrieved(res, server), on_error=self._on_retrieve_failed,
            on_progress=self._on_progress, on_cancelled=self._on_cancelled)
        self._update_buttons()

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self._say("Cancelling…")

    def _on_progress(self, p) -> None:
        if p.total:
            self.progress.setRange(0, p.total)
            self.progress.setValue(p.done)
        self.progress.setFormat(p.message or "%p%")

    def _finish(self) -> None:
        self.job = None
        self.progress.setVisible(False)
        self._update_buttons()

    def _on_retrieved(self, res, server=None) -> None:
        self._finish()
        folders = sorted({str(Path(p).parent) for p in res.paths})
        for f in folders:
            if server is not None:
                self.origins[f] = server
        self._say(f"{len(res.paths)} instances in the cache ({res.arrived} retrieved now, "
                  f"{res.already_there} were there); opening")
        self.sig_retrieved.emit(res)
        if folders:
            self.open_paths(folders)

    def _on_retrieve_failed(self, msg: str) -> None:
        self._finish()
        self._say(_message(msg))
        self.sig_error.emit("PACS retrieve", _message(msg))

    def _on_cancelled(self) -> None:
        self._finish()
        self._say("Retrieve cancelled; what arrived is kept, and the next retrieve fetches "
                  "only the rest")

    # ------------------------------------------------------------------ send
    def origin(self, volume) -> Optional[pacs.PacsServer]:
        """The server ``volume`` was retrieved from (this session), else the selected one."""
        paths = list(getattr(volume, "source_paths", None) or [])
        if paths and str(Path(paths[0]).parent) in self.origins:
            return self.origins[str(Path(paths[0]).parent)]
        return self.server()

    def send_seg(self) -> None:
        got = self.labels_fn()
        if got is None:
            self._say("No label map to send: open a DICOM series and paint or accept labels")
            return
        labels, table, volume = got
        server = self.origin(volume)
        if server is None:
            return
        self._say(f"Sending the label map as DICOM SEG to {server.label}…")
        self.send_button.setEnabled(False)

        def done(path):
            self._update_buttons()
            self._say(f"Sent the DICOM SEG to {server.label}")

        def failed(msg):
            self._update_buttons()
            self._say(_message(msg))
            self.sig_error.emit("Send DICOM SEG", _message(msg))

        self.bridge.submit(lambda r: pacs.send_seg(server, labels, table, volume, r),
                           "PACS send SEG", on_done=done, on_error=failed)

    def _say(self, text: str) -> None:
        self.status.setText(text)
        self.sig_status.emit(text)
