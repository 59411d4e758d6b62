"""Prompt records in the label store: every accepted interactive-segmentation result with the
prompts that produced it (table ``prompt_records``, schema 3).

A row holds the image hash (the store's image identity; never patient names or IDs), the
engine, the plane and slice the prompts were placed on, the prompts as JSON in voxel (z, y, x)
coordinates, how many prompts there were, and the accepted mask of that slice as compressed
``.npz`` bytes (a boolean 2D array, a few hundred bytes for a typical organ). A row may name
the label-map record the result was saved into (``label_record_id``). These rows are training
data for the promptable model, not labels: unlike ``records`` they can be deleted (a wrongly
accepted result must be removable before it is trained on), never updated.
"""
from __future__ import annotations

import io
import json
import uuid
from dataclasses import dataclass
from typing import Optional

import numpy as np

PLANES = ("axial", "coronal", "sagittal")

PROMPTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS prompt_records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    image_hash TEXT NOT NULL,
    engine TEXT NOT NULL,
    plane TEXT NOT NULL CHECK (plane IN ('axial', 'coronal', 'sagittal')),
    slice INTEGER NOT NULL CHECK (slice >= 0),
    prompts TEXT NOT NULL,
    n_prompts INTEGER NOT NULL CHECK (n_prompts >= 0),
    mask BLOB NOT NULL,
    mask_shape TEXT NOT NULL,
    mask_voxels INTEGER NOT NULL,
    label_record_id TEXT REFERENCES records(id),
    source_name TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    app_version TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS prompt_records_image ON prompt_records (image_hash);
CREATE TRIGGER IF NOT EXISTS prompt_records_no_update BEFORE UPDATE ON prompt_records
BEGIN SELECT RAISE(ABORT, 'prompt records are never changed: UPDATE is not allowed'); END;
"""

_COLS = ("id, image_hash, engine, plane, slice, prompts, n_prompts, mask_shape, mask_voxels, "
         "label_record_id, source_name, created_at, app_version")


@dataclass(frozen=True)
class PromptRecord:
    """One accepted interactive result (the mask itself: :meth:`PromptsMixin.load_prompt_mask`)."""

    id: str
    image_hash: str
    engine: str
    plane: str
    slice: int
    prompts: dict
    n_prompts: int
    mask_shape: tuple
    mask_voxels: int
    label_record_id: Optional[str]
    source_name: str
    created_at: str
    app_version: str


def _ints(seq, n: int, what: str) -> list:
    vals = list(seq)
    if len(vals) != n:
        raise ValueError(f"{what} needs {n} numbers, got {len(vals)}")
    return [int(v) for v in vals]


def normalise_prompts(prompts) -> dict:
    """``{points: [[z,y,x,positive]...], boxes: [[z,y0,x0,y1,x1]...], scribbles: [{voxels:
    [[z,y,x]...], positive}]}`` with plain ints/bools (ValueError on anything else)."""
    if not isinstance(prompts, dict):
        raise ValueError("prompts must be a dict with points, boxes and scribbles")
    unknown = set(prompts) - {"points", "boxes", "scribbles"}
    if unknown:
        raise ValueError(f"unknown prompt kinds: {sorted(unknown)}")
    points = []
    for p in prompts.get("points") or []:
        z, y, x = _ints(list(p)[:3], 3, "a point")
        points.append([z, y, x, bool(list(p)[3]) if len(p) > 3 else True])
    boxes = [_ints(b, 5, "a box") for b in prompts.get("boxes") or []]
    scribbles = []
    for s in prompts.get("scribbles") or []:
        if not isinstance(s, dict):
            raise ValueError("a scribble must be {voxels: [[z,y,x]...], positive: bool}")
        vox = [_ints(v, 3, "a scribble voxel") for v in s.get("voxels") or []]
        scribbles.append({"voxels": vox, "positive": bool(s.get("positive", True))})
    if any(v < 0 for p in points for v in p[:3]) or any(v < 0 for b in boxes for v in b):
        raise ValueError("prompt coordinates must be voxel indices >= 0")
    return {"points": points, "boxes": boxes, "scribbles": scribbles}


def count_prompts(prompts: dict) -> int:
    return len(prompts["points"]) + len(prompts["boxes"]) + len(prompts["scribbles"])


def mask_to_bytes(mask: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, mask=np.asarray(mask, dtype=bool))
    return buf.getvalue()


def mask_from_bytes(blob: bytes) -> np.ndarray:
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        return np.asarray(z["mask"], dtype=bool)


class PromptsMixin:
    """LabelStore methods for prompt records (needs ``_db``, ``_lock``, ``get``,
    ``check_writable``)."""

    def add_prompt_record(self, image_hash: str, engine: str, plane: str, slice_index: int,
                          prompts: dict, mask2d: np.ndarray,
                          label_record_id: Optional[str] = None,
                          source_name: str = "") -> PromptRecord:
        """Store one accepted result: the prompts and the 2D mask of slice ``slice_index`` of
        ``plane``; returns the new row."""
        import medviewer

        self.check_writable()
        from medviewer.storage.store import StoreError, utc_now_iso

        if not isinstance(image_hash, str) or not image_hash or ":" in image_hash:
            raise StoreError("image_hash must be a plain hash string")
        if not str(engine).strip():
            raise StoreError("a prompt record needs the engine's name")
        if plane not in PLANES:
            raise StoreError(f"plane must be one of {PLANES}, got {plane!r}")
        if int(slice_index) < 0:
            raise StoreError(f"slice must be >= 0, got {slice_index}")
        try:
            norm = normalise_prompts(prompts)
        except (ValueError, TypeError) as exc:
            raise StoreError(f"bad prompts: {exc}") from None
        mask = np.asarray(mask2d)
        if mask.ndim != 2 or mask.size == 0:
            raise StoreError(f"the accepted mask must be one 2D slice, got shape {mask.shape}")
        mask = mask.astype(bool)
        if label_record_id is not None and self.get(label_record_id) is None:
            raise StoreError(f"label record {label_record_id} does not exist")
        rec = PromptRecord(uuid.uuid4().hex, image_hash, str(engine), plane, int(slice_index),
                           norm, count_prompts(norm), tuple(int(s) for s in mask.shape),
                           int(mask.sum()), label_record_id, str(source_name or ""),
                           utc_now_iso(), medviewer.__version__)
        row = (rec.id, rec.image_hash, rec.engine, rec.plane, rec.slice,
               json.dumps(norm, separators=(",", ":")), rec.n_prompts, mask_to_bytes(mask),
               json.dumps(list(rec.mask_shape)), rec.mask_voxels, rec.label_record_id,
               rec.source_name, rec.created_at, rec.app_version)
        with self._lock:
            self._db.execute(
                "INSERT INTO prompt_records (id, image_hash, engine, plane, slice, prompts, "
                "n_prompts, mask, mask_shape, mask_voxels, label_record_id, source_name, "
                "created_at, app_version) VALUES (" + ", ".join("?" * len(row)) + ")", row)
        return rec

    @staticmethod
    def _prompt_row(row) -> PromptRecord:
        (rid, h, engine, plane, z, prompts, n, shape, vox, label_id, src, created, appv) = row
        return PromptRecord(rid, h, engine, plane, int(z), json.loads(prompts), int(n),
                            tuple(json.loads(shape)), int(vox), label_id, src, created, appv)

    def _prompt_where(self, image_hash, engine) -> tuple:
        conds, args = [], []
        for col, val in (("image_hash", image_hash), ("engine", engine)):
            if val is not None:
                conds.append(f"{col} = ?")
                args.append(str(val))
        return ("WHERE " + " AND ".join(conds)) if conds else "", tuple(args)

    def prompt_records(self, image_hash: Optional[str] = None,
                       engine: Optional[str] = None) -> list[PromptRecord]:
        """Matching prompt records, oldest first."""
        where, args = self._prompt_where(image_hash, engine)
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLS} FROM prompt_records {where} ORDER BY seq",
                                    args).fetchall()
        return [self._prompt_row(r) for r in rows]

    def prompt_record(self, record_id: str) -> Optional[PromptRecord]:
        with self._lock:
            row = self._db.execute(f"SELECT {_COLS} FROM prompt_records WHERE id = ?",
                                   (str(record_id),)).fetchone()
        return None if row is None else self._prompt_row(row)

    def prompt_record_count(self, image_hash: Optional[str] = None,
                            engine: Optional[str] = None) -> int:
        where, args = self._prompt_where(image_hash, engine)
        with self._lock:
            return int(self._db.execute(f"SELECT COUNT(*) FROM prompt_records {where}",
                                        args).fetchone()[0])

    def load_prompt_mask(self, record_id) -> np.ndarray:
        """The accepted 2D mask (bool) of a prompt record (a PromptRecord or its id)."""
        from medviewer.storage.store import StoreError

        rid = record_id.id if isinstance(record_id, PromptRecord) else str(record_id)
        with self._lock:
            row = self._db.execute("SELECT mask FROM prompt_records WHERE id = ?",
                                   (rid,)).fetchone()
        if row is None:
            raise StoreError(f"prompt record {rid} does not exist")
        return mask_from_bytes(row[0])

    def delete_prompt_record(self, record_id) -> bool:
        """Remove a prompt record (its mask goes with it); False when there was none."""
        self.check_writable()
        rid = record_id.id if isinstance(record_id, PromptRecord) else str(record_id)
        with self._lock:
            cur = self._db.execute("DELETE FROM prompt_records WHERE id = ?", (rid,))
        return cur.rowcount > 0
