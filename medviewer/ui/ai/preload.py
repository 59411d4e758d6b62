"""Background import of the AI libraries (torch, MONAI) shortly after the window is shown.

The first AI job otherwise imports torch and MONAI on the AI thread, and their C-level
initialisation holds the GIL for up to ~160 ms at a time: the window stalls for a moment in
the middle of the first run, and the run waits ~2 s for the imports. Importing them on a
background thread while the user is still choosing a study moves that one-off cost out of
the first run. Off with ``MEDVIEWER_AI_PRELOAD=0`` (tests, benchmarks, low-memory machines:
the libraries take ~300 MB).
"""
from __future__ import annotations

import logging
import os
import threading

from PySide6.QtCore import QTimer

log = logging.getLogger(__name__)
PRELOAD_DELAY_MS = 1500
_started = threading.Event()
done = threading.Event()


def enabled() -> bool:
    return os.environ.get("MEDVIEWER_AI_PRELOAD", "1").strip().lower() not in ("0", "no", "off", "false")


def _import_ai() -> None:
    try:
        from medviewer.services.ai_runs import preload_ai_libraries

        from medviewer.services import ai_process

        if ai_process.enabled():
            ai_process.shared().start()  # the inference process imports them too, meanwhile
        preload_ai_libraries()
    except Exception as exc:  # noqa: BLE001 - the first job will report a real problem
        log.info("AI libraries not preloaded: %s", type(exc).__name__)
    finally:
        done.set()


def start_now() -> bool:
    """Start the background import (once per process); False when it ran already."""
    if _started.is_set():
        return False
    _started.set()
    threading.Thread(target=_import_ai, name="medviewer-ai-preload", daemon=True).start()
    return True


def schedule(parent, delay_ms: int = PRELOAD_DELAY_MS) -> bool:
    """Preload ``delay_ms`` after the event loop runs (when :func:`enabled`)."""
    if not enabled():
        return False
    QTimer.singleShot(int(delay_ms), parent, start_now)
    return True
