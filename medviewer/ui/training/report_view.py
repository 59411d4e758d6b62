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
        self._fit_chart()
        return True

    def _fit_chart(self) -> None:
        """Scale the chart down to the view's width (never up), keeping its aspect."""
        from PySide6.QtGui import QTextCursor

        size = self.chart_size()
        if size is None:
            return
        width = min(size[0], max(200, self.viewport().width() - 40))
        cursor = QTextCursor(self.document())
        block = self.document().begin()
        while block.isValid():
            it = block.begin()
            while not it.atEnd():
                frag = it.fragment()
                fmt = frag.charFormat()
                if fmt.isImageFormat() and fmt.toImageFormat().name() == CHART:
                    img = fmt.toImageFormat()
                    img.setWidth(width)
                    img.setHeight(size[1] * width / size[0])
                    cursor.setPosition(frag.position())
                    cursor.setPosition(frag.position() + frag.length(),
                                       QTextCursor.MoveMode.KeepAnchor)
                    cursor.setCharFormat(img)
                it += 1
            block = block.next()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._fit_chart()

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
        self.resize(1000, 800)
