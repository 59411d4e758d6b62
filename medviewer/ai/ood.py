"""Out-of-distribution score of a model's input: how far an image lies from the training data.

Two components, each computed on the exact network input (after the card's preprocessing):

- ``histogram``: the 1-Wasserstein distance between the input's intensity histogram (on
  [0, 1], ``bins`` bins) and the training data's mean histogram (stored in the card);
- ``features``: the Mahalanobis distance of the network's global-average-pooled features
  (bottleneck of a U-Net, penultimate layer of a classifier) from the training data's feature
  mean, with a Ledoit-Wolf shrunk covariance (mean and precision in a safetensors file listed
  in the card).

Each component is divided by its 99th percentile on held-out in-domain data (``ood.scale``);
``ood_score`` is the larger of the two, and ``in_domain`` is ``ood_score <= ood.threshold``
(the 99th percentile of ``ood_score`` on that held-out data). Slices of a volume are scored one
by one (up to :data:`MAX_SLICES`, evenly spread) and the case gets their median.
torch is imported inside the functions.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .device import release_freed_memory
from .preprocess import plan_resample, prepare_image_2d_info, to_model_tensor

__all__ = ["OodResult", "OodReference", "HIST_BINS", "MAX_SLICES", "input_histograms",
           "hist_distance", "feature_module", "sample_stats", "volume_inputs", "image_inputs",
           "assess_image", "assess_volume", "ledoit_wolf", "mahalanobis", "slice_sample"]

HIST_BINS = 32
MAX_SLICES = 8
OOD_BATCH_PIXELS = 2 * 256 * 256  # per fp32 forward: two CT slices on a model grid at a time
_MULTIPLE = 16  # U-Nets need sides divisible by 2**len(strides)


@dataclass
class OodResult:
    """``ood_score``/``in_domain`` are None when the card has no reference statistics."""

    ood_score: Optional[float]
    in_domain: Optional[bool]
    threshold: Optional[float] = None
    components: dict = field(default_factory=dict)  # name -> normalised median value
    n_samples: int = 0
    slices_out: Optional[float] = None  # fraction of the scored slices above the threshold
    note: str = ""

    def to_dict(self) -> dict:
        return {"ood_score": self.ood_score, "in_domain": self.in_domain,
                "threshold": self.threshold, "components": dict(self.components),
                "n_samples": self.n_samples, "slices_out": self.slices_out, "note": self.note}


# ---------------------------------------------------------------------------- statistics
def input_histograms(x: np.ndarray, bins: int = HIST_BINS) -> np.ndarray:
    """(N, bins) normalised histograms on [0, 1] of the first channel of inputs (N, C, ...)."""
    a = np.asarray(x, dtype=np.float32)
    flat = np.clip(a[:, 0].reshape(len(a), -1), 0.0, 1.0)
    idx = np.minimum((flat * bins).astype(np.int64), bins - 1)
    out = np.stack([np.bincount(row, minlength=bins) for row in idx]).astype(np.float64)
    return out / np.maximum(out.sum(1, keepdims=True), 1.0)


def hist_distance(hists: np.ndarray, reference) -> np.ndarray:
    """1-Wasserstein distance on [0, 1] of each histogram (N, bins) from ``reference``."""
    ref = np.asarray(reference, dtype=np.float64)
    ref = ref / max(ref.sum(), 1e-12)
    cdf = np.cumsum(np.asarray(hists, dtype=np.float64), 1)
    return np.abs(cdf - np.cumsum(ref)[None]).sum(1) / ref.size


def ledoit_wolf(x: np.ndarray) -> tuple:
    """(mean, precision, shrinkage) of samples (N, d) with Ledoit-Wolf shrinkage towards a
    scaled identity (Ledoit and Wolf 2004), so that few samples in many dimensions work."""
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    mean = x.mean(0)
    xc = x - mean
    s = xc.T @ xc / n
    mu = np.trace(s) / d
    delta = ((s - mu * np.eye(d)) ** 2).sum() / d
    sq = (xc ** 2).sum(1)  # ||x x^T - S||^2 = ||x||^4 - 2 x^T S x + ||S||^2, per sample
    beta = float((sq ** 2 - 2.0 * np.einsum("nd,de,ne->n", xc, s, xc)
                  + (s ** 2).sum()).sum()) / (d * n * n)
    shrink = float(min(1.0, beta / delta)) if delta > 0 else 1.0
    cov = shrink * mu * np.eye(d) + (1.0 - shrink) * s
    return mean, np.linalg.pinv(cov, hermitian=True), shrink


def mahalanobis(feats: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """sqrt((f - mean)^T P (f - mean) / d) per row of ``feats`` (N, d)."""
    diff = np.asarray(feats, dtype=np.float64) - np.asarray(mean, dtype=np.float64)[None]
    q = np.einsum("nd,de,ne->n", diff, np.asarray(precision, dtype=np.float64), diff)
    return np.sqrt(np.maximum(q, 0.0) / diff.shape[1])


# ---------------------------------------------------------------------------- features
def feature_module(model, arch_name: str):
    """The layer whose (pooled) output is the feature vector, or None when unknown."""
    if arch_name == "monai_resnet18":
        return model.avgpool
    if arch_name == "monai_densenet121":
        return model.features
    if arch_name == "small_cnn":
        return model[8]  # ReLU after the hidden fully-connected layer
    if arch_name == "monai_basicunet":
        return model.down_4
    if arch_name == "monai_unet":
        node = model.model
        while True:  # down, SkipConnection(submodule), up: descend to the bottom block
            skips = [m for m in node.children() if type(m).__name__ == "SkipConnection"]
            if not skips:
                return node
            node = skips[0].submodule
    return None


@contextmanager
def _captured(module, sink: list):
    def hook(_mod, _inp, out):
        t = out.float()
        sink.append((t.mean(dim=tuple(range(2, t.ndim))) if t.ndim > 2 else t).cpu().numpy())

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _pad(t, multiple: int):
    import torch.nn.functional as F

    h, w = t.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return F.pad(t, (0, pw, 0, ph)) if ph or pw else t


def sample_stats(model, card, inputs: np.ndarray, device: str = "cpu", batch: int = 8,
                 check=None) -> tuple:
    """(histograms (N, bins), pooled features (N, d) or None) of network inputs (N, C, h, w)."""
    import torch

    bins = int((card.ood.get("histogram") or {}).get("bins", HIST_BINS)) if card.ood else HIST_BINS
    hists = input_histograms(inputs, bins)
    module = feature_module(model, card.architecture["name"])
    if module is None or np.asarray(inputs).ndim != 4:
        return hists, None
    seg = card.task == "segmentation"
    sink: list = []
    pixels = int(np.prod(np.asarray(inputs).shape[2:]))
    batch = max(1, min(batch, OOD_BATCH_PIXELS // max(1, pixels)))  # a few slices of a CT
    with _captured(module, sink), torch.inference_mode():
        for i in range(0, len(inputs), batch):
            if check is not None:
                check()
            t = torch.from_numpy(np.ascontiguousarray(inputs[i:i + batch], dtype=np.float32))
            model(_pad(t, _MULTIPLE).to(device) if seg else t.to(device))
    return hists, np.concatenate(sink).astype(np.float64)


def image_inputs(card, images, invert: bool = False, window: Optional[tuple] = None):
    """Network inputs (N, C, h, w) of 2D images, exactly as classification prepares them."""
    return np.stack([prepare_image_2d_info(im, card, invert=invert, window=window)[0]
                     for im in images])


def slice_sample(z_range: tuple, n: int = MAX_SLICES) -> list:
    z0, z1 = (int(v) for v in z_range)
    return sorted({int(round(v)) for v in np.linspace(z0, z1 - 1, min(n, z1 - z0))})


def volume_inputs(card, volume_array, spacing_zyx, z_indices) -> np.ndarray:
    """Network inputs (N, C, y', x') of slices ``z_indices`` on a 2D model's grid, exactly as
    segmentation prepares them."""
    info = plan_resample(volume_array, spacing_zyx, card)
    if info.dims != 2:
        raise ValueError("slice inputs are for 2D models")
    parts = [to_model_tensor(volume_array, info, (z, z + 1)).numpy() for z in z_indices]
    return np.concatenate(parts, axis=1).transpose(1, 0, 2, 3)  # (C, N, ...) -> (N, C, ...)


# ---------------------------------------------------------------------------- scoring
@dataclass
class OodReference:
    hist: Optional[np.ndarray]
    mean: Optional[np.ndarray]
    precision: Optional[np.ndarray]
    scale: dict
    threshold: float

    @classmethod
    def from_card(cls, card) -> Optional["OodReference"]:
        ood = card.ood or {}
        if not ood.get("histogram") and not ood.get("features"):
            return None
        mean = precision = None
        path = card.ood_features_path
        if path is not None:
            from safetensors.numpy import load_file

            tensors = load_file(str(path))
            mean, precision = tensors["mean"], tensors["precision"]
        hist = ood.get("histogram")
        return cls(None if not hist else np.asarray(hist["reference"], np.float64), mean,
                   precision, dict(ood.get("scale", {})), float(ood.get("threshold", 1.0)))

    def components(self, hists: np.ndarray, feats: Optional[np.ndarray]) -> dict:
        """Per-sample normalised component values {name: (N,)}."""
        out = {}
        if self.hist is not None:
            out["histogram"] = hist_distance(hists, self.hist) / self.scale["histogram"]
        if self.mean is not None and feats is not None:
            out["features"] = mahalanobis(feats, self.mean, self.precision) / self.scale["features"]
        return out

    def scores(self, hists: np.ndarray, feats: Optional[np.ndarray]) -> np.ndarray:
        comps = self.components(hists, feats)
        return np.max(np.stack(list(comps.values())), axis=0)

    def result(self, hists: np.ndarray, feats: Optional[np.ndarray]) -> OodResult:
        comps = self.components(hists, feats)
        per = np.max(np.stack(list(comps.values())), axis=0)
        score = float(np.median(per))
        return OodResult(round(score, 4), bool(score <= self.threshold), self.threshold,
                         {k: round(float(np.median(v)), 4) for k, v in comps.items()},
                         int(len(per)), round(float((per > self.threshold).mean()), 4))


def _unscored(note: str) -> OodResult:
    return OodResult(None, None, note=note)


def assess_image(model, card, image, device: str = "cpu", invert: bool = False,
                 window: Optional[tuple] = None) -> OodResult:
    """The OOD result of one 2D image under a classification card."""
    ref = OodReference.from_card(card)
    if ref is None:
        return _unscored("the model card has no reference statistics")
    x = image_inputs(card, [image], invert, window)
    return ref.result(*sample_stats(model, card, x, device))


def assess_volume(model, card, volume_array, spacing_zyx, z_range: tuple, device: str = "cpu",
                  check=None) -> OodResult:
    """The OOD result of the slices ``z_range`` of a volume under a segmentation card (up to
    :data:`MAX_SLICES` of them, evenly spread; 3D models: the intensity histogram only)."""
    ref = OodReference.from_card(card)
    if ref is None:
        return _unscored("the model card has no reference statistics")
    zs = slice_sample(z_range)
    if int(card.input.get("dims", 2)) == 2:
        x = volume_inputs(card, volume_array, spacing_zyx, zs)
        stats = sample_stats(model, card, x, device, check=check)
        release_freed_memory()
        return ref.result(*stats)
    info = plan_resample(volume_array, spacing_zyx, card)
    x = to_model_tensor(volume_array, info).numpy()  # (C, z', y', x')
    picks = slice_sample((0, x.shape[1]))
    res = ref.result(input_histograms(x[:, picks].transpose(1, 0, 2, 3)), None)
    res.note = "3D model: intensity histogram only"
    return res
