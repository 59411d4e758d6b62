"""Numeric precision per model and machine: bf16 autocast on the CPU only where it is safe.

- CUDA: mixed precision (bf16 where the GPU supports it, else fp16); MPS: fp16.
- CPU: bf16 autocast when the CPU has native bf16 instructions (``avx512_bf16`` or ``amx_bf16``)
  AND the model's record says its labels agree with fp32 on >= :data:`MIN_AGREEMENT` of the
  voxels of real data (and bf16 was faster); fp32 otherwise.
- Forced fp32 everywhere: ``preference="fp32"`` (``medviewer predict --fp32``, the app's
  AI > Precision setting) or the environment variable ``MEDVIEWER_PRECISION=fp32``.

The record is ``precision.json`` beside the model's ``model.json`` (the weights' sha256 in it
must match the card's: a record never carries over to other weights). It is written by
``medviewer models check-precision NAME`` (:mod:`medviewer.services.precision_check`), which
runs :func:`compare` on the demo chest CT for segmentation models.
torch is imported inside the functions only.
"""
from __future__ import annotations

import json
import os
import platform
import time
from functools import lru_cache
from pathlib import Path
from typing import Callable, Optional

import numpy as np

__all__ = ["RECORD_FILE", "MIN_AGREEMENT", "PREFERENCES", "cpu_native_bf16", "read_record",
           "write_record", "choose", "compare"]

RECORD_FILE = "precision.json"
MIN_AGREEMENT = 0.999
MIN_SPEEDUP = 1.05  # bf16 must be this much faster than fp32 where it was measured
PREFERENCES = ("auto", "fp32")


@lru_cache(maxsize=1)
def _cpu_flags() -> frozenset:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@lru_cache(maxsize=1)
def cpu_native_bf16() -> bool:
    """True when this CPU computes bf16 natively (x86 ``avx512_bf16``/``amx_bf16``) and
    torch's oneDNN uses it; elsewhere bf16 would be emulated (slower than fp32)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    if not _cpu_flags() & {"avx512_bf16", "amx_bf16"}:
        return False
    import torch

    mkldnn = getattr(torch.backends, "mkldnn", None)
    if mkldnn is None or not mkldnn.is_available():
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _folder(card) -> Optional[Path]:
    folder = getattr(card, "folder", None)
    if folder is None and isinstance(card, dict):
        folder = card.get("folder")
    return Path(folder) if folder is not None else None


def _sha(card) -> str:
    weights = card.get("weights") if isinstance(card, dict) else getattr(card, "weights", None)
    return str((weights or {}).get("sha256", ""))


def read_record(card) -> Optional[dict]:
    """The model folder's precision record for these weights, or None (none, unreadable,
    or written for other weights)."""
    folder = _folder(card)
    if folder is None:
        return None
    try:
        rec = json.loads((folder / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or rec.get("weights_sha256") != _sha(card):
        return None
    return rec


def write_record(card, result: dict) -> Path:
    """Write ``result`` (from :func:`compare`) as the model folder's record, atomically."""
    from medviewer.core.atomic import atomic_write_text

    folder = _folder(card)
    if folder is None:
        raise ValueError("the model card has no folder to write the precision record to")
    rec = dict(result, weights_sha256=_sha(card))
    path = folder / RECORD_FILE
    atomic_write_text(path, json.dumps(rec, indent=2, sort_keys=True) + "\n")
    return path


def _preference(preference: Optional[str]) -> str:
    pref = (preference or "auto").strip().lower()
    env = os.environ.get("MEDVIEWER_PRECISION", "").strip().lower()
    if env == "fp32":
        pref = "fp32"
    if pref not in PREFERENCES:
        raise ValueError(f"unknown precision {preference!r}; choose one of {', '.join(PREFERENCES)}")
    return pref


def choose(card, device: str, preference: Optional[str] = "auto") -> str:
    """"bf16", "fp16" or "fp32" for ``card``'s model on ``device`` (see module docstring)."""
    if _preference(preference) == "fp32":
        return "fp32"
    dev = str(device)
    if dev.startswith("cuda"):
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if dev.startswith("mps"):
        return "fp16"
    rec = read_record(card)
    if rec is None or not rec.get("bf16_ok") or not cpu_native_bf16():
        return "fp32"
    return "bf16"


def _machine() -> dict:
    import torch

    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "native_bf16": cpu_native_bf16(), "threads": torch.get_num_threads()}


def compare(run: Callable[[str], np.ndarray], data: str, check: Callable[[], None] = lambda: None
            ) -> dict:
    """Run ``run(precision)`` -> labels (any integer array) in fp32, then bf16; the record:
    voxel agreement of the labels, its threshold, the timings and whether bf16 may be used."""
    t0 = time.perf_counter()
    ref = np.asarray(run("fp32"))
    t_fp32 = time.perf_counter() - t0
    check()
    t0 = time.perf_counter()
    low = np.asarray(run("bf16"))
    t_bf16 = time.perf_counter() - t0
    if low.shape != ref.shape:
        raise ValueError(f"bf16 labels {low.shape} differ in shape from fp32 {ref.shape}")
    same = int(np.count_nonzero(low == ref))
    agreement = same / max(1, ref.size)
    speedup = t_fp32 / max(t_bf16, 1e-9)
    fg = (ref != 0) | (low != 0)
    return {"check": "labels in bf16 autocast vs fp32", "data": data,
            "voxels": int(ref.size), "agreement": round(agreement, 6),
            "agreement_foreground": round(float(np.mean(low[fg] == ref[fg])) if fg.any() else 1.0, 6),
            "min_agreement": MIN_AGREEMENT, "fp32_s": round(t_fp32, 3),
            "bf16_s": round(t_bf16, 3), "speedup": round(speedup, 3),
            "bf16_ok": bool(agreement >= MIN_AGREEMENT and speedup >= MIN_SPEEDUP),
            "measured_on": _machine(), "date": time.strftime("%Y-%m-%d")}
