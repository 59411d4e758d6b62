"""Annotation effort per case and per model version: what correcting each model's output cost.

A case is one model prediction that a reader reviewed: the effort (seconds, strokes, voxels
edited) of every 'corrected'/'final' record below it is summed, and cases are grouped by the
version of the model whose prediction was corrected. Open predictions are not cases.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from medviewer.storage.record_tree import RecordTree, model_ref
from medviewer.storage.store import LabelStore


@dataclass(frozen=True)
class CaseEffort:
    image_hash: str
    model_ref: str  # 'name:version' of the prediction that was corrected
    tag: str  # tag of the newest review below the prediction ('corrected' | 'final')
    seconds: float
    strokes: int
    voxels: int
    record_id: str  # the newest review below the prediction


@dataclass(frozen=True)
class VersionEffort:
    model_ref: str
    cases: int
    seconds: float
    strokes: int
    voxels: int
    seconds_per_case: float
    voxels_per_case: float


def _version_key(ref: str) -> tuple:
    name, _, version = ref.partition(":")
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p)
                  for p in re.split(r"[.\-+]", version))
    return name, parts


def effort_per_case(store: LabelStore, model: Optional[str] = None) -> list:
    """One row per reviewed prediction (of ``model``: 'name' or 'name:version'), oldest first."""
    tree = RecordTree(store)
    rows = []
    for pred in tree.predictions(model):
        reviews = tree.reviews_below(pred.id)
        if not reviews:
            continue
        rows.append(CaseEffort(
            pred.image_hash, model_ref(pred), reviews[-1].tag,
            float(sum(r.effort.seconds for r in reviews)),
            int(sum(r.effort.strokes for r in reviews)),
            int(sum(r.effort.voxels for r in reviews)), reviews[-1].id))
    return rows


def effort_by_version(store: LabelStore, model: Optional[str] = None) -> list:
    """Totals and per-case means grouped by the predicting model version, sorted by version."""
    groups: dict = {}
    for row in effort_per_case(store, model):
        groups.setdefault(row.model_ref, []).append(row)
    out = []
    for ref in sorted(groups, key=_version_key):
        rows = groups[ref]
        n = len(rows)
        seconds = float(sum(r.seconds for r in rows))
        voxels = int(sum(r.voxels for r in rows))
        out.append(VersionEffort(ref, n, seconds, int(sum(r.strokes for r in rows)), voxels,
                                 seconds / n, voxels / n))
    return out
