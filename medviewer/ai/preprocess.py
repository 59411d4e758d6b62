"""Preprocessing from a model card's input spec: resize/resample, intensity, and the way back.

Classification (2D images): :func:`prepare_image_2d` brings any 2D image to what the model was
trained on: display range 0..255 (uint8 images as they are; others through the given window or
the 0.5-99.5 percentiles; MONOCHROME1 inverted), a centre crop to the model's aspect ratio (as
MedMNIST made its images), an antialiased bicubic resize to ``input.size`` and the card's
intensity normalisation. :func:`map_to_image` puts a model-sized map (saliency) back on the
original image.

Segmentation (volumes ``(z, y, x)`` with ``spacing_zyx`` in mm): :func:`plan_resample` works out
the model grid (2D models resample in-plane only, slice by slice; 3D models all axes; ``spacing``
in the card is in array order: ``[row, col]`` or ``[z, y, x]``) and the intensity bounds;
:func:`to_model_grid` produces network input ``(C, z', y', x')`` (for a slab of slices too);
:func:`model_to_volume` maps probabilities (linear) or labels (nearest) back onto the original
grid. Resampling uses ``torch.nn.functional.interpolate`` (bilinear, antialiased when shrinking;
nearest-exact for labels); along z a linear/nearest interpolation with the same voxel-centre
convention (``align_corners=False``), separable so that memory stays per slab.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

__all__ = ["ResampleInfo", "ImageInfo", "card_value", "card_ref", "empty_array", "input_spec",
           "intensity_bounds", "apply_intensity", "prepare_image_2d", "prepare_image_2d_info", "map_to_image", "to_display_range",
           "plan_resample", "to_model_grid", "to_model_tensor", "volume_to_model",
           "model_to_volume", "model_to_volume_tensor"]


def card_value(card, name: str, default=None):
    """A card field by name (a ModelCard, or a plain dict with the same keys)."""
    if isinstance(card, dict):
        return card.get(name, default)
    return getattr(card, name, default)


def card_ref(card) -> str:
    """``"name:version"`` of a card (ModelCard.ref, or built from a dict's fields)."""
    ref = card_value(card, "ref")
    if ref:
        return str(ref)
    return f"{card_value(card, 'name', 'model')}:{card_value(card, 'version', '?')}"


def empty_array(shape, dtype) -> np.ndarray:
    """An uninitialised writable array; large ones on anonymous memory advised to use huge
    pages (filling a fresh ~400 MB output otherwise costs ~0.8 s of page faults)."""
    import mmap

    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if nbytes < (8 << 20) or not hasattr(mmap, "MADV_HUGEPAGE"):
        return np.empty(shape, dtype)
    buf = mmap.mmap(-1, nbytes)
    try:
        buf.madvise(mmap.MADV_HUGEPAGE)
    except OSError:  # kernels without transparent huge pages: plain pages, still correct
        pass
    return np.frombuffer(buf, dtype).reshape(shape)


def input_spec(card) -> dict:
    spec = card_value(card, "input")
    if not isinstance(spec, dict):
        raise ValueError("the model card has no input specification")
    return spec


# ---------------------------------------------------------------------------- intensity
def _sample(array: np.ndarray, limit: int = 2_000_000) -> np.ndarray:
    a = np.asarray(array)
    step = max(1, int(np.ceil((a.size / limit) ** (1.0 / max(1, a.ndim)))))
    return a[(slice(None, None, step),) * a.ndim] if step > 1 else a


def intensity_bounds(array: np.ndarray, intensity: Optional[dict]) -> Optional[tuple]:
    """(lo, hi) that map to 0 and 1 under the card's intensity spec (None: leave values)."""
    if not intensity:
        return None
    kind = intensity.get("type")
    if kind == "ct_window":
        c, w = float(intensity["center"]), float(intensity["width"])
        return (c - w / 2.0, c + w / 2.0)
    if kind == "scale":
        return (float(intensity["min"]), float(intensity["max"]))
    if kind == "percentile":
        s = _sample(array).astype(np.float32, copy=False)
        s = s[np.isfinite(s)]
        if s.size == 0:
            return (0.0, 1.0)
        lo, hi = np.percentile(s, [float(intensity["lo"]), float(intensity["hi"])])
        return (float(lo), float(hi) if hi > lo else float(lo) + 1.0)
    raise ValueError(f"unknown intensity normalisation {kind!r}")


def apply_intensity(values, bounds: Optional[tuple]):
    """Scale ``values`` (numpy or torch) so that bounds map to [0, 1], clipped."""
    if bounds is None:
        return values
    lo, hi = bounds
    scale = 1.0 / (hi - lo) if hi != lo else 1.0
    out = (values - lo) * scale
    return out.clip(0.0, 1.0) if isinstance(out, np.ndarray) else out.clamp_(0.0, 1.0)


# ---------------------------------------------------------------------------- 2D images
@dataclass(frozen=True)
class ImageInfo:
    """Where the model's input came from in the original image (for maps going back)."""

    original_shape: tuple  # (h, w)
    crop: tuple  # (y0, y1, x0, x1) in the original image
    size: tuple  # model input (h, w)


def _to_gray(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3 and a.shape[-1] in (3, 4):
        a = a[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if a.ndim != 2:
        raise ValueError(f"expected a 2D image (h, w) or (h, w, 3), got shape {a.shape}")
    return a


def to_display_range(a: np.ndarray, window: Optional[tuple] = None,
                     invert: bool = False) -> np.ndarray:
    """float32 in 0..255 as a person sees it: uint8 images as they are, others windowed."""
    g = _to_gray(a)
    if np.asarray(a).dtype == np.uint8 and window is None:
        out = g.astype(np.float32)
    else:
        if window is not None:
            c, w = float(window[0]), float(window[1])
            lo, hi = c - w / 2.0, c + w / 2.0
        else:
            s = _sample(g).astype(np.float32)
            lo, hi = (float(v) for v in np.percentile(s, [0.5, 99.5]))
        hi = hi if hi > lo else lo + 1.0
        out = np.clip((g.astype(np.float32) - lo) * (255.0 / (hi - lo)), 0.0, 255.0)
    return 255.0 - out if invert else out


def _centre_crop(shape: tuple, size: tuple) -> tuple:
    h, w = shape
    th, tw = size
    if h * tw > w * th:  # too tall
        ch = max(1, int(round(w * th / tw)))
        y0 = (h - ch) // 2
        return (y0, y0 + ch, 0, w)
    cw = max(1, int(round(h * tw / th)))
    x0 = (w - cw) // 2
    return (0, h, x0, x0 + cw)


def prepare_image_2d_info(array2d: np.ndarray, card, invert: bool = False,
                          window: Optional[tuple] = None):
    """(model input ``(C, h, w)`` float32, :class:`ImageInfo`) for a classification card."""
    import torch
    import torch.nn.functional as F

    spec = input_spec(card)
    size = tuple(int(v) for v in spec["size"])
    channels = int(spec.get("channels", 1))
    disp = to_display_range(array2d, window, invert)
    crop = _centre_crop(disp.shape, size)
    y0, y1, x0, x1 = crop
    t = torch.from_numpy(np.ascontiguousarray(disp[y0:y1, x0:x1]))[None, None]
    if tuple(t.shape[-2:]) != size:
        shrink = t.shape[-2] > size[0] or t.shape[-1] > size[1]
        t = F.interpolate(t, size=size, mode="bicubic", align_corners=False, antialias=shrink)
        t = t.clamp_(0.0, 255.0)
    arr = t[0, 0].numpy()
    bounds = intensity_bounds(arr, spec.get("intensity"))
    arr = apply_intensity(arr, bounds).astype(np.float32, copy=False)
    out = np.repeat(arr[None], channels, axis=0)
    return np.ascontiguousarray(out), ImageInfo(tuple(disp.shape), crop, size)


def prepare_image_2d(array2d: np.ndarray, card, invert: bool = False,
                     window: Optional[tuple] = None) -> np.ndarray:
    """Model input ``(C, h, w)`` float32 for a classification card (see module docstring)."""
    return prepare_image_2d_info(array2d, card, invert, window)[0]


def map_to_image(map_hw, info: ImageInfo, mode: str = "bilinear") -> np.ndarray:
    """A model-sized map ``(h, w)`` -> float32 on the original image (zero outside the crop),
    interpolated with ``mode`` ("bilinear" or "bicubic")."""
    import torch
    import torch.nn.functional as F

    t = torch.as_tensor(np.asarray(map_hw, dtype=np.float32))[None, None]
    y0, y1, x0, x1 = info.crop
    up = F.interpolate(t, size=(y1 - y0, x1 - x0), mode=mode, align_corners=False)
    out = np.zeros(info.original_shape, np.float32)
    out[y0:y1, x0:x1] = up[0, 0].numpy()
    return out


# ---------------------------------------------------------------------------- volumes
@dataclass
class ResampleInfo:
    """How a volume maps to the model grid and back (plus the notes a user should see)."""

    dims: int  # 2: slice by slice in-plane; 3: all axes
    original_shape: tuple  # (z, y, x)
    model_shape: tuple  # (z', y', x'); z' == z for 2D models
    spacing_zyx: tuple  # the volume's spacing used (median step when uneven)
    model_spacing_zyx: tuple  # the model's nominal spacing (None entries: not resampled)
    bounds: Optional[tuple]  # intensity (lo, hi) -> (0, 1); None: values unchanged
    channels: int = 1
    warnings: list = field(default_factory=list)
    # 2.5D models: the input channels are the volume at these offsets from each slice, in
    # slices (the card's ``context_mm`` divided by the slice spacing); () for one-slice input
    context: tuple = ()

    def to_dict(self) -> dict:
        """Plain values, e.g. for the 'preprocessing' field of a stored prediction."""
        return {"dims": self.dims, "original_shape": list(self.original_shape),
                "model_shape": list(self.model_shape),
                "spacing_zyx": [float(v) for v in self.spacing_zyx],
                "model_spacing_zyx": [None if v is None else float(v)
                                      for v in self.model_spacing_zyx],
                "intensity_bounds": None if self.bounds is None else [float(v) for v in self.bounds],
                "context_slices": [round(float(v), 4) for v in self.context],
                "warnings": list(self.warnings)}


def _gray_volume(volume_array: np.ndarray, warnings: list) -> np.ndarray:
    if _is_tensor(volume_array) and volume_array.ndim == 3:  # already on a GPU (inference)
        return volume_array
    a = np.asarray(volume_array)
    if a.ndim == 4 and a.shape[-1] in (3, 4):
        warnings.append("colour image converted to grey for the model")
        a = a[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if a.ndim != 3:
        raise ValueError(f"expected a volume (z, y, x), got shape {a.shape}")
    return a


def _is_tensor(a) -> bool:
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and torch.is_tensor(a)


def _float_slab(vol, a: int, b: int):
    """Slices a..b of a numpy volume or a torch tensor (any device) as float32 torch."""
    import torch

    if torch.is_tensor(vol):
        return vol[a:b].float()
    return torch.from_numpy(np.ascontiguousarray(vol[a:b], dtype=np.float32))


def plan_resample(volume_array: np.ndarray, spacing_zyx: Sequence[float], card,
                  slice_offsets: Optional[Sequence[float]] = None) -> ResampleInfo:
    """Model grid, intensity bounds and warnings for ``volume_array`` under ``card``."""
    spec = input_spec(card)
    dims = int(spec.get("dims", 2))
    if dims not in (2, 3):
        raise ValueError(f"model input dims must be 2 or 3, got {dims}")
    warnings: list = []
    vol = _gray_volume(volume_array, warnings)
    spacing = [float(v) for v in spacing_zyx]
    if slice_offsets is not None and len(slice_offsets) > 2:
        steps = np.diff(np.asarray(slice_offsets, dtype=float))
        if np.ptp(steps) > 1e-3 * max(1.0, float(np.median(steps))):
            spacing[0] = float(np.median(steps))
            if dims == 3:
                warnings.append(f"slice spacing is uneven ({steps.min():.3g}-{steps.max():.3g} mm); "
                                f"the model treats it as even at the median step "
                                f"{spacing[0]:.3g} mm")
    want = spec.get("spacing")
    model_spacing: list = [None, None, None]
    if want:
        want = [float(v) for v in want]
        if len(want) != dims:
            raise ValueError(f"the card's spacing has {len(want)} values; a {dims}D model needs {dims}")
        model_spacing[3 - dims:] = want
    shape = list(vol.shape)
    new = list(shape)
    for ax in range(3 - dims, 3):
        if model_spacing[ax] is not None:
            new[ax] = max(1, int(round(shape[ax] * spacing[ax] / model_spacing[ax])))
    bounds = intensity_bounds(vol, spec.get("intensity"))
    channels = int(spec.get("channels", 1))
    context = _context_slices(spec, dims, channels, spacing[0])
    return ResampleInfo(dims, tuple(shape), tuple(new), tuple(spacing), tuple(model_spacing),
                        bounds, channels, warnings, context)


def _context_slices(spec: dict, dims: int, channels: int, step_z: float) -> tuple:
    """The card's ``context_mm`` (one offset in mm per input channel, along the volume's z
    axis, e.g. ``[-3, 0, 3]``) as offsets in slices; () when the card has none."""
    offsets = spec.get("context_mm")
    if offsets is None:
        return ()
    if dims != 2:
        raise ValueError("input.context_mm is for 2D (slice by slice) models only")
    offsets = [float(v) for v in offsets]
    if len(offsets) != channels or not all(np.isfinite(offsets)):
        raise ValueError(f"input.context_mm needs one finite offset per input channel "
                         f"({channels}), got {offsets}")
    if not np.isfinite(step_z) or step_z <= 0:
        raise ValueError(f"a 2.5D model needs a positive slice spacing, got {step_z}")
    return tuple(v / step_z for v in offsets)


def _z_index(n_in: int, n_out: int, idx, linear: bool):
    """Source indices (and weights) for output slices ``idx`` (align_corners=False)."""
    import torch

    i = torch.as_tensor(idx, dtype=torch.float64)
    src = (i + 0.5) * (n_in / n_out) - 0.5
    if not linear:
        return torch.clamp(torch.floor((i + 0.5) * (n_in / n_out)), 0, n_in - 1).long(), None
    src = src.clamp(min=0.0)
    j0 = torch.floor(src).long().clamp(max=n_in - 1)
    j1 = (j0 + 1).clamp(max=n_in - 1)
    return (j0, j1), (src - j0.double()).float()


def _resize_z(t, n_out: int, linear: bool, out_range: Optional[tuple] = None):
    """Resample ``t`` (C, Z, Y, X) along Z to ``n_out`` slices (or only ``out_range`` of them)."""
    import torch

    n_in = t.shape[1]
    a, b = out_range or (0, n_out)
    if n_in == n_out:
        return t[:, a:b]
    idx, w = _z_index(n_in, n_out, torch.arange(a, b), linear)
    if not linear:
        return t.index_select(1, idx)
    j0, j1 = idx
    w = w.to(t.dtype).view(1, -1, 1, 1)
    return t.index_select(1, j0) * (1 - w) + t.index_select(1, j1) * w


def _resize_xy(t, size: tuple, linear: bool):
    """Resample ``t`` (N, C, Y, X) in-plane to ``size`` (bilinear or nearest)."""
    import torch.nn.functional as F

    if tuple(t.shape[-2:]) == tuple(size):
        return t
    if not linear:
        return F.interpolate(t, size=tuple(size), mode="nearest-exact")
    shrink = t.shape[-2] > size[0] or t.shape[-1] > size[1]
    return F.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False,
                         antialias=shrink)


def to_model_tensor(volume_array: np.ndarray, info: ResampleInfo,
                    z_range: Optional[tuple] = None):
    """torch float32 ``(C, z, y', x')`` on the model grid (2D models: slices ``z_range``);
    ``volume_array`` may also be a torch tensor (on a GPU: inference moves the volume once)."""
    vol = _gray_volume(volume_array, [])
    if info.dims == 3 and z_range is not None:
        raise ValueError("z_range is for 2D (slice-by-slice) models only")
    a, b = z_range or (0, vol.shape[0])
    if info.context:
        return _context_tensor(vol, info, a, b)
    t = _float_slab(vol, a, b)  # (z, y, x)
    if info.dims == 3 and info.model_shape[0] != t.shape[0]:
        t = _resize_z(t[None], info.model_shape[0], True)[0]
    t = _resize_xy(t[:, None], info.model_shape[1:], True)[:, 0]
    t = apply_intensity(t, info.bounds) if info.bounds is not None else t
    return t[None].expand(info.channels, *t.shape).contiguous()


def _context_tensor(vol: np.ndarray, info: ResampleInfo, a: int, b: int):
    """2.5D input ``(C, b - a, y', x')``: channel k of slice z is the volume at z +
    ``info.context[k]`` slices, linearly interpolated along z (clamped to the first and last
    slice). Only the source slices these positions touch are read and resampled in-plane."""
    import torch

    nz = vol.shape[0]
    lo = max(0, int(np.floor(a + min(info.context))))
    hi = min(nz, int(np.ceil(b - 1 + max(info.context))) + 1)
    block = _float_slab(vol, lo, hi)  # numpy or a torch tensor on any device
    block = _resize_xy(block[:, None], info.model_shape[1:], True)[:, 0]  # (n, y', x')
    z = torch.arange(a, b, dtype=torch.float64)
    chans = []
    for off in info.context:
        pos = (z + off).clamp(0, nz - 1) - lo
        j0 = pos.floor().long().clamp(0, block.shape[0] - 1)
        j1 = (j0 + 1).clamp(max=block.shape[0] - 1)
        w = (pos - j0.double()).float().view(-1, 1, 1).to(block.device)
        j0, j1 = j0.to(block.device), j1.to(block.device)
        chans.append(block.index_select(0, j0) * (1 - w) + block.index_select(0, j1) * w)
    t = torch.stack(chans)
    return apply_intensity(t, info.bounds) if info.bounds is not None else t


def to_model_grid(volume_array: np.ndarray, info: ResampleInfo,
                  z_range: Optional[tuple] = None) -> np.ndarray:
    """numpy float32 ``(C, z, y', x')`` network input on the model grid."""
    return to_model_tensor(volume_array, info, z_range).numpy()


def volume_to_model(volume_array: np.ndarray, spacing_zyx: Sequence[float], card,
                    slice_offsets: Optional[Sequence[float]] = None):
    """(network input ``(C, z', y', x')`` float32, :class:`ResampleInfo`) for a whole volume."""
    info = plan_resample(volume_array, spacing_zyx, card, slice_offsets)
    return to_model_grid(volume_array, info), info


def _linear(order) -> bool:
    if order in (1, "linear", "bilinear", "trilinear"):
        return True
    if order in (0, "nearest"):
        return False
    raise ValueError(f"order must be 'linear' or 'nearest', got {order!r}")


def model_to_volume_tensor(pred, info: ResampleInfo, order="linear",
                           z_range: Optional[tuple] = None):
    """torch version of :func:`model_to_volume` (keeps the input's dtype for linear)."""
    import torch

    linear = _linear(order)
    t = torch.as_tensor(pred)
    squeeze = t.ndim == 3
    if squeeze:
        t = t[None]
    work = t if linear else t.float()
    nz = info.original_shape[0]
    a, b = z_range or (0, nz)
    if info.dims == 3:
        work = _resize_z(work, nz, linear, (a, b))
    elif work.shape[1] != b - a:
        raise ValueError(f"2D model output has {work.shape[1]} slices, expected {b - a}")
    out = _resize_xy(work.transpose(0, 1), info.original_shape[1:], linear).transpose(0, 1)
    if not linear:
        out = out.round().to(torch.int64)
    return out[0] if squeeze else out


def model_to_volume(pred, info: ResampleInfo, order="linear",
                    z_range: Optional[tuple] = None) -> np.ndarray:
    """Map model-grid output back onto the volume grid.

    ``pred``: probabilities ``(C, z', y', x')`` with ``order="linear"`` (float32 out), or labels
    ``(z', y', x')`` with ``order="nearest"`` (same integer values out, as uint8/uint16). For 2D
    models ``pred`` holds the slices ``z_range`` (default all); for 3D models the whole model
    grid, and ``z_range`` picks which original slices to produce."""
    out = model_to_volume_tensor(pred, info, order, z_range)
    arr = out.numpy()
    if not _linear(order):
        return arr.astype(np.uint8 if arr.max(initial=0) <= 255 else np.uint16)
    return arr.astype(np.float32, copy=False)
