"""Fine-tuning the promptable model from prompt records (Qt-free; the Fine-tune dialog and
``medviewer finetune --model interactive-promptable`` share it).

:func:`build_prompt_training_set` turns the workspace's prompt records into a
:class:`~medviewer.core.prompt_set.PromptSet` file: each record's image slice (from the
workspace's image snapshot) and its accepted mask, with a FROZEN split. Units are slabs of 8
slices of one plane of one image (:func:`~medviewer.core.prompt_set.prompt_unit`) assigned
once per model in the store's ``splits`` table (:mod:`medviewer.storage.store_splits`): a unit
frozen for validation stays there in every later fine-tune, new units get their split once.
The trainer child (``python -m medviewer.ai.training --manifest <set> --base
interactive-promptable``) reads the file, trains, measures parent and candidate with the click
protocol on the validation records and gates on mean NoC@85 (lower is better)."""
from __future__ import annotations

from pathlib import Path
from typing import Tuple

import numpy as np

from medviewer.core.prompt_set import PromptSet, prompt_unit

__all__ = ["build_prompt_training_set", "prompt_validation_check", "MIN_TRAIN_RECORDS",
           "MIN_VAL_RECORDS", "MIN_MASK_VOXELS", "PROMPT_SETS_DIR"]

MIN_TRAIN_RECORDS = 1
MIN_VAL_RECORDS = 1
MIN_MASK_VOXELS = 16  # smaller accepted masks teach nothing (and the sampler skips them)
PROMPT_SETS_DIR = "training"


def _plane_spacing(volume, plane: str) -> tuple:
    """The plane's (row, column) spacing as the prompt engines use it (a radiograph without
    pixel spacing: the estimate of :func:`interactive.engine_spacing`)."""
    from medviewer.services.interactive import engine_spacing

    sz, sy, sx = engine_spacing(volume).zyx
    return {"axial": (sy, sx), "coronal": (sz, sx), "sagittal": (sz, sy)}[plane]


def build_prompt_training_set(store, card, val_fraction: float = 0.2,
                              out_dir=None) -> Tuple[PromptSet, list]:
    """(PromptSet saved into ``<workspace>/training/<model>/``, skipped reasons without
    patient data) of every prompt record in ``store`` for ``card``'s model."""
    from medviewer.services.prompt_records import plane_section
    from medviewer.storage.store import utc_now_iso

    name = card.name
    reasons: list = []
    pending = []  # (unit, record dict, image slice, mask)
    volumes: dict = {}
    for rec in store.prompt_records():
        what = f"prompt record {rec.id[:8]}"
        h = rec.image_hash
        if h not in volumes:
            volumes[h] = store.load_image(h) if store.has_image(h) else None
        vol = volumes[h]
        if vol is None:
            reasons.append(f"{what}: image snapshot missing (store the record with its volume)")
            continue
        arr = np.asarray(vol.array)
        if arr.ndim != 3:
            reasons.append(f"{what}: a colour image (the promptable model reads grey images)")
            continue
        try:
            image = plane_section(arr, rec.plane, rec.slice).astype(np.float32)
        except ValueError as exc:
            reasons.append(f"{what}: {exc}")
            continue
        mask = store.load_prompt_mask(rec.id)
        if mask.shape != image.shape:
            reasons.append(f"{what}: mask {mask.shape} does not fit the slice {image.shape}")
            continue
        if int(mask.sum()) < MIN_MASK_VOXELS:
            reasons.append(f"{what}: accepted mask has {int(mask.sum())} voxels (fewer than "
                           f"{MIN_MASK_VOXELS}: too small to learn from)")
            continue
        entry = {"id": rec.id, "image_hash": h, "engine": rec.engine, "plane": rec.plane,
                 "slice": rec.slice, "spacing": list(_plane_spacing(vol, rec.plane)),
                 "n_prompts": rec.n_prompts, "modality": str(vol.modality or "")}
        pending.append((prompt_unit(h, rec.plane, rec.slice), entry, image, mask))
    split = store.assign_splits(name, [u for u, _, _, _ in pending], val_fraction)
    records, arrays = [], {}
    for unit, entry, image, mask in pending:
        records.append(dict(entry, unit=unit, split=split[unit]))
        arrays[f"image_{entry['id']}"] = image
        arrays[f"mask_{entry['id']}"] = mask
    out = Path(out_dir) if out_dir is not None else Path(store.root) / PROMPT_SETS_DIR / name
    pset = PromptSet(name, records, arrays, created_at=utc_now_iso())
    pset.save(out)
    return pset, reasons


def prompt_validation_check(pset: PromptSet, min_val: int = MIN_VAL_RECORDS,
                            min_train: int = MIN_TRAIN_RECORDS) -> dict:
    """``{"ok", "message", "missing", "units", "val_records", "train_records"}``: can the set
    train (at least ``min_train`` training records) and be judged (at least ``min_val`` frozen
    validation records)? The message says what to do when not."""
    n_val, n_train = len(pset.val_entries()), len(pset.train_entries())
    units = len({r["unit"] for r in pset.val_entries()})
    missing = []
    if n_val < min_val:
        missing.append(f"{n_val} frozen validation record(s), at least {min_val} needed to "
                       f"measure clicks before and after")
    if n_train < min_train:
        missing.append(f"{n_train} training record(s), at least {min_train} needed")
    if not missing:
        msg = f"{n_train} training and {n_val} frozen validation prompt record(s)"
    else:
        total = n_val + n_train
        msg = (f"too few prompt records to fine-tune ({total} usable: {n_train} training, "
               f"{n_val} frozen validation): " + "; ".join(missing) + ". Accept more "
               "Prompt-tool results, on slices at least 8 apart or on other images (nearby "
               "slices share a split unit).")
    return {"ok": not missing, "message": msg, "missing": missing, "units": units,
            "val_records": n_val, "train_records": n_train}
