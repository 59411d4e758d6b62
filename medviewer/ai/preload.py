"""Importing the AI libraries ahead of the first job (torch and the inference module), so that
one-off cost is paid while the app is idle. MONAI is not among them: the U-Net and the 2D
sliding window are our own, and ``import monai`` alone costs ~2.5 s (it imports all of its
submodules); the few paths that still use MONAI (3D sliding windows, other architectures,
training) import it under :func:`import_monai`.

Every path that needs them first calls :func:`import_libraries`: one lock makes the imports
happen on one thread at a time. Two threads importing MONAI at once (the start-up preload and
a first job) can see its modules half-initialised ("cannot import name ... from partially
initialized module 'monai.apps'")."""
from __future__ import annotations

import threading

_lock = threading.Lock()
_done = False


def import_libraries() -> None:
    """Import torch and :mod:`medviewer.ai.inference` (ImportError if they are missing).
    Thread-safe; immediate once done."""
    global _done
    if _done:
        return
    with _lock:
        if _done:
            return
        import torch  # noqa: F401

        from . import inference  # noqa: F401
        _done = True


def import_monai() -> None:
    """Import MONAI (all of it: its package does so) on one thread at a time."""
    import sys

    if "monai.networks.nets" in sys.modules and "monai.inferers" in sys.modules:
        return
    with _lock:
        import monai.inferers  # noqa: F401
        import monai.networks.nets  # noqa: F401
