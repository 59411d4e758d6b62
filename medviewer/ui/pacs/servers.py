"""The configured PACS servers (persisted in the app settings as JSON under ``pacs/servers``)
and the dialog that adds or edits one (the password field never shows what it holds)."""
from __future__ import annotations

import json
from typing import List, Optional

from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox,
                               QFormLayout, QLabel, QLineEdit, QSpinBox, QWidget)

from medviewer.services.pacs import PacsError, PacsServer

KEY = "pacs/servers"


def load_servers(settings) -> List[PacsServer]:
    raw = settings.value(KEY, "") or ""
    try:
        items = json.loads(str(raw)) if raw else []
    except ValueError:
        return []
    out = []
    for d in items if isinstance(items, list) else []:
        try:
            out.append(PacsServer.from_dict(d))
        except (TypeError, ValueError):
            continue
    return out


def save_servers(settings, servers: List[PacsServer]) -> None:
    # the password is kept (the settings file is the user's own), never shown in the dock
    settings.setValue(KEY, json.dumps([s.to_dict(with_password=True) for s in servers]))


class ServerDialog(QDialog):
    """Add or edit one server: DIMSE (host, port, AE titles, C-MOVE port) or DICOMweb (URL,
    user, password)."""

    def __init__(self, server: Optional[PacsServer] = None, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.setObjectName("pacsServerDialog")
        self.setWindowTitle("PACS server")
        s = server or PacsServer(port=104, timeout=10.0)
        self.name = QLineEdit(s.name, self)
        self.kind = QComboBox(self)
        self.kind.addItem("DIMSE (C-FIND / C-GET / C-MOVE)", "dimse")
        self.kind.addItem("DICOMweb (QIDO / WADO / STOW)", "dicomweb")
        self.kind.setCurrentIndex(1 if s.kind == "dicomweb" else 0)
        self.host = QLineEdit(s.host, self)
        self.port = QSpinBox(self)
        self.port.setRange(1, 65535)
        self.port.setValue(s.port or 104)
        self.called = QLineEdit(s.called_aet, self)
        self.calling = QLineEdit(s.calling_aet, self)
        self.move_port = QSpinBox(self)
        self.move_port.setRange(0, 65535)
        self.move_port.setValue(s.move_port)
        self.move_port.setToolTip("The port our storage SCP listens on for C-MOVE (0: C-GET only)")
        self.url = QLineEdit(s.url, self)
        self.url.setPlaceholderText("http://host:8042/dicom-web")
        self.user = QLineEdit(s.username, self)
        self.password = QLineEdit(s.password, self)
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setObjectName("pacsPassword")
        self.timeout = QDoubleSpinBox(self)
        self.timeout.setRange(1, 600)
        self.timeout.setValue(s.timeout)
        self.timeout.setSuffix(" s")
        self.error = QLabel("", self)
        self.error.setStyleSheet("color: #c0392b")
        form = QFormLayout(self)
        for label, w in (("Name", self.name), ("Protocol", self.kind), ("Host", self.host),
                         ("Port", self.port), ("Server AE title", self.called),
                         ("Our AE title", self.calling), ("C-MOVE port", self.move_port),
                         ("URL", self.url), ("User", self.user), ("Password", self.password),
                         ("Timeout", self.timeout)):
            form.addRow(label, w)
        form.addRow(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.kind.currentIndexChanged.connect(self._show_fields)
        self._form = form
        self._show_fields()

    def _show_fields(self) -> None:
        web = self.kind.currentData() == "dicomweb"
        for w in (self.host, self.port, self.called, self.calling, self.move_port):
            self._form.setRowVisible(w, not web)
        for w in (self.url, self.user, self.password):
            self._form.setRowVisible(w, web)

    def server(self) -> PacsServer:
        web = self.kind.currentData() == "dicomweb"
        return PacsServer(name=self.name.text().strip(), host="" if web else self.host.text().strip(),
                          port=0 if web else self.port.value(),
                          called_aet=self.called.text().strip(),
                          calling_aet=self.calling.text().strip() or "MEDVIEWER",
                          url=self.url.text().strip() if web else "",
                          username=self.user.text() if web else "",
                          password=self.password.text() if web else "",
                          timeout=self.timeout.value(), move_port=self.move_port.value())

    def _accept(self) -> None:
        try:
            self.server().check()
        except PacsError as exc:
            self.error.setText(str(exc))
            return
        self.accept()
