"""Case labels: series- and slice-level finding labels chosen from a configurable class list."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional

from .signals import Signal

DEFAULT_CHEST_CLASSES = ("normal", "pneumonia", "nodule", "effusion", "pneumothorax",
                         "consolidation", "atelectasis", "cardiomegaly")


class ClassList:
    """An ordered list of unique class names."""

    def __init__(self, names):
        out: List[str] = []
        for n in names:
            n = str(n).strip()
            if not n:
                continue
            if n in out:
                raise ValueError(f"class {n!r} is listed twice")
            out.append(n)
        if not out:
            raise ValueError("a class list needs at least one class")
        self.names = out

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self):
        return iter(self.names)

    def __contains__(self, name) -> bool:
        return name in self.names

    def __eq__(self, other) -> bool:
        return isinstance(other, ClassList) and other.names == self.names

    def index(self, name: str) -> int:
        return self.names.index(name)

    @classmethod
    def default(cls) -> "ClassList":
        return cls(DEFAULT_CHEST_CLASSES)

    @classmethod
    def from_file(cls, path) -> "ClassList":
        """One name per line (# comments and blank lines ignored) or a JSON list of names
        (or {"classes": [...]})."""
        text = Path(path).read_text(encoding="utf-8-sig")
        if text.lstrip().startswith(("[", "{")):
            data = json.loads(text)
            if isinstance(data, dict):
                data = data.get("classes", data.get("names"))
            if not isinstance(data, list):
                raise ValueError("a JSON class list must be a list of names")
            return cls(data)
        return cls(ln.strip() for ln in text.splitlines()
                   if ln.strip() and not ln.strip().startswith("#"))


class CaseLabels:
    """Findings for one series: ``series`` {name: bool} and ``slices`` {z: {name: bool}}.
    Setting ``None`` clears a finding (unset, as opposed to absent=False). ``changed`` is
    emitted (no arguments) after every change."""

    def __init__(self, class_list: Optional[ClassList] = None):
        self.class_list = class_list or ClassList.default()
        self.series: Dict[str, bool] = {}
        self.slices: Dict[int, Dict[str, bool]] = {}
        self.changed = Signal("case_labels_changed")

    def _check(self, name: str) -> None:
        if name not in self.class_list:
            raise KeyError(f"unknown class {name!r}")

    def get(self, name: str) -> Optional[bool]:
        return self.series.get(name)

    def get_slice(self, z: int, name: str) -> Optional[bool]:
        return self.slices.get(int(z), {}).get(name)

    def present(self) -> List[str]:
        """Series-level classes marked present, in class-list order."""
        return [n for n in self.class_list if self.series.get(n)]

    def set(self, name: str, present: Optional[bool]) -> None:
        self._check(name)
        old = self.series.get(name)
        if present is None:
            self.series.pop(name, None)
        else:
            self.series[name] = bool(present)
        if old != self.series.get(name):
            self.changed.emit()

    def toggle(self, name: str) -> Optional[bool]:
        """Unset/absent -> present -> absent (for shortcuts); returns the new state."""
        new = not bool(self.series.get(name))
        self.set(name, new)
        return new

    def set_slice(self, z: int, name: str, present: Optional[bool]) -> None:
        self._check(name)
        z = int(z)
        cur = self.slices.get(z, {})
        old = cur.get(name)
        if present is None:
            cur.pop(name, None)
        else:
            cur[name] = bool(present)
        if cur:
            self.slices[z] = cur
        else:
            self.slices.pop(z, None)
        if old != cur.get(name):
            self.changed.emit()

    def clear(self) -> None:
        if self.series or self.slices:
            self.series, self.slices = {}, {}
            self.changed.emit()

    def is_empty(self) -> bool:
        return not self.series and not self.slices

    def to_dict(self) -> dict:
        return {"classes": list(self.class_list.names),
                "series": {n: self.series[n] for n in self.class_list if n in self.series},
                "slices": {str(z): {n: v[n] for n in self.class_list if n in v}
                           for z, v in sorted(self.slices.items())}}

    @classmethod
    def from_dict(cls, data: dict, class_list: Optional[ClassList] = None) -> "CaseLabels":
        """Inverse of ``to_dict``. Classes in the data missing from ``class_list`` raise."""
        cl = class_list or ClassList(data.get("classes") or DEFAULT_CHEST_CLASSES)
        out = cls(cl)
        for name, v in (data.get("series") or {}).items():
            out._check(name)
            if v is not None:
                out.series[name] = bool(v)
        for z, row in (data.get("slices") or {}).items():
            for name, v in row.items():
                out._check(name)
                if v is not None:
                    out.slices.setdefault(int(z), {})[name] = bool(v)
        return out
