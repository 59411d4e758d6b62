"""A learned denoiser: a small convolutional autoencoder with one skip connection that
predicts the noise of a 2D slice (residual learning), trained on real CT and MR slices with
synthetic Gaussian noise (:mod:`medviewer.ai.starters.denoise_ae` writes the shipped one).

It is blind: it sees no noise level. Each slice is scaled by its own 0.5-99.5th percentile
range to [0, 1] (so one network serves HU and MR units alike), denoised, and scaled back.

The shipped model lives in ``models/denoise-ae/<version>/`` with ``denoiser.json`` (its card:
architecture, normalisation, training data and noise, held-out PSNR/SSIM against the
classical filters) and ``weights.safetensors``; it is not a ``model.json`` card because it
is neither a classification nor a segmentation model and the AI panel does not run it."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np

CARD = "denoiser.json"
NAME = "denoise-ae"


def build(channels: int = 16):
    """The network: encoder (two 3x3 convs, a strided conv), decoder (a transposed conv),
    the full-resolution features joined back (one skip), a 3x3 conv to the noise."""
    import torch
    from torch import nn

    class DenoiseAE(nn.Module):
        def __init__(self, ch: int):
            super().__init__()
            act = nn.ReLU(inplace=True)
            self.enc = nn.Sequential(nn.Conv2d(1, ch, 3, padding=1), act,
                                     nn.Conv2d(ch, ch, 3, padding=1), act)
            self.down = nn.Sequential(nn.Conv2d(ch, 2 * ch, 3, stride=2, padding=1), act,
                                      nn.Conv2d(2 * ch, 2 * ch, 3, padding=1), act,
                                      nn.Conv2d(2 * ch, 2 * ch, 3, padding=1), act)
            self.up = nn.Sequential(nn.ConvTranspose2d(2 * ch, ch, 2, stride=2), act)
            self.dec = nn.Sequential(nn.Conv2d(2 * ch, ch, 3, padding=1), act,
                                     nn.Conv2d(ch, 1, 3, padding=1))

        def forward(self, x):
            h, w = x.shape[-2:]
            ph, pw = h % 2, w % 2
            xp = nn.functional.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
            e = self.enc(xp)
            d = self.up(self.down(e))
            noise = self.dec(torch.cat([e, d], 1))
            return (xp - noise)[..., :h, :w]

    return DenoiseAE(int(channels))


def scale_of(image: np.ndarray, noisy: bool = False) -> tuple:
    """(low, high): the slice's 0.5-99.5th percentiles, the range mapped to [0, 1]. ``noisy``:
    of a 3x3 mean of the slice (noise widens a noisy slice's percentiles; the network was
    trained on clean slices' scale)."""
    img = np.asarray(image, np.float32)
    if noisy:
        from scipy.ndimage import uniform_filter

        img = uniform_filter(img, 3)
    lo, hi = np.percentile(img, (0.5, 99.5))
    return float(lo), float(hi) if hi > lo else float(lo) + 1.0


def builtin_dir() -> Optional[Path]:
    """The newest shipped version's folder (None when there is none)."""
    from medviewer.ai.registry import builtin_models_dir

    root = builtin_models_dir() / NAME
    versions = sorted((p for p in root.glob("*.*.*") if (p / CARD).is_file()),
                      key=lambda p: tuple(int(v) for v in p.name.split(".")))
    return versions[-1] if versions else None


class Denoiser:
    """The shipped network, loaded once (weights hash-checked, safetensors)."""

    def __init__(self, folder: Optional[Path] = None):
        from medviewer.ai.cards import ModelError, file_sha256
        from medviewer.ai.weights import read_state_dict

        folder = Path(folder) if folder is not None else builtin_dir()
        if folder is None:
            raise ModelError(f"no {NAME} model is installed")
        self.card = json.loads((folder / CARD).read_text())
        weights = folder / self.card["weights"]["file"]
        if file_sha256(weights) != self.card["weights"]["sha256"]:
            raise ModelError(f"{weights.name}: its sha256 does not match {CARD}")
        self.model = build(self.card["architecture"]["channels"])
        self.model.load_state_dict(read_state_dict(weights), strict=True)
        self.model.eval()
        self.folder = folder

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """One 2D slice denoised, float32, in its own units."""
        import torch

        img = np.asarray(image, np.float32)
        lo, hi = scale_of(img, noisy=True)
        x = torch.from_numpy(np.ascontiguousarray((img - lo) / (hi - lo)))[None, None]
        with torch.inference_mode():
            y = self.model(x)[0, 0].numpy()
        return (y * (hi - lo) + lo).astype(np.float32)


_cached: Optional[Denoiser] = None


def shipped() -> Denoiser:
    """The shipped denoiser, loaded on first use and kept."""
    global _cached
    if _cached is None:
        _cached = Denoiser()
    return _cached
