"""Modules imported on first use, for heavy imports (scipy: 0.3-0.8 s) in modules that the
app loads at start-up but uses only when the user acts."""
from __future__ import annotations

import importlib
from types import ModuleType


class LazyModule:
    """Stands for module ``name``; imports it at the first attribute access."""

    def __init__(self, name: str):
        self._name = name

    def _module(self) -> ModuleType:
        return importlib.import_module(self._name)  # cached in sys.modules, thread-safe

    def __getattr__(self, attr: str):
        return getattr(self._module(), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"
