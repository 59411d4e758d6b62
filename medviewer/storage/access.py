"""Can a workspace folder be written? One clear sentence when it cannot (read-only, gone,
full), instead of a raw PermissionError or "attempt to write a readonly database".

Used by the label store before it writes, by the stroke journal and by the services that
report the problem to the person painting (the UI) or the command line."""
from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path
from typing import Optional

__all__ = ["WorkspaceUnavailable", "connect_read_only", "explain", "inode", "problem",
           "unavailable"]

_READ_ONLY = (errno.EACCES, errno.EPERM, errno.EROFS)
_GONE = (errno.ENOENT, errno.ENOTDIR, errno.ESTALE)
_FULL = (errno.ENOSPC, errno.EDQUOT)


class WorkspaceUnavailable(OSError):
    """The workspace cannot be written; ``str()`` is one sentence naming the folder."""

    def __init__(self, code, message: str):
        super().__init__(message)
        self.errno = int(code) if code else errno.EIO

    def __str__(self) -> str:
        return str(self.args[0])


def _why(exc: BaseException) -> str:
    if isinstance(exc, WorkspaceUnavailable):
        return ""
    if isinstance(exc, OSError):
        if exc.errno in _READ_ONLY:
            return "read-only"
        if exc.errno in _GONE:
            return "gone"
        if exc.errno in _FULL:
            return "full"
    if isinstance(exc, sqlite3.Error):
        text = str(exc).lower()
        if "readonly" in text or "read-only" in text:
            return "read-only"
        if "disk" in text and "full" in text:
            return "full"
        if "unable to open" in text or "disk i/o" in text:
            return "unopenable"
    return ""


def explain(folder, why: str, detail: str = "") -> str:
    folder = str(folder)
    text = {"read-only": f"The workspace {folder} is read-only",
            "gone": f"The workspace {folder} no longer exists (moved or deleted?)",
            "full": f"The disk of the workspace {folder} is full",
            "unopenable": f"The label database in the workspace {folder} cannot be opened"}.get(
        why, f"The workspace {folder} cannot be written")
    return text + (f": {detail}" if detail else "")


def unavailable(folder, exc: BaseException) -> Optional[WorkspaceUnavailable]:
    """A :class:`WorkspaceUnavailable` for an error met while writing ``folder`` (the error
    itself when it already is one); None when the error says nothing about the folder."""
    if isinstance(exc, WorkspaceUnavailable):
        return exc
    why = _why(exc)
    if not why:
        return None
    said = problem(folder) if why in ("read-only", "unopenable") else None
    out = WorkspaceUnavailable(getattr(exc, "errno", None) or errno.EIO,
                               said or explain(folder, why))
    out.__cause__ = exc
    return out


def _writable(path: Path) -> bool:
    mode = os.W_OK | (os.X_OK if path.is_dir() else 0)
    return os.access(path, mode)


def problem(folder, parts=(), known_inode: Optional[tuple] = None) -> Optional[str]:
    """Why ``folder`` (and those of its sub-folders/files ``parts`` that exist) cannot be
    written, or None. A missing folder is a problem when it existed before (``known_inode``:
    its (device, inode) when it was opened) or when it cannot be created. A few
    ``stat``/``access`` calls: cheap enough to ask after every stroke."""
    folder = Path(folder)
    try:
        st = folder.stat()
    except FileNotFoundError:
        if known_inode is not None:
            return explain(folder, "gone")
        parent = folder.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        return None if _writable(parent) else explain(folder, "", "it cannot be created")
    except OSError as exc:
        return explain(folder, _why(exc))
    if known_inode is not None and (st.st_dev, st.st_ino) != tuple(known_inode):
        return explain(folder, "gone")
    for path in [folder] + [folder / part for part in parts]:
        if path.exists() and not _writable(path):
            return explain(folder, "read-only")
    return None


def inode(folder) -> Optional[tuple]:
    """(device, inode) of an existing folder (to notice later that it was replaced)."""
    try:
        st = Path(folder).stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def connect_read_only(path) -> sqlite3.Connection:
    """A read-only connection to an existing SQLite database: ``mode=ro`` (sees a live
    writer's WAL), else ``immutable=1`` (a read-only folder where the WAL index cannot be
    made)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "no label database", str(path))
    last = None
    for flag in ("mode=ro", "immutable=1"):
        db = sqlite3.connect(f"{path.resolve().as_uri()}?{flag}", uri=True, timeout=30,
                             check_same_thread=False, isolation_level=None)
        try:
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return db
        except sqlite3.Error as exc:
            db.close()
            last = exc
    raise last
