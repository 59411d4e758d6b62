"""Append-only label store: SQLite (WAL) index + compressed NIfTI label arrays in one workspace.

Layout of a workspace folder::

    labels.db            SQLite database, WAL mode; table ``records`` is append-only
                         (triggers abort any UPDATE or DELETE)
    arrays/<id>.nii.gz   one label array per label-map record, written atomically BEFORE
                         its row is inserted (a crash in between leaves an orphan file,
                         never a row without its file)
    journal/             stroke journals (see :mod:`medviewer.storage.journal`)
    images/<hash>.nii.gz one snapshot per image (table ``images``, see store_images.py)

Schema 2 adds the ``images`` and ``splits`` tables (frozen train/val splits, see
store_splits.py); schema 3 adds ``prompt_records`` (accepted interactive results with their
prompts, see store_prompts.py). Opening an older database upgrades it in place by creating the
missing tables.

Records carry only an image hash, never patient names or IDs.

A workspace that cannot be written (read-only, removed, full) raises
:class:`~medviewer.storage.access.WorkspaceUnavailable` (an OSError) with one sentence naming
it, before anything is written; ``LabelStore(folder, read_only=True)`` reads such a
workspace. Saves that name the store position they started from (``seen_seq``) keep a
linear parent chain when they race (see :mod:`medviewer.storage.store_chain`).
"""
from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import numpy as np

import medviewer
from medviewer.core.atomic import fsync_dir, is_temp_name
from medviewer.storage.access import (WorkspaceUnavailable, connect_read_only, explain, inode,
                                      problem, unavailable)
from medviewer.storage.label_files import read_label_nifti, write_label_nifti
from medviewer.storage.store_chain import ChainMixin
from medviewer.storage.store_images import IMAGES_DIR, IMAGES_SCHEMA, ImagesMixin
from medviewer.storage.store_prompts import PROMPTS_SCHEMA, PromptsMixin
from medviewer.storage.store_splits import SPLITS_SCHEMA, SplitsMixin

DB_NAME = "labels.db"
ARRAYS_DIR = "arrays"
JOURNAL_DIR = "journal"
SCHEMA_VERSION = 3
KINDS = ("labelmap", "case")
TAGS = ("predicted", "corrected", "final")
SOURCE_KINDS = ("person", "model")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('labelmap', 'case')),
    tag TEXT NOT NULL CHECK (tag IN ('predicted', 'corrected', 'final')),
    source_kind TEXT NOT NULL CHECK (source_kind IN ('person', 'model')),
    source_name TEXT NOT NULL,
    source_version TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    app_version TEXT NOT NULL,
    image_hash TEXT NOT NULL,
    parent_id TEXT REFERENCES records(id),
    file TEXT,
    payload TEXT NOT NULL,
    effort_seconds REAL NOT NULL DEFAULT 0,
    effort_strokes INTEGER NOT NULL DEFAULT 0,
    effort_voxels INTEGER NOT NULL DEFAULT 0,
    preprocessing TEXT,
    CHECK (kind != 'labelmap' OR file IS NOT NULL)
);
CREATE INDEX IF NOT EXISTS records_image ON records (image_hash, kind);
CREATE INDEX IF NOT EXISTS records_parent ON records (parent_id);
CREATE TRIGGER IF NOT EXISTS records_no_update BEFORE UPDATE ON records
BEGIN SELECT RAISE(ABORT, 'records are append-only: UPDATE is not allowed'); END;
CREATE TRIGGER IF NOT EXISTS records_no_delete BEFORE DELETE ON records
BEGIN SELECT RAISE(ABORT, 'records are append-only: DELETE is not allowed'); END;
"""

_COLUMNS = ("id, kind, tag, source_kind, source_name, source_version, created_at, app_version, "
            "image_hash, parent_id, file, payload, effort_seconds, effort_strokes, effort_voxels, "
            "preprocessing")


class StoreError(ValueError):
    """A request the store refuses (unknown parent, bad tag, wrong shape...)."""


@dataclass(frozen=True)
class Source:
    """Who made a record: a person (name) or a model (name + version)."""

    kind: str  # 'person' | 'model'
    name: str
    version: str = ""

    def __post_init__(self):
        if self.kind not in SOURCE_KINDS:
            raise StoreError(f"source kind must be one of {SOURCE_KINDS}, got {self.kind!r}")
        if not str(self.name).strip():
            raise StoreError("a source needs a name")

    def label(self) -> str:
        return f"{self.name} {self.version}".strip() if self.kind == "model" else self.name


@dataclass(frozen=True)
class Effort:
    """Annotation effort: seconds spent, strokes made, voxels changed."""

    seconds: float = 0.0
    strokes: int = 0
    voxels: int = 0

    def __add__(self, other: "Effort") -> "Effort":
        other = as_effort(other)
        return Effort(self.seconds + other.seconds, self.strokes + other.strokes,
                      self.voxels + other.voxels)

    def to_dict(self) -> dict:
        return {"seconds": float(self.seconds), "strokes": int(self.strokes),
                "voxels": int(self.voxels)}


def as_effort(value) -> Effort:
    """Effort from an Effort, a dict, a (seconds, strokes, voxels) tuple or None."""
    if value is None:
        return Effort()
    if isinstance(value, Effort):
        return value
    if isinstance(value, dict):
        return Effort(float(value.get("seconds", 0)), int(value.get("strokes", 0)),
                      int(value.get("voxels", 0)))
    s, n, v = value
    return Effort(float(s), int(n), int(v))


@dataclass(frozen=True)
class Record:
    """One immutable row of the store."""

    id: str
    kind: str
    tag: str
    source: Source
    created_at: str
    app_version: str
    image_hash: str
    parent_id: Optional[str]
    file: Optional[str]
    payload: dict = field(default_factory=dict)
    effort: Effort = field(default_factory=Effort)
    preprocessing: Optional[dict] = None
    seq: Optional[int] = None  # its position in the store (1, 2, ...), once stored


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _dumps(obj, what: str) -> str:
    try:
        return json.dumps(obj, allow_nan=False, sort_keys=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} must be plain JSON data: {exc}") from None


class LabelStore(ChainMixin, ImagesMixin, SplitsMixin, PromptsMixin):
    """A workspace folder holding the SQLite index and the label array files.

    ``read_only``: open an existing workspace for reading only (e.g. one on a read-only
    disk, to rescue its records); nothing is created and every write is refused."""

    def __init__(self, workspace_dir, read_only: bool = False):
        self.root = Path(workspace_dir).resolve()
        self.arrays_dir = self.root / ARRAYS_DIR
        self.journal_dir = self.root / JOURNAL_DIR
        self.images_dir = self.root / IMAGES_DIR
        self.db_path = self.root / DB_NAME
        self.read_only = bool(read_only)
        self._lock = threading.RLock()
        self._tx_files: Optional[list] = None  # files written inside transaction()
        self._db = None
        try:
            if self.read_only:
                self._db = connect_read_only(self.db_path)
            else:
                self._open()
        except (OSError, sqlite3.Error) as exc:
            if self._db is not None:
                self._db.close()
            err = unavailable(self.root, exc)
            if err is None:
                raise
            raise err from exc
        self._inode = inode(self.root)

    def _open(self) -> None:
        for d in (self.root, self.arrays_dir, self.journal_dir, self.images_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.db_path, timeout=30, check_same_thread=False,
                                   isolation_level=None)
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            self._db.close()
            raise StoreError(f"could not switch the label database to WAL mode (got {mode})")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        with self._lock:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                self._db.close()
                self._db = None
                raise StoreError(f"label database schema {version} is newer than this app")
            self._db.executescript(_SCHEMA + IMAGES_SCHEMA + SPLITS_SCHEMA + PROMPTS_SCHEMA)
            if version < SCHEMA_VERSION:  # new db, or an older db upgraded in place
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> "LabelStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self):
        """Everything stored inside happens together or not at all: one SQLite transaction
        (other threads wait on the store's lock meanwhile). On an exception it is rolled back
        and the label arrays and image snapshots written inside are removed again."""
        self.check_writable()
        with self._lock:
            if self._tx_files is not None:
                raise StoreError("a store transaction is already open")
            self._db.execute("BEGIN IMMEDIATE")
            self._tx_files = []
            try:
                yield self
            except BaseException:
                self._db.execute("ROLLBACK")
                for path in self._tx_files:
                    Path(path).unlink(missing_ok=True)
                raise
            else:
                self._db.execute("COMMIT")
            finally:
                self._tx_files = None

    def _wrote(self, path: Path) -> None:
        """Note a file written for a row that a rolled-back transaction must take back."""
        if self._tx_files is not None:
            self._tx_files.append(path)

    @property
    def journal_mode(self) -> str:
        return str(self._db.execute("PRAGMA journal_mode").fetchone()[0]).lower()

    def check_writable(self) -> None:
        """Raise :class:`WorkspaceUnavailable` when the workspace cannot take a new record:
        opened read-only, the folder (or its database) removed or replaced, or read-only."""
        if self.read_only:
            raise WorkspaceUnavailable(13, problem(self.root) or explain(self.root, "read-only"))
        why = problem(self.root, (DB_NAME, ARRAYS_DIR, IMAGES_DIR), self._inode)
        if why is None and not self.db_path.exists():
            why = explain(self.root, "gone")
        if why is not None:
            raise WorkspaceUnavailable(13, why)

    def last_seq(self) -> int:
        """The position of the newest record (0 in an empty store)."""
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM records")
                       .fetchone()[0])

    # ------------------------------------------------------------------ writing
    def _check_common(self, kind, image_hash, tag, source, parent_id) -> None:
        if tag not in TAGS:
            raise StoreError(f"tag must be one of {TAGS}, got {tag!r}")
        if not isinstance(source, Source):
            raise StoreError("source must be a Source(kind, name, version)")
        if not isinstance(image_hash, str) or not image_hash:
            raise StoreError("image_hash must be a non-empty string")
        if parent_id is not None:
            parent = self.get(parent_id)
            if parent is None:
                raise StoreError(f"parent record {parent_id} does not exist")
            if parent.image_hash != image_hash:
                raise StoreError(f"parent record {parent_id} belongs to another image")
            if parent.kind != kind:
                raise StoreError(f"parent record {parent_id} is a {parent.kind} record, "
                                 f"not {kind}")

    def _insert(self, rec: Record) -> Record:
        """Insert a row; returns the record with its ``seq``."""
        row = (rec.id, rec.kind, rec.tag, rec.source.kind, rec.source.name, rec.source.version,
               rec.created_at, rec.app_version, rec.image_hash, rec.parent_id, rec.file,
               _dumps(rec.payload, "payload"), float(rec.effort.seconds),
               int(rec.effort.strokes), int(rec.effort.voxels),
               None if rec.preprocessing is None else _dumps(rec.preprocessing,
                                                             "preprocessing"))
        with self._lock:
            cur = self._db.execute(f"INSERT INTO records ({_COLUMNS}) VALUES "
                                   f"({', '.join('?' * len(row))})", row)
        return replace(rec, seq=int(cur.lastrowid))

    def add_labelmap(self, image_hash: str, labels: np.ndarray, affine_ras, table: dict,
                     tag: str, source: Source, parent_id: Optional[str] = None,
                     effort=None, preprocessing: Optional[dict] = None,
                     extra: Optional[dict] = None, seen_seq: Optional[int] = None) -> Record:
        """Store a label array (z, y, x; uint8/uint16) for an image; returns the new record.

        ``seen_seq``: the store position (:meth:`last_seq`) when the labels' editing took
        ``parent_id`` as its base. A person's record stored below it since then (a save that
        raced this one) becomes the parent instead, checked inside the insert's transaction,
        so racing saves form a chain, never siblings (see :meth:`chain_head`)."""
        self.check_writable()
        self._check_common("labelmap", image_hash, tag, source, parent_id)
        arr = np.asarray(labels)
        payload = {"table": table, "shape": list(arr.shape), "dtype": str(arr.dtype)}
        if extra:
            payload["extra"] = extra
        _dumps(payload, "payload")
        if preprocessing is not None:
            _dumps(preprocessing, "preprocessing")
        rid = uuid.uuid4().hex
        rel = f"{ARRAYS_DIR}/{rid}.nii.gz"
        with self._writing():
            write_label_nifti(self.root / rel, arr, affine_ras)  # file first, durably
            self._wrote(self.root / rel)
            rec = Record(rid, "labelmap", tag, source, utc_now_iso(), medviewer.__version__,
                         image_hash, parent_id, rel, payload, as_effort(effort), preprocessing)
            if seen_seq is None:
                return self._insert(rec)
            return self._insert_on_head(rec, seen_seq)

    def add_case_labels(self, image_hash: str, payload: dict, tag: str, source: Source,
                        parent_id: Optional[str] = None, effort=None,
                        preprocessing: Optional[dict] = None) -> Record:
        """Store case-level labels (``CaseLabels.to_dict()``) for an image."""
        self.check_writable()
        self._check_common("case", image_hash, tag, source, parent_id)
        if not isinstance(payload, dict):
            raise StoreError("case label payload must be a dict")
        rec = Record(uuid.uuid4().hex, "case", tag, source, utc_now_iso(),
                     medviewer.__version__, image_hash, parent_id, None, payload,
                     as_effort(effort), preprocessing)
        with self._writing():
            return self._insert(rec)

    @contextlib.contextmanager
    def _writing(self):
        """Errors of a write that say the workspace cannot be written become one clear
        :class:`WorkspaceUnavailable`."""
        try:
            yield
        except (OSError, sqlite3.Error) as exc:
            err = unavailable(self.root, exc)
            if err is None:
                raise
            raise err from exc

    # ------------------------------------------------------------------ reading
    @staticmethod
    def _row_to_record(row) -> Record:
        (rid, kind, tag, skind, sname, sversion, created, appv, ihash, parent, file,
         payload, es, en, ev, prep, seq) = row
        return Record(rid, kind, tag, Source(skind, sname, sversion), created, appv, ihash,
                      parent, file, json.loads(payload), Effort(es, en, ev),
                      None if prep is None else json.loads(prep), seq)

    def _query(self, where: str = "", args: tuple = ()) -> list[Record]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS}, seq FROM records {where} ORDER BY seq",
                                    args).fetchall()
        return [self._row_to_record(r) for r in rows]

    def get(self, record_id: str) -> Optional[Record]:
        found = self._query("WHERE id = ?", (str(record_id),))
        return found[0] if found else None

    def records(self, image_hash: Optional[str] = None, kind: Optional[str] = None,
                tag: Optional[str] = None) -> list[Record]:
        """Matching records, oldest first."""
        conds, args = [], []
        for col, val in (("image_hash", image_hash), ("kind", kind), ("tag", tag)):
            if val is not None:
                conds.append(f"{col} = ?")
                args.append(val)
        return self._query(("WHERE " + " AND ".join(conds)) if conds else "", tuple(args))

    def latest(self, image_hash: str, kind: str) -> Optional[Record]:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS}, seq FROM records WHERE image_hash = ? AND kind = ? "
                "ORDER BY seq DESC LIMIT 1", (image_hash, kind)).fetchone()
        return None if row is None else self._row_to_record(row)

    def children(self, record_id: str) -> list[Record]:
        return self._query("WHERE parent_id = ?", (str(record_id),))

    def lineage(self, record_id: str) -> list[Record]:
        """The record and its ancestors, newest first (the correction chain)."""
        out, rid = [], record_id
        while rid is not None:
            rec = self.get(rid)
            if rec is None:
                break
            out.append(rec)
            rid = rec.parent_id
        return out

    def file_path(self, record: Record) -> Path:
        if record.file is None:
            raise StoreError(f"record {record.id} ({record.kind}) has no label array")
        return self.root / record.file

    def load_labels(self, record) -> np.ndarray:
        """The label array (z, y, x) of a label-map record (a Record or its id)."""
        if not isinstance(record, Record):
            found = self.get(record)
            if found is None:
                raise StoreError(f"record {record} does not exist")
            record = found
        labels, _ = read_label_nifti(self.file_path(record))
        return labels

    def load_affine(self, record: Record) -> np.ndarray:
        return read_label_nifti(self.file_path(record))[1]

    def orphan_files(self) -> list[Path]:
        """Array files (and stray temporaries) without a record, e.g. left by a crash."""
        with self._lock:
            known = {r[0] for r in self._db.execute(
                "SELECT file FROM records WHERE file IS NOT NULL")}
        out = []
        for p in sorted(self.arrays_dir.iterdir()):
            rel = f"{ARRAYS_DIR}/{p.name}"
            if rel not in known or is_temp_name(p.name):
                out.append(p)
        return out

    def remove_orphans(self, min_age_s: float = 3600.0) -> int:
        """Delete orphan array files older than ``min_age_s`` (a younger one may be a write
        in progress). Never touches a file that a record points to."""
        removed = 0
        now = time.time()
        for p in self.orphan_files():
            try:
                if now - p.stat().st_mtime < min_age_s:
                    continue
                p.unlink()
            except FileNotFoundError:
                continue
            removed += 1
        if removed:
            fsync_dir(self.arrays_dir)
        return removed

