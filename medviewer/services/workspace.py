"""Workspace: the folder annotations live in and its label store, shared by every feature.

Made once by the composition root (``medviewer.app`` / ``medviewer.ui.launch``) and handed to
the features; nothing reaches the store through another feature. The folder is
``$MEDVIEWER_WORKSPACE``, else the ``annotation/workspace`` setting, else
``~/MedViewer-workspace``; it and its database are created only when something is written.

A workspace that cannot be written — read-only, or removed or replaced while the app uses it
(it is never created again then) — raises :class:`WorkspaceUnavailable` (an OSError whose
message is one sentence naming the folder); :meth:`Workspace.problem` says so without writing.
:meth:`Workspace.use_folder` moves the app to another folder (the "Save as…" rescue)."""
from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Optional

ENV_WORKSPACE = "MEDVIEWER_WORKSPACE"
DEFAULT_FOLDER = "MedViewer-workspace"
DB_NAME = "labels.db"

from medviewer.storage.access import WorkspaceUnavailable  # noqa: E402  (stdlib only)

__all__ = ["Workspace", "WorkspaceUnavailable", "workspace_dir", "annotator_name",
           "ENV_WORKSPACE", "DB_NAME"]


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
        self._known: dict = {}  # folder -> (device, inode) once used: never made again

    @property
    def folder(self) -> Path:
        return self._fixed if self._fixed is not None else workspace_dir(self.settings)

    def _remember(self, folder: Path) -> None:
        from medviewer.storage.access import inode

        key = str(Path(folder).resolve())
        if key not in self._known:
            found = inode(folder)
            if found is not None:
                self._known[key] = found

    def problem(self) -> Optional[str]:
        """Why the workspace cannot be written now (read-only, removed or replaced since
        it was used, cannot be created), or None. Writes nothing; a few ``stat`` calls."""
        from medviewer.storage.access import problem
        from medviewer.storage.journal import JOURNAL_DIR

        folder = self.folder
        return problem(folder, (JOURNAL_DIR, DB_NAME, "arrays"),
                       self._known.get(str(folder.resolve())))

    def check(self) -> None:
        """Raise :class:`WorkspaceUnavailable` when :meth:`problem` finds one."""
        why = self.problem()
        if why is not None:
            raise WorkspaceUnavailable(13, why)

    @property
    def store(self):
        """The LabelStore of :attr:`folder` (created, with its folder, on first use; never
        created again once it was used and then removed; opened for reading only while the
        folder cannot be written)."""
        from medviewer.storage.store import LabelStore

        stale = self._store is not None and (
            Path(self._store.root) != self.folder.resolve() or
            (self._store.read_only and self.problem() is None))  # writable again
        if self._store is None or stale:
            if self._store is not None:
                self._store.close()
                self._store = None
            if str(self.folder.resolve()) in self._known and not self.folder.is_dir():
                self.check()  # removed since it was used: say so, never make it again
            try:
                self._store = LabelStore(self.folder)
            except WorkspaceUnavailable:
                if not (self.folder / DB_NAME).exists():
                    raise
                self._store = LabelStore(self.folder, read_only=True)  # read; saves say why
            self._remember(self.folder)
        return self._store

    def take_store(self):
        """The open LabelStore, handed over (the caller closes it) and forgotten here; None
        when none is open. A store opened before its folder became read-only or was
        removed can often still be read."""
        store, self._store = self._store, None
        return store

    def read_only_store(self, folder=None):
        """A LabelStore of ``folder`` (default: this workspace) opened for reading only, or
        None when it has no readable database (e.g. removed)."""
        from medviewer.storage.store import LabelStore

        folder = Path(folder) if folder is not None else self.folder
        if not (folder / DB_NAME).exists():
            return None
        try:
            return LabelStore(folder, read_only=True)
        except (OSError, ValueError):
            return None

    def use_folder(self, folder) -> None:
        """Work in ``folder`` from now on (this run; also remembered in the settings, unless
        ``$MEDVIEWER_WORKSPACE`` decides): the "Save as…" rescue of a workspace that cannot
        be written. The store of the old folder is closed."""
        folder = Path(folder).expanduser()
        if self._store is not None:
            self._store.close()
            self._store = None
        self._fixed = folder
        if self.settings is not None and hasattr(self.settings, "setValue"):
            self.settings.setValue("annotation/workspace", str(folder))

    def has_store(self) -> bool:
        """Whether the folder holds a label store already (never creates one)."""
        return (self.folder / DB_NAME).exists()

    def person(self):
        """The store Source of labels a person saves."""
        from medviewer.storage.store import Source

        return Source("person", annotator_name(self.settings))

    def open_journal(self, image_hash: str, base_record_id, shape, dtype, table: dict):
        """A StrokeJournal for one image's unsaved strokes (fsync'ed per stroke); the folder
        is created on first use. :class:`WorkspaceUnavailable` when it cannot be written."""
        from medviewer.storage.access import unavailable
        from medviewer.storage.journal import StrokeJournal

        self.check()
        folder = self.folder
        if not folder.is_dir():
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise (unavailable(folder, exc) or exc) from exc
        self._remember(folder)
        return StrokeJournal.open(folder, image_hash, base_record_id, shape, dtype, table)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
