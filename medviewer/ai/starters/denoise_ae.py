"""Trainer of the shipped learned denoiser (``models/denoise-ae/<version>``):
``python -m medviewer.ai.starters denoise-ae --out models/denoise-ae/1.0.0``.

Data: real CT and MR slices of ``../shared/data`` (the chest CT, the TotalSegmentator CT and
MR, two brain MRs and the MNI152 template). Held out, never trained on: the last fifth of every
series' slices and the whole of the second brain MR. Noise: Gaussian, its standard deviation
drawn per patch between 0.5 % and 8 % of the slice's 0.5-99.5th percentile range, added to
64x64 patches of slices scaled to [0, 1]. Evaluation on the held-out slices at 3 % (CT) and
5 % (MR) noise: PSNR of the noisy slice and of the network, in the card;
``benchmarks/denoise.py`` adds the classical filters of services.enhance (same slices, same
noise) and writes their PSNR/SSIM into the card too."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from medviewer.ai.denoise import CARD, NAME, build, scale_of
from medviewer.ai.starters.common import REPO

SHARED = REPO / ".." / "shared" / "data"
NOISE = (0.005, 0.08)  # share of the slice's range
EVAL_NOISE = {"CT": 0.03, "MR": 0.05}
PATCH = 64


def _series(shared: Path) -> list:
    """(name, modality, path, held-out whole?) of the training and evaluation series."""
    ts = shared / "totalseg" / "tests" / "reference_files"
    mni = shared / "nilearn_mni152"
    brains = shared / "pyradiomics_data" / "data"
    return [("chest CT", "CT", shared / "tcia_cmb_crc_ct_chest", False),
            ("TotalSegmentator CT", "CT", ts / "example_ct.nii.gz", False),
            ("TotalSegmentator MR", "MR", ts / "example_mr_sm.nii.gz", False),
            ("brain MR 1", "MR", brains / "brain1_image.nrrd", False),
            ("MNI152 T1", "MR", mni / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz", False),
            ("brain MR 2", "MR", brains / "brain2_image.nrrd", True)]


def _read(path: Path) -> tuple:
    """(array (z, y, x) float32, in-plane spacing (x, y) mm)."""
    import SimpleITK as sitk

    if path.is_dir():
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(path)))
        img = reader.Execute()
    else:
        img = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(img).astype(np.float32), tuple(img.GetSpacing()[:2])


def load_slices(shared: Path = SHARED, every: int = 1) -> tuple:
    """(train, held_out): lists of (series name, modality, slice float32 scaled to [0, 1],
    (low, high), in-plane spacing (x, y) mm); nearly empty slices are left out."""
    train, held = [], []
    for name, modality, path, whole in _series(shared):
        arr, spacing = _read(path)
        if name == "MNI152 T1":
            arr = arr[20:-20:4]  # axial slices through the brain, every 4 mm
        n = arr.shape[0]
        cut = n if whole else int(n * 0.8)
        for z in range(0, n, every):
            sl = arr[z]
            lo, hi = scale_of(sl)
            if (sl > lo + 0.1 * (hi - lo)).mean() < 0.05:
                continue  # empty slice
            item = (name, modality, np.clip((sl - lo) / (hi - lo), -0.1, 1.1), (lo, hi), spacing)
            (held if whole or z >= cut else train).append(item)
    return train, held


def _batches(train: list, rng, batch: int):
    import torch

    while True:
        xs, ys = [], []
        for i in rng.integers(0, len(train), batch):
            img = train[i][2]
            h, w = img.shape
            if h < PATCH or w < PATCH:
                img = np.pad(img, ((0, max(0, PATCH - h)), (0, max(0, PATCH - w))), mode="reflect")
                h, w = img.shape
            y0, x0 = rng.integers(0, h - PATCH + 1), rng.integers(0, w - PATCH + 1)
            clean = img[y0:y0 + PATCH, x0:x0 + PATCH]
            if rng.random() < 0.5:
                clean = clean[:, ::-1]
            sigma = rng.uniform(*NOISE)
            ys.append(clean)
            xs.append(clean + rng.normal(0, sigma, clean.shape))
        yield (torch.from_numpy(np.stack(xs)[:, None].astype(np.float32)),
               torch.from_numpy(np.stack(ys)[:, None].astype(np.float32)))


def noisy_copy(held: list, seed: int = 1) -> list:
    """The held-out slices with :data:`EVAL_NOISE` added (the same noise every time)."""
    rng = np.random.default_rng(seed)
    return [(clean + rng.normal(0, EVAL_NOISE[modality], clean.shape)).astype(np.float32)
            for _, modality, clean, _, _ in held]


def run(model, image: np.ndarray) -> np.ndarray:
    """``model`` on one [0, 1] slice."""
    import torch

    with torch.inference_mode():
        return model(torch.from_numpy(np.ascontiguousarray(image))[None, None])[0, 0].numpy()


def evaluate(model, held: list) -> dict:
    """Held-out PSNR (dB, range 1) per modality: the noisy slices and ``model``'s output (the
    classical filters are compared in ``benchmarks/denoise.py``, which writes them into the
    card)."""
    rows: dict = {}
    for (_, modality, clean, _, _), noisy in zip(held, noisy_copy(held)):
        for key, out in (("noisy", noisy), ("learned", run(model, noisy))):
            mse = float(np.mean((clean - out) ** 2))
            rows.setdefault(modality, {}).setdefault(key, []).append(10 * np.log10(1 / mse))
    return {m: {k: round(float(np.mean(v)), 2) for k, v in per.items()} for m, per in rows.items()}


def train(out: Path, seed: int = 0, steps: int = 2000, batch: int = 8, channels: int = 16,
          shared: Path = SHARED, log=print) -> dict:
    import torch

    from medviewer.ai.weights import save_weights
    from medviewer.core.atomic import atomic_write_text

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    t0 = time.time()
    tr, held = load_slices(shared)
    log(f"{len(tr)} training slices, {len(held)} held-out slices ({time.time() - t0:.1f} s)")
    model = build(channels)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    data = _batches(tr, rng, batch)
    model.train()
    for step in range(steps):
        x, y = next(data)
        loss = torch.nn.functional.l1_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 250 == 0 or step == steps - 1:
            log(f"step {step}: L1 {float(loss):.5f} ({time.time() - t0:.0f} s)")
    model.eval()
    metrics = evaluate(model, held)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sha = save_weights(model, out / "weights.safetensors")
    card = {"name": NAME, "version": out.name, "task": "denoising",
            "description": "Blind 2D denoiser for CT and MR slices: a convolutional "
                           "autoencoder with one skip connection that predicts the noise.",
            "architecture": {"name": "denoise_ae", "channels": channels},
            "weights": {"file": "weights.safetensors", "sha256": sha},
            "input": {"dims": 2, "channels": 1, "normalisation":
                      "each slice scaled by its own 0.5-99.5th percentiles to [0, 1]"},
            "training": {"seed": seed, "steps": steps, "batch": batch, "patch": PATCH,
                         "loss": "L1", "optimiser": "Adam 1e-3, cosine",
                         "noise": f"Gaussian, sd {NOISE[0]:.3f}-{NOISE[1]:.2f} of the range",
                         "slices": len(tr), "seconds": round(time.time() - t0, 1),
                         "data": [s[0] for s in _series(shared) if not s[3]],
                         "held_out": "the last fifth of every series' slices and all of "
                                     + ", ".join(s[0] for s in _series(shared) if s[3])},
            "metrics": {"held_out_noise": EVAL_NOISE, "psnr_db": metrics},
            "limits": ["Trained on Gaussian noise only: real CT noise is correlated and "
                       "low-dose streaks are not removed.",
                       "2D: each slice on its own; slices of very different noise levels in "
                       "one series are each treated on their own.",
                       "Do not use it to judge fine, low-contrast findings: like every "
                       "denoiser it can smooth them away."],
            "license": "Apache-2.0 (trained on the shared data; see their licences)"}
    atomic_write_text(out / CARD, json.dumps(card, indent=2, sort_keys=True))
    log(json.dumps(metrics, indent=1))
    return card
