"""LabelStore methods that keep a person's corrections one linear chain when saves race
(the head is checked inside the insert's transaction), and that copy an image's records into
another workspace (a rescue when the first one cannot be written any more)."""
from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from typing import Optional

from medviewer.storage.label_files import read_label_nifti, write_label_nifti

log = logging.getLogger(__name__)


class ChainMixin:
    """Needs LabelStore's ``_db``, ``_lock``, ``_tx_files``, ``transaction``, ``_insert``,
    ``get``, ``records``, ``file_path``, ``check_writable`` and ``root``."""

    def chain_head(self, image_hash: str, kind: str, parent_id: Optional[str],
                   seen_seq: int) -> Optional[str]:
        """Where a save that started from ``parent_id`` (None: no record yet) at store
        position ``seen_seq`` belongs: follow the newest child stored by a person after
        ``seen_seq`` (the image's newest such root when ``parent_id`` is None) for as long
        as there is one. ``parent_id`` itself when nothing was stored below it since."""
        head = parent_id
        sql = ("SELECT id FROM records WHERE image_hash = ? AND kind = ? AND seq > ? "
               "AND source_kind = 'person' AND parent_id {} ORDER BY seq DESC LIMIT 1")
        with self._lock:
            while True:
                if head is None:
                    row = self._db.execute(sql.format("IS NULL"),
                                           (image_hash, kind, int(seen_seq))).fetchone()
                else:
                    row = self._db.execute(sql.format("= ?"),
                                           (image_hash, kind, int(seen_seq), head)).fetchone()
                if row is None or row[0] == head:
                    return head
                head = row[0]

    def _insert_on_head(self, rec, seen_seq: int):
        """Insert ``rec`` below the head of its chain (:meth:`chain_head`), in one
        transaction with the check; a changed parent is noted as ``extra.raced_parent``."""
        ctx = self.transaction() if self._tx_files is None else contextlib.nullcontext()
        with ctx:
            head = self.chain_head(rec.image_hash, rec.kind, rec.parent_id, seen_seq)
            if head != rec.parent_id:
                payload = dict(rec.payload)
                payload["extra"] = dict(payload.get("extra") or {}, raced_parent=rec.parent_id)
                rec = replace(rec, parent_id=head, payload=payload)
            return self._insert(rec)

    def copy_history(self, src, image_hash: str) -> tuple[list, list]:
        """Copy the records of ``image_hash`` from ``src`` (another LabelStore, e.g. opened
        read-only) that are not here yet, oldest first, with their ids, provenance, effort
        and label arrays: the image's history, as far as ``src`` can still be read. A record
        whose array cannot be read, or whose parent did not come along, is left out (and
        so are its descendants). Returns (ids here now, ids left out)."""
        self.check_writable()
        with self._writing():
            return self._copy_records(src, image_hash)

    def _copy_records(self, src, image_hash: str) -> tuple[list, list]:
        here, left = [], []
        for rec in src.records(image_hash):
            if self.get(rec.id) is not None:
                here.append(rec.id)
                continue
            if rec.parent_id is not None and rec.parent_id not in here:
                left.append(rec.id)
                continue
            file = None
            if rec.kind == "labelmap":
                try:
                    labels, affine = read_label_nifti(src.file_path(rec))
                except Exception as exc:  # any unreadable array: left out, and said so
                    log.warning("record %s not copied: its label array cannot be read (%s)",
                                rec.id[:8], type(exc).__name__)
                    left.append(rec.id)
                    continue
                file = f"{self.arrays_dir.name}/{rec.id}.nii.gz"
                write_label_nifti(self.root / file, labels, affine)
            self._insert(replace(rec, file=file, seq=None))
            here.append(rec.id)
        return here, left
