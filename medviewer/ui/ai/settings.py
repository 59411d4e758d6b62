"""AI settings: the device preference (QSettings key "ai/device") and which devices this
machine offers, found without importing torch until torch is loaded anyway."""
from __future__ import annotations

import glob
import platform
import shutil
import sys
from typing import Dict

KEY_DEVICE = "ai/device"
DEVICE_CHOICES = (("auto", "Auto"), ("cpu", "CPU"), ("cuda", "CUDA"), ("mps", "MPS"))


def device_preference(settings) -> str:
    value = str(settings.value(KEY_DEVICE, "auto") or "auto").lower()
    return value if value in dict(DEVICE_CHOICES) else "auto"


def set_device_preference(settings, pref: str) -> None:
    if pref not in dict(DEVICE_CHOICES):
        raise ValueError(f"unknown device preference {pref!r}")
    settings.setValue(KEY_DEVICE, pref)


KEY_FP32 = "ai/fp32"


def force_fp32(settings) -> bool:
    """The user's "full precision" setting: no bf16/fp16 autocast for any model."""
    return str(settings.value(KEY_FP32, "false")).lower() in ("true", "1")


def set_force_fp32(settings, on: bool) -> None:
    settings.setValue(KEY_FP32, "true" if on else "false")


def available_devices() -> Dict[str, bool]:
    """{choice: usable}. Exact when torch is already imported; otherwise a cheap guess from
    the driver files (corrected after the first AI job has loaded torch)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        cuda = bool(torch.cuda.is_available())
        mps_mod = getattr(torch.backends, "mps", None)
        mps = bool(mps_mod is not None and mps_mod.is_available())
    else:
        cuda = bool(glob.glob("/dev/nvidia[0-9]*")) or shutil.which("nvidia-smi") is not None
        mps = sys.platform == "darwin" and platform.machine() == "arm64"
    return {"auto": True, "cpu": True, "cuda": cuda, "mps": mps}


def cpu_label() -> str:
    """What the CPU device is called in the panel (as the AI lane names it once it runs)."""
    from medviewer.services.ai_runs import device_label

    return device_label("cpu")
