"""Train the learned promptable model (``interactive-promptable``) on every labelled structure
in ``../shared/data`` except the held-out classes and cases (see :mod:`.train_data`).

    python -m medviewer.ai.starters interactive --out models/interactive-promptable/1.0.0 \
        --seed 0 --steps 6000

A 2D MONAI U-Net with six input channels (image, image relative to the prompts, positive and
negative click guidance, previous mask, box) and a foreground/background output, trained on
simulated prompts (first clicks, corrections of imperfect masks, boxes, scribbles, and the
neighbouring slice's mask for propagation) with DiceCE loss."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np

from medviewer.ai.interactive.encoding import CHANNELS, GRID
from medviewer.ai.interactive.train_data import Case

__all__ = ["ARCH", "PARAMS", "build_model", "train", "card_dict", "iterate_clicks"]

ARCH = "monai_unet"
PARAMS = {"spatial_dims": 2, "in_channels": len(CHANNELS), "out_channels": 2,
          "channels": [16, 32, 64, 128, 256], "strides": [2, 2, 2, 2], "num_res_units": 1,
          "norm": "instance", "dropout": 0.0}


def build_model():
    from medviewer.ai.architectures import build

    return build(ARCH, PARAMS)


def train(out: Optional[Path], seed: int = 0, steps: int = 6000, batch_size: int = 16,
          lr: float = 2e-3, init_weights: Optional[Path] = None, checkpoint_every: int = 250,
          log: Callable[[str], None] = print, cases: Optional[List[Case]] = None,
          replay: Optional[List[Case]] = None, replay_fraction: float = 0.5,
          on_step: Optional[Callable[[int, int, float], None]] = None,
          threads: Optional[int] = None) -> dict:
    """Train; returns a dict with the ``model`` (eval mode), its loss history and what it saw.

    ``cases``: the training cases (default: every training case in ``../shared/data``,
    :func:`~.train_data.load_training_cases`). ``replay``: more cases (e.g. that built-in data
    when fine-tuning on prompt records) drawn for ``replay_fraction`` of each batch's samples,
    so a fine-tune does not forget what the model knew. ``init_weights``: a safetensors file
    to start from (the version being fine-tuned). ``out``: a folder for periodic checkpoints
    (None: none). ``on_step(step, steps, loss)`` is called after every step (raise there to
    stop). ``threads``: torch CPU threads (default: every core)."""
    import torch
    from monai.losses import DiceCELoss

    from medviewer.ai.interactive.train_data import MixedSampler, Sampler, load_training_cases
    from medviewer.ai.starters.common import seed_everything
    from medviewer.ai.weights import read_state_dict, save_weights

    seed_everything(seed, threads)
    t0 = time.time()
    if cases is None:
        cases = load_training_cases(log=log)
    sampler = Sampler(cases, seed=seed)
    if replay:
        sampler = MixedSampler(sampler, Sampler(replay, seed=seed + 1), replay_fraction,
                               seed=seed)
    model = build_model()
    if init_weights is not None:
        model.load_state_dict(read_state_dict(Path(init_weights)))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = (torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                 pct_start=0.1) if steps >= 20
             else torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0))  # too short to cycle
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, batch=True)
    history, running = [], []
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
    model.train()
    for step in range(1, steps + 1):
        x, y = sampler.batch(batch_size)
        if step > steps // 10 and sampler.rng.random() < 0.5:
            x = iterate_clicks(model, x, y, sampler.rng)
        logits = model(torch.from_numpy(x))
        loss = loss_fn(logits, torch.from_numpy(y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running.append(float(loss.detach()))
        if on_step is not None:
            on_step(step, steps, running[-1])
        if step % 100 == 0 or step == steps:
            history.append({"step": step, "train_loss": round(float(np.mean(running)), 5)})
            log(f"step {step}/{steps} loss {np.mean(running):.4f} "
                f"({time.time() - t0:.0f} s)")
            sys.stdout.flush()
            running = []
        if out is not None and checkpoint_every and step % checkpoint_every == 0:
            save_weights(model, out / "checkpoint.safetensors")
    model.eval()
    wall = time.time() - t0
    return {"model": model, "history": history, "wall_time_s": round(wall, 1),
            "n_structures": sum(len(c.structures) for c in cases),
            "n_entries": len(getattr(sampler, "index", sampler).entries),
            "cases": [c.name for c in cases], "replay_cases": [c.name for c in replay or []],
            "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed}


def iterate_clicks(model, x: np.ndarray, y: np.ndarray, rng, max_rounds: int = 3):
    """Iterative training (the network corrects its own results): on half of the batch, run
    the network, put the next click at the centre of its largest error (on the window grid),
    make its result the previous mask, 1 to ``max_rounds`` times."""
    import torch

    from medviewer.ai.interactive.encoding import CHANNELS, add_guidance
    from medviewer.core.click_sim import next_click

    x = x.copy()
    idx = np.flatnonzero(rng.random(len(x)) < 0.5)
    if not len(idx):
        return x
    pos_c, neg_c, prev_c = (CHANNELS.index(n) for n in ("positive", "negative", "previous"))
    was = model.training
    model.eval()
    for _ in range(int(rng.integers(1, max_rounds + 1))):
        with torch.no_grad():
            prob = torch.softmax(model(torch.from_numpy(x[idx])), dim=1)[:, 1].numpy()
        for j, i in enumerate(idx):
            pred, ref = prob[j] > 0.5, y[i, 0] > 0.5
            click = next_click(pred, ref)
            x[i, prev_c] = pred
            if click is not None:
                add_guidance(x[i, pos_c if click.positive else neg_c], *click.index)
    model.train(was)
    return x


def card_dict(name: str, version: str, parent: Optional[str], result: dict, command: str,
              metrics: Optional[dict] = None) -> dict:
    """The model card of a trained promptable model."""
    import monai
    import torch

    from medviewer.ai.interactive.train_data import (HELD_OUT_CASES, HELD_OUT_CLASSES,
                                                     data_hashes)

    return {
        "name": name, "version": version,
        "description": ("Class-agnostic interactive segmentation: positive/negative clicks, "
                        "boxes and scribbles on one 2D slice (any plane, any modality) to a "
                        "mask; corrects a previous mask and carries a mask to the neighbouring "
                        "slice. Demonstration model trained on small public data; not for "
                        "clinical use."),
        "task": "interactive", "labels": ["background", "object"],
        "input": {"dims": 2, "channels": len(CHANNELS), "size": [GRID, GRID],
                  "channel_names": list(CHANNELS),
                  "intensity": {"type": "percentile", "lo": 0.5, "hi": 99.5},
                  "window": "a square focus window in mm around the prompts and the previous "
                            "mask, resampled to 128x128 (medviewer.ai.interactive.encoding)"},
        "architecture": {"name": ARCH, "params": PARAMS},
        "metrics": metrics or {},
        "training": {
            "data": "every labelled structure in ../shared/data except the held-out ones: "
                    + ", ".join(result["cases"]),
            "held_out_classes": list(HELD_OUT_CLASSES),
            "held_out_cases": list(HELD_OUT_CASES),
            "data_sha256": data_hashes(),
            "structures": result["n_structures"], "structure_planes": result["n_entries"],
            "command": command, "seed": result["seed"], "steps": result["steps"],
            "batch_size": result["batch_size"], "lr": result["lr"],
            "optimizer": "AdamW (weight decay 1e-4), one-cycle LR", "loss": "MONAI DiceCELoss",
            "prompts": "simulated: first clicks (interior, centre-biased), corrections of a "
                       "corrupted mask (grown, shrunk, shifted, cut, blob, a disc around the "
                       "click) with clicks at the largest error regions, boxes with "
                       "jitter, scribbles, the neighbouring slice's mask (propagation), "
                       "negative clicks near the object; iterative training: on half the "
                       "batches, half the samples get 1-3 rounds of the network's own result "
                       "as the previous mask plus a click at its largest error",
            "augmentation": "window scale 1.2-6x the object and shift, gamma, inversion, blur, "
                            "speckle, noise, 90-degree turns and flips; axial, coronal and "
                            "sagittal slices",
            "wall_time_s": result["wall_time_s"], "device": "cpu",
            "torch": torch.__version__, "monai": monai.__version__,
            "history": result["history"]},
        "parent_version": parent,
        "license": "Apache-2.0 (TotalSegmentator, MONAI data), BSD-3 (pyradiomics, dcmqi, "
                   "nilearn MNI152 template)",
        "domain": {"modalities": ["CT", "MR", "CR", "DX", "US", "OT"], "image_type": "any",
                   "body_region": "any", "dims": 2},
        "limits": [
            "Trained on a few small public cases (3 mm TotalSegmentator CT/MR, MNI152 tissue "
            "maps, a few lesions): expect more clicks on fine structures and on image kinds "
            "it never saw (ultrasound, radiographs).",
            "2D: a 3D result is built slice by slice by propagation; check the ends.",
            "Labels it learned from are mostly another model's output (TotalSegmentator).",
        ],
    }
