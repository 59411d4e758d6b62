"""What to show when a volume opens: unsaved journals to recover, else the latest saved labels.

Runs on a worker thread (no Qt): hashes the image, reads pending stroke journals and the
label store, and returns plain data that the controller turns into a LabelMap."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import numpy as np

from medviewer.core.volume import Volume

DB_NAME = "labels.db"


@dataclass
class OpenResult:
    image_hash: str
    labels: Optional[np.ndarray] = None  # the base labels (record or zeros) before recovery
    table: Optional[dict] = None
    base_record_id: Optional[str] = None
    base_tag: str = ""
    recovered: list = field(default_factory=list)  # JournalEdit tuples in order
    journals: list = field(default_factory=list)  # PendingJournal objects to discard later
    effort: tuple = (0.0, 0, 0)  # seconds, strokes, voxels recovered
    case_payload: Optional[dict] = None
    case_record_id: Optional[str] = None
    notes: List[str] = field(default_factory=list)


def check_on_open(volume: Volume, workspace: Path, reporter=None) -> OpenResult:
    from medviewer.core.hashing import image_hash
    from medviewer.storage.journal import pending

    if reporter is not None:
        reporter(0, 2, "Checking for unsaved annotations…")
    h = image_hash(volume)
    out = OpenResult(h)
    journals = pending(workspace, h) if Path(workspace).is_dir() else []
    store = None
    if (Path(workspace) / DB_NAME).exists():
        from medviewer.storage.store import LabelStore

        store = LabelStore(workspace)
    try:
        if journals:
            base_id = journals[-1].base_record_id
            use = [j for j in journals if j.base_record_id == base_id]
            if len(use) < len(journals):
                out.notes.append(f"{len(journals) - len(use)} older unsaved session(s) were "
                                 "based on another saved version and were not restored")
            out.base_record_id = base_id
            out.table = use[-1].table or None
            if base_id is not None and store is not None and store.get(base_id) is not None:
                rec = store.get(base_id)
                out.labels = store.load_labels(rec)
                out.base_tag = rec.tag
            else:
                out.labels = np.zeros(use[-1].shape, dtype=np.dtype(use[-1].dtype))
                out.base_record_id = None
            for j in use:
                out.recovered.extend(j.edits)
            s = sum(j.effort.seconds for j in use)
            n = sum(j.effort.strokes for j in use)
            v = sum(j.effort.voxels for j in use)
            out.effort = (s, n, v)
            out.journals = journals
        elif store is not None:
            rec = store.latest(h, "labelmap")
            if rec is not None:
                out.labels = store.load_labels(rec)
                out.table = rec.payload.get("table")
                out.base_record_id, out.base_tag = rec.id, rec.tag
        if store is not None:
            case = store.latest(h, "case")
            if case is not None:
                out.case_payload, out.case_record_id = case.payload, case.id
    finally:
        if store is not None:
            store.close()
    if reporter is not None:
        reporter(2, 2, "")
    return out
