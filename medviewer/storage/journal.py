"""Stroke journal: every finished stroke reaches disk (fsync) so a killed app loses nothing.

File ``<workspace>/journal/<uuid>.mvj``: the magic bytes, then records, each
``<u32 body length><u32 CRC32 of body><body>``; the body's first byte is its type:

- ``H`` header (JSON: image hash, base record id, shape, dtype, label table, time, app version)
- ``S`` stroke: ``<u32 meta length>`` + meta JSON (label, tool, effort, blob sizes and dtypes)
  + zlib(np.diff of the flat indices) + zlib(old values) + zlib(new values)
- ``T`` label table changed (JSON)
- ``C`` clean close (JSON: committed record id); the file is then removed

A torn tail (short write, bad CRC) ends the readable part: everything before it is recovered.
While a journal is open its file holds an exclusive ``flock``; :func:`pending` skips locked
files (in use by a live app) and finds those whose writer died. No pickles, no class paths.

A journal that cannot be written raises :class:`~medviewer.storage.access.WorkspaceUnavailable`
(one sentence naming the workspace): opening it in a read-only workspace, or a write after its
file was deleted under it (the workspace was moved or removed: the write went nowhere). Whether
a removed workspace may be created again is the caller's decision
(:class:`medviewer.services.workspace.Workspace` never does).
"""
from __future__ import annotations

import errno
import json
import os
import struct
import threading
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np

import medviewer
from medviewer.core.atomic import fsync_dir
from medviewer.storage.access import WorkspaceUnavailable, explain, unavailable
from medviewer.storage.store import JOURNAL_DIR, Effort, as_effort, utc_now_iso

try:  # advisory locks: POSIX only; elsewhere every unclosed journal counts as pending
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

MAGIC = b"MVJOURNAL1\n"
SUFFIX = ".mvj"
_FRAME = struct.Struct("<II")
_U32 = struct.Struct("<I")
MAX_BODY = 1 << 31
ZLEVEL = 1


class JournalEdit(NamedTuple):
    indices: np.ndarray  # flat int64 indices into the (z, y, x) array
    old: np.ndarray
    new: np.ndarray
    label: int
    tool: str


class JournalMismatch(ValueError):
    """Replay found voxels whose value is not the one the journal expected."""


def _lock(fd: int) -> bool:
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


class EncodedArrays(NamedTuple):
    """A stroke's arrays compressed for the journal (:func:`encode_arrays`)."""

    n: int
    dtypes: tuple  # of the index differences, the old and the new values
    blobs: tuple


def encode_arrays(indices, old, new) -> EncodedArrays:
    """Compress a stroke's flat indices (as differences) and old and new values: the slow
    part of journaling a large edit, which a worker can do before the edit is applied."""
    idx = np.asarray(indices, dtype=np.int64).ravel()
    old, new = np.asarray(old).ravel(), np.asarray(new).ravel()
    diffs = np.diff(idx, prepend=np.int64(0))
    if diffs.size and diffs.min() >= 0 and diffs.max() < 2**32:
        diffs = diffs.astype(np.uint32)
    blobs = tuple(zlib.compress(np.ascontiguousarray(a).tobytes(), ZLEVEL)
                  for a in (diffs, old, new))
    return EncodedArrays(int(idx.size), (str(diffs.dtype), str(old.dtype), str(new.dtype)),
                         blobs)


def _encode_stroke(indices, old, new, label, tool, effort: Effort,
                   encoded: Optional[EncodedArrays] = None) -> bytes:
    enc = encoded if encoded is not None else encode_arrays(indices, old, new)
    meta = {"label": int(label), "tool": str(tool), "effort": effort.to_dict(),
            "n": enc.n, "idx_dtype": enc.dtypes[0], "old_dtype": enc.dtypes[1],
            "new_dtype": enc.dtypes[2], "sizes": [len(b) for b in enc.blobs]}
    mj = json.dumps(meta).encode()
    return b"S" + _U32.pack(len(mj)) + mj + b"".join(enc.blobs)


def _decode_stroke(body: bytes) -> tuple[JournalEdit, Effort]:
    (mlen,) = _U32.unpack_from(body, 1)
    pos = 1 + _U32.size
    meta = json.loads(body[pos:pos + mlen])
    pos += mlen
    arrays = []
    for size, dt in zip(meta["sizes"], (meta["idx_dtype"], meta["old_dtype"], meta["new_dtype"])):
        raw = zlib.decompress(body[pos:pos + size])
        pos += size
        arrays.append(np.frombuffer(raw, dtype=np.dtype(dt)))
    diffs, old, new = arrays
    n = meta["n"]
    if not (diffs.size == old.size == new.size == n):
        raise ValueError("stroke arrays disagree in length")
    indices = np.cumsum(diffs.astype(np.int64))
    return (JournalEdit(indices, old.copy(), new.copy(), int(meta["label"]), meta["tool"]),
            as_effort(meta.get("effort")))


def _read_bodies(data: bytes) -> list[bytes]:
    """Complete, CRC-valid record bodies in order, stopping at the first torn one."""
    out, pos = [], len(MAGIC)
    while pos + _FRAME.size <= len(data):
        length, crc = _FRAME.unpack_from(data, pos)
        start = pos + _FRAME.size
        if length == 0 or length > MAX_BODY or start + length > len(data):
            break
        body = data[start:start + length]
        if zlib.crc32(body) != crc:
            break
        out.append(body)
        pos = start + length
    return out


@dataclass
class PendingJournal:
    """A journal whose writer did not close it: the strokes to recover."""

    path: Path
    image_hash: str
    base_record_id: Optional[str]
    shape: tuple
    dtype: str
    table: dict
    edits: list = field(default_factory=list)  # JournalEdit (indices, old, new, label, tool)
    effort: Effort = field(default_factory=Effort)
    efforts: list = field(default_factory=list)  # the Effort each edit carried
    created_at: str = ""
    app_version: str = ""
    table_changes: int = 0

    @property
    def is_empty(self) -> bool:
        return not self.edits and not self.table_changes

    def replay(self, base_labels: Optional[np.ndarray] = None, strict: bool = False) -> np.ndarray:
        """Apply the journal's strokes to a copy of ``base_labels`` (zeros when None).

        ``strict``: raise :class:`JournalMismatch` when a stroke's old values are not what the
        array holds (the base is not the one the journal was written against).
        """
        if base_labels is None:
            out = np.zeros(self.shape, dtype=np.dtype(self.dtype))
        else:
            if tuple(base_labels.shape) != tuple(self.shape):
                raise JournalMismatch(f"base shape {tuple(base_labels.shape)} is not the "
                                      f"journal's {tuple(self.shape)}")
            out = np.array(base_labels, copy=True)
        wide = max([out.dtype.itemsize] + [e.new.dtype.itemsize for e in self.edits])
        if wide > out.dtype.itemsize:
            out = out.astype(np.uint16 if wide <= 2 else np.uint32)
        flat = out.reshape(-1)
        for i, e in enumerate(self.edits):
            if strict and not np.array_equal(flat[e.indices], e.old):
                raise JournalMismatch(f"stroke {i + 1} of the journal does not fit the base")
            flat[e.indices] = e.new
        return out

    def discard(self) -> None:
        """Remove the journal file (after its strokes were saved or the user declined)."""
        self.path.unlink(missing_ok=True)
        fsync_dir(self.path.parent)


def read_journal(path) -> Optional[PendingJournal]:
    """Parse a journal file; None when it has no valid header or was closed cleanly."""
    path = Path(path)
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        return None
    bodies = _read_bodies(data)
    if not bodies or bodies[0][:1] != b"H":
        return None
    head = json.loads(bodies[0][1:])
    pj = PendingJournal(path, head["image_hash"], head.get("base_record_id"),
                        tuple(head["shape"]), head["dtype"], head.get("table") or {},
                        created_at=head.get("created_at", ""),
                        app_version=head.get("app_version", ""))
    effort = Effort()
    for body in bodies[1:]:
        kind = body[:1]
        if kind == b"S":
            try:
                edit, delta = _decode_stroke(body)
            except (ValueError, KeyError, zlib.error, struct.error):
                break  # CRC-valid but unreadable: treat as the end
            pj.edits.append(edit)
            pj.efforts.append(delta)
            effort = effort + delta
        elif kind == b"T":
            pj.table = json.loads(body[1:])
            pj.table_changes += 1
        elif kind == b"C":
            return None
    pj.effort = effort
    return pj


def _scan(folder: Path):
    """(path, PendingJournal | None) for every journal file not held by a live writer."""
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            if not _lock(fd):
                continue  # a live app is writing it
            yield path, read_journal(path)
        finally:
            os.close(fd)


def pending(workspace_dir, image_hash: Optional[str] = None,
            include_empty: bool = False) -> list[PendingJournal]:
    """Journals not closed cleanly and not held by a live writer, oldest first.

    Journals without any stroke or table change are left out unless ``include_empty``.
    """
    folder = Path(workspace_dir) / JOURNAL_DIR
    if not folder.is_dir():
        return []
    found = []
    for _, pj in _scan(folder):
        if pj is None or (image_hash is not None and pj.image_hash != image_hash):
            continue
        if include_empty or not pj.is_empty:
            found.append(pj)
    found.sort(key=lambda pj: pj.created_at)
    return found


def purge_stale(workspace_dir) -> int:
    """Remove journals of dead writers that hold nothing to recover (no valid header, closed
    but not yet removed, or no strokes/table changes). Returns how many were removed."""
    folder = Path(workspace_dir) / JOURNAL_DIR
    if not folder.is_dir():
        return 0
    removed = 0
    for path, pj in list(_scan(folder)):
        if pj is None and not MAGIC.startswith(path.read_bytes()[:len(MAGIC)]):
            continue  # not ours (another format or version): leave it alone
        if pj is None or pj.is_empty:
            path.unlink(missing_ok=True)
            removed += 1
    if removed:
        fsync_dir(folder)
    return removed


class StrokeJournal:
    """The open journal of one editing session on one image."""

    def __init__(self, path: Path, fd: int, shape: tuple):
        self.path = path
        self._fd = fd
        self.shape = tuple(shape)
        self._size = int(np.prod(self.shape))
        self._lock = threading.Lock()
        self.n_strokes = 0
        self.effort = Effort()
        self.closed = False
        self.workspace = path.parent.parent

    @classmethod
    def open(cls, workspace_dir, image_hash: str, base_record_id: Optional[str], shape,
             dtype, table: dict) -> "StrokeJournal":
        folder = Path(workspace_dir) / JOURNAL_DIR
        path = folder / f"{uuid.uuid4().hex}{SUFFIX}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL |
                         getattr(os, "O_BINARY", 0), 0o644)
        except OSError as exc:
            raise (unavailable(workspace_dir, exc) or exc) from exc
        if not _lock(fd):  # pragma: no cover - a fresh unique file cannot be locked
            os.close(fd)
            raise OSError("could not lock a new journal file")
        journal = cls(path, fd, tuple(int(s) for s in shape))
        journal.workspace = Path(workspace_dir)
        head = {"image_hash": str(image_hash), "base_record_id": base_record_id,
                "shape": list(journal.shape), "dtype": str(np.dtype(dtype)), "table": table,
                "created_at": utc_now_iso(), "app_version": medviewer.__version__}
        try:
            journal._write(MAGIC, framed=False)
            journal._write(b"H" + json.dumps(head, allow_nan=False).encode())
        except BaseException:
            journal.detach()
            path.unlink(missing_ok=True)
            raise
        fsync_dir(folder)
        return journal

    def _write(self, body: bytes, framed: bool = True) -> None:
        data = (_FRAME.pack(len(body), zlib.crc32(body)) + body) if framed else body
        view = memoryview(data)
        try:
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
            os.fsync(self._fd)
            gone = os.fstat(self._fd).st_nlink == 0
        except OSError as exc:
            raise (unavailable(self.workspace, exc) or exc) from exc
        if gone:  # the file was deleted under us: this write reached no folder
            raise WorkspaceUnavailable(errno.ENOENT, explain(self.workspace, "gone",
                                                             "its stroke journal was deleted"))

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("the journal is closed")

    def append(self, edit_indices, old, new, label: int, tool: str, effort_delta=None,
               encoded: Optional[EncodedArrays] = None) -> None:
        """Record one finished stroke; on return it is on disk (fsync'ed). ``encoded``: the
        same arrays already compressed (:func:`encode_arrays`, e.g. on a worker)."""
        idx = np.asarray(edit_indices, dtype=np.int64).ravel()
        old = np.asarray(old).ravel()
        new = np.asarray(new).ravel()
        if not (idx.size == old.size == new.size):
            raise ValueError("indices, old and new values must have the same length")
        if encoded is not None and encoded.n != idx.size:
            raise ValueError("the encoded arrays are not this stroke's")
        if idx.size and (idx.min() < 0 or idx.max() >= self._size):
            raise ValueError("stroke indices fall outside the label array")
        delta = as_effort(effort_delta)
        body = _encode_stroke(idx, old, new, label, tool, delta, encoded)
        with self._lock:
            self._check_open()
            self._write(body)
            self.n_strokes += 1
            self.effort = self.effort + delta

    def append_edit(self, edit, reverse: bool = False, effort_delta=None,
                    encoded: Optional[EncodedArrays] = None) -> None:
        """Record an object with indices/old/new/label/tool (e.g. core Edit); ``reverse``
        journals its undo (old and new swapped); ``encoded``: see :meth:`append`."""
        old, new = (edit.new, edit.old) if reverse else (edit.old, edit.new)
        tool = f"undo:{edit.tool}" if reverse else edit.tool
        self.append(edit.indices, old, new, edit.label, tool, effort_delta, encoded)

    def append_table(self, table: dict) -> None:
        body = b"T" + json.dumps(table, allow_nan=False).encode()
        with self._lock:
            self._check_open()
            self._write(body)

    def detach(self) -> None:
        """Let go of the journal WITHOUT marking it clean: it stays on disk (its lock released)
        and ``pending()`` offers it for recovery next time (e.g. the app closes unsaved)."""
        with self._lock:
            if self.closed:
                return
            os.close(self._fd)
            self.closed = True

    def close(self, committed_record_id: Optional[str] = None) -> None:
        """Mark the journal clean and remove it (call after the strokes were saved or
        deliberately discarded)."""
        with self._lock:
            if self.closed:
                return
            try:
                self._write(b"C" + json.dumps({"committed_record_id": committed_record_id})
                            .encode())
            finally:  # the file is let go of even when it cannot be marked or removed
                os.close(self._fd)
                self.closed = True
            try:
                self.path.unlink(missing_ok=True)
            except OSError as exc:
                raise (unavailable(self.workspace, exc) or exc) from exc
            fsync_dir(self.path.parent)
