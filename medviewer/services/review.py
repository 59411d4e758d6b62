"""The review side of the learning loop (no Qt; for a worker thread): the queue of open
predictions, reopening a queued case from its source files or the store's image snapshot,
the split units 'Mark as validation' freezes, and annotation effort per model version.
Returns plain data that the UI hands to the session."""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import numpy as np

from medviewer.core.volume import Volume

log = logging.getLogger(__name__)


@dataclass
class OpenedCase:
    volume: Volume
    image_hash: str
    origin: str  # "sources" or "snapshot"
    slice_z: Optional[int] = None  # the slice to show (the prediction's slice), if known
    notes: List[str] = field(default_factory=list)


class CaseUnavailable(RuntimeError):
    """Neither the source files nor a snapshot give back the queued image."""


def _hash(volume: Volume) -> str:
    from medviewer.core.hashing import image_hash

    return image_hash(volume)


def review_queue(store) -> list:
    """Open predictions (no correction or review yet), most uncertain first."""
    from medviewer.storage.review import review_queue as queue

    return queue(store)


def effort_tables(store) -> tuple:
    """(effort summed per model version, effort per case) of the store's records."""
    from medviewer.storage.effort import effort_by_version, effort_per_case

    return effort_by_version(store), effort_per_case(store)


def _from_sources(paths: list, wanted: str, reporter=None) -> Optional[Volume]:
    """The series among ``paths`` whose content hash is ``wanted`` (None: gone or changed)."""
    existing = [p for p in paths if Path(p).exists()]
    if not existing or len(existing) < len(paths):
        return None
    from .studies import load, scan

    cat = scan(existing, reporter)
    for entry in sorted(cat.series, key=lambda e: -(e.n_frames or e.n_images or 0)):
        try:
            vol = load(entry, reporter)
        except Exception as exc:  # an unreadable series: try the next one, then the snapshot
            log.warning("review queue: could not load a source series: %s", type(exc).__name__)
            continue
        if _hash(vol) == wanted:
            return vol
    return None


def _from_snapshot(store, wanted: str) -> tuple:
    """(Volume of the store's image snapshot, notes); CaseUnavailable when there is none."""
    if store.image_file(wanted) is None:
        raise CaseUnavailable("the case's source files are gone or changed, and the label store "
                              "holds no snapshot of the image")
    snap = store.load_image(wanted)  # same voxels, dtype and geometry as when stored
    out = dataclasses.replace(snap, description="Snapshot " + wanted[:12],
                              meta={"format": "snapshot", "image_hash": wanted},
                              uid=f"snapshot:{wanted}")
    notes = ["Opened the store's snapshot of the image (its source files are gone or changed)"]
    if _hash(out) != wanted:
        notes.append("The snapshot differs from the original image: labels saved now are "
                     "filed under a new image hash")
    return out, notes


def prediction_slice(record) -> Optional[int]:
    """The slice a prediction was made on (a slice run), else its most uncertain slice."""
    if record is None:
        return None
    prep = record.preprocessing or {}
    payload = record.payload or {}
    for value in (prep.get("slice"), (payload.get("extra") or {}).get("most_uncertain_slice"),
                  (payload.get("prediction") or {}).get("slice")):
        if value is not None:
            try:
                return int(value)
            except (TypeError, ValueError):
                continue
    return None


def load_case(store, item, reporter=None) -> OpenedCase:
    """Reopen a queued case: its source files when they still give the same image, else the
    image snapshot in the store."""
    wanted = item.image_hash
    if reporter is not None:
        reporter(0, 2, "Opening the case…")
    record = store.get(item.record_id)
    z = prediction_slice(record)
    vol = _from_sources(list(item.source_paths or []), wanted, reporter)
    if vol is not None:
        return OpenedCase(vol, wanted, "sources", z)
    vol, notes = _from_snapshot(store, wanted)
    return OpenedCase(vol, wanted, "snapshot", z, notes)


def labelled_slices(store, image_hash: str) -> tuple:
    """(sorted axial slices labelled in any label-map record of the image, number of slices)."""
    zs, nz = set(), 0
    for rec in store.records(image_hash, kind="labelmap"):
        labels = np.asarray(store.load_labels(rec))
        nz = max(nz, int(labels.shape[0]))
        flat = labels.reshape(labels.shape[0], -1)
        zs.update(int(z) for z in np.flatnonzero(flat.any(axis=1)))
    return sorted(zs), nz


def validation_units(store, item, dims: Optional[int]) -> list:
    """The split units of a queued case: 2D segmentation models split by slabs of slices
    (every slab holding labels of that image; every slab when none do), other models by
    the image hash."""
    from medviewer.core.manifest import split_unit

    h = item.image_hash
    if item.kind != "labelmap" or int(dims or 3) != 2:
        return [split_unit(h)]
    zs, nz = labelled_slices(store, h)
    if not zs:
        zs = list(range(max(nz, 1)))
    return sorted({split_unit(h, z) for z in zs})


def mark_validation(store, item, dims: Optional[int]) -> tuple:
    """Freeze the case's units as validation for the predicting model: (model, {unit: split})."""
    model = str(item.model_ref).split(":")[0]
    out = {}
    for unit in validation_units(store, item, dims):
        out[unit] = store.mark_validation(model, unit)
    return model, out
