"""Resampling a volume to even slice spacing by linear interpolation along z (pure numpy).

Only done when the user asks (e.g. ``convert --resample``): uneven spacing is real
geometry and the viewer shows it as is. The new slices start at slice 0 and step by the
requested spacing (default: the series' median step, ``geometry.spacing[2]``) up to the last
original slice; each new slice mixes the two original slices around it. Integer data stay in
their dtype (rounded and clipped), so int16 CT stays int16.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from .geometry import Geometry
from .volume import Volume

__all__ = ["resample_even", "MAX_SLICES"]

MAX_SLICES = 4096


def _cast(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    if dtype.kind == "b":
        return values >= 0.5
    return values.astype(dtype)


def resample_even(volume: Volume, spacing_z: Optional[float] = None) -> Volume:
    """A new Volume with evenly spaced slices (linear along z); in-plane voxels unchanged."""
    geom: Geometry = volume.geometry
    nz = geom.shape[0]
    offsets = (np.asarray(geom.slice_offsets, dtype=float) if geom.slice_offsets is not None
               else np.arange(nz, dtype=float) * geom.spacing[2])
    step = float(spacing_z) if spacing_z is not None else float(geom.spacing[2])
    if not np.isfinite(step) or step <= 0:
        raise ValueError(f"slice spacing must be a positive number, got {spacing_z!r}")
    extent = float(offsets[-1] - offsets[0]) if nz > 1 else 0.0
    n_new = int(np.floor(extent / step + 1e-6)) + 1
    if n_new > MAX_SLICES:
        raise ValueError(f"resampling {extent:.1f} mm at {step:g} mm would make {n_new} slices "
                         f"(more than {MAX_SLICES}); choose a larger spacing")
    if not geom.is_uneven and spacing_z is None:
        return volume
    targets = offsets[0] + np.arange(n_new, dtype=float) * step
    src = volume.array
    out = np.empty((n_new,) + src.shape[1:], dtype=src.dtype)
    for j, t in enumerate(targets):
        i = int(np.searchsorted(offsets, t, side="right")) - 1
        i = min(max(i, 0), nz - 1)
        if i >= nz - 1 or abs(t - offsets[i]) < 1e-6:
            out[j] = src[i]
            continue
        w = (t - offsets[i]) / (offsets[i + 1] - offsets[i])
        mixed = (1.0 - w) * src[i].astype(np.float32) + w * src[i + 1].astype(np.float32)
        out[j] = _cast(mixed, src.dtype)
    new_geom = geom.with_even_spacing(step, n_new)
    if offsets[0] != 0.0:  # slice 0 sits at offsets[0] along z: keep it there
        shift = geom.direction_matrix[:, 2] * offsets[0]
        new_geom = dataclasses.replace(new_geom, origin=tuple(np.asarray(geom.origin) + shift))
    note = (f"Resampled on request to even {step:g} mm slice spacing: {n_new} slices from {nz} "
            f"(linear interpolation along z)")
    if geom.is_uneven:
        steps = np.diff(offsets)
        note += f"; original steps were uneven, {steps.min():g}-{steps.max():g} mm"
    warnings = [w if "uneven" not in w.lower() else f"Original series: {w}"
                for w in volume.warnings] + [note]
    meta = dict(volume.meta)
    meta.pop("instance_numbers", None)  # new slices: the files' numbers no longer apply
    meta["resampled"] = {"spacing_z": step, "original_offsets_mm": [float(o) for o in offsets]}
    return dataclasses.replace(volume, array=out, geometry=new_geom, warnings=warnings, meta=meta,
                               source_paths=list(volume.source_paths))
