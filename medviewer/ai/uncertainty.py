"""Uncertainty: softmax entropy, MC-dropout and test-time-augmentation variance, case scores.

- :func:`entropy` of probabilities ``(C, ...)`` -> ``(...)``, by default divided by ``log C``
  so that 0 = certain (one-hot) and 1 = uniform.
- :func:`mc_dropout` runs a network ``n`` times with only its Dropout layers in train mode
  (BatchNorm stays in eval), restoring every module's mode afterwards; :func:`tta` averages
  flipped inputs. Both return ``(mean_probs, variance)`` where the variance is the mean over
  classes of the per-class probability variance (zero for a deterministic network).
- :func:`most_uncertain_slice`, :func:`case_score` summarise an entropy map for navigation and
  the review queue. For segmentation volumes, ``inference.segment(..., variance="mc_dropout")``
  produces a variance map on the volume grid with the same machinery.
"""
from __future__ import annotations

import contextlib
from typing import Optional, Sequence

import numpy as np

__all__ = ["entropy", "has_dropout", "dropout_enabled", "mc_dropout", "tta",
           "most_uncertain_slice", "case_score", "class_entropy"]


def entropy(probs, normalise: bool = True, axis: int = 0) -> np.ndarray:
    """Shannon entropy over ``axis`` of class probabilities -> float32 map (chunked, so a
    (C, z, y, x) float16 volume needs no float32 copy of the whole thing)."""
    p = np.asarray(probs)
    if p.shape[axis] < 2:
        raise ValueError("entropy needs at least two classes")
    p = np.moveaxis(p, axis, 0)
    n_classes = p.shape[0]
    out = np.empty(p.shape[1:], np.float32)
    flat_in = p.reshape(n_classes, -1)
    flat_out = out.reshape(-1)
    step = 1 << 22
    for a in range(0, flat_out.size, step):
        q = flat_in[:, a:a + step].astype(np.float32)
        q = np.clip(q, 0.0, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(q > 0, q * np.log(q), 0.0)
        flat_out[a:a + step] = -terms.sum(0)
    np.maximum(out, 0.0, out=out)
    if normalise:
        out /= np.float32(np.log(n_classes))
    return out


def class_entropy(probs: dict) -> float:
    """Normalised entropy of one classification result's probabilities ({label: p})."""
    return float(entropy(np.asarray(list(probs.values()), dtype=np.float64)))


def _dropout_types():
    import torch.nn as nn

    return (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
            nn.FeatureAlphaDropout)


def has_dropout(model) -> bool:
    """True when ``model`` has Dropout layers with p > 0 (MC-dropout makes sense)."""
    kinds = _dropout_types()
    return any(isinstance(m, kinds) and float(getattr(m, "p", 0)) > 0 for m in model.modules())


@contextlib.contextmanager
def dropout_enabled(model):
    """Model in eval mode except its Dropout layers (train mode); every mode restored after."""
    modes = {m: m.training for m in model.modules()}
    kinds = _dropout_types()
    try:
        model.eval()
        for m in model.modules():
            if isinstance(m, kinds):
                m.train(True)
        yield model
    finally:
        for m, mode in modes.items():
            m.training = mode


def _as_tensor(x, device: str):
    import torch

    t = torch.as_tensor(np.asarray(x, dtype=np.float32)) if not torch.is_tensor(x) else x
    return t.to(device)


def _mean_var(samples):
    import torch

    stack = torch.stack(samples)  # (n, N, C, ...)
    mean = stack.mean(0)
    var = stack.var(0, unbiased=False).mean(1)  # mean over classes -> (N, ...)
    return mean.cpu().numpy(), var.cpu().numpy()


def mc_dropout(model, inputs, n: int = 8, device: str = "cpu", seed: Optional[int] = None):
    """``n`` stochastic passes with dropout on -> (mean softmax (N, C, ...), variance (N, ...))."""
    import torch

    x = _as_tensor(inputs, device)
    gen_state = torch.random.get_rng_state() if seed is not None else None
    if seed is not None:
        torch.manual_seed(int(seed))
    samples = []
    try:
        with dropout_enabled(model), torch.no_grad():
            for _ in range(max(2, int(n))):
                samples.append(torch.softmax(model(x).float(), dim=1))
    finally:
        if gen_state is not None:
            torch.random.set_rng_state(gen_state)
    return _mean_var(samples)


def tta(model, inputs, flips: Sequence[Sequence[int]] = ((), (-1,), (-2,)),
        device: str = "cpu"):
    """Test-time augmentation by flips (spatial dims, e.g. ``(-1,)``; ``()`` = identity).
    Segmentation outputs are flipped back -> (mean softmax, variance) like :func:`mc_dropout`."""
    import torch

    x = _as_tensor(inputs, device)
    samples = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for dims in flips:
                dims = tuple(int(d) for d in dims)
                xi = torch.flip(x, dims) if dims else x
                p = torch.softmax(model(xi).float(), dim=1)
                if dims and p.ndim == x.ndim:
                    p = torch.flip(p, dims)
                samples.append(p)
    finally:
        model.train(was_training)
    return _mean_var(samples)


def most_uncertain_slice(entropy_zyx: np.ndarray, axis: int = 0,
                         labels: Optional[np.ndarray] = None) -> int:
    """Index along ``axis`` with the highest mean entropy (over predicted foreground and its
    border when ``labels`` are given and not empty)."""
    e = np.asarray(entropy_zyx, dtype=np.float32)
    other = tuple(a for a in range(e.ndim) if a != axis)
    if labels is not None and np.any(labels):
        mask = _foreground_band(np.asarray(labels))
        num = np.where(mask, e, 0.0).sum(axis=other)
        den = mask.sum(axis=other)
        score = np.where(den > 0, num / np.maximum(den, 1), -1.0)
        return int(np.argmax(score))
    return int(np.argmax(e.mean(axis=other)))


def _foreground_band(labels: np.ndarray, border: int = 2) -> np.ndarray:
    """Foreground voxels plus a ``border``-voxel band around them (computed in a bounding box)."""
    from scipy.ndimage import binary_dilation

    fg = labels > 0
    mask = np.zeros(fg.shape, bool)
    idx = np.nonzero(fg)
    if idx[0].size == 0:
        return mask
    box = tuple(slice(max(0, int(i.min()) - border), int(i.max()) + border + 1) for i in idx)
    mask[box] = binary_dilation(fg[box], iterations=border)
    return mask


def case_score(entropy_map: np.ndarray, labels: Optional[np.ndarray] = None,
               border: int = 2) -> float:
    """Case-level uncertainty for the review queue: mean entropy over the predicted foreground
    and its ``border``-voxel band (whole map when nothing was predicted)."""
    e = np.asarray(entropy_map, dtype=np.float32)
    if labels is None or not np.any(labels):
        return float(e.mean()) if e.size else 0.0
    lab = np.asarray(labels)
    if lab.shape != e.shape:
        raise ValueError(f"labels {lab.shape} and entropy {e.shape} differ in shape")
    mask = _foreground_band(lab, border)
    return float(e[mask].mean())
