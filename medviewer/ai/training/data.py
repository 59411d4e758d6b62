"""Manifest entries -> tensors, preprocessed exactly as inference does (``ai.preprocess``).

Images are the store's snapshots (NIfTI, MedViewer (z, y, x) order = NIfTI (x, y, z)); label
files the store's label arrays. Segmentation (2D models): every listed axial slice becomes one
sample on the model grid (:func:`preprocess.plan_resample` on the whole volume, then
:func:`preprocess.to_model_tensor` for the slice; labels resampled nearest). For evaluation the
slices stay on the original grid (:class:`SegEvalCase`). Classification: the entry's slice
through :func:`preprocess.prepare_image_2d` (MONOCHROME1 inverted and windowed through the
series' own window as recorded in image_meta, as the app and ``predict`` classify a slice).
A label name of the manifest maps to the model's label index; file values not listed and
names the model lacks are background.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from medviewer.ai.preprocess import (ResampleInfo, plan_resample, prepare_image_2d,
                                     to_model_tensor)
from medviewer.core.orientation import AxisFlips

__all__ = ["DataError", "read_nifti_zyx", "label_lut", "SegEvalCase", "seg_train_items",
           "seg_eval_cases", "cls_arrays", "check_manifest_fits", "unit_classes"]


class DataError(ValueError):
    """A manifest that does not fit the model or whose files cannot be used (bad input)."""


def read_nifti_zyx(path: Path, lps: bool = False) -> tuple[np.ndarray, tuple]:
    """(array (z, y, x) as stored — (z, y, x, 3) for a colour snapshot, e.g. an ultrasound
    frame or an RGB PNG —, spacing_zyx in mm) of a store NIfTI file. ``lps``: an axial
    series flipped into LPS order, as segmentation models see volumes
    (:class:`~medviewer.core.orientation.AxisFlips`)."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj)
    except Exception as exc:  # unreadable file: a bad manifest, not a crash
        raise DataError(f"cannot read {Path(path).name}: {exc}") from None
    if data.ndim == 2:
        data = data[:, :, None]
    colour = data.ndim == 4 and data.shape[-1] in (3, 4)
    if data.ndim != 3 and not colour:
        raise DataError(f"{Path(path).name}: expected a 3D image, got shape {data.shape}")
    aff = np.asarray(img.affine, dtype=float)
    sx, sy, sz = (float(np.linalg.norm(aff[:3, i])) or 1.0 for i in range(3))
    arr = data.transpose(2, 1, 0, 3) if colour else data.T
    if lps:
        arr = AxisFlips.of_affine_ras(aff, arr.shape[:3]).view(arr)
    return np.ascontiguousarray(arr), (sz, sy, sx)


def _flips(manifest, entry) -> AxisFlips:
    """The flips :func:`read_nifti_zyx` applied to an entry's image with ``lps=True``."""
    import nibabel as nib

    img = nib.load(str(manifest.resolve(entry.image)))
    return AxisFlips.of_affine_ras(img.affine, tuple(img.shape[:3])[::-1])


def label_lut(label_values: dict, labels: Sequence[str], max_value: int) -> np.ndarray:
    """file value -> model label index (unlisted values and unknown names -> 0)."""
    lut = np.zeros(max(int(max_value), 0) + 1, np.int64)
    for name, value in (label_values or {}).items():
        if name in labels and name != labels[0] and 0 <= int(value) <= max_value:
            lut[int(value)] = labels.index(name)
    return lut


def check_manifest_fits(manifest, card) -> None:
    """DataError unless ``manifest`` trains ``card``'s model (name, task, labels, dims)."""
    if manifest.model != card.name:
        raise DataError(f"the manifest is for model {manifest.model!r}, not {card.name!r}")
    if manifest.task != card.task:
        raise DataError(f"the manifest is a {manifest.task} manifest but {card.ref} does "
                        f"{card.task}")
    unknown = [lab for lab in manifest.labels if lab not in card.labels]
    if unknown:
        raise DataError(f"manifest labels {unknown} are not labels of {card.ref}")
    if card.task == "segmentation" and int(card.input.get("dims", 2)) != 2:
        raise DataError(f"{card.ref} is a 3D segmentation model; fine-tuning supports 2D "
                        f"segmentation and classification models")


def _volume(manifest, entry, cache: dict, lps: bool = False) -> tuple[np.ndarray, tuple]:
    key = (entry.image, lps)
    if key not in cache:
        cache[key] = read_nifti_zyx(manifest.resolve(entry.image), lps)
    return cache[key]


def _labels(manifest, entry, card, shape) -> np.ndarray:
    target = entry.target or {}
    if "labels" not in target:
        raise DataError(f"entry {entry.record_id}: segmentation target without 'labels'")
    raw, _ = read_nifti_zyx(manifest.resolve(target["labels"]), lps=True)
    if tuple(raw.shape) != tuple(shape):
        raise DataError(f"entry {entry.record_id}: label array {raw.shape} does not match "
                        f"its image {tuple(shape)}")
    raw = raw.astype(np.int64, copy=False)
    lut = label_lut(target.get("label_values", {}), list(card.labels), int(raw.max(initial=0)))
    return lut[np.clip(raw, 0, len(lut) - 1)].astype(np.uint8)


def _slices(manifest, entry, nz: int) -> list[int]:
    """The entry's slices, as indices of its image read with ``lps=True``."""
    zs = sorted({int(z) for z in (entry.target or {}).get("slices", [])})
    bad = [z for z in zs if not 0 <= z < nz]
    if bad:
        raise DataError(f"entry {entry.record_id}: slices {bad} are outside the image (0..{nz - 1})")
    flips = _flips(manifest, entry)
    return sorted(flips.z(z, nz) for z in zs)


def _labels_to_grid(lab2d: np.ndarray, size: tuple):
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(lab2d, dtype=np.float32))[None, None]
    if tuple(t.shape[-2:]) != tuple(size):
        t = F.interpolate(t, size=tuple(size), mode="nearest-exact")
    return t[0].round().to(torch.int64)  # (1, y', x')


def seg_train_items(manifest, entries, card, check: Callable[[], None] = lambda: None,
                    cache: Optional[dict] = None) -> list[dict]:
    """One ``{"image": (C, y', x') float32, "label": (1, y', x') int64}`` per listed slice."""
    cache = {} if cache is None else cache
    items = []
    for entry in entries:
        check()
        vol, spacing = _volume(manifest, entry, cache, lps=True)
        labels = _labels(manifest, entry, card, vol.shape[:3])
        info = plan_resample(vol, spacing, card)
        for z in _slices(manifest, entry, vol.shape[0]):
            img = to_model_tensor(vol, info, (z, z + 1))[:, 0]  # (C, y', x')
            items.append({"image": img.numpy(), "label": _labels_to_grid(
                labels[z], info.model_shape[1:]).numpy()})
    return items


@dataclass
class SegEvalCase:
    """The validation slices of one entry: model input, reference labels, how to map back."""

    entry_id: str
    inputs: object  # torch (k, C, y', x') float32 on the model grid
    reference: np.ndarray  # (k, y, x) uint8 model label indices on the original grid
    info: ResampleInfo
    unit: str = ""  # the manifest entry's split unit


def seg_eval_cases(manifest, entries, card, check: Callable[[], None] = lambda: None,
                   cache: Optional[dict] = None) -> list[SegEvalCase]:
    import torch

    cache = {} if cache is None else cache
    out = []
    for entry in entries:
        check()
        vol, spacing = _volume(manifest, entry, cache, lps=True)
        zs = _slices(manifest, entry, vol.shape[0])
        if not zs:
            continue
        labels = _labels(manifest, entry, card, vol.shape[:3])
        info = plan_resample(vol, spacing, card)
        x = torch.cat([to_model_tensor(vol, info, (z, z + 1)) for z in zs], dim=1)
        out.append(SegEvalCase(entry.record_id, x.transpose(0, 1).contiguous(),
                               np.ascontiguousarray(labels[zs]), info, entry.unit))
    return out


def cls_arrays(manifest, entries, card, check: Callable[[], None] = lambda: None,
               cache: Optional[dict] = None) -> tuple[np.ndarray, np.ndarray]:
    """(inputs (N, C, h, w) float32, class indices (N,) int64) for classification entries."""
    cache = {} if cache is None else cache
    xs, ys = [], []
    for entry in entries:
        check()
        target = entry.target or {}
        cls = target.get("class")
        if cls not in card.labels:
            raise DataError(f"entry {entry.record_id}: class {cls!r} is not a label of {card.ref}")
        vol, _ = _volume(manifest, entry, cache)
        z = int(target.get("slice", 0) or 0)
        if not 0 <= z < vol.shape[0]:
            raise DataError(f"entry {entry.record_id}: slice {z} is outside the image")
        meta = entry.image_meta or {}
        invert = bool(meta.get("invert", False))
        window = meta.get("window")  # the series' own window, as inference windows it
        window = tuple(float(v) for v in window) if window else None
        xs.append(prepare_image_2d(vol[z], card, invert=invert, window=window))
        ys.append(card.labels.index(cls))
    if not xs:
        spec = card.input
        return (np.zeros((0, spec["channels"], *spec["size"]), np.float32),
                np.zeros(0, np.int64))
    return np.stack(xs).astype(np.float32), np.asarray(ys, np.int64)


def unit_classes(manifest, entries, card) -> dict:
    """unit -> set of the model's class names in each entry's target, read from the label
    files (segmentation: foreground labels in the listed slices) or the target class."""
    out: dict = {}
    if card.task != "segmentation":
        for e in entries:
            out.setdefault(e.unit, set()).add(str((e.target or {}).get("class")))
        return out
    arrays: dict = {}
    for e in entries:
        rel = (e.target or {}).get("labels")
        if rel not in arrays:
            arrays[rel] = read_nifti_zyx(manifest.resolve(rel), lps=True)[0]
        raw = arrays[rel]
        zs = _slices(manifest, e, raw.shape[0])
        values = set(np.unique(raw[zs]).tolist()) if zs else set()
        names = {n for n, v in (e.target.get("label_values") or {}).items()
                 if int(v) in values and n in card.labels[1:]}
        out.setdefault(e.unit, set()).update(names)
    return out
