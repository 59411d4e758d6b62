"""Train the whole-trunk CT segmentation starter: a 2.5D MONAI U-Net on every labelled CT.

Why 2.5D: a 3D network would see the organs' shape in z, but on this 2-core CPU a whole CT in
3D windows takes minutes, the training set is three scans, and 3D patches of the 3 mm case
hold a handful of slices. A 2D U-Net whose three input channels are the slice and the volume
3 mm below and above it (``input.context_mm``, interpolated in millimetres so that 1 mm and
5 mm scans give the network the same input) sees enough of z to stop slice-to-slice streaks
and runs one whole-slice window per slice.

Every training sample is drawn on the fly: a random case and training slice, a random
3 mm +-1 mm context distance, a random rotation (+-12 degrees) and scale (0.75-1.35: pixel
spacings of 0.5 to 1.5 mm look like other scanners' after resampling to the model's 2 mm
grid), a 160^2 crop (half of the full scans' cut to a random 150-260 mm box in air, as the
chest crop is); in HU: each structure's own offset, contrast removal (blood pool and enhanced
organs pulled toward unenhanced values), HU scale and offset, blur (soft kernels, thick slices), noise (low dose).
The loss is the marginal cross-entropy plus a Dice over the classes each sample fully labels
(``trunk_data``: label-0 voxels of a partially labelled case may be an unlabelled class).
The held-out slabs (``trunk_data.HOLDOUT``) are never trained on and never used for choices:
the last step's weights are the model, then Dice per structure is measured on the slabs with
the app's own inference pipeline (``medviewer.ai.inference.segment``).
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from medviewer.ai.starters import trunk_data as td
from medviewer.ai.starters.common import command_line, seed_everything, write_model_folder

__all__ = ["ARCH", "PARAMS", "POSTPROCESS", "Sampler", "partial_label_loss", "train",
           "heldout_dice"]

ARCH = "monai_unet"
PARAMS = {"spatial_dims": 2, "in_channels": len(td.CONTEXT_MM), "out_channels": len(td.LABELS),
          "channels": [16, 32, 64, 128, 256], "strides": [2, 2, 2, 2], "num_res_units": 2,
          "norm": "instance", "dropout": 0.1}
# after the whole volume: keep each organ's largest 3D component; drop specks of the rest
POSTPROCESS = {"largest_component": [n for n in td.LABELS[1:] if n != "vertebrae"],
               "min_component_ml": 1.0, "inside_body_hu": -500.0,
               # solid organs end where their cross-section falls under 2 % of its largest
               # (not the lungs, whose apex tapers, nor the aorta and spine, long tubes)
               "trim_tails": {n: 0.02 for n in ("heart", "liver", "spleen", "kidney_left",
                                               "kidney_right", "stomach", "gallbladder",
                                               "urinary_bladder")},
               # lungs: no label on the trachea's lumen; aerated lung the network left out
               # of a region it mostly labelled lung is completed
               "aerated_labels": ["lung_left", "lung_right"]}
CROP = 160
CASE_WEIGHTS = {"A": 0.4, "B": 0.2, "C": 0.4}
GROUPS = {code: [td.INDEX[n] for n in names] for code, names in td.GROUPS.items()}


class Sampler:
    """Random augmented training samples ``(image (3, CROP, CROP), label (CROP, CROP),
    allowed (C,) bool)``; ``allowed[c]``: label-0 voxels of the sample may be class c."""

    def __init__(self, cases, seed: int):
        import torch

        self.rng = np.random.default_rng(seed)
        self.cases = cases
        self.ct = [torch.from_numpy(c.ct + 1024.0) for c in cases]  # air = 0 for padding
        self.lab = [torch.from_numpy(c.labels.astype(np.float32)) for c in cases]
        self.train_z = [c.split(held_out=False) for c in cases]
        self.weights = np.array([CASE_WEIGHTS[c.name] for c in cases], float)
        self.weights /= self.weights.sum()
        self.body = [self._body_boxes(c.ct) for c in cases]

    @staticmethod
    def _body_boxes(ct: np.ndarray) -> list:
        boxes = []
        for sl in ct:
            ys, xs = np.nonzero(sl > -500)
            boxes.append((ys.min(), ys.max(), xs.min(), xs.max()) if len(ys)
                         else (0, sl.shape[0] - 1, 0, sl.shape[1] - 1))
        return boxes

    def sample(self):
        import torch
        import torch.nn.functional as F

        r = self.rng
        k = int(r.choice(len(self.cases), p=self.weights))
        case = self.cases[k]
        z = int(r.choice(self.train_z[k]))
        sz, sy, sx = case.spacing_zyx
        d = r.uniform(2.0, 4.0)
        nz = case.ct.shape[0]
        chans = []
        for off in (-d, 0.0, d):
            p = min(max(z + off / sz, 0.0), nz - 1.0)
            j0 = int(math.floor(p))
            j1 = min(j0 + 1, nz - 1)
            w = p - j0
            chans.append(self.ct[k][j0] * (1 - w) + self.ct[k][j1] * w)
        img = torch.stack(chans)[None]  # (1, 3, H, W)
        lab = self.lab[k][z][None, None]
        h, w_ = case.ct.shape[1:]
        scale = math.exp(r.uniform(math.log(0.75), math.log(1.35)))
        ang = math.radians(r.uniform(-12, 12))
        step = td.SPACING[0] * scale  # mm per output pixel
        y0, y1, x0, x1 = self.body[k][z]
        cy, cx = r.uniform(y0, y1 + 1), r.uniform(x0, x1 + 1)
        u = (torch.arange(CROP, dtype=torch.float64) - (CROP - 1) / 2) * step
        vv, uu = torch.meshgrid(u, u, indexing="ij")  # mm offsets (row, col)
        ca, sa = math.cos(ang), math.sin(ang)
        px = cx + (ca * uu - sa * vv) / sx
        py = cy + (sa * uu + ca * vv) / sy
        grid = torch.stack([(px + 0.5) / w_ * 2 - 1, (py + 0.5) / h * 2 - 1], -1)[None].float()
        # outside the scan: air, as inference pads a slice, and labels ignored there
        x = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros",
                          align_corners=False)[0] - 1024.0
        y = F.grid_sample(lab, grid, mode="nearest", padding_mode="zeros",
                          align_corners=False)[0, 0].round().long()
        inside = F.grid_sample(torch.ones_like(lab), grid, mode="nearest", padding_mode="zeros",
                               align_corners=False)[0, 0] > 0.5
        y[~inside] = td.IGNORE
        if not case.cropped and r.random() < 0.5:
            x, y = self._as_if_cropped(x, y, step)
        x = self._intensity(self._organ_shift(x, y))
        allowed = np.zeros(len(td.LABELS), bool)
        allowed[0] = True
        allowed[list(case.unlabelled[z])] = True
        return x, y, torch.from_numpy(allowed)

    def _as_if_cropped(self, x, y, step):
        """Air (labels ignored) outside a random box of 150-260 mm: what the chest crop looks
        like around its edges. Only the chest crop shows the heart, so without this the
        network learns "air near a crop's straight edge: chest" and finds the heart beside
        the air of an armpit (runs 6-8)."""
        import torch

        r = self.rng
        n = x.shape[-1]
        bh, bw = (min(n, int(r.uniform(150, 260) / step)) for _ in range(2))
        mid = (n - 1) / 2
        top = int(np.clip(r.uniform(mid - bh + 1, mid), 0, n - bh))
        left = int(np.clip(r.uniform(mid - bw + 1, mid), 0, n - bw))
        out = torch.ones((n, n), dtype=torch.bool)
        out[top:top + bh, left:left + bw] = False
        x = x.masked_fill(out[None], -1024.0)
        y = y.masked_fill(out, td.IGNORE)
        return x, y

    def _organ_shift(self, x, y):
        """Each labelled structure's HU moved by its own offset (sd 15 HU; p 0.5): organs
        enhance differently with contrast phase and scanner, so no organ is told by its exact
        HU alone."""
        import torch

        if self.rng.random() >= 0.5:
            return x
        offsets = torch.zeros(256)
        offsets[1:len(td.LABELS)] = torch.from_numpy(
            self.rng.normal(0.0, 15.0, len(td.LABELS) - 1).astype(np.float32))
        return x + offsets[y.clamp(0, 255)][None]

    def _intensity(self, x):
        """HU augmentation, then the card's window to [0, 1]."""
        import torch
        import torch.nn.functional as F

        r = self.rng
        if r.random() < 0.5:  # contrast removal: enhanced blood and organs toward ~40 HU
            keep = r.uniform(0.0, 1.0)
            enh = (x > 80) & (x < 700)
            x = torch.where(enh, 40 + (x - 40) * keep, x)
        x = x * r.uniform(0.92, 1.08) + r.uniform(-30, 30)
        if r.random() < 0.3:
            sigma = r.uniform(0.5, 1.2)
            k = torch.arange(-3, 4, dtype=torch.float32)
            g = torch.exp(-k ** 2 / (2 * sigma ** 2))
            g = (g / g.sum()).view(1, 1, 1, -1)
            x = F.conv2d(F.pad(x[:, None], (3, 3, 0, 0), mode="replicate"), g)
            x = F.conv2d(F.pad(x, (0, 0, 3, 3), mode="replicate"), g.transpose(2, 3))[:, 0]
        if r.random() < 0.5:
            x = x + torch.randn_like(x) * r.uniform(5, 40)
        lo = td.INTENSITY["center"] - td.INTENSITY["width"] / 2
        return ((x - lo) / td.INTENSITY["width"]).clamp_(0, 1)

    def batch(self, n: int):
        import torch

        items = [self.sample() for _ in range(n)]
        return tuple(torch.stack(t) for t in zip(*items))


def partial_label_loss(logits, target, allowed, groups=None, smooth: float = 1e-5):
    """Marginal cross-entropy + soft Dice for partially labelled samples.

    ``target`` (B, H, W) class indices; ``allowed`` (B, C) bool: label-0 voxels of sample b
    may be any class with ``allowed[b, c]`` (always background). Cross-entropy of a label-0
    voxel is ``-log sum_{allowed} p``; Dice of class c counts only the samples that label c
    fully (``allowed[b, c]`` False), so an unlabelled organ is never pushed to background.
    ``groups`` ``{code: class indices}``: voxels labelled ``code`` are "one of these classes"
    (their cross-entropy is ``-log sum_{members} p``); any other value >= C is ignored."""
    import torch

    logp = torch.log_softmax(logits.float(), dim=1)  # (B, C, H, W)
    n = logp.shape[1]
    bg_mask = torch.where(allowed[:, :, None, None], 0.0, float("-inf")).to(logp.dtype)
    marginal = torch.logsumexp(logp + bg_mask, dim=1)  # (B, H, W)
    plain = target < n
    idx = torch.where(plain, target, torch.zeros_like(target))
    picked = logp.gather(1, idx[:, None])[:, 0]
    nll = -torch.where(target == 0, marginal, picked)
    for code, members in (groups or {}).items():  # "one of these classes"
        sel = torch.full((n,), float("-inf"), dtype=logp.dtype)
        sel[list(members)] = 0.0
        nll = torch.where(target == code, -torch.logsumexp(logp + sel.view(1, -1, 1, 1), 1),
                          nll)
    counted = plain | torch.isin(target, torch.tensor(list(groups or {}), dtype=target.dtype))
    ce = (nll * counted).sum() / counted.sum().clamp(min=1)
    p = logp.exp() * plain[:, None]  # group and ignored voxels take no part in the Dice
    onehot = torch.zeros_like(p).scatter_(1, idx[:, None], 1.0) * plain[:, None]
    full = (~allowed).float()[:, :, None, None]  # (B, C, 1, 1): class fully labelled
    full[:, 0] = 0.0  # background is judged through the other classes
    inter = (p * onehot * full).sum((0, 2, 3))
    denom = ((p + onehot) * full).sum((0, 2, 3))
    judged = full.sum((0, 2, 3)) > 0
    dice = (2 * inter + smooth) / (denom + smooth)
    dice_loss = (1 - dice[judged]).mean() if bool(judged.any()) else ce * 0
    return ce + dice_loss


def card_input() -> dict:
    return {"dims": 2, "channels": len(td.CONTEXT_MM), "context_mm": list(td.CONTEXT_MM),
            "spacing": list(td.SPACING), "patch": list(td.PATCH),
            "intensity": dict(td.INTENSITY), "modality": "CT", "postprocess": dict(POSTPROCESS),
            "orientation": "axial slices as a usual axial series gives them: x towards the "
                           "patient's left, y posterior, z (the context channels) superior"}


def _case_labels(model, card, case, postprocess: bool = True) -> np.ndarray:
    from medviewer.ai.inference import segment

    gen = segment(model, card, case.ct, case.spacing_zyx, want_entropy=False,
                  postprocess=postprocess)
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value.labels


def _dice(ref: np.ndarray, pred: np.ndarray) -> float:
    return 2.0 * float((ref & pred).sum()) / max(float(ref.sum() + pred.sum()), 1.0)


RULE_LUNG_METHOD = (
    "the lungs of a case whose lungs were labelled by a rule, not by TotalSegmentator (the "
    "chest CT angiogram crop C: air below -400 HU with its vessels closed, pieces of at least "
    "4 cm^2 with a lung-like median, sided at the midline; trunk_data.aerated_lung and "
    "lung_sides), on that case's held-out slab: Dice of both lungs together, and of each side "
    "(voxels of the rule's 'either side' band at the midline left out), through the app's "
    "pipeline and through the network alone (no post-processing). The post-processing "
    "completes lungs by the same kind of Hounsfield rule, so its figure flatters; the "
    "network's own figure does not")


def rule_lung_dice(pred: np.ndarray, ref: np.ndarray) -> dict:
    """Dice of the lungs against a rule reference (``ref`` holds lung_left / lung_right and
    ``ANY_LUNG`` for "either side"): both lungs as one structure, then each side with the
    either-side band left out of the comparison."""
    left, right = td.INDEX["lung_left"], td.INDEX["lung_right"]
    sides = (left, right)
    out = {"lungs": round(_dice(np.isin(ref, sides + (td.ANY_LUNG,)), np.isin(pred, sides)), 4)}
    keep = ref != td.ANY_LUNG
    for c in sides:
        out[td.LABELS[c]] = round(_dice((ref == c) & keep, (pred == c) & keep), 4)
    return out


def heldout_dice(model, card, cases, log=print) -> dict:
    """Dice per structure on each case's held-out slab, through the app's inference pipeline
    on the whole case volume (2.5D context and post-processing included); the mean over the
    cases that label the structure in their slab. A case whose lungs a rule labelled
    (``Case.rule_lungs``) adds ``rule_reference``: its lungs against that rule
    (:data:`RULE_LUNG_METHOD`)."""
    per: dict = {name: [] for name in td.LABELS[1:]}
    detail = {}
    rule = {}
    for case in cases:
        labels = _case_labels(model, card, case)
        z = case.split(held_out=True)
        pred, ref = labels[z], case.labels[z]
        if case.rule_lungs:
            alone = _case_labels(model, card, case, postprocess=False)[z]
            rule[case.name] = {"pipeline": rule_lung_dice(pred, ref),
                               "network_alone": rule_lung_dice(alone, ref)}
            log(f"held-out slab of case {case.name}, lungs against the rule: {rule[case.name]}")
        detail[case.name] = {}
        for c in case.labelled():
            r, p = ref == c, pred == c
            if not r.any():
                continue
            dice = _dice(r, p)
            per[td.LABELS[c]].append(dice)
            detail[case.name][td.LABELS[c]] = round(dice, 4)
        log(f"held-out slab of case {case.name}: {detail[case.name]}")
    dice = {k: (round(float(np.mean(v)), 4) if v else None) for k, v in per.items()}
    out = {"dice": dice, "per_case": detail}
    if rule:
        out["rule_reference"] = {"dice": rule, "method": RULE_LUNG_METHOD}
    return out


def _metrics(model, card_dict: dict, out: Path, cases, log) -> dict:
    from medviewer.ai.cards import ModelCard

    metrics = heldout_dice(model, ModelCard.from_dict(card_dict, Path(out)), cases, log)
    present = [v for v in metrics["dice"].values() if v is not None]
    return {"split": "held-out slabs", "held_out_slabs": {
        k: f"z {a}..{b - 1}" for k, (a, b) in td.HOLDOUT.items()}, **metrics,
        "mean_dice": round(float(np.mean(present)), 4),
        "dice_method": "Dice of each labelled structure on each case's held-out slab "
                       "(3D, original grid), predicted by medviewer.ai.inference.segment "
                       "on the whole case volume; the mean over the cases that label it"}


def remeasure(out: Path, log=print) -> dict:
    """An existing model folder with today's post-processing and card texts: ``input`` and
    ``limits`` rewritten, the held-out Dice measured again, the README regenerated; the
    weights (and their hash) are not touched."""
    import json

    from medviewer.ai.cards import ModelCard
    from medviewer.ai.registry import load_model
    from medviewer.ai.starters.trunk_card import LIMITS, readme_text
    from medviewer.core.atomic import atomic_write_text

    out = Path(out)
    card = json.loads((out / "model.json").read_text())
    card["input"] = card_input()
    card["limits"] = list(LIMITS)
    model = load_model(ModelCard.from_dict(card, out))
    card["metrics"] = _metrics(model, card, out, td.load_cases(), log)
    card["training"]["metrics_command"] = command_line()
    ModelCard.from_dict(card, out)  # validate before writing
    atomic_write_text(out / "model.json", json.dumps(card, indent=2) + "\n")
    atomic_write_text(out / "README.md", readme_text(card))
    return card


def train(out: Path, seed: int = 0, steps: int = 3500, lr: float = 2e-3, batch_size: int = 8,
          version: str = "1.0.0", name: str = "ct-trunk-organs", parent_version=None,
          log=print) -> dict:
    import torch

    from medviewer.ai.architectures import build

    t0 = time.time()
    seed_everything(seed)
    cases = td.load_cases()
    sampler = Sampler(cases, seed)
    model = build(ARCH, PARAMS)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=0.1)
    history, running = [], 0.0
    model.train()
    for step in range(1, steps + 1):
        x, y, allowed = sampler.batch(batch_size)
        loss = partial_label_loss(model(x), y, allowed, GROUPS)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        running += float(loss.detach())
        if step % 100 == 0 or step == steps:
            n = 100 if step % 100 == 0 else step % 100
            history.append({"step": step, "train_loss": round(running / n, 5)})
            log(f"step {step:5d} loss {running / n:.4f} ({time.time() - t0:.0f} s)", flush=True)
            running = 0.0
    model.eval()
    card = _card_dict(name, version, parent_version, seed, steps, lr, batch_size, history,
                      time.time() - t0)
    card["metrics"] = _metrics(model, card, Path(out), cases, log)
    card["training"]["wall_time_s"] = round(time.time() - t0, 1)
    from medviewer.ai.starters.trunk_card import readme_text

    write_model_folder(Path(out), model, card, readme_text(card))
    return card


def _card_dict(name, version, parent, seed, steps, lr, batch_size, history, wall) -> dict:
    import monai
    import torch

    from medviewer.ai.starters.trunk_card import DESCRIPTION, DOMAIN, LIMITS

    return {
        "name": name, "version": version, "description": DESCRIPTION, "domain": DOMAIN,
        "limits": list(LIMITS), "task": "segmentation", "labels": td.LABELS,
        "input": card_input(),
        "architecture": {"name": ARCH, "params": PARAMS},
        "weights": {"file": "weights.safetensors", "sha256": "0" * 64},
        "metrics": {},
        "training": {
            "starter": "ct-trunk",
            "data": "TotalSegmentator reference files (../shared/data/totalseg/tests/"
                    "reference_files): A example_ct.nii.gz (112 slices) with example_seg + "
                    "example_seg_fast_force_split; B example_ct_dicom/ + example_seg_dicom; "
                    "C the aorta/pulmonary report chest crop with aorta and heart masks. "
                    "Labels are TotalSegmentator model output, not manual outlines.",
            "data_sha256": td.data_hashes(),
            "label_map": {n: list(ids) for n, ids in td.STRUCTURES},
            "partial_labels": "label-0 voxels may be an unlabelled class: A near the lung "
                              "bases: heart; C: lungs, vertebrae (and liver, stomach, spleen "
                              "below the heart). C's aerated lung (by rule: air < -400 HU, "
                              "vessels closed, pieces >= 4 cm^2 per slice, from 10 slices "
                              "above the heart's base) is labelled right/left lung beyond 10 mm "
                              "of the midline between the two lungs, 'left or right lung' "
                              "within it",
            "not_used": "dcmqi's ct-3slice (its 'heart' mask outlines the stomach); the monai "
                        "and pydicom CT samples (no labels)",
            "command": command_line(), "seed": seed, "steps": steps, "batch_size": batch_size,
            "crop": CROP, "selection": "last step (no model selection)",
            "optimizer": "AdamW (weight decay 1e-4), one-cycle LR", "lr": lr,
            "loss": "marginal cross-entropy + Dice over fully labelled classes",
            "outside_scan": "air (as inference pads), labels ignored; half the windows of the "
                            "full scans are cut to a random 150-260 mm box the same way, as "
                            "the chest crop is",
            "augmentation": "context distance 2-4 mm, rotation +-12 deg, scale 0.75-1.35, "
                            "per-structure HU offset sd 15 (p 0.5), contrast removal (p 0.5), HU scale 0.92-1.08 and shift +-30, "
                            "blur (p 0.3), noise 5-40 HU (p 0.5)",
            "case_weights": CASE_WEIGHTS, "wall_time_s": round(wall, 1), "device": "cpu",
            "torch": torch.__version__, "monai": monai.__version__, "history": history,
        },
        "parent_version": parent,
        "license": "Apache-2.0 (trained on TotalSegmentator's Apache-2.0 reference files)",
    }
