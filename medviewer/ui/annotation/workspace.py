"""Where annotations live: the workspace folder (env var, settings, default) and who annotates."""
from __future__ import annotations

import getpass
import os
from pathlib import Path

ENV_WORKSPACE = "MEDVIEWER_WORKSPACE"
DEFAULT_FOLDER = "MedViewer-workspace"


def workspace_dir(settings=None) -> Path:
    """``$MEDVIEWER_WORKSPACE``, else the ``annotation/workspace`` setting, else
    ``~/MedViewer-workspace``. The folder is created only when something is written."""
    env = os.environ.get(ENV_WORKSPACE)
    if env:
        return Path(env).expanduser()
    if settings is not None:
        value = settings.value("annotation/workspace", "")
        if value:
            return Path(str(value)).expanduser()
    return Path.home() / DEFAULT_FOLDER


def annotator_name(settings=None) -> str:
    """The person recorded as the source of saved labels (setting, else the login name)."""
    if settings is not None:
        value = settings.value("annotation/user", "")
        if value:
            return str(value)
    try:
        return getpass.getuser() or "annotator"
    except Exception:  # no login name (containers)
        return "annotator"
