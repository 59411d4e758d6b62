"""Heat-map overlays (saliency, uncertainty): a float map in [0, 1] on a volume's voxel grid,
drawn over every SliceView as its own ImageItem with a colormap LUT and an opacity.

A map made for one axial slice (``slice_z``) is drawn only on that slice of the view whose
slices are the stored images; a whole-volume map is drawn in all three planes."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Dict, Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Signal

from medviewer.core.volume import Volume

from ..slice_layer import SliceLayer

COLORMAPS = ("inferno", "viridis", "turbo", "jet")
THRESHOLD_PCT = 50  # default: heat below the median of the map's non-zero values is not drawn
FADE = 0.08  # heat below this fraction fades to transparent, so "no heat" shows the image
HEAT_Z = 6  # above the label overlay (5), below the crosshair (10)
_JET = [(0.0, (0, 0, 128)), (0.11, (0, 0, 255)), (0.36, (0, 255, 255)), (0.62, (255, 255, 0)),
        (0.87, (255, 0, 0)), (1.0, (128, 0, 0))]


@lru_cache(maxsize=None)
def _colours(name: str, n: int) -> np.ndarray:
    if name == "jet":
        cmap = pg.ColorMap([p for p, _ in _JET], [c for _, c in _JET])
    else:
        cmap = pg.colormap.get(name)
    return np.array(cmap.getLookupTable(0.0, 1.0, n, alpha=True), dtype=np.uint8)


def heat_lut(name: str, opacity: float, n: int = 256) -> np.ndarray:
    """(n, 4) uint8 RGBA table for levels 0..1: the colormap, alpha = opacity, fading out
    towards 0."""
    lut = _colours(name, n).copy()
    ramp = np.clip(np.linspace(0.0, 1.0, n) / FADE, 0.0, 1.0)
    lut[:, 3] = np.round(255.0 * float(np.clip(opacity, 0.0, 1.0)) * ramp).astype(np.uint8)
    return lut


@dataclass
class HeatMap:
    """``data`` (z, y, x) float16 in [0, 1] on ``volume``'s grid; ``slice_z``: the only axial
    slice it covers (None = the whole volume)."""

    volume: Volume
    data: np.ndarray
    kind: str  # "saliency" | "uncertainty"
    title: str = ""
    slice_z: Optional[int] = None
    _levels: Dict[float, float] = field(default_factory=dict, init=False, repr=False,
                                        compare=False)  # percentile -> level

    def level(self, percentile: float) -> float:
        """The ``percentile`` of the map's non-zero values (0 for 0): heat below it is hidden."""
        if percentile <= 0:
            return 0.0
        cache = self._levels
        key = round(float(percentile), 1)
        if key not in cache:
            flat = self.data.reshape(-1)
            sample = flat[::max(1, flat.size // 200_000)].astype(np.float32)  # a few ms
            sample = sample[sample > 0]
            cache[key] = float(np.percentile(sample, key)) if sample.size else 0.0
        return cache[key]

    @classmethod
    def on_slice(cls, volume: Volume, z: int, heat2d: np.ndarray, kind: str, title: str = "") -> "HeatMap":
        data = np.zeros(volume.shape[:3], dtype=np.float16)  # untouched pages cost no memory
        data[int(z)] = np.clip(np.asarray(heat2d, dtype=np.float32), 0.0, 1.0)
        return cls(volume, data, kind, title, int(z))

    @classmethod
    def whole(cls, volume: Volume, heat3d: np.ndarray, kind: str, title: str = "") -> "HeatMap":
        data = np.clip(np.asarray(heat3d, dtype=np.float32), 0.0, 1.0).astype(np.float16)
        if data.shape != tuple(volume.shape[:3]):
            raise ValueError(f"heat map {data.shape} does not match the image {volume.shape[:3]}")
        return cls(volume, data, kind, title, None)


class HeatLayer(SliceLayer):
    """The heat ImageItem of one SliceView (follows its slice and the session)."""

    def __init__(self, view):
        super().__init__(view, "heatItem", HEAT_Z)
        view.heat = self
        self.heat: Optional[HeatMap] = None
        self.level = 0.0  # heat below this is not drawn

    def set_heat(self, heat: Optional[HeatMap], lut: Optional[np.ndarray],
                 level: Optional[float] = None) -> None:
        self.heat = heat
        if lut is not None:
            self.item.setLookupTable(lut)
        if level is not None:
            self.level = float(level)
        self._shown_key = None
        self.update()

    def update(self) -> None:
        v, heat = self.view, self.heat
        if heat is None or v.current is None or v.volume is not heat.volume:
            self._hide()
            return
        fixed = v.reslicer.fixed_axis(v.plane)
        index = v.current.index
        if heat.slice_z is not None and (fixed != 0 or index != heat.slice_z):
            self._hide()
            return
        key = (id(heat), index)
        if self._is_shown(key):
            return
        img = v.reslicer.extract(heat.data, v.plane, index).image.astype(np.float32)
        # the threshold maps to the LUT's transparent end, so the heat fades in above it
        self._show(img, key, (min(self.level, 0.999), 1.0))


class HeatOverlays(QObject):
    """The saliency and uncertainty maps of the app; shows at most one (``shown``) in every
    view, with the chosen colormap and opacity."""

    sig_changed = Signal()

    def __init__(self, session, views: Dict[str, object], parent=None):
        super().__init__(parent)
        self.session = session
        self.layers = {plane: HeatLayer(view) for plane, view in views.items()}
        self.maps: Dict[str, HeatMap] = {}
        self.shown: Optional[str] = None
        self.colormap = "inferno"
        self.opacity = 0.5
        self.threshold = THRESHOLD_PCT  # percentile of the shown map's non-zero values
        session.active_changed.connect(lambda vol: self._refresh_layers())
        session.cursor_changed.connect(lambda idx: self._refresh_layers())

    def set_map(self, heat: HeatMap, show: bool = True) -> None:
        self.maps[heat.kind] = heat
        if show:
            self.shown = heat.kind
        self._apply()

    def clear(self, kind: Optional[str] = None) -> None:
        if kind is None:
            self.maps.clear()
        else:
            self.maps.pop(kind, None)
        self._apply()

    def show(self, kind: Optional[str]) -> None:
        """Show the map of ``kind`` ("saliency"/"uncertainty"), or none."""
        self.shown = kind
        self._apply()

    def set_colormap(self, name: str) -> None:
        if name not in COLORMAPS:
            raise ValueError(f"unknown colormap {name!r}; choose from {COLORMAPS}")
        self.colormap = name
        self._apply()

    def set_opacity(self, opacity: float) -> None:
        self.opacity = float(np.clip(opacity, 0.0, 1.0))
        self._apply()

    def set_threshold(self, percentile: float) -> None:
        """Draw only heat above this percentile (0..99) of the shown map's non-zero values."""
        self.threshold = float(np.clip(percentile, 0.0, 99.0))
        self._apply()

    def current(self) -> Optional[HeatMap]:
        heat = self.maps.get(self.shown) if self.shown else None
        if heat is not None and heat.volume is not self.session.active:
            return None
        return heat

    def _apply(self) -> None:
        heat, lut = self.current(), heat_lut(self.colormap, self.opacity)
        level = heat.level(self.threshold) if heat is not None else 0.0
        for layer in self.layers.values():
            layer.set_heat(heat, lut, level)
        self.sig_changed.emit()

    def _refresh_layers(self) -> None:
        heat = self.current()
        level = heat.level(self.threshold) if heat is not None else 0.0
        for layer in self.layers.values():
            if layer.heat is not heat:
                layer.set_heat(heat, None, level)
            else:
                layer.update()
