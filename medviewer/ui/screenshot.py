"""Save a widget as an image file, atomically (temp file in the same folder, then os.replace)."""
from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtWidgets import QWidget


def save_widget_image(widget: QWidget, path: str) -> Path:
    out = Path(path).expanduser().resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix or ".png"
    tmp = out.with_name(f".{out.stem}.tmp{os.getpid()}{suffix}")
    pixmap = widget.grab()
    if not pixmap.save(str(tmp)):
        raise OSError(f"could not write image {out.name}")
    os.replace(tmp, out)
    return out
