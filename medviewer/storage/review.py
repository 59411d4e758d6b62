"""Active-learning review queue: open model predictions, most uncertain case first.

A prediction is open while no 'corrected' or 'final' record descends from it. Per image only
the newest prediction counts (of the chosen model, when one is given); an image whose newest
prediction was reviewed is not in the queue. The rank is the case-level uncertainty the
inference stored with the prediction (label maps: ``payload["extra"]["case_uncertainty"]``,
case labels: ``payload["prediction"]["case_uncertainty"]``); predictions without a score
come last, newest first among equals.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from medviewer.storage.record_tree import RecordTree, model_ref
from medviewer.storage.store import LabelStore, Record


@dataclass(frozen=True)
class QueueItem:
    image_hash: str
    record_id: str
    model_ref: str
    uncertainty: float  # NaN when the prediction has no score
    created_at: str
    kind: str  # 'labelmap' | 'case'
    source_paths: list = field(default_factory=list)

    @property
    def has_score(self) -> bool:
        return not math.isnan(self.uncertainty)


def case_uncertainty(record: Record) -> float:
    """The stored case-level uncertainty of a prediction, NaN when there is none."""
    payload = record.payload or {}
    if record.kind == "labelmap":
        value = (payload.get("extra") or {}).get("case_uncertainty")
    else:
        value = (payload.get("prediction") or {}).get("case_uncertainty")
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan


def review_queue(store: LabelStore, model: Optional[str] = None) -> list:
    """Open predictions ranked most uncertain first (``model``: 'name' or 'name:version')."""
    tree = RecordTree(store)
    newest: dict = {}
    for rec in tree.predictions(model):  # oldest first: later ones replace earlier ones
        newest[rec.image_hash] = rec
    items = []
    paths: dict = {}
    for h, rec in newest.items():
        if tree.reviews_below(rec.id):
            continue
        if h not in paths:
            info = store.image_info(h)
            paths[h] = list(info["source_paths"]) if info else []
        items.append(QueueItem(h, rec.id, model_ref(rec), case_uncertainty(rec),
                               rec.created_at, rec.kind, list(paths[h])))
    items.sort(key=lambda q: q.created_at, reverse=True)  # newest first among equals
    items.sort(key=lambda q: (not q.has_score, -q.uncertainty if q.has_score else 0.0))
    return items
