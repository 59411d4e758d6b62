"""Session: the single source of truth for what is open, the active volume, cursor and window."""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from .signals import Signal
from .overlay import LabelOverlay
from .volume import Volume


class Session:
    """Open volumes, the active one, the cursor (array index + LPS) and the display window.

    Views never talk to each other: they change the Session and follow its signals.
    Signals: ``volumes_changed()``, ``active_changed(volume|None)``,
    ``cursor_changed(index_zyx)``, ``window_changed(center, width)``,
    ``overlay_changed(overlay|None)``."""

    def __init__(self):
        self.volumes: List[Volume] = []
        self.active: Optional[Volume] = None
        self.cursor_zyx: Tuple[int, int, int] = (0, 0, 0)
        self.window: Tuple[float, float] = (0.0, 1.0)
        self.window_name: str = ""
        self.volumes_changed = Signal("volumes_changed")
        self.active_changed = Signal("active_changed")
        self.cursor_changed = Signal("cursor_changed")
        self.window_changed = Signal("window_changed")
        self.overlay: Optional[LabelOverlay] = None
        self.overlay_changed = Signal("overlay_changed")

    # ------------------------------------------------------------------ volumes
    def add_volume(self, volume: Volume, activate: bool = True) -> None:
        self.volumes.append(volume)
        self.volumes_changed.emit()
        if activate or self.active is None:
            self.set_active(volume)

    def replace_volume(self, old: Volume, new: Volume) -> None:
        """Swap a volume for a derived one (e.g. resampled), keeping its place in the list."""
        i = self.volumes.index(old)
        self.volumes[i] = new
        self.volumes_changed.emit()
        if self.active is old:
            self.set_active(new)

    def remove_volume(self, volume: Volume) -> None:
        if volume not in self.volumes:
            return
        self.volumes.remove(volume)
        self.volumes_changed.emit()
        if self.active is volume:
            self.set_active(self.volumes[-1] if self.volumes else None)

    def set_active(self, volume: Optional[Volume]) -> None:
        self.active = volume
        if self.overlay is not None and (volume is None or self.overlay.labels.shape != volume.shape):
            self.overlay = None  # an overlay lives on its volume's voxel grid
            self.overlay_changed.emit(None)
        if volume is not None:
            nz, ny, nx = volume.shape
            self.cursor_zyx = (nz // 2, ny // 2, nx // 2)
            hint = volume.default_window()
            self.window = (float(hint.center), float(hint.width))
            self.window_name = hint.name
        self.active_changed.emit(volume)
        if volume is not None:
            self.window_changed.emit(*self.window)
            self.cursor_changed.emit(self.cursor_zyx)

    # ------------------------------------------------------------------ cursor
    def set_cursor_index(self, index_zyx) -> None:
        """Move the cursor to the nearest voxel (clamped into the active volume)."""
        if self.active is None:
            return
        shape = np.asarray(self.active.shape)
        idx = np.clip(np.round(np.asarray(index_zyx, dtype=float)), 0, shape - 1).astype(int)
        new = tuple(int(v) for v in idx)
        if new != self.cursor_zyx:
            self.cursor_zyx = new
            self.cursor_changed.emit(new)

    def set_cursor_lps(self, lps) -> None:
        if self.active is not None:
            self.set_cursor_index(self.active.geometry.lps_to_index_zyx(lps))

    @property
    def cursor_lps(self) -> Optional[np.ndarray]:
        if self.active is None:
            return None
        return self.active.geometry.index_zyx_to_lps(self.cursor_zyx)

    def cursor_value(self):
        return None if self.active is None else self.active.value_at(self.cursor_zyx)

    # ------------------------------------------------------------------ window
    def set_window(self, center: float, width: float, name: str = "Custom") -> None:
        width = max(float(width), 1e-6)
        new = (float(center), width)
        self.window_name = name
        if new != self.window:
            self.window = new
            self.window_changed.emit(*new)

    # ------------------------------------------------------------------ overlay
    def set_overlay(self, overlay: Optional[LabelOverlay]) -> None:
        """Show a label overlay on the active volume (same voxel grid), or remove it."""
        if overlay is not None:
            if self.active is None:
                raise ValueError("open an image before adding an overlay")
            if overlay.labels.shape != self.active.shape:
                raise ValueError(f"overlay shape {overlay.labels.shape} does not match the image "
                                 f"{self.active.shape}")
        self.overlay = overlay
        self.overlay_changed.emit(overlay)
