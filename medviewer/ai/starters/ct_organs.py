"""Train the 2D CT organ segmentation starter (MONAI UNet) on TotalSegmentator's reference CTs.

Axial slices on a 2 mm in-plane grid, CT window [-1000, 500] HU, random 160x160 crops with
MONAI augmentation (180-degree in-plane turns so that both the DICOM and the NIfTI-RAS array
orientation work, small rotations/zoom, intensity jitter), MONAI DiceCE loss. The held-out
slice blocks (``ct_data.HOLDOUT``) are never trained on and never used to pick anything: the
final epoch's weights are kept, then Dice per organ is measured on the held-out slices.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from medviewer.ai.starters import ct_data
from medviewer.ai.starters.common import command_line, seed_everything, write_model_folder

__all__ = ["ARCH", "PARAMS", "train", "training_slices"]

ARCH = "monai_unet"
PARAMS = {"spatial_dims": 2, "in_channels": 1, "out_channels": len(ct_data.LABELS),
          "channels": [16, 32, 64, 128, 256], "strides": [2, 2, 2, 2], "num_res_units": 2,
          "norm": "instance", "dropout": 0.1}


def training_slices(cases) -> list[dict]:
    """Every non-held-out slice on the model grid: {"image": (1, y, x), "label": (1, y, x)}."""
    items = []
    for case in cases:
        z = case.split(held_out=False)
        img = ct_data.to_grid(case.ct[z], case.spacing_zyx[1:]).numpy()
        lab = ct_data.to_grid(case.labels[z], case.spacing_zyx[1:], labels=True).numpy()
        items += [{"image": img[i], "label": lab[i]} for i in range(len(z))]
    return items


def _augment(seed: int):
    from monai.transforms import (Compose, RandAffined, RandFlipd, RandGaussianNoised,
                                  RandScaleIntensityd, RandShiftIntensityd, RandSpatialCropd,
                                  SpatialPadd)

    keys = ["image", "label"]
    aug = Compose([
        SpatialPadd(keys, spatial_size=ct_data.PATCH),
        RandFlipd(keys, prob=0.5, spatial_axis=(0, 1)),  # both axes = a 180-degree turn
        RandAffined(keys, prob=0.8, rotate_range=(0.26,), scale_range=(0.15, 0.15),
                    mode=("bilinear", "nearest"), padding_mode="zeros"),
        RandSpatialCropd(keys, roi_size=ct_data.PATCH, random_size=False),
        RandScaleIntensityd("image", factors=0.1, prob=0.5),
        RandShiftIntensityd("image", offsets=0.05, prob=0.5),
        RandGaussianNoised("image", prob=0.2, std=0.01),
    ])
    aug.set_random_state(seed=seed)
    return aug


def train(out: Path, seed: int = 0, epochs: int = 60, lr: float = 2e-3, batch_size: int = 4,
          version: str = "1.0.0", name: str = "ct-abdomen-organs",
          parent_version: str | None = None, log=print) -> dict:
    """Train, measure held-out Dice, write the model folder at ``out``; returns the card dict."""
    import torch
    from monai.losses import DiceCELoss

    from medviewer.ai.architectures import build

    t0 = time.time()
    seed_everything(seed)
    cases = ct_data.load_cases()
    items = training_slices(cases)
    aug = _augment(seed)
    model = build(ARCH, PARAMS)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = (len(items) + batch_size - 1) // batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr,
                                                total_steps=epochs * steps_per_epoch)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    rng = np.random.default_rng(seed)
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        total = 0.0
        order = rng.permutation(len(items))
        for i in range(0, len(order), batch_size):
            batch = [aug(items[j]) for j in order[i:i + batch_size]]
            x = torch.stack([torch.as_tensor(b["image"]) for b in batch]).float()
            y = torch.stack([torch.as_tensor(b["label"]) for b in batch]).round().long()
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(batch)
        history.append({"epoch": epoch, "train_loss": round(total / len(items), 5)})
        if epoch % 5 == 0 or epoch == epochs:
            log(f"epoch {epoch:3d} loss {total / len(items):.4f} ({time.time() - t0:.0f} s)")
    model.eval()
    dice = ct_data.dice_per_organ(model, cases)
    wall = time.time() - t0
    log(f"held-out Dice {dice}; wall {wall:.0f} s")
    card = _card_dict(name, version, parent_version, seed, epochs, lr, batch_size, len(items),
                      dice, wall, history)
    from medviewer.ai.starters.ct_card import readme_text
    from medviewer.ai.starters.ood_reference import write_reference

    write_model_folder(Path(out), model, card, readme_text(card))
    write_reference(out, log)  # the OOD reference statistics of this model's training data
    return card


def _card_dict(name, version, parent, seed, epochs, lr, batch_size, n_train, dice, wall,
               history) -> dict:
    import monai
    import torch

    from medviewer.ai.starters.ct_card import DESCRIPTION, DOMAIN, LIMITS

    present = [v for v in dice.values() if v is not None]
    held = {k: f"z {a}..{b - 1}" for k, (a, b) in ct_data.HOLDOUT.items()}
    return {
        "name": name, "version": version,
        "description": DESCRIPTION, "domain": DOMAIN, "limits": list(LIMITS),
        "task": "segmentation", "labels": ct_data.LABELS,
        "input": {"dims": 2, "channels": 1, "spacing": ct_data.SPACING, "patch": ct_data.PATCH,
                  "intensity": ct_data.INTENSITY, "modality": "CT",
                  "orientation": "axial slices; trained on arrays with x towards the patient's "
                                 "left and y posterior, and on the same turned 180 degrees"},
        "architecture": {"name": ARCH, "params": PARAMS},
        "weights": {"file": "weights.safetensors", "sha256": "0" * 64},
        "metrics": {"split": "held-out slices", "held_out_slices": held,
                    "dice": {k: (round(v, 6) if v is not None else None)
                             for k, v in dice.items()},
                    "mean_dice": round(float(np.mean(present)), 6),
                    "dice_method": "MONAI DiceMetric(include_background=False, "
                                   "ignore_empty=True) per case's held-out block on the "
                                   "original grid, averaged over cases with the organ"},
        "training": {
            "data": "TotalSegmentator reference files (../shared/data/totalseg/tests/"
                    "reference_files): case A example_ct_sm.nii.gz + example_seg.nii.gz, "
                    "case B example_ct_dicom/ + example_seg_dicom.nii.gz; labels are "
                    "TotalSegmentator model output",
            "data_sha256": ct_data.data_hashes(), "train_slices": n_train,
            "label_map": {n: list(ids) for n, ids in ct_data.ORGANS},
            "command": command_line(), "seed": seed, "epochs": epochs,
            "selection": "last epoch (no model selection)",
            "optimizer": "AdamW (weight decay 1e-4), one-cycle LR", "lr": lr,
            "batch_size": batch_size, "loss": "MONAI DiceCELoss",
            "augmentation": "MONAI: pad/crop 160x160, 180-degree turn (p 0.5), RandAffine "
                            "(rotate +-15 deg, zoom +-15%), intensity scale/shift, noise",
            "wall_time_s": round(wall, 1), "device": "cpu", "torch": torch.__version__,
            "monai": monai.__version__, "history": history,
        },
        "parent_version": parent,
        "license": "Apache-2.0 (trained on TotalSegmentator's Apache-2.0 reference files)",
    }
