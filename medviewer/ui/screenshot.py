"""Screenshots of the main window, atomically (medviewer.core.atomic), with patient details
hidden unless the user turned File > Anonymise screenshots off."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtWidgets import QFileDialog, QWidget

from medviewer.core.atomic import atomic_path

from . import settings as st


def save_widget_image(widget: QWidget, path: str) -> Path:
    out = Path(path).expanduser().resolve()
    suffix = out.suffix or ".png"
    pixmap = widget.grab()
    with atomic_path(out, suffix) as tmp:
        if not pixmap.save(str(tmp)):
            raise OSError(f"could not write image {out.name}")
    return out


def save_window_image(win, path: str, anonymise: Optional[bool] = None) -> Path:
    """``win`` (a MainWindow) as an image file; its patient details hidden while it is
    grabbed when ``anonymise`` (default: the setting, on unless turned off)."""
    if anonymise is None:
        anonymise = st.anonymise_screenshots(win.settings)
    with win.privacy.capture(anonymise):
        return save_widget_image(win, path)


def screenshot_dialog(win) -> None:
    """File > Save screenshot: ask for a file, save, and say whether it is anonymised."""
    path, _ = QFileDialog.getSaveFileName(win, "Save screenshot", st.last_folder(win.settings),
                                          "PNG image (*.png)")
    if not path:
        return
    anonymise = st.anonymise_screenshots(win.settings)
    try:
        out = save_window_image(win, path, anonymise)
    except OSError as exc:
        win.show_error("Could not save the screenshot", str(exc))
        return
    note = "anonymised" if anonymise else "with patient details"
    win.statusBar().showMessage(f"Saved screenshot {out.name} ({note})", 8000)
