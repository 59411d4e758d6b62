"""Real-data scripted corrections for the fine-tuning proof tests (the reference plays the reader).

Only what the reader corrects or reviews becomes ground truth (training and validation alike),
and the frozen validation set must be big enough to judge the model (5 units, every class in
2 of them: :mod:`medviewer.core.val_check`), so the reader covers it on purpose.

``seg_case``: the starter CT model ct-abdomen-organs:1.0.0 segments TotalSegmentator's
example_ct.nii.gz (112 slices, 3 mm). The model was trained on example_ct_sm, which is
slices z 82..111 of that volume. The reader corrects ``n_slices`` slices of z 0..81 (never
seen in training): the organ-bearing slices first (z 64..81, where the model is weakest), then
slices of the pelvis where it predicts organs that are not there; and reviews every other slice
of z 82..111 (``ABOVE_Z``: the only slices with lung, and more spleen and stomach). A
'corrected' child replaces those slices with the reference labels
(example_seg_fast_force_split, mapped to the model's labels with the card's
training.label_map) and lists them as ``reviewed_slices``. The split of the slabs is frozen
by hash; then the reader marks as validation the slabs the minimum still needs (a slab that
adds missing classes, the one with the fewest classes first; organ-free slabs for the count).

``cls_cases``: a shifted PneumoniaMNIST domain (TRAIN and VAL splits only, never TEST):
28 -> 14 -> 28 resampling (lower resolution), gamma 0.45 and contrast halved. The starter
classifier pneumonia-cxr:1.0.0 predicts each image (real inference); a reader accepts a right
prediction ('final') or changes a wrong one ('corrected'); then marks as validation the cases
the minimum still needs.

Both store the image snapshots (store.add_image) and return what the proof tests need.
"""
from __future__ import annotations

import math
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from medviewer.core.geometry import Geometry
from medviewer.core.hashing import image_hash
from medviewer.core.manifest import split_unit
from medviewer.core.val_check import (DEFAULT_MIN_PER_CLASS, DEFAULT_MIN_UNITS,
                                      check_validation_set)
from medviewer.core.volume import Volume
from medviewer.storage.store import Effort, LabelStore, Source

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".." / "shared" / "data"
REF = DATA / "totalseg" / "tests" / "reference_files"
SEG_CT = REF / "example_ct.nii.gz"
SEG_REF = REF / "example_seg_fast_force_split.nii.gz"
PNEUMONIA = DATA / "medmnist_pneumonia" / "pneumoniamnist_reconstructed_full.npz"
SEG_MODEL, SEG_VERSION = "ct-abdomen-organs", "1.0.0"
CLS_MODEL, CLS_VERSION = "pneumonia-cxr", "1.0.0"
TRAINED_Z = (82, 112)  # example_ct_sm == example_ct[82:112]
ABOVE_Z = list(range(82, 112, 2))  # reviewed in the starter's training range (lung, spleen)
READER = Source("person", "scripted-reader")


def _card_and_model(ref: str):
    from medviewer.ai.registry import ModelRegistry, load_model

    card = ModelRegistry().get(ref)
    return card, load_model(card)


def _drive(gen):
    from medviewer.jobs import drive

    return drive(gen)


def label_table(names) -> dict:
    """The label table the app stores with a prediction (value = index in the card)."""
    return {"labels": [{"value": i, "name": str(n)} for i, n in enumerate(names) if i]}


def reference_labels(card) -> np.ndarray:
    """example_seg_fast_force_split as (z, y, x) uint8 in the model's label values."""
    raw = np.ascontiguousarray(np.asarray(nib.load(str(SEG_REF)).dataobj).T)
    out = np.zeros(raw.shape, np.uint8)
    for value, name in enumerate(card.labels):
        for src in card.training["label_map"].get(name, []) if value else []:
            out[raw == src] = value
    return out


def _pick_slices(ref: np.ndarray, n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    outside = np.arange(0, TRAINED_Z[0])
    organ = [int(z) for z in outside if ref[z].any()]
    empty = [int(z) for z in outside if not ref[z].any()]
    if n <= len(organ):
        return sorted(int(z) for z in rng.choice(organ, size=n, replace=False))
    rest = rng.choice(empty, size=min(n - len(organ), len(empty)), replace=False)
    return sorted(organ + [int(z) for z in rest])


def ensure_val_minimum(store, model: str, unit_classes: dict, classes: list,
                       min_units: int = DEFAULT_MIN_UNITS,
                       min_per_class: int = DEFAULT_MIN_PER_CLASS) -> dict:
    """Freeze the split of ``unit_classes``' units (by hash), then mark as validation, one at a
    time, the unit that adds most missing classes (fewest classes of its own first, then
    name; organ-free units when only the count is short) until the check passes or no
    training unit is left. Returns unit -> split."""
    split = store.assign_splits(model, list(unit_classes))
    while True:
        val = {u: unit_classes[u] for u, s in split.items() if s == "val"}
        check = check_validation_set(val, classes, min_units, min_per_class)
        train = [u for u, s in split.items() if s == "train"]
        if check["ok"] or not train:
            return split
        short = {c for c, n in check["per_class"].items() if n < min_per_class}
        pick = min(train, key=lambda u: (-len(short & set(unit_classes[u])),
                                         len(unit_classes[u]), u))
        store.mark_validation(model, pick)
        split[pick] = "val"


def seg_case(store: LabelStore, n_slices: int = 24, seed: int = 0,
             above: tuple = tuple(ABOVE_Z)) -> dict:
    """Predict example_ct with the starter CT model, store it, then store a 'corrected' child
    with ``n_slices`` slices of z < 82 and the slices ``above`` replaced by the reference
    labels (all of them listed as reviewed). Returns a description."""
    from medviewer.ai import uncertainty
    from medviewer.ai.inference import segment

    from medviewer.io.volume_files import read_volume_file

    vol = read_volume_file(SEG_CT)  # as the app opens it, so the image hash matches
    h = store.add_image(vol, image_hash(vol), [str(SEG_CT.resolve())])
    card, model = _card_and_model(f"{SEG_MODEL}:{SEG_VERSION}")
    sx, sy, sz = vol.geometry.spacing
    res = _drive(segment(model, card, vol.array, (sz, sy, sx), "cpu", want_entropy=True))
    pred = np.ascontiguousarray(res.labels, dtype=np.uint8)
    score = float(uncertainty.case_score(np.asarray(res.entropy, np.float32), pred))
    affine = vol.geometry.affine_ras()
    table = label_table(card.labels)
    predicted = store.add_labelmap(
        h, pred, affine, table, "predicted", Source("model", SEG_MODEL, SEG_VERSION),
        preprocessing={"model": card.ref, "input": dict(card.input), "device": "cpu",
                       "slice": None, "spacing_zyx": [sz, sy, sx]},
        extra={"case_uncertainty": score, "model": card.ref})
    ref = reference_labels(card)
    slices = sorted(set(_pick_slices(ref, int(n_slices), seed)) | {int(z) for z in above})
    corrected_labels = pred.copy()
    corrected_labels[slices] = ref[slices]
    changed = int(np.count_nonzero(corrected_labels != pred))
    rng = np.random.default_rng(seed)
    effort = Effort(float(sum(rng.uniform(20, 70) for _ in slices)),
                    int(sum(rng.integers(2, 9) for _ in slices)), changed)
    corrected = store.add_labelmap(h, corrected_labels, affine, table, "corrected", READER,
                                   parent_id=predicted.id, effort=effort,
                                   extra={"reviewed_slices": slices})
    units: dict = {}
    for z in slices:
        names = {card.labels[v] for v in np.unique(ref[z]) if v}
        units.setdefault(split_unit(h, z), set()).update(names)
    by_unit = ensure_val_minimum(store, SEG_MODEL, units, list(card.labels[1:]))
    split = {z: by_unit[split_unit(h, z)] for z in slices}
    return {"workspace": store.root, "model": SEG_MODEL, "base": card.ref, "task": "segmentation",
            "labels": list(card.labels), "dims": 2, "image_hash": h,
            "predicted_id": predicted.id, "corrected_id": corrected.id, "slices": slices,
            "train_slices": [z for z in slices if split[z] == "train"],
            "val_slices": [z for z in slices if split[z] == "val"],
            "n_corrected": len(slices), "voxels_changed": changed, "effort": effort,
            "case_uncertainty": score, "source_path": SEG_CT.resolve()}


def shift_domain(image: np.ndarray) -> np.ndarray:
    """The shifted domain: 28 -> 14 -> 28 (lower resolution), gamma 0.45, contrast halved."""
    x = np.asarray(image, dtype=np.float64) / 255.0
    x = ndimage.zoom(ndimage.zoom(x, 0.5, order=1), 2.0, order=1)
    x = np.clip(x, 0.0, 1.0) ** 0.45
    x = 0.25 + 0.5 * x
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def pneumonia_pool(seed: int = 0) -> tuple:
    """TRAIN + VAL images and labels of PneumoniaMNIST (the TEST split is never used)."""
    with np.load(PNEUMONIA) as d:
        images = np.concatenate([d["train_images"], d["val_images"]])
        labels = np.concatenate([d["train_labels"][:, 0], d["val_labels"][:, 0]]).astype(int)
    return images, labels


def _cls_volume(img: np.ndarray, k: int) -> Volume:
    geo = Geometry(shape=(1, 28, 28), spacing=(1.0, 1.0, 1.0))
    return Volume(np.ascontiguousarray(img[None]), geo, modality="DX",
                  description=f"shifted PneumoniaMNIST {k}", meta={"orientation_known": False})


def _entropy(probs: dict) -> float:
    p = np.clip(np.asarray(list(probs.values()), dtype=np.float64), 1e-12, 1.0)
    return float(-(p * np.log(p)).sum() / math.log(len(p)))


def cls_cases(store: LabelStore, n: int = 60, seed: int = 0, val_minimum: bool = True) -> dict:
    """``n`` shifted images (balanced classes), predicted by the starter classifier, each
    accepted ('final') or changed to the true class ('corrected') by the scripted reader, who
    then marks validation cases up to the minimum (``val_minimum``; False: the split by hash
    alone)."""
    from medviewer.ai.inference import classify

    card, model = _card_and_model(f"{CLS_MODEL}:{CLS_VERSION}")
    names = list(card.labels)
    images, truth = pneumonia_pool()
    rng = np.random.default_rng(seed)
    per = [rng.permutation(np.flatnonzero(truth == c)) for c in (0, 1)]
    order = [int(per[i % 2][i // 2]) for i in range(int(n))]
    src = Source("model", CLS_MODEL, CLS_VERSION)
    cases, right = [], 0
    for k in order:
        vol = _cls_volume(shift_domain(images[k]), k)
        h = store.add_image(vol, image_hash(vol), [f"pneumoniamnist:{k}"])
        res = _drive(classify(model, card, vol.array[0], "cpu"))
        probs = {str(a): float(b) for a, b in res.probs.items()}
        unc = _entropy(probs)
        payload = {"classes": names, "series": {res.label: True}, "slices": {},
                   "prediction": {"model": card.ref, "label": res.label, "probabilities": probs,
                                  "slice": 0, "case_uncertainty": unc}}
        predicted = store.add_case_labels(h, payload, "predicted", src, preprocessing={
            "model": card.ref, "input": dict(card.input), "device": "cpu", "slice": 0,
            "invert": False})
        true = names[int(truth[k])]
        seconds = float(rng.uniform(2, 6))
        if true == res.label:
            right += 1
            tag, states, decision = "final", {true: True}, "accepted"
        else:
            tag, states = "corrected", {true: True, res.label: False}
            decision, seconds = f"changed to {true}", seconds + float(rng.uniform(2, 8))
        review = {"classes": names, "series": states, "slices": {},
                  "review": {"decision": decision, "prediction": res.label, "model": card.ref}}
        rec = store.add_case_labels(h, review, tag, READER, parent_id=predicted.id,
                                    effort=Effort(seconds, 1, 0))
        cases.append({"image_hash": h, "index": k, "true": true, "predicted": res.label,
                      "predicted_id": predicted.id, "review_id": rec.id, "tag": tag,
                      "uncertainty": unc})
    units = {c["image_hash"]: {c["true"]} for c in cases}
    split = (ensure_val_minimum(store, CLS_MODEL, units, names) if val_minimum
             else store.assign_splits(CLS_MODEL, list(units)))
    for c in cases:
        c["split"] = split[c["image_hash"]]
    val = [c for c in cases if c["split"] == "val"]
    return {"workspace": store.root, "model": CLS_MODEL, "base": card.ref,
            "task": "classification", "labels": names, "dims": 2, "cases": cases,
            "n": len(cases), "n_corrected": len(cases) - right,
            "base_accuracy": right / max(1, len(cases)),
            "base_val_accuracy": (sum(c["true"] == c["predicted"] for c in val) / len(val)
                                  if val else float("nan")),
            "n_val": len(val)}


def manifest_for(store: LabelStore, case: dict, val_fraction: float = 0.2):
    """build_manifest for a case dict from seg_case / cls_cases -> (Manifest, reasons)."""
    from medviewer.storage.manifest_build import build_manifest

    return build_manifest(store, case["model"], case["task"], case["labels"], case["dims"],
                          val_fraction=val_fraction)
