"""The loader's memory budget: every allocation sized from header values is checked first.

Headers say how big an image is (Rows, Columns, NumberOfFrames, SamplesPerPixel,
BitsAllocated, NIfTI dims...), and a damaged or hostile header can say anything: before the
readers allocate (or let a decoder allocate) from those values, ``check(need, ...)`` compares
the estimated peak with the budget and raises ``MemoryBudgetError`` (a LoadError) that says
how much was asked and what the budget is.

The budget: ``$MEDVIEWER_LOAD_MEMORY_MB`` (megabytes, e.g. ``4096``, or a percentage of the
memory available now, e.g. ``50%``); by default half of the memory available when the load
starts (psutil, else /proc/meminfo), at least 256 MB.
"""
from __future__ import annotations

import os
from typing import Optional

from .errors import MemoryBudgetError

__all__ = ["ENV", "DEFAULT_FRACTION", "budget_bytes", "check", "fmt_bytes"]

ENV = "MEDVIEWER_LOAD_MEMORY_MB"
DEFAULT_FRACTION = 0.5
MIN_BUDGET = 256 << 20
_FALLBACK_AVAILABLE = 4 << 30


def available_bytes() -> int:
    """Memory available to new allocations now (psutil; /proc/meminfo; 4 GB if neither)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001  psutil missing or unable to read: try /proc
        pass
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return _FALLBACK_AVAILABLE


def _from_env(text: str) -> Optional[int]:
    text = text.strip().lower()
    try:
        if text.endswith("%"):
            frac = float(text[:-1]) / 100.0
            return int(available_bytes() * frac) if 0 < frac <= 1 else None
        mb = float(text.removesuffix("mb"))
        return int(mb * (1 << 20)) if mb > 0 else None
    except ValueError:
        return None


def budget_bytes() -> int:
    """The current budget in bytes (read on every call: the environment may change)."""
    env = os.environ.get(ENV, "")
    if env.strip():
        value = _from_env(env)
        if value is not None:
            return value
    return max(MIN_BUDGET, int(available_bytes() * DEFAULT_FRACTION))


def fmt_bytes(n: float) -> str:
    n = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} EiB"


def check(need: float, what: str, name: str) -> None:
    """Raise MemoryBudgetError when ``need`` bytes (an estimate of the peak) exceed the
    budget. ``what`` says what needs it, e.g. "a 512 x 512 x 100 int16 volume"."""
    budget = budget_bytes()
    if need > budget:
        raise MemoryBudgetError(
            f"{name}: {what} would need {fmt_bytes(need)}, more than the memory budget of "
            f"{fmt_bytes(budget)} (set {ENV} to change it)")
