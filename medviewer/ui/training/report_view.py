"""ReportView: a version's gate report (report.md with its report.png) shown inside the app.

A QTextBrowser renders the Markdown; the chart is found through the browser's search path (the
version folder), so the page reads as it does on disk. ``ReportDialog`` is the same view in a
window of its own (Model versions > Open report)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout

CHART = "report.png"


class ReportView(QTextBrowser):
    def __init__(self, parent=None, object_name: str = "reportView"):
        super().__init__(parent)
        self.setObjectName(object_name)
        self.setOpenLinks(False)  # the report has no links to follow
        self.path: Optional[Path] = None

    def show_report(self, path) -> bool:
        """Render ``path`` (a report.md); False (and a note) when it is not there."""
        path = Path(path)
        self.path = path
        if not path.is_file():
            self.setPlainText(f"No report at {path}")
            return False
        text = path.read_text(encoding="utf-8", errors="replace")
        if (path.parent / CHART).is_file() and CHART not in text:
            text += f"\n\n![per-class comparison]({CHART})\n"
        self.setSearchPaths([str(path.parent)])
        self.setMarkdown(text)
        return True

    def chart_size(self) -> Optional[tuple]:
        """(width, height) of the chart the page shows, found as the page finds it; None when
        it is not there."""
        from PySide6.QtCore import QUrl
        from PySide6.QtGui import QImage, QTextDocument

        if self.path is None or CHART not in self.toMarkdown():
            return None
        res = self.loadResource(int(QTextDocument.ResourceType.ImageResource.value), QUrl(CHART))
        img = res if isinstance(res, QImage) else QImage.fromData(res) if res else None
        return None if img is None or img.isNull() else (img.width(), img.height())


class ReportDialog(QDialog):
    """Non-modal window around a ReportView."""

    def __init__(self, path, title: str = "Gate report", parent=None):
        super().__init__(parent)
        self.setObjectName("reportDialog")
        self.setWindowTitle(title)
        self.view = ReportView(self)
        self.view.show_report(path)
        box = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        box.rejected.connect(self.close)
        lay = QVBoxLayout(self)
        lay.addWidget(self.view, 1)
        lay.addWidget(box)
        self.resize(900, 820)
