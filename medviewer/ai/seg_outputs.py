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
from typing import Callable, Optional

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
def _stencil(n_in: int, n_out: int, device: str = "cpu"):
    """Bilinear (align_corners=False) source stencil per output index: (top/left index,
    the other index, weight of the other) as torch tensors on ``device``."""
    import torch

    src = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5).clamp(min=0)
    i0 = src.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    return tuple(t.to(device) for t in (i0, i1, (src - i0).float()))


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
    y0, y1, wy = _stencil(p.shape[-2], size[0], str(p.device))
    x0, x1, wx = _stencil(p.shape[-1], size[1], str(p.device))
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


class _Sink:
    """Where one output of a batch of slices goes: straight into the numpy output on the CPU;
    on a GPU into a device buffer that is copied back once per batch (:meth:`flush`)."""

    def __init__(self, array: Optional[np.ndarray], device):
        import torch

        self.array = array
        on_host = array is None or device.type == "cpu"
        self.host = None if array is None else torch.from_numpy(array)
        self.buf = self.host if on_host else torch.empty(self.host.shape,
                                                         dtype=self.host.dtype, device=device)

    def flush(self) -> None:
        if self.host is not None and self.buf is not self.host:
            self.host.copy_(self.buf)


@dataclass
class SegOutputs:
    """Output arrays of one segmentation job: ``labels`` (z, y, x) on the whole volume grid;
    ``entropy`` / ``variance`` (z1 - z0, y, x) float16 and ``probs`` (K, z1 - z0, y, x)
    float16 for the slices run, each None unless asked for. ``entropy_sink(a, entropy,
    labels)`` hears each batch's entropy (B, y, x) float16 and labels in slice order (the
    entropy is a temporary when ``entropy`` is None: the volume is never kept then)."""

    labels: np.ndarray
    probs: Optional[np.ndarray]
    variance: Optional[np.ndarray]
    z0: int
    n_labels: int
    entropy: Optional[np.ndarray] = None
    entropy_sink: Optional[Callable] = None

    @property
    def channels(self) -> int:
        return self.n_labels + (1 if self.variance is not None else 0)

    def check_channels(self, n: int) -> None:
        if n != self.channels:
            raise ValueError(f"the model gives {n - (self.channels - self.n_labels)} channels "
                             f"but its card lists {self.n_labels} labels")

    def _entropy_view(self, a: int, b: int) -> Optional[np.ndarray]:
        """Where slices a..b's entropy goes: the kept volume, or a batch temporary for the
        sink, or nowhere."""
        if self.entropy is not None:
            return self.entropy[a - self.z0:b - self.z0]
        if self.entropy_sink is not None:
            return np.empty((b - a,) + self.labels.shape[1:], np.float16)
        return None

    def hand_over(self, a: int, ent: Optional[np.ndarray]) -> None:
        """Slices from ``a`` to the entropy sink (in slice order: the caller's duty)."""
        if self.entropy_sink is not None and ent is not None:
            self.entropy_sink(a, ent, self.labels[a:a + ent.shape[0]])

    def store(self, probs_t, a: int, b: int) -> None:
        """Volume-grid channels (K [+1], b - a, y, x) -> labels and the asked-for maps."""
        import torch

        k, z = self.n_labels, slice(a - self.z0, b - self.z0)
        torch.from_numpy(self.labels[a:b]).copy_(argmax0(probs_t[:k]))
        if self.probs is not None:  # one pass: cast while copying into the float16 output
            torch.from_numpy(self.probs[:, z]).copy_(probs_t[:k])
        ent = self._entropy_view(a, b)
        if ent is not None:
            torch.from_numpy(ent).copy_(normalised_entropy_t(probs_t[:k]))
        if self.variance is not None:
            torch.from_numpy(self.variance[z]).copy_(probs_t[k])
        self.hand_over(a, ent)

    def store_2d(self, p, size: tuple, a: int, hand_over: bool = True) -> Optional[np.ndarray]:
        """Model-grid channels ``p`` (K [+1], B, y', x') of slices ``a..a+B`` -> the volume
        grid ``size`` (y, x), slice by slice (each slice's work stays in cache). ``p`` may
        live on a GPU: the work is done there and each output comes back once per batch.
        Returns the batch's entropy (or None); ``hand_over=False`` leaves handing it to the
        sink to the caller (batches stored out of order)."""
        from .preprocess import _resize_xy

        k, n = self.n_labels, p.shape[1]
        zs = slice(a - self.z0, a - self.z0 + n)
        up = p.shape[-2] < size[0] and p.shape[-1] < size[1]  # pure bilinear upsampling
        ent = self._entropy_view(a, a + n)
        labels = _Sink(self.labels[a:a + n], p.device)
        probs = _Sink(None if self.probs is None else self.probs[:, zs], p.device)
        extra = [(name, ch, _Sink(arr, p.device)) for name, ch, arr in (
            ("entropy", None, ent), ("variance", k, None if self.variance is None
                                     else self.variance[zs])) if arr is not None]
        for i in range(n):
            src = p[:, i]
            if self.probs is not None or not up:
                full = _resize_xy(src[None], size, True)[0]
                labels.buf[i].copy_(argmax0(full[:k]))
                if self.probs is not None:
                    probs.buf[:, i].copy_(full[:k])
            else:
                labels.buf[i].copy_(labels_up(src[:k], size))
            if not extra:
                continue
            import torch

            maps = [normalised_entropy_t(src[:k]) if ch is None else src[ch] for _, ch, _ in extra]
            back = _resize_xy(torch.stack(maps)[None], size, True)[0]
            for (_, _, sink), m in zip(extra, back):
                sink.buf[i].copy_(m)
        for sink in [labels, probs] + [e[2] for e in extra]:
            sink.flush()
        if hand_over:
            self.hand_over(a, ent)
        return ent
