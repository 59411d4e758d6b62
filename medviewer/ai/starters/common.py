"""Shared pieces of the starter-model trainers: seeding, intensity maps, metrics, writing a folder.

The intensity functions here are the reference implementation of the card's ``input.intensity``
specs (ct_window, scale, percentile) that training and evaluation use.
"""
from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

import numpy as np

from medviewer.ai.cards import ModelCard, file_sha256
from medviewer.core.atomic import atomic_write_text

__all__ = ["seed_everything", "apply_intensity", "binary_metrics", "roc_auc",
           "write_model_folder", "file_sha256", "command_line", "REPO"]

REPO = Path(__file__).resolve().parents[3]


def seed_everything(seed: int, threads: int | None = None) -> None:
    """Seed Python, numpy and torch; deterministic algorithms; fixed thread count."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.set_num_threads(threads or max(1, os.cpu_count() or 1))


def apply_intensity(img: np.ndarray, spec: dict) -> np.ndarray:
    """Map raw values to the network's range as the card's intensity spec says -> float32.

    ct_window: clip to [center - width/2, center + width/2], scale to [0, 1].
    scale: (x - min) / (max - min), clipped to [0, 1].
    percentile: the image's own lo/hi percentiles (numpy linear interpolation) map to 0 / 1,
    clipped; a flat image gives zeros."""
    x = np.asarray(img, dtype=np.float32)
    kind = spec["type"]
    if kind == "ct_window":
        lo = spec["center"] - spec["width"] / 2.0
        hi = spec["center"] + spec["width"] / 2.0
    elif kind == "scale":
        lo, hi = spec["min"], spec["max"]
    elif kind == "percentile":
        lo, hi = (float(v) for v in np.percentile(x, [spec["lo"], spec["hi"]]))
    else:
        raise ValueError(f"unknown intensity type {kind!r}")
    if hi <= lo:
        return np.zeros_like(x, dtype=np.float32)
    return np.clip((x - np.float32(lo)) / np.float32(hi - lo), 0.0, 1.0).astype(np.float32)


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney statistic with tie handling), numpy only."""
    from scipy.stats import rankdata

    y = np.asarray(y_true).astype(bool).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def binary_metrics(y_true: np.ndarray, p_pos: np.ndarray, threshold: float = 0.5) -> dict:
    """accuracy, AUC, sensitivity, specificity (positive = class 1, predicted when p >= thr)."""
    y = np.asarray(y_true).astype(int).ravel()
    pred = (np.asarray(p_pos).ravel() >= threshold).astype(int)
    tp = int(((pred == 1) & (y == 1)).sum())
    tn = int(((pred == 0) & (y == 0)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    return {"accuracy": (tp + tn) / len(y), "auc": roc_auc(y, p_pos),
            "sensitivity": tp / max(tp + fn, 1), "specificity": tn / max(tn + fp, 1),
            "n": int(len(y)), "tp": tp, "tn": tn, "fp": fp, "fn": fn}


def command_line() -> str:
    """The command that is running, as a user would type it from the repo root."""
    return "python -m medviewer.ai.starters " + " ".join(sys.argv[1:])


def write_model_folder(out: Path, model, card_dict: dict, readme: str) -> ModelCard:
    """Write weights.safetensors, model.json (with the weights hash) and README.md into out;
    return the validated card."""
    from medviewer.ai.weights import save_weights

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sha = save_weights(model, out / "weights.safetensors")
    card_dict = dict(card_dict, weights={"file": "weights.safetensors", "sha256": sha})
    ModelCard.from_dict(card_dict, out)  # validate before writing
    atomic_write_text(out / "model.json", json.dumps(card_dict, indent=2) + "\n")
    atomic_write_text(out / "README.md", readme)
    card = ModelCard.load(out)
    card.verify()
    return card
