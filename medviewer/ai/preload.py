"""Importing the AI libraries ahead of the first job (torch, MONAI's networks and inferers,
and the inference module), so that one-off cost is paid while the app is idle.

Every path that needs them first calls :func:`import_libraries`: one lock makes the imports
happen on one thread at a time. Two threads importing MONAI at once (the start-up preload and
a first job) can see its modules half-initialised ("cannot import name ... from partially
initialized module 'monai.apps'")."""
from __future__ import annotations

import threading

_lock = threading.Lock()
_done = False


def import_libraries() -> None:
    """Import torch, MONAI and :mod:`medviewer.ai.inference` (ImportError if they are missing).
    Thread-safe; immediate once done."""
    global _done
    if _done:
        return
    with _lock:
        if _done:
            return
        import monai.inferers  # noqa: F401  (segmentation's sliding window)
        import monai.networks.nets  # noqa: F401
        import torch  # noqa: F401

        from . import inference  # noqa: F401
        _done = True
