"""Workspace: the folder annotations live in and its label store, shared by every feature.

Made once by the composition root (``medviewer.app`` / ``medviewer.ui.launch``) and handed to
the features; nothing reaches the store through another feature. The folder is
``$MEDVIEWER_WORKSPACE``, else the ``annotation/workspace`` setting, else
``~/MedViewer-workspace``; it and its database are created only when something is written."""
from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Optional

ENV_WORKSPACE = "MEDVIEWER_WORKSPACE"
DEFAULT_FOLDER = "MedViewer-workspace"
DB_NAME = "labels.db"

__all__ = ["Workspace", "workspace_dir", "annotator_name", "ENV_WORKSPACE", "DB_NAME"]


def workspace_dir(settings=None) -> Path:
    """``$MEDVIEWER_WORKSPACE``, else the ``annotation/workspace`` setting (anything with
    ``value(key, default)``), else ``~/MedViewer-workspace``."""
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


class Workspace:
    """The workspace folder (followed when the setting or variable changes) and its
    LabelStore, opened on first use and reopened when the folder changes."""

    def __init__(self, settings=None, folder: Optional[Path] = None):
        self.settings = settings
        self._fixed = Path(folder) if folder is not None else None
        self._store = None

    @property
    def folder(self) -> Path:
        return self._fixed if self._fixed is not None else workspace_dir(self.settings)

    @property
    def store(self):
        """The LabelStore of :attr:`folder` (created, with its folder, on first use)."""
        from medviewer.storage.store import LabelStore

        if self._store is None or Path(self._store.root) != self.folder.resolve():
            if self._store is not None:
                self._store.close()
            self._store = LabelStore(self.folder)
        return self._store

    def has_store(self) -> bool:
        """Whether the folder holds a label store already (never creates one)."""
        return (self.folder / DB_NAME).exists()

    def person(self):
        """The store Source of labels a person saves."""
        from medviewer.storage.store import Source

        return Source("person", annotator_name(self.settings))

    def open_journal(self, image_hash: str, base_record_id, shape, dtype, table: dict):
        """A StrokeJournal for one image's unsaved strokes (fsync'ed per stroke)."""
        from medviewer.storage.journal import StrokeJournal

        return StrokeJournal.open(self.folder, image_hash, base_record_id, shape, dtype, table)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
