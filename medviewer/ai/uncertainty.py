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


class StreamingScore:
    """:func:`case_score` and :func:`most_uncertain_slice` (axis 0, no labels) of an entropy
    volume fed batch by batch in slice order, keeping only the last ``border`` slices: the
    foreground band of slice z (labels > 0 dilated by ``border`` voxels in 3D, 6-connected,
    as :func:`_foreground_band`) needs the labels of z - border .. z + border.

    ``add(a, entropy, labels)`` (the ``entropy_sink`` of ``inference.segment``): slices
    ``a..a+B`` of the run ``z_range``; ``mask(z, entropy_slice)`` may zero the entropy
    outside the body in place first (so a kept entropy volume is masked too). Sums are float64;
    no float copy of the volume is made."""

    def __init__(self, z_range: tuple, border: int = 2, mask=None):
        self.z0, self.z1 = (int(v) for v in z_range)
        self.border, self.mask = int(border), mask
        n = self.z1 - self.z0
        self.total = np.zeros(n)  # per slice: sum of entropy over the slice
        self.band_sum, self.band_n = np.zeros(n), np.zeros(n, np.int64)
        self.pixels = 0
        self._pending: dict = {}  # z -> entropy slice (float16) waiting for later labels
        self._fg: dict = {}  # z -> (fg, fg dilated by 1, ..., by border) in-plane
        self._next = self.z0  # the next slice to add

    def add(self, a: int, entropy: np.ndarray, labels: np.ndarray) -> None:
        if a != self._next:
            raise ValueError(f"slices must come in order: expected {self._next}, got {a}")
        for i in range(entropy.shape[0]):
            z = a + i
            e = entropy[i]
            if self.mask is not None:
                self.mask(z, e)
            self.pixels = e.size
            self.total[z - self.z0] = float(e.sum(dtype=np.float64))
            self._fg[z] = self._dilations(labels[i] > 0)
            self._pending[z] = e.copy() if self.border else e
            self._next = z + 1
            self._settle(z - self.border)

    def _dilations(self, fg: np.ndarray) -> list:
        from scipy.ndimage import binary_dilation

        out = [fg]
        if fg.any():
            for _ in range(self.border):
                out.append(binary_dilation(out[-1]))
        else:
            out += [fg] * self.border
        return out

    def _settle(self, z: int) -> None:
        """Score slice z (its band's labels are all known); forget what is no longer needed."""
        if z < self.z0 or z not in self._pending:
            return
        band = None
        for dz in range(-self.border, self.border + 1):
            fgs = self._fg.get(z + dz)
            if fgs is None:
                continue
            part = fgs[self.border - abs(dz)]
            band = part.copy() if band is None else band | part
        e = self._pending.pop(z)
        k = z - self.z0
        self.band_n[k] = int(np.count_nonzero(band))
        if self.band_n[k]:
            self.band_sum[k] = float(e[band].sum(dtype=np.float64))
        self._fg.pop(z - self.border, None)

    def finish(self) -> tuple:
        """(case score, index of the most uncertain slice within the run) once every slice
        of the run was added."""
        if self._next != self.z1:
            raise ValueError(f"slices {self._next}..{self.z1 - 1} were never added")
        for z in range(self.z1 - self.border, self.z1):
            self._settle(z)
        n = self.z1 - self.z0
        count = int(self.band_n.sum())
        if count:
            score = float(self.band_sum.sum() / count)
        else:
            score = float(self.total.sum() / max(1, self.pixels * n)) if n else 0.0
        most = int(np.argmax(self.total)) if n else 0
        return score, most
