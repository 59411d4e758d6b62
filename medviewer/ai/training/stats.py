"""Statistics of the gate: paired bootstrap intervals over validation units, calibration error.

Per-unit rows are what :mod:`evaluate` returns in ``"rows"``: one row per validation unit,
one column per judged class (segmentation: that unit's Dice, NaN where the class is not in
its reference; classification: one column, 1.0 for a right answer). The headline of a set of
rows is the mean over classes of each class's mean over the units where it is defined, i.e.
mean Dice or accuracy exactly as :mod:`evaluate` computes it. :func:`paired_bootstrap`
resamples units with replacement (the same draw for both versions) and returns 95 % percentile
intervals of each headline and of their difference. numpy only.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["headline", "paired_bootstrap", "EceBins", "N_BOOT"]

N_BOOT = 2000
_CHUNK = 250


def _as_rows(rows) -> np.ndarray:
    a = np.asarray([[np.nan if v is None else float(v) for v in r] for r in rows],
                   dtype=np.float64)
    return a.reshape(len(rows), -1) if len(rows) else np.zeros((0, 1))


def _headlines(rows: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Headline of ``rows[idx[b]]`` for every resample b (NaN when nothing is defined)."""
    vals = rows[idx]  # (B, n, k)
    defined = np.isfinite(vals)
    counts = defined.sum(axis=1)
    sums = np.where(defined, vals, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)  # (B, k)
        n_cls = np.isfinite(per_class).sum(axis=1)
        total = np.where(np.isfinite(per_class), per_class, 0.0).sum(axis=1)
        return np.where(n_cls > 0, total / np.maximum(n_cls, 1), np.nan)


def headline(rows) -> Optional[float]:
    """The headline metric of per-unit rows (None when nothing is defined)."""
    a = _as_rows(rows)
    if not len(a):
        return None
    v = float(_headlines(a, np.arange(len(a))[None])[0])
    return v if np.isfinite(v) else None


def _interval(samples: np.ndarray, level: float) -> Optional[list]:
    samples = samples[np.isfinite(samples)]
    if not len(samples):
        return None
    tail = (1.0 - level) / 2 * 100
    lo, hi = np.percentile(samples, [tail, 100 - tail])
    return [round(float(lo), 6), round(float(hi), 6)]


def paired_bootstrap(active_rows, candidate_rows, n_boot: int = N_BOOT, seed: int = 0,
                     level: float = 0.95) -> dict:
    """``{"active": [lo, hi], "candidate": [lo, hi], "difference": [lo, hi], "level",
    "resamples", "units"}``: percentile intervals of each headline and of candidate - active
    over ``n_boot`` resamples of the units (seeded, the same draw for both)."""
    a, c = _as_rows(active_rows), _as_rows(candidate_rows)
    if a.shape[0] != c.shape[0]:
        raise ValueError(f"bootstrap: {a.shape[0]} active vs {c.shape[0]} candidate units")
    n = a.shape[0]
    out = {"level": level, "resamples": int(n_boot), "units": int(n), "active": None,
           "candidate": None, "difference": None}
    if n == 0:
        return out
    rng = np.random.default_rng(seed)
    ha, hc = [], []
    for start in range(0, int(n_boot), _CHUNK):
        idx = rng.integers(0, n, size=(min(_CHUNK, int(n_boot) - start), n))
        ha.append(_headlines(a, idx))
        hc.append(_headlines(c, idx))
    ha, hc = np.concatenate(ha), np.concatenate(hc)
    out.update(active=_interval(ha, level), candidate=_interval(hc, level),
               difference=_interval(hc - ha, level))
    return out


class EceBins:
    """Expected calibration error accumulated over batches: equal-width confidence bins,
    ECE = sum over bins of (share of samples) * |accuracy - mean confidence|."""

    def __init__(self, n_bins: int = 15):
        self.n_bins = int(n_bins)
        self.count = np.zeros(self.n_bins)
        self.conf = np.zeros(self.n_bins)
        self.right = np.zeros(self.n_bins)

    def add(self, confidence, correct) -> None:
        conf = np.asarray(confidence, dtype=np.float64).reshape(-1)
        ok = np.asarray(correct, dtype=np.float64).reshape(-1)
        b = np.clip((conf * self.n_bins).astype(np.int64), 0, self.n_bins - 1)
        self.count += np.bincount(b, minlength=self.n_bins)
        self.conf += np.bincount(b, weights=conf, minlength=self.n_bins)
        self.right += np.bincount(b, weights=ok, minlength=self.n_bins)

    @property
    def n(self) -> int:
        return int(self.count.sum())

    def value(self) -> Optional[float]:
        total = self.count.sum()
        if total == 0:
            return None
        used = self.count > 0
        gap = np.abs(self.right[used] - self.conf[used]) / self.count[used]
        return round(float((self.count[used] / total * gap).sum()), 6)
