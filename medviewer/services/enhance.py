"""Image enhancement: classical denoising and contrast filters, previewed on one slice and
applied to a whole series as a new derived series (the original is never changed).

Filters work slice by slice in the slice plane (thick-slice CT and MR, radiographs alike) with
their sizes in millimetres, so one setting means the same on every scanner:

- ``nlm``: non-local means (scikit-image), its strength a multiple of the noise estimated on
  the slice (:func:`noise_sigma`);
- ``bilateral``: edge-preserving smoothing (SimpleITK), range a multiple of the noise;
- ``diffusion``: gradient (Perona-Malik) anisotropic diffusion (SimpleITK);
- ``clahe``: contrast-limited adaptive histogram equalisation (scikit-image) within the
  image's 0.5-99.5th percentile range, mapped back to its units;
- ``unsharp``: unsharp masking (SimpleITK);
- ``learned``: the shipped denoising autoencoder (:mod:`medviewer.ai.denoise`; torch).

Integer images stay integer (rounded, clipped to the type); HU stay HU. Qt-free: the app
previews on the GUI's request and applies on a worker with progress and cancel."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

import numpy as np

from medviewer.core.volume import Volume
from medviewer.jobs import Reporter


class EnhanceError(ValueError):
    """A filter or a setting that cannot be used (said in one sentence)."""


@dataclass(frozen=True)
class Param:
    default: float
    low: float
    high: float
    unit: str = ""
    help: str = ""


@dataclass(frozen=True)
class FilterSpec:
    name: str
    label: str
    params: Dict[str, Param] = field(default_factory=dict)
    help: str = ""


FILTERS: Dict[str, FilterSpec] = {f.name: f for f in (
    FilterSpec("nlm", "Non-local means", {
        "strength": Param(0.8, 0.1, 3.0, "x noise", "h as a multiple of the estimated noise"),
        "patch_mm": Param(4.0, 1.0, 15.0, "mm", "patch size"),
        "search_mm": Param(10.0, 2.0, 30.0, "mm", "search distance")},
        "Averages similar patches: strong denoising that keeps edges and texture."),
    FilterSpec("bilateral", "Bilateral", {
        "sigma_mm": Param(1.5, 0.3, 10.0, "mm", "spatial Gaussian"),
        "range": Param(2.5, 0.5, 10.0, "x noise", "intensity Gaussian, a multiple of the noise")},
        "Smooths within regions of similar intensity, not across edges."),
    FilterSpec("diffusion", "Anisotropic diffusion", {
        "conductance": Param(0.5, 0.1, 5.0, "", "lower keeps more edges"),
        "iterations": Param(5, 1, 30, "", "more smooths more")},
        "Perona-Malik diffusion: smooths flat regions, keeps boundaries."),
    FilterSpec("clahe", "CLAHE (local contrast)", {
        "tile_mm": Param(60.0, 10.0, 300.0, "mm", "size of the contextual regions"),
        "clip": Param(0.01, 0.001, 0.1, "", "contrast limit (higher: stronger)")},
        "Contrast-limited adaptive histogram equalisation: brings out local contrast."),
    FilterSpec("learned", "Learned denoiser", {},
               "A small autoencoder trained here on CT and MR slices with synthetic noise "
               "(models/denoise-ae): blind, no setting."),
    FilterSpec("unsharp", "Unsharp mask", {
        "sigma_mm": Param(1.0, 0.2, 10.0, "mm", "blur that is subtracted"),
        "amount": Param(0.6, 0.05, 3.0, "", "how much edge is added")},
        "Sharpens edges by adding back the difference from a blurred copy."),
)}


def unavailable(name: str) -> str:
    """Why filter ``name`` cannot run here, in one sentence ("" when it can): the learned
    denoiser needs a trained version under models/denoise-ae."""
    if name not in FILTERS:
        return f"There is no filter {name!r}."
    if name == "learned":
        from medviewer.ai.denoise import builtin_dir

        if builtin_dir() is None:
            return ("The learned denoiser is not installed: models/denoise-ae has no "
                    "trained version yet.")
    return ""


def check_settings(name: str, params: Optional[dict] = None) -> dict:
    """The settings of ``name`` (defaults filled in) or ``EnhanceError`` saying in one
    sentence which one is out of its range."""
    return _settings(name, params)[1]


def _settings(name: str, params: Optional[dict]) -> tuple:
    spec = FILTERS.get(name)
    if spec is None:
        raise EnhanceError(f"unknown filter {name!r}; one of {', '.join(FILTERS)}")
    given = dict(params or {})
    unknown = set(given) - set(spec.params)
    if unknown:
        raise EnhanceError(f"{spec.label} has no setting {', '.join(sorted(unknown))}; it has "
                           f"{', '.join(spec.params)}")
    out = {}
    for key, p in spec.params.items():
        value = float(given.get(key, p.default))
        if not (p.low <= value <= p.high) or not math.isfinite(value):
            raise EnhanceError(f"{spec.label}: {key} must be between {p.low:g} and {p.high:g}"
                               f"{' ' + p.unit if p.unit else ''}, got {value:g}")
        out[key] = value
    return spec, out


def noise_sigma(image: np.ndarray) -> float:
    """The standard deviation of white noise on a 2D image (Immerkaer's fast estimate: the
    mean absolute response to a Laplacian difference kernel that cancels smooth structure)."""
    from scipy.ndimage import convolve

    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2 or min(img.shape) < 3:
        raise EnhanceError("the noise is estimated on a 2D image of at least 3x3 pixels")
    k = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
    resp = np.abs(convolve(img, k, mode="reflect"))[1:-1, 1:-1]
    h, w = img.shape
    return float(math.sqrt(math.pi / 2) * resp.sum() / (6.0 * (w - 2) * (h - 2)))


def _sitk(image: np.ndarray, spacing_xy):
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(image, dtype=np.float32))
    img.SetSpacing(tuple(float(v) for v in spacing_xy))
    return img


def filter_slice(image: np.ndarray, spacing_xy, name: str,
                 params: Optional[dict] = None) -> np.ndarray:
    """One 2D image (y, x) filtered -> float32, ``spacing_xy`` in mm."""
    import SimpleITK as sitk

    spec, p = _settings(name, params)
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise EnhanceError(f"{spec.label} filters 2D slices; got shape {img.shape}")
    sx, sy = (float(v) for v in spacing_xy)
    pix = min(sx, sy)
    if name == "nlm":
        from skimage.restoration import denoise_nl_means

        sigma = noise_sigma(img)
        if sigma <= 0:
            return img.copy()
        patch = max(3, int(round(p["patch_mm"] / pix)) | 1)
        dist = max(1, int(round(p["search_mm"] / pix / 2)))
        return denoise_nl_means(img, h=p["strength"] * sigma, sigma=sigma, patch_size=patch,
                                patch_distance=dist, fast_mode=True).astype(np.float32)
    if name == "learned":
        from medviewer.ai.denoise import shipped

        return shipped()(img)
    if name == "bilateral":
        sigma = max(noise_sigma(img), 1e-3)
        out = sitk.Bilateral(_sitk(img, (sx, sy)), domainSigma=p["sigma_mm"],
                             rangeSigma=p["range"] * sigma)
        return sitk.GetArrayFromImage(out)
    if name == "diffusion":
        # ITK measures the step in pixels (image spacing off): stable below 1/2^(N+1) = 0.125
        out = sitk.GradientAnisotropicDiffusion(_sitk(img, (sx, sy)), timeStep=0.0625,
                                                 conductanceParameter=p["conductance"],
                                                 numberOfIterations=int(p["iterations"]))
        return sitk.GetArrayFromImage(out)
    if name == "clahe":
        from skimage.exposure import equalize_adapthist

        lo, hi = np.percentile(img, (0.5, 99.5))
        if hi <= lo:
            return img.copy()
        unit = np.clip((img - lo) / (hi - lo), 0.0, 1.0)
        tile = [max(8, int(round(p["tile_mm"] / s))) for s in (sy, sx)]
        eq = equalize_adapthist(unit, kernel_size=tile, clip_limit=p["clip"])
        return (lo + eq * (hi - lo)).astype(np.float32)
    # unsharp
    out = sitk.UnsharpMask(_sitk(img, (sx, sy)), [p["sigma_mm"]] * 2, p["amount"], 0.0)
    return sitk.GetArrayFromImage(out)


def _cast_like(values: np.ndarray, dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype if dtype.kind == "f" else np.float32, copy=False)


def _check_volume(volume: Volume) -> None:
    if volume.is_rgb:
        raise EnhanceError("colour images are not enhanced; use a greyscale series")


def preview(volume: Volume, z: int, name: str, params: Optional[dict] = None) -> np.ndarray:
    """Slice ``z`` of ``volume`` filtered, in the volume's type (what Apply would give)."""
    _check_volume(volume)
    if not 0 <= int(z) < volume.shape[0]:
        raise EnhanceError(f"slice {z} is outside the series (0..{volume.shape[0] - 1})")
    sp = volume.geometry.spacing
    return _cast_like(filter_slice(volume.array[int(z)], sp[:2], name, params),
                      volume.array.dtype)


def describe(name: str, params: Optional[dict] = None) -> str:
    """e.g. ``"Non-local means (strength 0.8 x noise, patch 4 mm, search 10 mm)"``."""
    spec, p = _settings(name, params)
    parts = [f"{k.replace('_mm', '')} {v:g}{' ' + spec.params[k].unit if spec.params[k].unit else ''}"
             for k, v in p.items()]
    return f"{spec.label} ({', '.join(parts)})" if parts else spec.label


def enhance_volume(volume: Volume, name: str, params: Optional[dict] = None,
                   reporter: Optional[Reporter] = None,
                   on_slice: Optional[Callable[[int], None]] = None) -> Volume:
    """Every slice of ``volume`` filtered: a new derived Volume (same grid and units, no
    source files, no UID; ``meta["enhancement"]`` says how it was made). ``Cancelled`` when
    the reporter's token is set (checked between slices)."""
    _check_volume(volume)
    spec, p = _settings(name, params)
    reporter = reporter or Reporter()
    n = int(volume.shape[0])
    out = np.empty(volume.array.shape, dtype=volume.array.dtype if volume.array.dtype.kind
                   in "iuf" else np.float32)
    sp = volume.geometry.spacing
    t0 = time.perf_counter()
    for z in range(n):
        reporter(z, n, f"{spec.label}: slice {z + 1} of {n}")
        out[z] = _cast_like(filter_slice(volume.array[z], sp[:2], name, p), out.dtype)
        if on_slice is not None:
            on_slice(z)
    reporter(n, n, f"{spec.label}: done")
    how = describe(name, p)
    meta = dict(volume.meta or {})
    meta["enhancement"] = {"filter": name, "params": p, "derived_from": volume.uid or None,
                           "seconds": round(time.perf_counter() - t0, 2)}
    return Volume(out, volume.geometry, modality=volume.modality,
                  description=f"{volume.description} [{how}]".strip(), units=volume.units,
                  invert=volume.invert, window=volume.window, warnings=list(volume.warnings),
                  meta=meta, source_paths=[], uid="")


def psnr(reference: np.ndarray, test: np.ndarray, data_range: float) -> float:
    """Peak signal-to-noise ratio (dB) of ``test`` against ``reference``."""
    mse = float(np.mean((np.asarray(reference, np.float64) - np.asarray(test, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(data_range ** 2 / mse)


def ssim(reference: np.ndarray, test: np.ndarray, data_range: float) -> float:
    """Structural similarity of two 2D images (scikit-image's, Gaussian-weighted)."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(np.asarray(reference, np.float64),
                                       np.asarray(test, np.float64), data_range=data_range,
                                       gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


def compare_on_held_out(filters=("nlm", "bilateral", "diffusion", "learned"),
                        shared=None) -> dict:
    """PSNR/SSIM (range 1) of every filter at its defaults on the learned denoiser's held-out
    slices with the trainer's noise (:mod:`medviewer.ai.starters.denoise_ae`), per modality,
    means over slices, with the noisy input's as the baseline."""
    from medviewer.ai.starters import denoise_ae as trainer

    _, held = trainer.load_slices(shared or trainer.SHARED)
    rows: dict = {}
    for (_, modality, clean, _, spacing), noisy in zip(held, trainer.noisy_copy(held)):
        outs = {"noisy": noisy}
        outs.update({name: filter_slice(noisy, spacing, name) for name in filters})
        for key, out in outs.items():
            r = rows.setdefault(modality, {}).setdefault(key, {"psnr": [], "ssim": []})
            r["psnr"].append(psnr(clean, out, 1.0))
            r["ssim"].append(ssim(clean, out, 1.0))
    return {m: {k: {"psnr": round(float(np.mean(v["psnr"])), 2),
                    "ssim": round(float(np.mean(v["ssim"])), 4), "slices": len(v["psnr"])}
                for k, v in per.items()} for m, per in rows.items()}
