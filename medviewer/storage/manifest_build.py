"""Build a training manifest for one model from what a person saw and confirmed in the store.

Only labels a person confirmed are ground truth, for training and for the frozen validation set
alike: a model's untouched output never judges that model. Per image the newest 'corrected' /
'final' record *made by a person* of the model's kind (label map for segmentation, case labels
for classification) is used when the nearest model record in its correction chain is a
'predicted' record of a model with that name (any version), or when no model record is in the
chain and it is a person's 'final' record whose labels fit the model.

Segmentation, record derived from a prediction (tag 'corrected' or 'final' alike): only the
slices a person touched — where a person's record differs from its parent, plus the slices
listed in ``payload["extra"]["reviewed_slices"]`` (reviewed and found right) — train or
validate; unchanged predicted slices are left out of both. A person's own 'final' label map
(no model in its chain) counts on every slice. Each segmentation target lists the ``classes``
present in its slices (for the validation-size check, :mod:`medviewer.core.val_check`).
Classification: the person's class decision (a change or an acceptance) is the target.
Train/val membership comes from the store's frozen splits, per unit (see
:func:`medviewer.core.manifest.split_unit`). The manifest is written to
``<workspace>/training/<model>/manifest-<sha12>.json`` with its root pointing at the workspace.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from medviewer.core.manifest import (Manifest, ManifestEntry, sha256_file, split_unit)
from medviewer.storage.store import LabelStore, Record, utc_now_iso
from medviewer.storage.store_splits import model_name

TRAINING_DIR = "training"
USED_TAGS = ("corrected", "final")


def _short(record_id: str) -> str:
    return record_id[:8]


def _table_values(table) -> dict:
    """name -> value of a stored label table ({"labels": [...]}, a list, or {value: name})."""
    if isinstance(table, dict) and "labels" in table:
        table = table["labels"]
    out: dict = {}
    if isinstance(table, dict):
        items = [(int(v), str(n)) for v, n in table.items()]
    else:
        items = [(int(t["value"]), str(t["name"])) for t in table or ()]
    for value, name in items:
        if value != 0:
            out.setdefault(name, value)
    return out


def _label_values(record: Record, labels: list) -> dict:
    by_name = _table_values(record.payload.get("table", {}))
    lower = {n.lower(): v for n, v in by_name.items()}
    out = {}
    for name in labels[1:]:  # index 0 is background
        if name in by_name:
            out[name] = by_name[name]
        elif name.lower() in lower:
            out[name] = lower[name.lower()]
    return out


def _touched_slices(store: LabelStore, chain: list) -> list:
    """Slices the person records of a chain (newest first, ending at the model's prediction)
    touched: each one's reviewed_slices plus the slices where it differs from its parent."""
    touched: set = set()
    for rec, parent in zip(chain[:-1], chain[1:]):
        if rec.source.kind != "person":
            continue
        reviewed = (rec.payload.get("extra") or {}).get("reviewed_slices")
        touched.update(int(z) for z in reviewed or ())
        a, b = store.load_labels(rec), store.load_labels(parent)
        if a.shape != b.shape:
            touched.update(range(a.shape[0]))
            continue
        diff = np.any((a != b).reshape(a.shape[0], -1), axis=1)
        touched.update(int(z) for z in np.flatnonzero(diff))
    return sorted(touched)


def _classes_in(labels: np.ndarray, values: dict, slices: list) -> list:
    """Names of ``values`` (name -> file value) present in ``labels[slices]``."""
    present = set(np.unique(labels[sorted(set(slices))]).tolist()) if slices else set()
    return sorted(name for name, v in values.items() if int(v) in present)


def _case_targets(record: Record, labels: list) -> tuple[list, Optional[str]]:
    """[(class, slice)] from a case payload, or ([], reason)."""
    payload = record.payload
    rows = []
    if payload.get("series"):
        rows.append((0, payload["series"]))
    for z, states in sorted((payload.get("slices") or {}).items(), key=lambda kv: int(kv[0])):
        if states:
            rows.append((int(z), states))
    if not rows:
        return [], "no class set"
    out = []
    for z, states in rows:
        positive = [n for n, v in states.items() if v is True]
        known = [n for n in positive if n in labels]
        if len(known) == 1:
            out.append((known[0], z))
            continue
        if len(known) > 1:
            return [], f"several of the model's classes set ({', '.join(known)})"
        if positive:
            return [], f"class {positive[0]!r} is not one of the model's labels"
        rejected = [n for n, v in states.items() if v is False and n in labels]
        if len(labels) == 2 and len(rejected) == 1:
            out.append(([n for n in labels if n != rejected[0]][0], z))
            continue
        return [], "a rejection without a replacement class (model has more than two classes)"
    return out, None


def _to_model_record(chain: list) -> list:
    """The chain (newest first) cut after its nearest model record (all of it if none)."""
    for i, rec in enumerate(chain):
        if rec.source.kind == "model":
            return chain[:i + 1]
    return chain


def _pick_records(store: LabelStore, name: str, kind: str, labels: list) -> dict:
    """image_hash -> (record, chain newest-first down to the model's prediction or None,
    predicted_by) of the newest usable record a person made."""
    chosen: dict = {}
    for rec in reversed(store.records(kind=kind)):
        if rec.tag not in USED_TAGS or rec.image_hash in chosen or rec.source.kind != "person":
            continue
        chain = _to_model_record(store.lineage(rec.id))
        model_rec = chain[-1] if chain[-1].source.kind == "model" else None
        if model_rec is not None:
            if model_rec.source.name != name or model_rec.tag != "predicted":
                continue  # another model's output: not this model's training data
            chosen[rec.image_hash] = (rec, chain,
                                      f"{model_rec.source.name}:{model_rec.source.version}")
        elif rec.tag == "final":
            if kind == "labelmap" and not _label_values(rec, labels):
                continue
            if kind == "case" and not _case_targets(rec, labels)[0]:
                continue
            chosen[rec.image_hash] = (rec, None, None)
    return chosen


class _Hashes:
    def __init__(self, root: Path):
        self.root, self.cache = root, {}

    def __call__(self, rel: str) -> str:
        if rel not in self.cache:
            self.cache[rel] = sha256_file(self.root / rel)
        return self.cache[rel]


def build_manifest(store: LabelStore, model: str, task: str, labels: list, dims: int,
                   out_dir=None, val_fraction: float = 0.2) -> tuple[Manifest, list]:
    """Manifest of the model's corrected/final records (+ reasons for skipped records)."""
    if task not in ("segmentation", "classification"):
        raise ValueError(f"task must be segmentation or classification, got {task!r}")
    name = model_name(model)
    labels = [str(x) for x in labels]
    kind = "labelmap" if task == "segmentation" else "case"
    reasons: list = []
    sha = _Hashes(store.root)
    pending = []  # (unit, fields) before the split is known
    for h, (rec, chain, predicted_by) in sorted(_pick_records(store, name, kind,
                                                              labels).items()):
        info = store.image_info(h)
        what = f"{rec.tag} record {_short(rec.id)}"
        if info is None or store.image_file(h) is None:
            reasons.append(f"{what}: image snapshot missing (open the image once to add it)")
            continue
        common = dict(image=info["file"], image_sha256=sha(info["file"]), image_hash=h,
                      image_meta={k: info.get(k) for k in ("modality", "invert", "shape",
                                                           "dtype", "window") if k in info},
                      tag=rec.tag, record_id=rec.id, parent_record_id=rec.parent_id,
                      predicted_by=predicted_by)
        if task == "classification":
            targets, why = _case_targets(rec, labels)
            if why:
                reasons.append(f"{what}: {why}")
            for cls, z in targets:
                pending.append((split_unit(h), common, {"class": cls, "slice": int(z)}))
            continue
        values = _label_values(rec, labels)
        if not values:
            reasons.append(f"{what}: none of its labels is one of the model's labels")
            continue
        arr = store.load_labels(rec)
        slices = list(range(arr.shape[0])) if chain is None else [
            z for z in _touched_slices(store, chain) if 0 <= z < arr.shape[0]]
        if not slices:
            reasons.append(f"{what}: no slice differs from the model's prediction and none is "
                           f"marked reviewed (a model's own output is not ground truth)")
            continue
        target = {"labels": rec.file, "labels_sha256": sha(rec.file),
                  "label_values": values}
        groups: dict = {}
        for z in slices:
            unit = split_unit(h, z) if int(dims) == 2 else split_unit(h)
            groups.setdefault(unit, []).append(int(z))
        for unit, zs in groups.items():
            pending.append((unit, common, dict(target, slices=zs,
                                               classes=_classes_in(arr, values, zs))))
    split = store.assign_splits(name, [u for u, _, _ in pending], val_fraction)
    entries = [ManifestEntry(unit=u, split=split[u], target=t, **c) for u, c, t in pending]
    out = Path(out_dir) if out_dir is not None else store.root / TRAINING_DIR / name
    out.mkdir(parents=True, exist_ok=True)
    rel_root = Path(os.path.relpath(store.root, out.resolve())).as_posix()
    manifest = Manifest(model=name, task=task, labels=labels, entries=entries, root=rel_root,
                        created_at=utc_now_iso())
    path = manifest.save(out / f"manifest-{manifest.sha256[:12]}.json")
    return Manifest.load(path), reasons
