"""CT presets for direct volume rendering: opacity and colour transfer functions in HU."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple


@dataclass(frozen=True)
class VolumePreset:
    name: str
    opacity: Tuple[Tuple[float, float], ...]  # (HU, opacity 0..1), ascending HU
    colours: Tuple[Tuple[float, Tuple[float, float, float]], ...]  # (HU, (r, g, b) 0..1)
    shade: bool = True


PRESETS = {
    # muscle, organs and vessels with contrast; fat and air transparent
    "soft_tissue": VolumePreset(
        "Soft tissue",
        opacity=((-1024, 0.0), (-120, 0.0), (-20, 0.02), (40, 0.08), (120, 0.22), (300, 0.45),
                 (1500, 0.6)),
        colours=((-1024, (0.0, 0.0, 0.0)), (-120, (0.55, 0.25, 0.15)), (40, (0.8, 0.42, 0.3)),
                 (120, (0.93, 0.65, 0.5)), (300, (1.0, 0.9, 0.8)), (1500, (1.0, 1.0, 1.0)))),
    # cortical and trabecular bone; everything below ~150 HU transparent
    "bone": VolumePreset(
        "Bone",
        opacity=((-1024, 0.0), (150, 0.0), (250, 0.12), (450, 0.55), (1000, 0.85), (3000, 0.9)),
        colours=((150, (0.55, 0.3, 0.2)), (300, (0.88, 0.74, 0.56)), (600, (0.98, 0.93, 0.82)),
                 (3000, (1.0, 1.0, 1.0)))),
    # lung parenchyma and airway walls: only the lung window's range is seen
    "lung": VolumePreset(
        "Lung",
        opacity=((-1024, 0.0), (-960, 0.0), (-900, 0.04), (-750, 0.12), (-600, 0.2),
                 (-450, 0.0), (3000, 0.0)),
        colours=((-1000, (0.3, 0.45, 0.7)), (-850, (0.75, 0.6, 0.6)), (-600, (0.95, 0.85, 0.8))),
        shade=True),
}
