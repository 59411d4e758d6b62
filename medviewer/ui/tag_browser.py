"""TagBrowser: DICOM header of the image under the cursor, with a keyword / tag search box.

Headers are read on the job bridge (never on the GUI thread); the shown file follows the
cursor's slice (``Volume.source_paths[z]`` for DICOM series, the single file otherwise).
With patient details hidden, identifying attributes (names, IDs, dates, addresses…:
:func:`medviewer.core.deid.is_identifying`) and everything nested in them show "(hidden)", as
does any other value or the file name where it repeats the patient's name or ID."""
from __future__ import annotations

from typing import List, Optional

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QLineEdit, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from medviewer.core.deid import HIDDEN, identity_values, is_identifying, redact
from medviewer.core.session import Session

from .qt_jobs import QtJobBridge


def row_matches(query: str, tag: str, keyword: str) -> bool:
    """Case-insensitive partial match on the keyword or the tag ('0010,0010', '00100010')."""
    q = query.strip().lower().strip("()").replace(" ", "")
    if not q:
        return True
    t = tag.lower().strip("()")
    return q in keyword.lower() or q in t or q.replace(",", "") in t.replace(",", "")


class TagBrowser(QWidget):
    def __init__(self, session: Session, bridge: QtJobBridge, parent=None):
        super().__init__(parent)
        self.setObjectName("tagBrowser")
        self.session, self.bridge = session, bridge
        self.path: Optional[str] = None
        self._wanted: Optional[str] = None
        self._rows: List = []  # TagRows shown, and their tree items (same order)
        self._items: List[QTreeWidgetItem] = []
        self._hide_patient = False
        self.search = QLineEdit(self)
        self.search.setObjectName("tagSearch")
        self.search.setPlaceholderText("Filter by keyword or tag, e.g. PatientName or 0010,0010")
        self.search.setClearButtonEnabled(True)
        self.status = QLabel("", self)
        self.status.setObjectName("tagStatus")
        self.status.setWordWrap(True)
        self.tree = QTreeWidget(self)
        self.tree.setObjectName("tagTree")
        self.tree.setHeaderLabels(["Tag", "Keyword", "VR", "Value"])
        self.tree.setUniformRowHeights(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.search)
        lay.addWidget(self.status)
        lay.addWidget(self.tree)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(120)
        self._timer.timeout.connect(self._load_wanted)
        self.search.textChanged.connect(self.apply_filter)
        session.active_changed.connect(lambda v: self._follow_cursor())
        session.cursor_changed.connect(lambda i: self._follow_cursor())

    def show_patient_details(self, show: bool) -> None:
        """Show identifying values, or "(hidden)" in their place."""
        if self._hide_patient == (not show):
            return
        self._hide_patient = not show
        for item, value in zip(self._items, self._shown_values(self._rows)):
            item.setText(3, value)  # in place: scrolling and unfolded items stay as they are
            item.setToolTip(3, value)
        if self.path is not None and self._rows:
            self._set_status(self.path)

    def _secrets(self) -> list:
        return identity_values({r.keyword: r.value for r in self._rows if r.depth == 0})

    def _set_status(self, path: str) -> None:
        name = path.rsplit("/", 1)[-1]
        if self._hide_patient:
            secret = self._secrets()
            name, path = redact(name, secret), redact(path, secret)
        self.status.setText(name)
        self.status.setToolTip(path)

    def _shown_values(self, rows: List) -> List[str]:
        """Each row's value as shown: hidden below an identifying attribute (nested items
        included) and where it repeats the patient's name or ID."""
        if not self._hide_patient:
            return [r.value for r in rows]
        secret = self._secrets()
        out, hide_below = [], None
        for r in rows:
            if hide_below is not None and r.depth <= hide_below:
                hide_below = None
            if hide_below is None and is_identifying(r.keyword):
                hide_below = r.depth
            hidden = hide_below is not None and r.value != ""
            out.append(HIDDEN if hidden else redact(r.value, secret))
        return out

    def stop(self) -> None:
        """Stop following the cursor (window closing)."""
        self._timer.stop()
        self._wanted = None

    def _follow_cursor(self) -> None:
        v = self.session.active
        if v is None or not v.source_paths:
            self._wanted = None
            self._rows, self._items = [], []
            self.tree.clear()
            self.status.setText("No file behind this image.")
            return
        z = self.session.cursor_zyx[0]
        paths = v.source_paths
        self._wanted = str(paths[z] if len(paths) == v.shape[0] else paths[0])
        if self._wanted != self.path:
            self._timer.start()

    def _load_wanted(self) -> None:
        path = self._wanted
        if path is None or path == self.path:
            return

        def work(reporter, p=path):
            from medviewer.services.studies import read_tags

            return p, read_tags(p)

        self.bridge.submit(work, "read tags", on_done=self._on_rows,
                           on_error=lambda msg, p=path: self._on_failed(p, msg))

    def _on_failed(self, path: str, msg: str) -> None:
        self.path = path
        self._rows, self._items = [], []
        self.tree.clear()
        self.status.setText(f"No DICOM header for {path.rsplit('/', 1)[-1]} ({msg})")

    def _on_rows(self, result) -> None:
        path, rows = result
        if path != self._wanted:  # the cursor moved on meanwhile
            self._timer.start()
            return
        self.path = path
        self.show_rows(rows)
        self._set_status(path)

    def show_rows(self, rows: List) -> None:
        self._rows, self._items = list(rows), []
        self.tree.clear()
        stack: List[QTreeWidgetItem] = []
        for r, value in zip(rows, self._shown_values(rows)):
            while len(stack) > r.depth:
                stack.pop()
            parent = stack[-1] if stack else self.tree
            item = QTreeWidgetItem(parent, [r.tag, r.keyword, r.vr, value])
            item.setToolTip(3, value)
            self._items.append(item)
            while len(stack) < r.depth:  # depth jumps (items) attach under the last item
                stack.append(item)
            stack.append(item)
        self.tree.resizeColumnToContents(0)
        self.tree.setColumnWidth(1, 150)
        self.tree.setColumnWidth(2, 32)
        self.apply_filter(self.search.text())

    def apply_filter(self, text: str) -> None:
        def visit(item: QTreeWidgetItem) -> bool:
            child_visible = False
            for i in range(item.childCount()):
                child_visible |= visit(item.child(i))
            match = row_matches(text, item.text(0), item.text(1))
            item.setHidden(not (match or child_visible))
            if child_visible and text:
                item.setExpanded(True)
            return match or child_visible

        for i in range(self.tree.topLevelItemCount()):
            visit(self.tree.topLevelItem(i))

    def visible_rows(self) -> List[tuple]:
        out = []

        def walk(item):
            if not item.isHidden():
                out.append((item.text(0), item.text(1)))
                for i in range(item.childCount()):
                    walk(item.child(i))

        for i in range(self.tree.topLevelItemCount()):
            walk(self.tree.topLevelItem(i))
        return out
