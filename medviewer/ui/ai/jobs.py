"""Work that runs on the AI worker thread (no Qt objects touched here): classification with
saliency, segmentation with uncertainty, and the 'predicted' records they leave in the store.

Inputs are copied or read-only arrays; results are plain dataclasses handed back to the GUI."""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np

from medviewer.core.volume import Volume

from ..annotation.saving import snapshot_image

SALIENCY_METHODS = (("grad_cam", "Grad-CAM"), ("integrated_gradients", "Integrated gradients"))
UNCERTAINTY_METHODS = (("entropy", "Entropy"), ("mc_dropout", "MC-dropout variance"),
                       ("tta", "TTA variance"))
VARIANCE_SAMPLES = 8  # MC-dropout passes
VARIANCE_PERCENTILE = 99.5  # a variance map is shown divided by this percentile of its run


def uncertainty_available(card, method: str) -> bool:
    """Whether ``card``'s model allows ``method``, from its card alone (no torch): MC-dropout
    needs Dropout layers in the network, test-time flips need a 2D model."""
    if card is None:
        return False
    if method == "entropy":
        return True
    if method == "tta":
        return int(card.input.get("dims", 2)) == 2
    if method == "mc_dropout":
        from medviewer.ai.architectures import ModelError, has_dropout

        arch = card.architecture or {}
        try:
            return bool(has_dropout(arch.get("name"), arch.get("params", {})))
        except (ModelError, KeyError, TypeError):
            return False
    return False


def _kwargs_for(fn, **candidates) -> dict:
    """The keyword arguments ``fn`` accepts (the ai functions grow options over time)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return candidates
    return {k: v for k, v in candidates.items() if k in params}


def slice_image(volume: Volume, z: int) -> np.ndarray:
    """The stored 2D image of slice ``z`` (a radiograph: its only slice), as it is stored."""
    return np.array(volume.array[int(z)], copy=True)


def spacing_zyx(volume: Volume) -> tuple:
    sx, sy, sz = volume.geometry.spacing
    return (float(sz), float(sy), float(sx))


def normalised_entropy(p: np.ndarray, axis: int = 0) -> np.ndarray:
    """Softmax entropy divided by log(C): 0 = certain, 1 = uniform."""
    p = np.clip(np.asarray(p, dtype=np.float32), 1e-8, 1.0)
    c = p.shape[axis]
    return (-(p * np.log(p)).sum(axis=axis) / np.log(max(c, 2))).astype(np.float32)


# ---------------------------------------------------------------------------- classification
@dataclass
class ClassificationRun:
    ref: str
    z: int
    probs: Dict[str, float]
    label: str
    uncertainty: float
    device: str
    record: object = None  # the 'predicted' case Record
    saliency: Optional[np.ndarray] = None  # (h, w) float32 in [0, 1] on the slice
    saliency_method: str = ""


def saliency_map(ctx, card, image: np.ndarray, invert: bool, target: int, method: str) -> np.ndarray:
    from medviewer.ai import saliency

    model = ctx.model(card)
    fn = getattr(saliency, method)
    ctx.check()
    out = fn(model, card, image, target, **_kwargs_for(fn, invert=invert, device=ctx.device(),
                                                         cancel=ctx.cancel_token))
    if inspect.isgenerator(out):
        out = ctx.drive(out, "Saliency…")
    heat = np.asarray(out, dtype=np.float32)
    if heat.shape != image.shape[:2]:
        raise ValueError(f"saliency map {heat.shape} does not match the image {image.shape[:2]}")
    return np.clip(np.nan_to_num(heat), 0.0, 1.0)


def classify_job(ctx, card, volume: Volume, z: int, store, image_hash: str,
                 saliency_method: Optional[str]) -> ClassificationRun:
    from medviewer.ai.inference import classify
    from medviewer.storage.store import Source

    image = slice_image(volume, z)
    device = ctx.device()
    ctx.progress(0, 3, f"Loading {card.ref}…")
    model = ctx.model(card)
    ctx.progress(1, 3, "Classifying…")
    gen = classify(model, card, image, device, **_kwargs_for(classify, invert=volume.invert,
                                                             cancel=ctx.cancel_token))
    res = ctx.drive(gen, "Classifying…") if inspect.isgenerator(gen) else gen
    probs = {str(k): float(v) for k, v in dict(res.probs).items()}
    label = str(res.label)
    unc = float(normalised_entropy(np.array(list(probs.values()))[:, None])[0])  # 0..1
    run = ClassificationRun(card.ref, int(z), probs, label, unc, device)
    if saliency_method:
        ctx.progress(2, 3, "Saliency…")
        run.saliency = saliency_map(ctx, card, image, volume.invert, list(card.labels).index(label),
                                    saliency_method)
        run.saliency_method = saliency_method
    ctx.check()  # cancelled: nothing is stored
    snapshot_image(store, volume, image_hash)  # issue 5: the image, for training and the queue
    payload = prediction_payload(card, volume, z, label, probs, unc)
    prep = {"model": card.ref, "input": dict(card.input), "device": device, "slice": int(z),
            "invert": bool(volume.invert)}
    run.record = store.add_case_labels(image_hash, payload, "predicted",
                                       Source("model", card.name, card.version), preprocessing=prep)
    ctx.progress(3, 3, "Done")
    return run


def prediction_payload(card, volume: Volume, z: int, label: str, probs: dict, unc: float) -> dict:
    """A CaseLabels-shaped payload (series level for a 2D image, slice level for a slice of a
    volume) plus the prediction itself."""
    payload = review_payload(card.labels, volume, z, {label: True})
    payload["prediction"] = {"model": card.ref, "label": label, "probabilities": probs,
                             "slice": int(z), "case_uncertainty": unc}
    return payload


def review_payload(classes, volume: Volume, z: int, states: dict) -> dict:
    states = {str(k): bool(v) for k, v in states.items()}
    if volume.shape[0] > 1:
        return {"classes": list(classes), "series": {}, "slices": {str(int(z)): states}}
    return {"classes": list(classes), "series": states, "slices": {}}


# ---------------------------------------------------------------------------- segmentation
@dataclass
class SegmentationRun:
    ref: str
    z: Optional[int]  # the slice that was segmented (None = the whole volume)
    labels: np.ndarray  # (z, y, x) uint8 on the volume grid
    label_names: list
    entropy: Optional[np.ndarray]  # (z, y, x) float16 in [0, 1] (zero outside the run)
    uncertainty: float
    most_uncertain: Optional[int]
    device: str
    record: object = None  # the 'predicted' label-map Record
    table: dict = field(default_factory=dict)
    labelmap: object = None  # an editable LabelMap of a copy of ``labels``
    variance: Optional[np.ndarray] = None  # (z, y, x) float16 in [0, 1]: variance / its p99.5
    uncertainty_method: str = "entropy"


def label_table(label_names) -> dict:
    return {"labels": [{"value": i, "name": str(n)} for i, n in enumerate(label_names) if i]}


def segment_job(ctx, card, volume: Volume, z: Optional[int], store, image_hash: str,
                method: str = "entropy") -> SegmentationRun:
    from medviewer.ai import uncertainty
    from medviewer.ai.inference import segment
    from medviewer.storage.store import Source

    device = ctx.device()
    ctx.progress(0, 1, f"Loading {card.ref}…")
    model = ctx.model(card)
    what = "slice" if z is not None else "volume"
    var_kw = {} if method == "entropy" else {"variance": method, "n_samples": VARIANCE_SAMPLES}
    gen = segment(model, card, volume.array, spacing_zyx(volume), device,
                  **_kwargs_for(segment, slice_index=z, want_entropy=True, cancel=ctx.cancel_token),
                  **var_kw)
    res = ctx.drive(gen, f"Segmenting the {what}…") if inspect.isgenerator(gen) else gen
    ctx.check()
    labels = np.ascontiguousarray(res.labels, dtype=np.uint8)
    names = list(getattr(res, "label_names", None) or card.labels)
    ent, z_range = None, (0, volume.shape[0]) if z is None else (z, z + 1)
    if getattr(res, "entropy", None) is not None:  # normalised, for the slices run
        z_range = tuple(res.z_range)
        ent = np.zeros(tuple(volume.shape[:3]), dtype=np.float16)
        ent[z_range[0]:z_range[1]] = res.entropy
    elif getattr(res, "probs", None) is not None:
        z_range = tuple(getattr(res, "z_range", None) or z_range)
        ent = _entropy_on_grid(np.asarray(res.probs), volume, z_range, uncertainty, ctx)
    score, zmax = float("nan"), None
    if ent is not None:
        z0, z1 = z_range
        score = float(uncertainty.case_score(ent[z0:z1], labels[z0:z1]))  # the slices run only
        zmax = z0 + int(uncertainty.most_uncertain_slice(ent[z0:z1], axis=0))
    var, scale = None, None
    if method != "entropy" and getattr(res, "variance", None) is not None:
        var, scale = _variance_on_grid(np.asarray(res.variance), volume, z_range)
    ctx.check()  # cancelled: nothing is stored
    table = label_table(names)
    prep = {"model": card.ref, "input": dict(card.input), "device": device,
            "slice": None if z is None else int(z),
            "spacing_zyx": list(spacing_zyx(volume)), "uncertainty_method": method}
    if method == "mc_dropout":
        prep["n_samples"] = VARIANCE_SAMPLES
    extra = {"case_uncertainty": score if np.isfinite(score) else None, "model": card.ref,
             "most_uncertain_slice": zmax, "uncertainty_method": method,
             "variance_scale": scale}
    snapshot_image(store, volume, image_hash)  # issue 5: the image, for training and the queue
    rec = store.add_labelmap(image_hash, labels, volume.geometry.affine_ras(), table, "predicted",
                             Source("model", card.name, card.version), preprocessing=prep,
                             extra=extra)
    from medviewer.core.labelmap import LabelMap
    from medviewer.core.labels import LabelTable

    # the editable copy is built here: scanning a whole volume's labels would stall the GUI
    editable = LabelMap(volume.geometry, LabelTable.from_dict(table), labels.copy(), name=card.ref)
    return SegmentationRun(card.ref, z, labels, names, ent, score, zmax, device, rec, table,
                           editable, var, method)


def _variance_on_grid(var: np.ndarray, volume: Volume, z_range: tuple) -> tuple:
    """(variance (z, y, x) float16 on the volume grid divided by its 99.5th percentile over
    the slices run and clipped to [0, 1], that percentile); zero outside ``z_range``."""
    shape = tuple(volume.shape[:3])
    z0, z1 = (int(v) for v in z_range)
    if var.shape != (z1 - z0,) + shape[1:]:
        raise ValueError(f"variance {var.shape} does not fit slices {z0}..{z1} of {shape}")
    flat = var.reshape(-1)
    sample = flat[::max(1, flat.size // 4_000_000)].astype(np.float32)  # the percentile, cheaply
    scale = float(np.percentile(sample, VARIANCE_PERCENTILE)) if sample.size else 0.0
    if not np.isfinite(scale) or scale <= 0.0:
        scale = float(np.nanmax(sample, initial=0.0))
    out = np.zeros(shape, dtype=np.float16)
    for a in range(0, z1 - z0, 8):
        b = min(z1 - z0, a + 8)
        chunk = var[a:b].astype(np.float32)
        out[z0 + a:z0 + b] = np.clip(chunk / scale, 0.0, 1.0) if scale > 0 else 0.0
    return out, scale


def _entropy(p: np.ndarray, uncertainty) -> np.ndarray:
    """Normalised entropy of probs (C, ...) -> (...) float32 in [0, 1]."""
    c = p.shape[0]
    ent = np.asarray(uncertainty.entropy(p.astype(np.float32)), dtype=np.float32)
    if ent.max(initial=0.0) > 1.0 + 1e-3:  # not normalised by log(C) yet
        ent = ent / np.log(max(c, 2))
    return np.clip(ent, 0.0, 1.0)


def _entropy_on_grid(probs: np.ndarray, volume: Volume, z_range: tuple, uncertainty,
                     ctx=None, chunk: int = 8) -> np.ndarray:
    """Normalised entropy (z, y, x) float16 on the volume grid (zero outside ``z_range``)
    from probs (C, z1 - z0, y, x), a few slices at a time (memory)."""
    shape = tuple(volume.shape[:3])
    z0, z1 = (int(v) for v in z_range)
    if probs.shape[1:] != (z1 - z0,) + shape[1:]:
        raise ValueError(f"probabilities {probs.shape} do not fit slices {z0}..{z1} of {shape}")
    out = np.zeros(shape, dtype=np.float16)
    for a in range(0, z1 - z0, chunk):
        if ctx is not None:
            ctx.check()
        b = min(z1 - z0, a + chunk)
        out[z0 + a:z0 + b] = _entropy(probs[:, a:b], uncertainty)
    return out
