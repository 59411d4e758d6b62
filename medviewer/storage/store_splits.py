"""Frozen train/validation splits in the label store: an append-only ``splits`` table.

A unit (an image hash, or ``<hash>:z<slab>`` for 2D segmentation models, see
:func:`medviewer.core.manifest.split_unit`) is assigned to ``train`` or ``val`` once per model
and keeps that split forever, across every fine-tuning run. New units are assigned
deterministically from sha256(model + unit); the user may move a unit to validation, never
back to training (a trigger refuses it). Splits are per model *name*: a ``name:version``
reference is reduced to its name.
"""
from __future__ import annotations

import hashlib
from typing import Iterable

SPLITS_SCHEMA = """
CREATE TABLE IF NOT EXISTS splits (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    model TEXT NOT NULL,
    unit TEXT NOT NULL,
    split TEXT NOT NULL CHECK (split IN ('train', 'val')),
    reason TEXT NOT NULL CHECK (reason IN ('auto', 'user')),
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS splits_model_unit ON splits (model, unit);
CREATE TRIGGER IF NOT EXISTS splits_no_update BEFORE UPDATE ON splits
BEGIN SELECT RAISE(ABORT, 'splits are append-only: UPDATE is not allowed'); END;
CREATE TRIGGER IF NOT EXISTS splits_no_delete BEFORE DELETE ON splits
BEGIN SELECT RAISE(ABORT, 'splits are append-only: DELETE is not allowed'); END;
CREATE TRIGGER IF NOT EXISTS splits_val_is_final BEFORE INSERT ON splits
WHEN NEW.split = 'train' AND EXISTS (SELECT 1 FROM splits WHERE model = NEW.model
                                     AND unit = NEW.unit AND split = 'val')
BEGIN SELECT RAISE(ABORT, 'a validation unit never goes back to training'); END;
"""


def model_name(model: str) -> str:
    """``name`` of a ``name`` or ``name:version`` reference."""
    name = str(model).split(":", 1)[0].strip()
    if not name:
        raise ValueError("a split needs a model name")
    return name


def unit_score(model: str, unit: str) -> float:
    """Deterministic number in [0, 1) from sha256(model + unit)."""
    digest = hashlib.sha256((model_name(model) + str(unit)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


class SplitsMixin:
    """LabelStore methods for frozen splits (needs ``_db``, ``_lock``, ``check_writable``)."""

    def _read_splits(self, name: str) -> dict:
        rows = self._db.execute("SELECT unit, split FROM splits WHERE model = ? ORDER BY seq",
                                (name,)).fetchall()
        out: dict = {}
        for unit, split in rows:  # later rows win (train -> val only)
            out[unit] = split
        return out

    def splits(self, model: str) -> dict:
        """unit -> 'train' | 'val' for every unit assigned for this model."""
        with self._lock:
            return self._read_splits(model_name(model))

    def split_of(self, model: str, unit: str):
        """'train', 'val' or None (never assigned)."""
        return self.splits(model).get(str(unit))

    def _insert_splits(self, name: str, items: Iterable, reason: str) -> None:
        from medviewer.storage.store import utc_now_iso

        now = utc_now_iso()
        self._db.executemany(
            "INSERT INTO splits (model, unit, split, reason, created_at) VALUES (?, ?, ?, ?, ?)",
            [(name, unit, split, reason, now) for unit, split in items])

    def assign_splits(self, model: str, units, val_fraction: float = 0.2) -> dict:
        """Assign every new unit once (units seen before keep their split); returns the split
        of each requested unit. If the model would end with no validation unit while at least
        two units exist, the new unit with the smallest score goes to validation."""
        self.check_writable()
        if not 0.0 <= float(val_fraction) < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        name = model_name(model)
        wanted = list(dict.fromkeys(str(u) for u in units))
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                current = self._read_splits(name)
                new = [u for u in wanted if u not in current]
                scores = {u: unit_score(name, u) for u in new}
                chosen = {u: ("val" if scores[u] < val_fraction else "train") for u in new}
                has_val = "val" in current.values() or "val" in chosen.values()
                if new and not has_val and len(current) + len(new) >= 2:
                    chosen[min(new, key=lambda u: scores[u])] = "val"
                self._insert_splits(name, [(u, chosen[u]) for u in new], "auto")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            current.update(chosen)
        return {u: current[u] for u in wanted}

    def mark_validation(self, model: str, unit: str) -> str:
        """The user's choice: put a unit (new or in training) in the frozen validation set."""
        self.check_writable()
        name = model_name(model)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if self._read_splits(name).get(str(unit)) != "val":
                    self._insert_splits(name, [(str(unit), "val")], "user")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return "val"
