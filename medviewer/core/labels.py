"""Label table: the names, colours, visibility and locks of the labels of a label map."""
from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, Optional, Tuple

import numpy as np

from .signals import Signal

MAX_LABEL_VALUE = 65535  # label maps are uint8 or uint16

# distinct colours (RGB) for labels 1..N, cycled by value; label 0 is background (transparent)
PALETTE: Tuple[Tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
    (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128),
)


def palette_color(value: int) -> Tuple[int, int, int]:
    """Default colour of a label value (the palette cycled by value)."""
    return PALETTE[(int(value) - 1) % len(PALETTE)]


def _rgb(color) -> Tuple[int, int, int]:
    vals = [int(round(float(c))) for c in color]
    if len(vals) < 3:
        raise ValueError(f"a colour needs three components (r, g, b), got {color!r}")
    return tuple(int(np.clip(v, 0, 255)) for v in vals[:3])  # type: ignore[return-value]


@dataclass
class Label:
    value: int
    name: str
    color: Tuple[int, int, int]
    visible: bool = True
    locked: bool = False

    def to_dict(self) -> dict:
        return {"value": int(self.value), "name": self.name, "color": list(self.color),
                "visible": bool(self.visible), "locked": bool(self.locked)}


class LabelTable:
    """Ordered mapping value -> Label. Every change emits ``changed`` (no arguments)."""

    def __init__(self, labels=None):
        self.labels: Dict[int, Label] = {}
        self.changed = Signal("label_table_changed")
        for lab in labels or ():
            self._insert(lab)

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return len(self.labels)

    def __iter__(self) -> Iterator[Label]:
        return iter(list(self.labels.values()))

    def __contains__(self, value) -> bool:
        return int(value) in self.labels

    def get(self, value) -> Optional[Label]:
        return self.labels.get(int(value))

    @property
    def max_value(self) -> int:
        return max(self.labels) if self.labels else 0

    def next_value(self) -> int:
        """Value for a new label: one more than the largest (never reuses a removed value,
        whose voxels may still be in a label map)."""
        return self.max_value + 1

    def locked_values(self) -> list:
        return [v for v, lab in self.labels.items() if lab.locked]

    def by_name(self, name: str) -> Optional[Label]:
        for lab in self.labels.values():
            if lab.name == name:
                return lab
        return None

    def lut(self, opacity: float) -> np.ndarray:
        """(max_value + 1, 4) uint8 RGBA table; 0, gaps and invisible labels transparent."""
        lut = np.zeros((self.max_value + 1, 4), dtype=np.uint8)
        alpha = int(round(255 * float(np.clip(opacity, 0.0, 1.0))))
        for v, lab in self.labels.items():
            lut[v, :3] = lab.color
            lut[v, 3] = alpha if lab.visible else 0
        return lut

    # ------------------------------------------------------------------ edits
    def _insert(self, lab: Label) -> Label:
        v = int(lab.value)
        if not 1 <= v <= MAX_LABEL_VALUE:
            raise ValueError(f"label value must be in 1..{MAX_LABEL_VALUE}, got {v}")
        if v in self.labels:
            raise ValueError(f"label value {v} already exists")
        lab = Label(v, str(lab.name), _rgb(lab.color), bool(lab.visible), bool(lab.locked))
        self.labels[v] = lab
        return lab

    def add(self, name: str, color=None, value: Optional[int] = None) -> Label:
        v = self.next_value() if value is None else int(value)
        lab = self._insert(Label(v, name, palette_color(v) if color is None else color))
        self.changed.emit()
        return lab

    def _require(self, value) -> Label:
        lab = self.labels.get(int(value))
        if lab is None:
            raise KeyError(f"no label with value {value}")
        return lab

    def remove(self, value) -> None:
        self._require(value)
        del self.labels[int(value)]
        self.changed.emit()

    def rename(self, value, name: str) -> None:
        self._require(value).name = str(name)
        self.changed.emit()

    def set_color(self, value, rgb) -> None:
        self._require(value).color = _rgb(rgb)
        self.changed.emit()

    def set_visible(self, value, visible: bool) -> None:
        self._require(value).visible = bool(visible)
        self.changed.emit()

    def set_locked(self, value, locked: bool) -> None:
        self._require(value).locked = bool(locked)
        self.changed.emit()

    def replace(self, other: "LabelTable") -> None:
        """Take over all labels of another table (keeps this object and its listeners)."""
        self.labels = {v: Label(**lab.to_dict()) for v, lab in other.labels.items()}
        self.changed.emit()

    def copy(self) -> "LabelTable":
        return LabelTable.from_dict(self.to_dict())

    # ------------------------------------------------------------------ (de)serialise
    def to_dict(self) -> dict:
        return {"labels": [lab.to_dict() for lab in self.labels.values()]}

    @classmethod
    def from_dict(cls, data) -> "LabelTable":
        """From ``to_dict()`` output, a list of label dicts or a plain {value: name} map."""
        if isinstance(data, dict) and "labels" in data:
            data = data["labels"]
        table = cls()
        if isinstance(data, dict):
            for v, name in data.items():
                v = int(v)
                if v != 0:
                    table._insert(Label(v, str(name), palette_color(v)))
            return table
        for item in data:
            v = int(item["value"])
            if v == 0:
                continue
            color = item.get("color") or item.get("rgb") or palette_color(v)
            table._insert(Label(v, str(item.get("name", f"Label {v}")), color,
                                bool(item.get("visible", True)), bool(item.get("locked", False))))
        return table

    @classmethod
    def default(cls) -> "LabelTable":
        return cls.from_names({v: f"Label {v}" for v in range(1, 6)})

    @classmethod
    def from_names(cls, names) -> "LabelTable":
        return cls([Label(int(v), str(n), palette_color(int(v))) for v, n in dict(names).items()
                    if int(v) != 0])

    @classmethod
    def from_file(cls, path) -> "LabelTable":
        """Read a label list: CSV ``value,name[,r,g,b]``, an ITK-SNAP label description file,
        a 3D Slicer colour table (``value name r g b a``) or JSON. Value 0 is skipped."""
        path = Path(path)
        text = path.read_text(encoding="utf-8-sig")
        stripped = text.lstrip()
        if path.suffix.lower() == ".json" or stripped.startswith(("{", "[")):
            return cls.from_dict(json.loads(text))
        rows = [ln.strip() for ln in text.splitlines()]
        rows = [ln for ln in rows if ln and not ln.startswith("#")]
        if any('"' in ln for ln in rows):
            labels = _parse_itksnap(rows)
        elif any("," in ln for ln in rows):
            labels = _parse_csv(rows)
        else:
            labels = _parse_whitespace(rows)
        if not labels:
            raise ValueError(f"no labels found in {path.name}")
        return cls(labels)


_INT = re.compile(r"^[+-]?\d+$")


def _parse_csv(rows) -> list:
    out = []
    for i, ln in enumerate(rows):
        parts = [p.strip().strip('"') for p in ln.split(",")]
        if not _INT.match(parts[0]):
            if i == 0:
                continue  # header
            raise ValueError(f"bad label line {i + 1}: expected 'value,name[,r,g,b]'")
        v = int(parts[0])
        if v == 0:
            continue
        name = parts[1] if len(parts) > 1 and parts[1] else f"Label {v}"
        color = parts[2:5] if len(parts) >= 5 else palette_color(v)
        out.append(Label(v, name, _rgb(color)))
    return out


def _parse_itksnap(rows) -> list:
    """ITK-SNAP: ``IDX R G B A VIS MSH "LABEL"`` (A in 0..1)."""
    out = []
    for i, ln in enumerate(rows):
        parts = shlex.split(ln)
        if len(parts) < 8 or not _INT.match(parts[0]):
            raise ValueError(f"bad ITK-SNAP label line {i + 1}")
        v = int(parts[0])
        if v == 0:
            continue
        alpha = float(parts[4])
        visible = parts[5] != "0" and alpha > 0
        out.append(Label(v, parts[7], _rgb(parts[1:4]), visible))
    return out


def _parse_whitespace(rows) -> list:
    """3D Slicer colour table ``value name r g b a`` (also ``value name`` alone)."""
    out = []
    for i, ln in enumerate(rows):
        parts = ln.split()
        if not _INT.match(parts[0]):
            if i == 0:
                continue
            raise ValueError(f"bad colour table line {i + 1}: expected 'value name r g b a'")
        v = int(parts[0])
        if v == 0:
            continue
        name = parts[1] if len(parts) > 1 else f"Label {v}"
        color = parts[2:5] if len(parts) >= 5 else palette_color(v)
        visible = not (len(parts) >= 6 and float(parts[5]) == 0)
        out.append(Label(v, name, _rgb(color), visible))
    return out
