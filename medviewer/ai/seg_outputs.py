"""Segmentation outputs on the volume grid: labels, and on request entropy, probabilities, variance.

The network's softmax arrives on the model grid (K channels at the model's spacing). What the
app needs on the volume grid is the label map and one uncertainty channel, so the default path
brings back only those: labels by an argmax of the bilinear upsample computed where it can
differ from the coarse argmax, and the normalised entropy computed on the model grid and
upsampled as one channel (7x less resampling than bringing every class back). Full
probabilities on the volume grid are still available (``want_probs``) for tests and tools.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

import numpy as np


def argmax0(t):
    """argmax over the channels of ``t`` (K, ...) -> uint8 (``max`` is several times faster
    than ``argmax`` over a leading dimension on the CPU)."""
    import torch

    return t.max(0).indices.to(torch.uint8)


def normalised_entropy_t(p, eps: float = 1e-7):
    """Shannon entropy over channel 0 of probabilities ``p`` (K, ...) divided by log K -> [0, 1]."""
    import torch

    k = p.shape[0]
    q = p.float().clamp_min(eps)
    ent = -(q * torch.log(q)).sum(0) / math.log(max(k, 2))
    return ent.clamp_(0.0, 1.0)


@lru_cache(maxsize=16)
def _stencil(n_in: int, n_out: int):
    """Bilinear (align_corners=False) source stencil per output index: (top/left index,
    the other index, weight of the other) as torch tensors."""
    import torch

    src = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5).clamp(min=0)
    i0 = src.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    return i0, i1, (src - i0).float()


def labels_up(p, size: tuple):
    """Argmax of the bilinear upsample of ``p`` (K, y, x) to ``size`` without computing the
    upsample: where the 2x2 source stencil agrees on one class a convex combination keeps it;
    only the other (boundary) pixels are interpolated, over all channels."""
    import torch

    if p.shape[0] > 127:
        raise ValueError("more than 127 classes")
    low = argmax0(p)  # (y, x)
    nxt = torch.cat([low[1:], low[-1:]], 0)
    same = (low == nxt) & (low == torch.cat([low[:, 1:], low[:, -1:]], 1))
    same &= low == torch.cat([nxt[:, 1:], nxt[:, -1:]], 1)
    y0, y1, wy = _stencil(p.shape[-2], size[0])
    x0, x1, wx = _stencil(p.shape[-1], size[1])
    packed = low | ((~same).to(torch.uint8) << 7)  # class + "stencil disagrees" bit: one gather
    up = packed.index_select(0, y0).index_select(1, x0)
    lab = up & 127
    idx = (up >= 128).view(-1).nonzero().squeeze(1)
    if idx.numel():
        yy, xx = idx // size[1], idx % size[1]
        flat = p.reshape(p.shape[0], -1).float()
        nx = p.shape[-1]
        ay, by, fy = y0[yy], y1[yy], wy[yy]
        ax, bx, fx = x0[xx], x1[xx], wx[xx]
        top = flat[:, ay * nx + ax] * (1 - fx) + flat[:, ay * nx + bx] * fx
        bot = flat[:, by * nx + ax] * (1 - fx) + flat[:, by * nx + bx] * fx
        lab.view(-1)[idx] = argmax0(top * (1 - fy) + bot * fy)
    return lab


@dataclass
class SegOutputs:
    """Output arrays of one segmentation job: ``labels`` (z, y, x) on the whole volume grid;
    ``entropy`` / ``variance`` (z1 - z0, y, x) float16 and ``probs`` (K, z1 - z0, y, x)
    float16 for the slices run, each None unless asked for."""

    labels: np.ndarray
    probs: Optional[np.ndarray]
    variance: Optional[np.ndarray]
    z0: int
    n_labels: int
    entropy: Optional[np.ndarray] = None

    @property
    def channels(self) -> int:
        return self.n_labels + (1 if self.variance is not None else 0)

    def check_channels(self, n: int) -> None:
        if n != self.channels:
            raise ValueError(f"the model gives {n - (self.channels - self.n_labels)} channels "
                             f"but its card lists {self.n_labels} labels")

    def store(self, probs_t, a: int, b: int) -> None:
        """Volume-grid channels (K [+1], b - a, y, x) -> labels and the asked-for maps."""
        import torch

        k, z = self.n_labels, slice(a - self.z0, b - self.z0)
        torch.from_numpy(self.labels[a:b]).copy_(argmax0(probs_t[:k]))
        if self.probs is not None:  # one pass: cast while copying into the float16 output
            torch.from_numpy(self.probs[:, z]).copy_(probs_t[:k])
        if self.entropy is not None:
            torch.from_numpy(self.entropy[z]).copy_(normalised_entropy_t(probs_t[:k]))
        if self.variance is not None:
            torch.from_numpy(self.variance[z]).copy_(probs_t[k])

    def store_2d(self, p, size: tuple, a: int) -> None:
        """Model-grid channels ``p`` (K [+1], B, y', x') of slices ``a..a+B`` -> the volume
        grid ``size`` (y, x), slice by slice (each slice's work stays in cache)."""
        import torch

        from .preprocess import _resize_xy

        k = self.n_labels
        up = p.shape[-2] < size[0] and p.shape[-1] < size[1]  # pure bilinear upsampling
        extra = []  # model-grid channels that come back by interpolation
        if self.entropy is not None:
            extra.append(("entropy", None))
        if self.variance is not None:
            extra.append(("variance", k))
        for i in range(p.shape[1]):
            src = p[:, i]
            z = a + i - self.z0
            full = None
            if self.probs is not None or not up:
                full = _resize_xy(src[None], size, True)[0]
                torch.from_numpy(self.labels[a + i]).copy_(argmax0(full[:k]))
                if self.probs is not None:
                    torch.from_numpy(self.probs[:, z]).copy_(full[:k])
            else:
                torch.from_numpy(self.labels[a + i]).copy_(labels_up(src[:k], size))
            if not extra:
                continue
            maps = [normalised_entropy_t(src[:k]) if ch is None else src[ch] for _, ch in extra]
            small = torch.stack(maps)[None]
            back = _resize_xy(small, size, True)[0]
            for (name, _), m in zip(extra, back):
                torch.from_numpy(getattr(self, name)[z]).copy_(m)
