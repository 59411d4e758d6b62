"""The gate's measurements on the frozen validation set: mean Dice (segmentation) or accuracy,
per validation unit, calibration and (segmentation) false-positive volume.

:func:`evaluate` runs a model over manifest entries with the same preprocessing and output
mapping as inference (model grid -> softmax -> back to the original grid, argmax) and returns
``{"metric", "value", "per_class": {label: value}, "n", "units", "rows", "unit_classes",
"ece", "ece_n"}`` (+ ``auc`` / ``sensitivity`` for classifiers, ``fp_volume_ml`` for
segmentation). Segmentation: MONAI ``DiceMetric(include_background=False, ignore_empty=True)``,
each entry's validation slices (one unit) one sample, per label the mean over samples where the
label is in the reference; ``value`` = mean over the foreground labels present; ``rows`` the
per-unit Dice (None where the label is absent) for the bootstrap in :mod:`stats`. Calibration:
expected calibration error of the winning class's softmax probability, over the voxels where
the prediction or the reference is foreground (background voxels far from any organ would make
every model look calibrated). False-positive volume: per label, the millilitres predicted as
that label on validation slices whose reference has none of it. Classification: accuracy; per
class the sensitivity (recall); AUC one-vs-rest (binary: of labels[1]); ECE of the top
probability over the images.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

__all__ = ["evaluate", "evaluate_prepared", "predict_seg_case", "seg_metrics", "cls_metrics",
           "main_metric_name", "fp_volume_ml", "trivial_evaluation"]


def main_metric_name(task: str) -> str:
    return "mean_dice" if task == "segmentation" else "accuracy"


def _round(v):
    return None if v is None or not np.isfinite(v) else round(float(v), 6)


def predict_seg_case(model, card, case, device: str, batch: int = 4,
                     check: Callable[[], None] = lambda: None, confidence: bool = False):
    """Labels (k, y, x) uint8 on the original grid for a :class:`data.SegEvalCase`
    (``confidence``: and the winning class's probability (k, y, x) float32)."""
    import torch
    from monai.inferers import sliding_window_inference

    from medviewer.ai.device import autocast
    from medviewer.ai.preprocess import model_to_volume_tensor

    roi = tuple(int(v) for v in card.input["patch"])
    overlap = float(card.input.get("overlap", 0.25))

    def predict(x):
        with autocast(device):
            return torch.softmax(model(x).float(), dim=1)

    out, conf = [], []
    with torch.inference_mode():
        for a in range(0, case.inputs.shape[0], batch):
            check()
            x = case.inputs[a:a + batch].to(device)
            h, w = x.shape[-2:]
            if h <= roi[0] and w <= roi[1]:  # one window: pad, forward, crop (as inference)
                p = predict(torch.nn.functional.pad(x, (0, roi[1] - w, 0, roi[0] - h)))
                p = p[..., :h, :w]
            else:
                p = sliding_window_inference(x, roi, x.shape[0], predict, overlap=overlap,
                                             mode="constant")
            p = p.float().cpu().transpose(0, 1)  # (K, B, y', x')
            back = model_to_volume_tensor(p, case.info, "linear", (0, p.shape[1]))
            top, arg = back.max(0)
            out.append(arg.to(torch.uint8).numpy())
            if confidence:
                conf.append(top.float().numpy())
    labels = np.concatenate(out, axis=0)
    return (labels, np.concatenate(conf, axis=0)) if confidence else labels


def fp_volume_ml(preds: list, refs: list, labels: list, voxel_ml: list) -> dict:
    """Per foreground label: ml predicted as it on the slices whose reference lacks it, and on
    how many such slices (``{"per_class": {label: ml}, "slices": {label: n}, "total"}``)."""
    per, slices = {}, {}
    for value, name in enumerate(labels[1:], start=1):
        ml, n = 0.0, 0
        for pred, ref, vml in zip(preds, refs, voxel_ml):
            absent = ~np.any((ref == value).reshape(ref.shape[0], -1), axis=1)
            if absent.any():
                n += int(absent.sum())
                ml += float((pred[absent] == value).sum()) * float(vml)
        per[name], slices[name] = (round(ml, 3) if n else None), n
    total = sum(v for v in per.values() if v is not None)
    return {"per_class": per, "slices": slices, "total": round(total, 3)}


def seg_metrics(preds: list, refs: list, labels: list, units: Optional[list] = None) -> dict:
    import torch
    from monai.metrics import DiceMetric
    from monai.networks.utils import one_hot

    n = len(labels)
    metric = DiceMetric(include_background=False, reduction="none", ignore_empty=True)
    rows = []
    for pred, ref in zip(preds, refs):
        p = torch.from_numpy(pred.astype(np.int64))[None, None]
        r = torch.from_numpy(ref.astype(np.int64))[None, None]
        rows.append(metric(y_pred=one_hot(p, n), y=one_hot(r, n))[0].numpy())
    # mean over the samples where the label is in the reference (NaN rows = absent); MONAI's
    # own aggregate would report an organ absent everywhere as 0
    table = np.asarray(rows, dtype=np.float64).reshape(-1, n - 1)
    with np.errstate(all="ignore"):
        per = [float(np.nanmean(col)) if np.isfinite(col).any() else float("nan")
               for col in table.T]
    per_class = {name: _round(v) for name, v in zip(labels[1:], per)}
    present = [v for v in per_class.values() if v is not None]
    value = float(np.mean(present)) if present else float("nan")
    units = list(units) if units is not None else [str(i) for i in range(len(preds))]
    rows_out = [[_round(v) for v in row] for row in table]
    unit_classes = {u: [name for name, v in zip(labels[1:], row) if v is not None]
                    for u, row in zip(units, rows_out)}
    return {"metric": "mean_dice", "value": _round(value), "per_class": per_class,
            "n": len(preds), "units": units, "rows": rows_out, "unit_classes": unit_classes}


def cls_metrics(probs: np.ndarray, y: np.ndarray, labels: list) -> dict:
    from medviewer.ai.starters.common import roc_auc

    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    pred = probs.argmax(1) if len(y) else np.zeros(0, np.int64)
    acc = float((pred == y).mean()) if len(y) else float("nan")
    sens = {}
    for i, name in enumerate(labels):
        mask = y == i
        sens[name] = _round(float((pred[mask] == i).mean())) if mask.any() else None
    if len(labels) == 2:
        auc = roc_auc(y == 1, probs[:, 1]) if len(y) else float("nan")
    else:
        aucs = [roc_auc(y == i, probs[:, i]) for i in range(len(labels))]
        aucs = [a for a in aucs if np.isfinite(a)]
        auc = float(np.mean(aucs)) if aucs else float("nan")
    from medviewer.ai.training.stats import EceBins

    ece = EceBins()
    if len(y):
        ece.add(probs.max(1), pred == y)
    units = [str(i) for i in range(len(y))]
    return {"metric": "accuracy", "value": _round(acc), "per_class": sens, "n": int(len(y)),
            "auc": _round(auc), "sensitivity": sens, "units": units,
            "rows": [[1.0 if p == t else 0.0] for p, t in zip(pred, y)],
            "unit_classes": {u: [labels[int(t)]] for u, t in zip(units, y)},
            "ece": ece.value(), "ece_n": ece.n}


def cls_probs(model, x: np.ndarray, device: str, batch: int = 256,
              check: Callable[[], None] = lambda: None) -> np.ndarray:
    import torch

    from medviewer.ai.device import autocast

    out = []
    with torch.inference_mode():
        for a in range(0, len(x), batch):
            check()
            t = torch.from_numpy(np.ascontiguousarray(x[a:a + batch])).to(device)
            with autocast(device):
                logits = model(t)
            out.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 2))


def evaluate_prepared(model, card, prepared, device: str,
                      check: Callable[[], None] = lambda: None) -> dict:
    """:func:`evaluate` on data already prepared by :mod:`data` (seg: list of SegEvalCase;
    classification: (inputs, classes)). The model is put in eval mode and left there."""
    model.eval()
    if card.task == "segmentation":
        return _seg_evaluation(model, card, prepared, device, check)
    x, y = prepared
    return cls_metrics(cls_probs(model, x, device, check=check), y, list(card.labels))


def _seg_evaluation(model, card, prepared, device: str, check) -> dict:
    from medviewer.ai.training.stats import EceBins

    labels = list(card.labels)
    ece, preds = EceBins(), []
    for case in prepared:
        pred, conf = predict_seg_case(model, card, case, device, check=check, confidence=True)
        ref = case.reference
        roi = (pred > 0) | (ref > 0)
        ece.add(conf[roi], pred[roi] == ref[roi])
        preds.append(pred)
    refs = [c.reference for c in prepared]
    out = seg_metrics(preds, refs, labels, [c.unit or c.entry_id for c in prepared])
    voxel_ml = [float(np.prod(c.info.spacing_zyx)) / 1000.0 for c in prepared]
    out.update(ece=ece.value(), ece_n=ece.n, fp_volume_ml=fp_volume_ml(preds, refs, labels,
                                                                      voxel_ml))
    return out


def trivial_evaluation(card, prepared) -> dict:
    """What a first version must beat (its active version is untrained): the same measurements
    as :func:`evaluate_prepared` for the trivial predictor on the same data, plus
    ``reference`` = {"kind", "text"}. Classification: the majority class of the frozen
    validation set, predicted for every image (its accuracy is the majority-class rate, the
    best any constant answer scores there); segmentation: an all-background label map (Dice 0
    wherever a label is present)."""
    labels = list(card.labels)
    if card.task == "segmentation":
        refs = [c.reference for c in prepared]
        preds = [np.zeros_like(r) for r in refs]
        out = seg_metrics(preds, refs, labels, [c.unit or c.entry_id for c in prepared])
        voxel_ml = [float(np.prod(c.info.spacing_zyx)) / 1000.0 for c in prepared]
        out.update(ece=None, fp_volume_ml=fp_volume_ml(preds, refs, labels, voxel_ml),
                   reference={"kind": "all_background", "text": "an all-background label map"})
        return out
    _, y = prepared
    y = np.asarray(y, dtype=np.int64)
    counts = np.bincount(y, minlength=len(labels))
    top = int(counts.argmax()) if len(y) else 0
    probs = np.zeros((len(y), len(labels)))
    probs[:, top] = 1.0
    out = cls_metrics(probs, y, labels)
    rate = float(counts[top] / len(y)) if len(y) else float("nan")
    out.update(ece=None, reference={
        "kind": "majority_class", "class": labels[top], "rate": _round(rate),
        "text": f"the majority class {labels[top]!r} for every image "
                f"({int(counts[top])} of {len(y)})"})
    return out


def evaluate(model, card, manifest, entries, device: str = "cpu",
             check: Optional[Callable[[], None]] = None) -> dict:
    """``{"metric", "value", "per_class", "n"}`` of ``model`` on ``entries`` of ``manifest``
    (what the gate compares; see module docstring)."""
    from medviewer.ai.training import data

    check = check or (lambda: None)
    if card.task == "segmentation":
        prepared = data.seg_eval_cases(manifest, entries, card, check)
    else:
        prepared = data.cls_arrays(manifest, entries, card, check)
    return evaluate_prepared(model, card, prepared, device, check)
