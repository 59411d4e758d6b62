"""Train the ``pneumonia-cxr`` starter classifiers on PneumoniaMNIST (28x28, normal/pneumonia).

Select the epoch on the validation split (AUC, then accuracy); the test split is evaluated once,
at the end, for the card. CPU, seeded, deterministic algorithms.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np

from medviewer.ai.starters.common import (REPO, apply_intensity, binary_metrics, command_line,
                                          file_sha256, seed_everything, write_model_folder)

__all__ = ["DATA_FILE", "LABELS", "INTENSITY", "load_split", "prepare", "predict_proba",
           "ARCH_PARAMS", "train"]

DATA_FILE = REPO / ".." / "shared" / "data" / "medmnist_pneumonia" / \
    "pneumoniamnist_reconstructed_full.npz"
LABELS = ["normal", "pneumonia"]
INTENSITY = {"type": "percentile", "lo": 0.5, "hi": 99.5}

ARCH_PARAMS = {
    "small_cnn": {"in_channels": 1, "num_classes": 2, "input_size": 28,
                  "conv_channels": [32, 64], "hidden": 128, "dropout_conv": 0.25,
                  "dropout_fc": 0.5},
    # ResNet-18 adapted to 28x28: 3x3 stride-2 stem, no max-pool (layer 1 at 14x14), half
    # width (32..256 channels) to stay well under 20 MB and train in minutes on 2 CPU cores.
    "monai_resnet18": {"spatial_dims": 2, "in_channels": 1, "num_classes": 2,
                       "block_inplanes": [64, 128, 256, 512], "conv1_size": 3,
                       "conv1_stride": 2, "no_max_pool": True, "widen_factor": 0.5},
    "monai_densenet121": {"spatial_dims": 2, "in_channels": 1, "num_classes": 2,
                          "init_features": 32, "growth_rate": 16, "dropout_prob": 0.2},
}


def load_split(split: str, path: Path = DATA_FILE) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels int64 (N,)) of 'train' | 'val' | 'test'."""
    with np.load(path) as d:
        return d[f"{split}_images"], d[f"{split}_labels"].reshape(-1).astype(np.int64)


def prepare(images: np.ndarray, spec: dict = INTENSITY) -> np.ndarray:
    """Apply the card's intensity spec to each image -> float32 (N, 1, 28, 28)."""
    return np.stack([apply_intensity(im, spec) for im in images])[:, None]


def predict_proba(model, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """Softmax probabilities (N, C) of ``model`` (eval mode) on prepared inputs."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            logits = model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch])))
            out.append(torch.softmax(logits.float(), dim=1).numpy())
    return np.concatenate(out).astype(np.float64)


def _augmenter(seed: int):
    """MONAI random transforms suitable for chest X-rays (no flips: anatomy is lateralised)."""
    from monai.transforms import Compose, RandAdjustContrast, RandAffine, RandGaussianNoise

    aug = Compose([
        RandAffine(prob=0.8, rotate_range=(0.17,), translate_range=(2, 2),
                   scale_range=(0.1, 0.1), padding_mode="border", mode="bilinear"),
        RandAdjustContrast(prob=0.3, gamma=(0.7, 1.5)),
        RandGaussianNoise(prob=0.2, std=0.02),
    ])
    aug.set_random_state(seed=seed)
    return aug


def _batches(n: int, size: int, rng: np.random.Generator):
    order = rng.permutation(n)
    for i in range(0, n, size):
        yield order[i:i + size]


def train(arch: str, out: Path, seed: int = 0, epochs: int = 20, lr: float = 1e-3,
          batch_size: int = 128, augment: bool = True, version: str = "1.0.0",
          name: str = "pneumonia-cxr", parent_version: str | None = None,
          log=print) -> dict:
    """Train ``arch`` and write the model folder at ``out``; returns the card dict."""
    import torch

    from medviewer.ai.architectures import build

    t0 = time.time()
    seed_everything(seed)
    params = ARCH_PARAMS[arch]
    model = build(arch, params)
    xtr, ytr = load_split("train")
    xva, yva = load_split("val")
    ptr, pva = prepare(xtr), prepare(xva)
    aug = _augmenter(seed) if augment else None
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(ptr) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    loss_fn = torch.nn.CrossEntropyLoss()
    rng = np.random.default_rng(seed)
    best = (-1.0, -1.0)
    best_state, best_epoch, history = None, -1, []
    for epoch in range(1, epochs + 1):
        model.train()
        total = 0.0
        for idx in _batches(len(ptr), batch_size, rng):
            xb = ptr[idx]
            if aug is not None:
                xb = np.stack([np.asarray(aug(im), dtype=np.float32) for im in xb])
            xb_t = torch.from_numpy(np.clip(xb, 0.0, 1.0).astype(np.float32))
            loss = loss_fn(model(xb_t), torch.from_numpy(ytr[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        val = binary_metrics(yva, predict_proba(model, pva)[:, 1])
        history.append({"epoch": epoch, "train_loss": round(total / len(ptr), 5),
                        "val_auc": round(val["auc"], 5), "val_accuracy": round(val["accuracy"], 5)})
        log(f"epoch {epoch:3d} loss {total / len(ptr):.4f} val auc {val['auc']:.4f} "
            f"acc {val['accuracy']:.4f} ({time.time() - t0:.0f} s)")
        if (val["auc"], val["accuracy"]) > best:
            best, best_epoch = (val["auc"], val["accuracy"]), epoch
            best_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    model.eval()
    val = binary_metrics(yva, predict_proba(model, pva)[:, 1])
    xte, yte = load_split("test")  # the test split: once, for the card, after selection
    test = binary_metrics(yte, predict_proba(model, prepare(xte))[:, 1])
    wall = time.time() - t0
    card = _card_dict(arch, params, name, version, parent_version, seed, epochs, lr,
                      batch_size, augment, best_epoch, val, test, wall, history)
    from medviewer.ai.starters.ood_reference import write_reference
    from medviewer.ai.starters.pneumonia_card import readme_text

    write_model_folder(Path(out), model, card, readme_text(card))
    write_reference(out, log)  # the OOD reference statistics of this model's training data
    log(f"best epoch {best_epoch}; val {val}; test {test}; wall {wall:.0f} s")
    return card


def _r(metrics: dict) -> dict:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()}


def _card_dict(arch, params, name, version, parent, seed, epochs, lr, batch_size, augment,
               best_epoch, val, test, wall, history) -> dict:
    import monai
    import torch

    from medviewer.ai.starters.pneumonia_card import DESCRIPTION, DOMAIN, LIMITS

    test_r = _r(test)
    return {
        "name": name, "version": version,
        "description": DESCRIPTION, "domain": DOMAIN, "limits": list(LIMITS),
        "task": "classification", "labels": LABELS,
        "input": {"dims": 2, "channels": 1, "size": [28, 28], "intensity": INTENSITY,
                  "notes": "whole image resized to 28x28 (grey); MONOCHROME1 inverted first"},
        "architecture": {"name": arch, "params": params},
        "weights": {"file": "weights.safetensors", "sha256": "0" * 64},
        "metrics": {"split": "test", "threshold": 0.5, "positive_class": "pneumonia",
                    "accuracy": test_r["accuracy"], "auc": test_r["auc"],
                    "sensitivity": test_r["sensitivity"],
                    "specificity": test_r["specificity"], "test": test_r,
                    "validation": _r(val), "selected_on": "validation AUC (then accuracy)"},
        "training": {
            "data": "PneumoniaMNIST (MedMNIST v2, 28x28), reconstructed full split: "
                    "../shared/data/medmnist_pneumonia/pneumoniamnist_reconstructed_full.npz",
            "data_sha256": file_sha256(DATA_FILE), "splits": {"train": 4708, "val": 524,
                                                                "test": 624},
            "command": command_line(), "seed": seed, "epochs": epochs,
            "best_epoch": best_epoch, "optimizer": "AdamW (weight decay 1e-4), one-cycle LR",
            "lr": lr, "batch_size": batch_size, "loss": "cross-entropy",
            "augmentation": ("MONAI RandAffine (rotate +-10 deg, shift +-2 px, zoom +-10%), "
                             "RandAdjustContrast, RandGaussianNoise; no flips") if augment
            else "none",
            "wall_time_s": round(wall, 1), "device": "cpu", "torch": torch.__version__,
            "monai": monai.__version__, "history": history,
        },
        "parent_version": parent,
        "license": "weights: CC BY 4.0 (trained on PneumoniaMNIST, CC BY 4.0); code Apache-2.0",
    }
