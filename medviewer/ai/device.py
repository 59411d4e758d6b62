"""Compute device choice for inference: CUDA, else MPS, else CPU; labels, autocast, threads.

torch is imported inside the functions so that importing this module stays cheap.
``choose_device("auto")`` also honours the environment variable ``MEDVIEWER_DEVICE``
(``cpu``/``cuda``/``mps``), e.g. to force the CPU on a machine with a GPU.
"""
from __future__ import annotations

import contextlib
import logging
import os

__all__ = ["DeviceError", "PREFERENCES", "choose_device", "device_label", "autocast",
           "configure_threads", "cpu_cores", "worker_threads", "tune_allocator",
           "release_freed_memory"]

log = logging.getLogger(__name__)
PREFERENCES = ("auto", "cpu", "cuda", "mps")


class DeviceError(ValueError):
    """A device was asked for that this machine does not have (clear message)."""


def _cuda_ok() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _mps_ok() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def choose_device(preference: str = "auto", strict: bool = False) -> str:
    """The torch device string to run on: ``"cuda"``, ``"mps"`` or ``"cpu"``.

    ``preference`` "auto" picks CUDA, else MPS, else CPU (``MEDVIEWER_DEVICE`` overrides it).
    A forced device this machine lacks falls back to the CPU with a logged warning, or raises
    :class:`DeviceError` when ``strict`` (the CLI's ``--device``)."""
    pref = (preference or "auto").strip().lower()
    if pref == "auto":
        pref = os.environ.get("MEDVIEWER_DEVICE", "auto").strip().lower() or "auto"
    if pref not in PREFERENCES:
        raise DeviceError(f"unknown device {preference!r}; choose one of {', '.join(PREFERENCES)}")
    if pref == "auto":
        if _cuda_ok():
            return "cuda"
        return "mps" if _mps_ok() else "cpu"
    if pref == "cpu":
        return "cpu"
    available = _cuda_ok() if pref == "cuda" else _mps_ok()
    if available:
        return pref
    msg = f"{pref.upper()} was requested but is not available on this machine"
    if strict:
        raise DeviceError(msg)
    log.warning("%s; using the CPU", msg)
    return "cpu"


def cpu_cores() -> int:
    """CPU cores this process may run on (its affinity mask; the CPU count elsewhere)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def worker_threads() -> int:
    """CPU threads for torch in work started from the app (AI jobs, fine-tunes): all cores
    but one, which stays with the GUI (at least one). The command line takes every core
    (:func:`cpu_cores`): on 2 cores two threads that must share one core with the GUI run
    several times slower than one thread on a core of its own."""
    return max(1, cpu_cores() - 1)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
MMAP_THRESHOLD = 32 * 2**20
_allocator_tuned = False


def tune_allocator() -> bool:
    """On glibc, keep freed blocks up to 32 MB in the heap for reuse (``mallopt``).

    CPU inference allocates and frees the same activation-sized buffers (a few MB to tens of
    MB) for every batch; with glibc's defaults many of them go back to the kernel and every
    new one page-faults again, which measured ~15 % of a whole-volume segmentation here.
    Returns True when the setting was applied (False elsewhere: macOS, Windows, musl)."""
    global _allocator_tuned
    if _allocator_tuned:
        return True
    libc = _glibc()
    if libc is None:
        return False
    try:
        ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        ok = ok and libc.mallopt(_M_TRIM_THRESHOLD, 4 * MMAP_THRESHOLD) == 1
    except (OSError, AttributeError):
        return False
    _allocator_tuned = ok
    return ok


def release_freed_memory() -> bool:
    """Give the heap's freed blocks back to the kernel (glibc ``malloc_trim``).

    :func:`tune_allocator` keeps freed activation buffers for reuse while a job runs; once the
    network is done (before post-processing, which needs memory of its own) they would only
    raise the process's peak. A no-op returning False off glibc."""
    libc = _glibc()
    if libc is None:
        return False
    try:
        libc.malloc_trim(0)
    except AttributeError:
        return False
    return True


def _glibc():
    """The C library when it is glibc (Linux), else None."""
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def configure_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads (default :func:`worker_threads`) so the GUI keeps a core;
    also tunes the C allocator for inference (:func:`tune_allocator`)."""
    import torch

    tune_allocator()
    n = worker_threads() if n is None else max(1, int(n))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def device_label(device: str) -> str:
    """What the UI shows, e.g. ``"CPU (1 thread)"`` or ``"CUDA: NVIDIA H100 80GB HBM3"``."""
    dev = str(device)
    if dev.startswith("cuda"):
        import torch

        index = int(dev.split(":", 1)[1]) if ":" in dev else torch.cuda.current_device()
        return f"CUDA: {torch.cuda.get_device_name(index)}"
    if dev.startswith("mps"):
        return "Apple MPS (Metal)"
    import sys

    torch = sys.modules.get("torch")
    n = torch.get_num_threads() if torch is not None else worker_threads()
    return f"CPU ({n} thread{'s' if n != 1 else ''})"


def autocast(device: str, precision: str | None = None):
    """Mixed precision for a forward pass. ``precision`` None: the GPU default (bf16 when
    supported, else fp16; fp16 on MPS) and fp32 on the CPU; "fp32": none; "bf16"/"fp16": that
    dtype (on the CPU only bf16, chosen per model by :func:`medviewer.ai.precision.choose`)."""
    dev = str(device)
    if precision == "fp32":
        return contextlib.nullcontext()
    if dev.startswith("cuda"):
        import torch

        if precision is None:
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(device_type="cuda", dtype=dtype)
    if dev.startswith("mps"):
        import torch

        try:
            return torch.autocast(device_type="mps", dtype=torch.float16)
        except (RuntimeError, ValueError):  # older torch without MPS autocast
            return contextlib.nullcontext()
    if precision == "bf16":
        import torch

        return torch.autocast(device_type="cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()
