"""Annotation work shared by the app's annotation feature and its AI feature (no Qt; run on
a worker thread): what to show when a volume opens (unsaved journals to recover, else the
latest saved labels), storing label maps, case labels and reviews with an image snapshot,
and reading/writing label files (NIfTI/NRRD, DICOM SEG; the exports a person makes, with
their anonymise option, are in :mod:`.exports`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import logging

import numpy as np

from medviewer.core.volume import Volume

from .workspace import DB_NAME, WorkspaceUnavailable

log = logging.getLogger(__name__)


def snapshot_image(store, volume: Volume, image_hash: str) -> None:
    """Keep a copy of the image in the label store before a record about it is stored
    (training reads it once the source files are gone). Idempotent: cheap when the copy
    exists. A failure is logged and does not stop the labels being saved (the manifest
    builder then skips the case and says why)."""
    try:
        store.add_image(volume, image_hash, [str(p) for p in (volume.source_paths or ())])
    except Exception as exc:  # never the paths or names: they may identify the patient
        log.warning("could not store the image snapshot %s…: %s", str(image_hash)[:12],
                    type(exc).__name__)


@dataclass
class OpenResult:
    image_hash: str
    labels: Optional[np.ndarray] = None  # the base labels (record or zeros) before recovery
    table: Optional[dict] = None
    base_record_id: Optional[str] = None
    base_tag: str = ""
    seen_seq: Optional[int] = None  # the store position when this was read (0: no store)
    recovered: list = field(default_factory=list)  # JournalEdit tuples in order
    journals: list = field(default_factory=list)  # PendingJournal objects to discard later
    effort: tuple = (0.0, 0, 0)  # seconds, strokes, voxels recovered
    case_payload: Optional[dict] = None
    case_record_id: Optional[str] = None
    notes: List[str] = field(default_factory=list)
    proposal: Optional[tuple] = None  # (labels, table, Record) of a prediction nobody took up


def _open_store(workspace):
    """The workspace's LabelStore (read-only when it cannot be written), or None."""
    from medviewer.storage.store import LabelStore

    if not (Path(workspace) / DB_NAME).exists():
        return None
    try:
        return LabelStore(workspace)
    except WorkspaceUnavailable:
        return LabelStore(workspace, read_only=True)


def _claim(store, image_hash: str, journal) -> Optional[tuple]:
    """(record, n) when a saved record holds the first n edits of ``journal`` (the app was
    killed after the save, before the journal was marked clean)."""
    found = None
    for rec in store.records(image_hash, kind="labelmap"):
        mark = (rec.payload.get("extra") or {}).get("journal")
        if isinstance(mark, dict) and mark.get("id") == journal.path.stem:
            found = (rec, int(mark.get("edits", 0)))
    return found


def check_on_open(volume: Volume, workspace: Path, reporter=None) -> OpenResult:
    """What to show when ``volume`` opens: the unsaved strokes of a session that did not
    end cleanly (replayed on the record they were based on), else a person's latest saved
    labels; a prediction nobody took up; the case labels."""
    from medviewer.core.hashing import image_hash
    from medviewer.storage.journal import pending

    if reporter is not None:
        reporter(0, 2, "Checking for unsaved annotations…")
    h = image_hash(volume)
    out = OpenResult(h, seen_seq=0)
    journals = pending(workspace, h) if Path(workspace).is_dir() else []
    store = _open_store(workspace)
    try:
        if store is not None:
            out.seen_seq = store.last_seq()
        if journals:
            _recover(out, store, journals)
        elif store is not None:  # a person's latest labels; a model's are only proposed
            rec = next((r for r in reversed(store.records(h, kind="labelmap"))
                        if r.tag != "predicted"), None)
            if rec is not None:
                out.labels = store.load_labels(rec)
                out.table = rec.payload.get("table")
                out.base_record_id, out.base_tag = rec.id, rec.tag
        if store is not None:
            out.proposal = _open_prediction(store, h, out.base_record_id)
            case = store.latest(h, "case")
            if case is not None:
                out.case_payload, out.case_record_id = case.payload, case.id
    finally:
        if store is not None:
            store.close()
    if reporter is not None:
        reporter(2, 2, "")
    return out


def _recover(out: OpenResult, store, journals: list) -> None:
    newest = journals[-1]
    claim = _claim(store, out.image_hash, newest) if store is not None else None
    if claim is not None:  # saved, then killed before the journal was marked clean
        rec, n = claim
        base_id, use, skip = rec.id, [newest], n
    else:
        base_id, skip = newest.base_record_id, 0
        use = [j for j in journals if j.base_record_id == base_id]
    if len(use) < len(journals):
        out.notes.append(f"{len(journals) - len(use)} older unsaved session(s) were "
                         "based on another saved version and were not restored")
    out.base_record_id = base_id
    out.table = use[-1].table or None
    base = store.get(base_id) if base_id is not None and store is not None else None
    if base is not None:
        out.labels = store.load_labels(base)
        out.base_tag = base.tag
        if claim is not None:
            out.table = use[-1].table or base.payload.get("table")
    else:
        out.labels = np.zeros(use[-1].shape, dtype=np.dtype(use[-1].dtype))
        out.base_record_id = None
    efforts = []
    for i, j in enumerate(use):
        first = skip if i == len(use) - 1 else 0
        out.recovered.extend(j.edits[first:])
        efforts.extend(j.efforts[first:])
    out.effort = (sum(e.seconds for e in efforts), sum(e.strokes for e in efforts),
                  sum(e.voxels for e in efforts))
    out.journals = journals


def _open_prediction(store, image_hash: str, base_id: Optional[str]) -> Optional[tuple]:
    """(labels, table, Record) of the newest 'predicted' label map when no record was made
    from it and it is newer than the labels shown (e.g. a case reopened from the review
    queue): it is offered again as a proposal. None otherwise."""
    recs = store.records(image_hash, kind="labelmap")
    ids = [r.id for r in recs]
    pred = next((r for r in reversed(recs) if r.tag == "predicted"), None)
    if pred is None or pred.id == base_id or store.children(pred.id):
        return None
    if base_id in ids and ids.index(base_id) > ids.index(pred.id):
        return None
    return store.load_labels(pred), pred.payload.get("table"), pred


# ---------------------------------------------------------------------------- storing
def store_labelmap(store, volume: Volume, image_hash: str, labels: np.ndarray, table: dict,
                   tag: str, source, parent_id=None, effort=None, extra: Optional[dict] = None,
                   seen_seq: Optional[int] = None):
    """Store a label map (a snapshot, never a part of a stroke) as a new record after the
    image snapshot; returns the Record. ``extra``: provenance notes (e.g. the record reverted
    to); ``seen_seq``: see ``LabelStore.add_labelmap`` (racing saves chain)."""
    store.check_writable()  # before the image snapshot: one clear error, nothing written
    snapshot_image(store, volume, image_hash)
    return store.add_labelmap(image_hash, labels, volume.geometry.affine_ras(), table, tag, source,
                              parent_id=parent_id, effort=effort, extra=extra,
                              seen_seq=seen_seq)


def store_case_labels(store, volume: Volume, image_hash: str, payload: dict, tag: str, source,
                      parent_id=None, effort=None):
    """Store case labels (or a review of a classification) after the image snapshot."""
    snapshot_image(store, volume, image_hash)
    return store.add_case_labels(image_hash, payload, tag, source, parent_id=parent_id,
                                 effort=effort)


# ---------------------------------------------------------------------------- history
@dataclass(frozen=True)
class HistoryEntry:
    """One label-map record of an image as the history panel lists it."""

    id: str
    tag: str
    source: str  # a person's name, or "model version"
    source_kind: str  # 'person' | 'model'
    created_at: str  # ISO 8601, UTC
    effort: tuple  # (seconds, strokes, voxels)
    parent_id: Optional[str]
    ood: Optional[float]  # out-of-distribution score, when the record carries one
    note: str = ""  # e.g. "reverted to …", "proposal accepted"


def ood_score(payload: dict) -> Optional[float]:
    """The out-of-distribution score a prediction record carries (``payload['extra']['ood']``
    of a segmentation, ``payload['prediction']['ood']`` of a classification, as written by
    :mod:`medviewer.services.ai_runs`: a dict with ``ood_score``), else None."""
    for part in (payload.get("extra"), payload.get("prediction")):
        if not isinstance(part, dict):
            continue
        for key, value in part.items():
            if "ood" not in str(key).lower():
                continue
            if isinstance(value, dict):
                value = value.get("ood_score", value.get("score"))
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
    return None


def _note(payload: dict) -> str:
    extra = payload.get("extra") or {}
    if extra.get("reverted_to"):
        return f"reverted to {str(extra['reverted_to'])[:8]}"
    if extra.get("accepted_proposal"):
        return f"accepted proposal {str(extra['accepted_proposal'])[:8]}"
    return ""


def label_history(store, image_hash: str) -> List[HistoryEntry]:
    """The label-map records of an image, newest first."""
    out = []
    for rec in reversed(store.records(image_hash, kind="labelmap")):
        e = rec.effort
        out.append(HistoryEntry(rec.id, rec.tag, rec.source.label(), rec.source.kind,
                                rec.created_at, (float(e.seconds), int(e.strokes), int(e.voxels)),
                                rec.parent_id, ood_score(rec.payload), _note(rec.payload)))
    return out


def load_record(store, record_id: str):
    """(labels, table dict, Record) of a label-map record."""
    rec = store.get(record_id)
    if rec is None or rec.kind != "labelmap":
        raise ValueError(f"no label-map record {record_id}")
    return store.load_labels(rec), rec.payload.get("table"), rec


def compare_records(store, a_id: str, b_id: str):
    """(LabelComparison, {value: name}) of two label-map records of one image (a name in
    the second record's table wins over the first's)."""
    from medviewer.core.label_compare import compare_labels
    from medviewer.core.labels import LabelTable

    la, ta, ra = load_record(store, a_id)
    lb, tb, rb = load_record(store, b_id)
    if ra.image_hash != rb.image_hash:
        raise ValueError("the two records belong to different images")
    names = {}
    for t in (ta, tb):
        for lab in LabelTable.from_dict(t or {}):
            names[lab.value] = lab.name
    return compare_labels(la, lb), names


# ---------------------------------------------------------------------------- label files
def read_label_file(path, geometry, resample: bool = False):
    """(labels, table, warnings) of a NIfTI/NRRD label map on ``geometry``; a
    :class:`GeometryMismatch` is returned (not raised) so the caller can offer resampling."""
    from medviewer.io.labels_io import GeometryMismatch, read_labelmap

    try:
        return read_labelmap(path, geometry, resample=resample)
    except GeometryMismatch as exc:
        return exc


def read_seg_file(path, geometry, source_paths=None):
    """(labels, table, warnings) of a DICOM SEG on ``geometry``."""
    from medviewer.io.dicom_seg import read_seg

    return read_seg(path, geometry=geometry, source_paths=source_paths or None)


def write_label_file(labels: np.ndarray, geometry, path, table: dict):
    from medviewer.io.labels_io import write_labelmap

    return write_labelmap(labels, geometry, path, table=table)


def is_dicom_volume(volume) -> bool:
    """Whether ``volume`` was loaded from DICOM files (DICOM SEG export needs them)."""
    from medviewer.io.volume_files import is_volume_file

    paths = list(volume.source_paths or []) if volume is not None else []
    return bool(paths) and not any(is_volume_file(p) for p in paths[:1])


def plan_proposal_accept(labels: np.ndarray, proposal, mapping: dict, value=None, axis=None,
                         index=None, replace: bool = False, locked=None):
    """The slow part of accepting a proposal, Qt-free and safe on a worker (it only reads
    ``labels`` and the read-only proposal): (:class:`~medviewer.core.proposal.AcceptPlan`,
    the plan's arrays compressed for the stroke journal). Only the proposal's bounding box is
    looked at."""
    from medviewer.core.proposal import plan_accept
    from medviewer.storage.journal import encode_arrays

    plan = plan_accept(labels, proposal.labels, mapping, value, axis, index, replace,
                       proposal.box, locked)
    return plan, encode_arrays(plan.indices, plan.old, plan.new)
