"""Prompt records: where the Prompt tool's accepted results go (Qt-free, shared by the app and
the CLI). Each accepted result is stored in the label store with its prompts (see
:mod:`medviewer.storage.store_prompts`); the fine-tune of the promptable model trains on them
(:mod:`medviewer.services.prompt_finetune`).

The UI calls, on Accept (off the GUI thread, e.g. through the job bridge: the first record of
an image also writes its snapshot)::

    store_prompt_record(workspace, image_hash, record, mask, volume=volume)

``record`` is the Prompt tool's dict ``{engine, plane, slice, prompts: {points: [[z,y,x,
positive]...], boxes: [[z,y0,x0,y1,x1]...], scribbles: [{voxels: [[z,y,x]...], positive}]}}``
and ``mask`` the accepted mask: the 2D mask of that slice, or the whole 3D (z, y, x) mask (its
``plane``/``slice`` section is stored). Nothing about the patient is stored: the image is known
by its content hash only.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["store_prompt_record", "list_prompt_records", "count_prompt_records",
           "delete_prompt_record", "load_prompt_mask", "plane_section", "PLANES"]

PLANES = ("axial", "coronal", "sagittal")


def _store(store_or_workspace):
    """The LabelStore of a Workspace (its ``store``) or the store itself."""
    return getattr(store_or_workspace, "store", store_or_workspace)


def plane_section(array: np.ndarray, plane: str, index: int) -> np.ndarray:
    """Slice ``index`` of a (z, y, x) array in ``plane`` (axial: [k], coronal: [:, k],
    sagittal: [:, :, k])."""
    a = np.asarray(array)
    axis = PLANES.index(plane)
    if not 0 <= int(index) < a.shape[axis]:
        raise ValueError(f"{plane} slice {index} is outside the volume (0..{a.shape[axis] - 1})")
    return a[int(index)] if axis == 0 else a[:, int(index)] if axis == 1 else a[:, :, int(index)]


def store_prompt_record(store_or_workspace, image_hash: Optional[str], record: dict, mask, *,
                        volume=None, label_record_id: Optional[str] = None,
                        source_name: str = "") -> str:
    """Store one accepted prompt result; returns the new prompt record's id.

    ``image_hash``: the store's image identity (:func:`medviewer.core.hashing.image_hash` of the
    volume; None: computed from ``volume``). ``volume``: the image (a core Volume); when given,
    its snapshot is kept in the workspace (once per image) so fine-tuning can read the slice
    later. ``label_record_id``: the label-map record the result was saved into, if any.
    ValueError (StoreError) on a malformed record or a mask that does not fit the image."""
    if not isinstance(record, dict):
        raise ValueError("record must be the Prompt tool's dict")
    missing = [k for k in ("engine", "plane", "slice", "prompts") if k not in record]
    if missing:
        raise ValueError(f"prompt record without {', '.join(missing)}")
    plane, z = str(record["plane"]), int(record["slice"])
    if plane not in PLANES:
        raise ValueError(f"plane must be one of {PLANES}, got {plane!r}")
    store = _store(store_or_workspace)
    if image_hash is None:
        if volume is None:
            raise ValueError("give the image hash or the volume")
        from medviewer.core.hashing import image_hash as compute

        image_hash = compute(volume)
    m = np.asarray(mask)
    shape3 = None
    if volume is not None:
        shape3 = tuple(np.asarray(volume.array).shape[:3])
    else:
        info = store.image_info(image_hash)
        if info is not None:
            shape3 = tuple(info["shape"][:3])
    if m.ndim == 3:
        if shape3 is not None and m.shape != shape3:
            raise ValueError(f"the 3D mask {m.shape} does not match the image {shape3}")
        m = plane_section(m, plane, z)
    elif m.ndim == 2 and shape3 is not None:
        want = plane_section(np.empty(shape3, dtype=np.uint8), plane, z).shape
        if m.shape != want:
            raise ValueError(f"the {plane} mask {m.shape} does not match slice {z} of the "
                             f"image {want}")
    if volume is not None:
        store.add_image(volume, image_hash)
    rec = store.add_prompt_record(image_hash, str(record["engine"]), plane, z,
                                  record["prompts"], m, label_record_id=label_record_id,
                                  source_name=source_name)
    return rec.id


def list_prompt_records(store_or_workspace, image_hash: Optional[str] = None,
                        engine: Optional[str] = None) -> list:
    """PromptRecord rows (oldest first), of one image / engine when given."""
    return _store(store_or_workspace).prompt_records(image_hash, engine)


def count_prompt_records(store_or_workspace, image_hash: Optional[str] = None,
                         engine: Optional[str] = None) -> int:
    return _store(store_or_workspace).prompt_record_count(image_hash, engine)


def load_prompt_mask(store_or_workspace, record_id) -> np.ndarray:
    return _store(store_or_workspace).load_prompt_mask(record_id)


def delete_prompt_record(store_or_workspace, record_id) -> bool:
    """Remove a prompt record (False when there was none). A record already frozen in the
    validation set simply stops being evaluated; its split is kept."""
    return _store(store_or_workspace).delete_prompt_record(record_id)
