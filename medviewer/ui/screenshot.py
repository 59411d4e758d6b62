"""Save a widget as an image file, atomically (medviewer.core.atomic)."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QWidget

from medviewer.core.atomic import atomic_path


def save_widget_image(widget: QWidget, path: str) -> Path:
    out = Path(path).expanduser().resolve()
    suffix = out.suffix or ".png"
    pixmap = widget.grab()
    with atomic_path(out, suffix) as tmp:
        if not pixmap.save(str(tmp)):
            raise OSError(f"could not write image {out.name}")
    return out
