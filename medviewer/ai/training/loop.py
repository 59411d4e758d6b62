"""The training loop: seeded epochs, AMP on CUDA, DDP-aware sampling, early stopping.

Segmentation: MONAI DiceCE loss on random patch-sized crops of the model-grid slices (padded
to the card's patch), with mild MONAI augmentation (180-degree turn, small affine, intensity
jitter). Classification: cross-entropy, mild RandAffine/contrast. AdamW with a cosine
schedule. After every ``val_every`` epochs rank 0 measures the validation metric; the best
epoch's weights are kept and training stops after ``patience`` validations without
improvement (rank 0 decides; the decision is broadcast).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from medviewer.ai.training.evaluate import evaluate_prepared

__all__ = ["TrainConfig", "TrainResult", "seed_all", "train"]


@dataclass
class TrainConfig:
    epochs: int
    lr: float
    batch_size: int
    seed: int = 0
    patience: int = 5
    val_every: int = 1
    augment: bool = True


@dataclass
class TrainResult:
    best_state: Optional[dict]
    best_value: Optional[float]
    best_epoch: int
    best_eval: Optional[dict] = None  # evaluate() of the kept weights (rank 0)
    history: list = field(default_factory=list)
    stopped_early: bool = False
    epochs_run: int = 0


def seed_all(seed: int) -> None:
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def _seg_augment(patch, seed: int, augment: bool):
    from monai.transforms import (Compose, RandAffined, RandFlipd, RandScaleIntensityd,
                                  RandShiftIntensityd, RandSpatialCropd, SpatialPadd)

    keys = ["image", "label"]
    steps = [SpatialPadd(keys, spatial_size=patch)]
    if augment:
        steps += [RandFlipd(keys, prob=0.5, spatial_axis=(0, 1)),
                  RandAffined(keys, prob=0.5, rotate_range=(0.17,), scale_range=(0.1, 0.1),
                              mode=("bilinear", "nearest"), padding_mode="zeros")]
    steps.append(RandSpatialCropd(keys, roi_size=patch, random_size=False))
    if augment:
        steps += [RandScaleIntensityd("image", factors=0.1, prob=0.3),
                  RandShiftIntensityd("image", offsets=0.05, prob=0.3)]
    aug = Compose(steps)
    aug.set_random_state(seed=seed)
    return aug


def _cls_augment(seed: int, augment: bool):
    if not augment:
        return None
    from monai.transforms import Compose, RandAdjustContrast, RandAffine

    aug = Compose([RandAffine(prob=0.5, rotate_range=(0.17,), translate_range=(2, 2),
                              scale_range=(0.1, 0.1), padding_mode="border"),
                   RandAdjustContrast(prob=0.3, gamma=(0.8, 1.25))])
    aug.set_random_state(seed=seed)
    return aug


class _Batches:
    """Task-specific batch building: indices -> (x, y) tensors on the device."""

    def __init__(self, task: str, train_data, card, cfg: TrainConfig, rank: int, device: str):
        self.task, self.device = task, device
        seed = cfg.seed * 1000 + rank
        if task == "segmentation":
            self.items = train_data
            self.n = len(train_data)
            self.aug = _seg_augment([int(v) for v in card.input["patch"]], seed, cfg.augment)
        else:
            self.x, self.y = train_data
            self.n = len(self.y)
            self.aug = _cls_augment(seed, cfg.augment)

    def __call__(self, idx):
        import torch

        if self.task == "segmentation":
            batch = [self.aug({"image": self.items[i]["image"], "label": self.items[i]["label"]})
                     for i in idx]
            x = torch.stack([torch.as_tensor(b["image"]) for b in batch]).float()
            y = torch.stack([torch.as_tensor(b["label"]) for b in batch]).round().long()
        else:
            xb = self.x[idx]
            if self.aug is not None:
                xb = np.stack([np.asarray(self.aug(im), dtype=np.float32) for im in xb])
            x = torch.from_numpy(np.clip(xb, 0.0, 1.0).astype(np.float32))
            y = torch.from_numpy(self.y[idx])
        # MONAI returns MetaTensors: train on plain tensors
        return (x.as_subclass(torch.Tensor).to(self.device),
                y.as_subclass(torch.Tensor).to(self.device))


def _loss_fn(task: str):
    import torch

    if task == "segmentation":
        from monai.losses import DiceCELoss

        return DiceCELoss(to_onehot_y=True, softmax=True)
    return torch.nn.CrossEntropyLoss()


def _amp(device: str):
    """(autocast context factory, GradScaler): bf16/fp16 autocast on CUDA, no-op elsewhere."""
    import torch

    from medviewer.ai.device import autocast

    fp16 = device.startswith("cuda") and not torch.cuda.is_bf16_supported()
    return (lambda: autocast(device)), torch.amp.GradScaler("cuda", enabled=fp16)


def train(model, card, train_data, val_prepared, cfg: TrainConfig, ctx, emitter,
          check: Callable[[], None]) -> TrainResult:
    """Fine-tune ``model`` in place; returns the best validated weights (rank 0) and history."""
    import torch
    from torch.utils.data import DistributedSampler

    task, device = card.task, ctx.device
    model.to(device)
    net = ctx.wrap(model)
    batches = _Batches(task, train_data, card, cfg, ctx.rank, device)
    sampler = DistributedSampler(range(batches.n), num_replicas=ctx.world_size, rank=ctx.rank,
                                 shuffle=True, seed=cfg.seed, drop_last=False)
    per_rank = len(sampler)
    steps = max(1, -(-per_rank // cfg.batch_size))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps,
                                                       eta_min=cfg.lr * 0.05)
    loss_fn = _loss_fn(task)
    amp, scaler = _amp(device)
    result = TrainResult(None, None, 0)
    stale, t0 = 0, time.monotonic()
    for epoch in range(1, cfg.epochs + 1):
        sampler.set_epoch(epoch)
        order = list(sampler)
        net.train()
        losses = []
        for s in range(steps):
            check()
            idx = order[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            if len(idx) == 1 and per_rank > 1 and task == "classification":
                idx = order[-2:]  # batch norm needs more than one sample
            x, y = batches(idx)
            with amp():
                loss = loss_fn(net(x), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            losses.append(float(loss.detach()))
            emitter.progress(epoch, cfg.epochs, s + 1, steps, losses[-1])
        train_loss = ctx.mean(float(np.mean(losses)))
        validate = epoch % cfg.val_every == 0 or epoch == cfg.epochs
        value, best = None, False
        stop = 0.0
        if validate and ctx.is_main:
            ev = evaluate_prepared(model, card, val_prepared, device, check)
            value = ev["value"]
            if value is not None and (result.best_value is None or value > result.best_value):
                best, stale = True, 0
                result.best_value, result.best_epoch, result.best_eval = value, epoch, ev
                result.best_state = {k: v.detach().to("cpu", copy=True)
                                     for k, v in model.state_dict().items()}
            else:
                stale += 1
            stop = 1.0 if stale >= cfg.patience else 0.0
        stop = ctx.broadcast_floats([stop])[0] if validate else 0.0
        row = {"epoch": epoch, "train_loss": round(train_loss, 6), "val_metric": value,
               "best": best}
        result.history.append(row)
        result.epochs_run = epoch
        emitter.emit("epoch", epoch=epoch, train_loss=round(train_loss, 6), val_metric=value,
                     metric="mean_dice" if task == "segmentation" else "accuracy", best=best,
                     elapsed_s=round(time.monotonic() - t0, 2))
        if stop > 0:
            result.stopped_early = epoch < cfg.epochs
            break
    if result.best_state is None and ctx.is_main:  # no validation gave a number: keep last
        result.best_state = copy.deepcopy({k: v.detach().cpu() for k, v in
                                           model.state_dict().items()})
        result.best_epoch = result.epochs_run
    return result
