"""Registration of a moving series to a fixed one with SimpleITK: rigid, affine and deformable
(B-spline on top of the affine), multi-resolution, Mattes mutual information (works within a
modality and across them, MR to CT), progress and cancel through a Reporter.

A transform maps points of the fixed image (LPS mm) to the moving image, as ITK's do:
resampling the moving image with it onto the fixed grid gives the registered series, and a
label map of the moving image follows with nearest-neighbour interpolation. Transforms are
saved as ITK transform files (``.tfm``, written atomically) with a JSON sidecar of their
provenance (what was registered to what, how, the final metric, the time). Qt-free: the app
runs it on a worker, ``medviewer register`` on the command line."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from medviewer.core.atomic import atomic_path, atomic_write_text
from medviewer.core.geometry import Geometry
from medviewer.core.volume import Volume
from medviewer.io.labels_io import sitk_image, sitk_reference
from medviewer.jobs import Cancelled, Reporter

KINDS = ("rigid", "affine", "deformable")
SHRINK = (4, 2, 1)  # multi-resolution pyramid (voxels), coarse to fine
SMOOTH_MM = (2.0, 1.0, 0.0)  # Gaussian smoothing per level, physical units
SAMPLING = 0.15  # most of the fixed voxels the metric samples (fixed seed: reproducible)
SAMPLES = 60_000  # points the metric samples per level (fewer when the image is smaller)
BSPLINE_SPACING_MM = 50.0  # control-point spacing of the deformable stage
SEED = 7
WORK_MM = 2.0  # finer voxels are averaged to about this before registering (see _working)
MIN_VOXELS = 6  # the coarsest level keeps at least this many voxels along every axis


class RegistrationError(ValueError):
    """The inputs cannot be registered (with the reason in one sentence)."""


@dataclass
class RegistrationResult:
    transform: object  # a SimpleITK Transform: fixed LPS mm -> moving LPS mm
    kind: str
    metric_value: float  # the final Mattes MI (lower is better; negative)
    iterations: int
    seconds: float
    stop_reason: str
    provenance: dict = field(default_factory=dict)


def check_pair(fixed: Volume, moving: Volume) -> None:
    """Refuse, in one sentence, a pair that cannot be registered (the same series twice, a
    colour image, a series too thin for 3D) before any work starts."""
    if fixed is moving:
        raise RegistrationError("the fixed and the moving series are the same; choose two "
                                "different series")
    for role, vol in (("fixed", fixed), ("moving", moving)):
        if vol.is_rgb:
            raise RegistrationError(f"the {role} series is a colour image; only greyscale "
                                    "series can be registered")
        if min(vol.shape[:3]) < 4:
            raise RegistrationError(f"the {role} series ({' x '.join(str(n) for n in vol.shape[:3])}"
                                    " voxels) is too thin to register in 3D; it needs at least "
                                    "4 voxels along every axis")


def _robust(volume: Volume) -> np.ndarray:
    """The pixels as float32 clipped to their 0.1-99.9th percentiles: a few extreme voxels
    (metal, a scanner's padding value) otherwise squeeze all tissue into one or two of the
    mutual-information histogram's bins."""
    arr = np.asarray(volume.array, dtype=np.float32)
    sample = arr.reshape(-1)[::max(1, arr.size // 2_000_000)]
    lo, hi = np.percentile(sample, (0.1, 99.9))
    return np.clip(arr, lo, hi) if hi > lo else arr


def _image(volume: Volume, dtype=np.float32, robust: bool = False):
    if volume.is_rgb:
        raise RegistrationError("colour images cannot be registered; use a greyscale series")
    if min(volume.shape[:3]) < 4:
        raise RegistrationError(
            f"a series of shape {tuple(volume.shape[:3])} is too thin to register in 3D "
            "(at least 4 voxels along every axis)")
    arr = _robust(volume) if robust else volume.array
    return sitk_image(np.asarray(arr, dtype=dtype), volume.geometry)


def _working(img):
    """The image the registration works on: an isotropic grid of :data:`WORK_MM` or of its
    finest spacing if coarser (finer voxels smoothed away, thick slices interpolated). The multi-resolution pyramid
    shrinks every axis alike, which on a 0.8 x 0.8 x 6.5 mm MR leaves a few slices at the
    coarse levels and makes rigid registration hit or miss; and a 0.9 mm CT registers in
    seconds instead of minutes, as precisely (the transform is smooth; the metric samples
    points anyway)."""
    import SimpleITK as sitk

    sp = np.asarray(img.GetSpacing(), float)
    work = max(WORK_MM, float(sp.min()))  # never finer than the finest axis
    if np.allclose(sp, work, rtol=0.1):
        return img
    size = np.asarray(img.GetSize(), float)
    new_size = [max(1, int(round(n))) for n in size * sp / work]
    if min(sp) < work:  # anti-aliasing before taking coarser samples
        sigma = [max(0.01 * s, max(0.0, work ** 2 - s ** 2) ** 0.5 / 2.355) for s in sp]
        img = sitk.SmoothingRecursiveGaussian(img, sigma)
    ref = sitk.Image(new_size, img.GetPixelID())
    ref.SetSpacing([work] * 3)
    ref.SetDirection(img.GetDirection())
    ref.SetOrigin(img.TransformContinuousIndexToPhysicalPoint(
        [(work / s - 1) / 2 for s in sp]))  # the same extent, voxel centres re-spaced
    return sitk.Resample(img, ref, sitk.Transform(), sitk.sitkLinear, float(
        sitk.GetArrayViewFromImage(img).min()), img.GetPixelID())


def _pyramid(f_img, levels: int) -> tuple:
    """The shrink factors and smoothing of ``levels`` levels, coarse to fine, without a level
    where the fixed image would be under :data:`MIN_VOXELS` voxels along an axis (a small
    crop registers at full resolution only)."""
    shrink, smooth = list(SHRINK[-levels:]), list(SMOOTH_MM[-levels:])
    while len(shrink) > 1 and min(f_img.GetSize()) / shrink[0] < MIN_VOXELS:
        shrink, smooth = shrink[1:], smooth[1:]
    return shrink, smooth


def _sampling(f_img, shrink) -> list:
    """The share of the fixed voxels sampled per level: :data:`SAMPLES` points (a larger
    sample adds time, not accuracy), at most :data:`SAMPLING`."""
    n = float(np.prod(f_img.GetSize()))
    return [float(min(SAMPLING, max(1e-3, SAMPLES / max(1.0, n / s ** 3)))) for s in shrink]


def _initial_rigid(f_img, m_img):
    """The rigid start: of the images as the scanner placed them (identity), their geometric
    centres aligned, or their centres of mass aligned, the one with the best metric (a
    follow-up in the same frame of reference starts from the identity; crops of one image
    with different fields of view from their centres of mass)."""
    import SimpleITK as sitk

    centre = f_img.TransformContinuousIndexToPhysicalPoint(
        [(n - 1) / 2.0 for n in f_img.GetSize()])
    same = sitk.Euler3DTransform()
    same.SetCenter(centre)
    init = sitk.CenteredTransformInitializerFilter
    candidates = [same] + [sitk.CenteredTransformInitializer(f_img, m_img, sitk.Euler3DTransform(),
                                                             how)
                           for how in (init.GEOMETRY, init.MOMENTS)]
    probe = sitk.ImageRegistrationMethod()
    probe.SetMetricAsMattesMutualInformation(numberOfHistogramBins=50)
    probe.SetMetricSamplingStrategy(probe.RANDOM)
    probe.SetMetricSamplingPercentage(SAMPLING, SEED)
    probe.SetInterpolator(sitk.sitkLinear)
    best, value = same, float("inf")
    for t in candidates:
        probe.SetInitialTransform(t, inPlace=False)
        try:
            v = probe.MetricEvaluate(f_img, m_img)
        except RuntimeError:  # no overlap at all from this start
            continue
        if v < value:
            best, value = t, v
    return sitk.Euler3DTransform(best)


def _method(levels, reporter: Reporter, stage: str, done_before: int, total: int,
            counter: list, f_img):
    import SimpleITK as sitk

    r = sitk.ImageRegistrationMethod()
    r.SetMetricAsMattesMutualInformation(numberOfHistogramBins=50)
    r.SetMetricSamplingStrategy(r.RANDOM)
    shrink, smooth = _pyramid(f_img, levels)
    r.SetMetricSamplingPercentagePerLevel(_sampling(f_img, shrink), SEED)
    r.SetInterpolator(sitk.sitkLinear)
    r.SetShrinkFactorsPerLevel(shrink)
    r.SetSmoothingSigmasPerLevel(smooth)
    r.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()

    def tick():
        counter[0] += 1
        if reporter.cancel.cancelled:
            r.Abort()  # ends the optimisation at once; the caller raises Cancelled
            return
        lvl = r.GetCurrentLevel()
        reporter(done_before + lvl, total,
                 f"{stage}: level {lvl + 1} of {levels}, iteration {r.GetOptimizerIteration()}")

    r.AddCommand(sitk.sitkIterationEvent, tick)
    return r


def register(fixed: Volume, moving: Volume, kind: str = "rigid",
             reporter: Optional[Reporter] = None, iterations: int = 200,
             levels: int = 3) -> RegistrationResult:
    """Register ``moving`` to ``fixed``: a rigid stage (Euler, centred on the images'
    geometric centres), then affine, then a B-spline (``kind`` says where to stop). Each stage
    is multi-resolution (``levels`` of :data:`SHRINK`) with Mattes mutual information and a
    regular-step gradient descent (LBFGS-B for the B-spline). ``Cancelled`` when the
    reporter's token is set (between iterations)."""
    import SimpleITK as sitk

    if kind not in KINDS:
        raise RegistrationError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    reporter = reporter or Reporter()
    levels = max(1, min(len(SHRINK), int(levels)))
    t0 = time.perf_counter()
    f_img, m_img = _working(_image(fixed, robust=True)), _working(_image(moving, robust=True))
    stages = KINDS[:KINDS.index(kind) + 1]
    total = levels * len(stages)
    counter = [0]
    reporter(0, total, "Initialising")
    rigid = _initial_rigid(f_img, m_img)
    current = sitk.CompositeTransform(3)
    current.AddTransform(rigid)
    value, why = float("nan"), ""
    for i, stage in enumerate(stages):
        r = _method(levels, reporter, stage.capitalize(), i * levels, total, counter, f_img)
        if stage == "rigid":
            r.SetOptimizerAsRegularStepGradientDescent(
                learningRate=2.0, minStep=1e-4, numberOfIterations=iterations,
                gradientMagnitudeTolerance=1e-8, relaxationFactor=0.6)
            r.SetOptimizerScalesFromPhysicalShift()
            r.SetInitialTransform(rigid, inPlace=True)
        elif stage == "affine":
            affine = sitk.AffineTransform(3)
            affine.SetMatrix(rigid.GetMatrix())
            affine.SetTranslation(rigid.GetTranslation())
            affine.SetCenter(rigid.GetCenter())
            r.SetOptimizerAsRegularStepGradientDescent(
                learningRate=1.0, minStep=1e-6, numberOfIterations=iterations,
                gradientMagnitudeTolerance=1e-8, relaxationFactor=0.6)
            r.SetOptimizerScalesFromPhysicalShift()
            r.SetInitialTransform(affine, inPlace=True)
            rigid = affine  # the next stage starts from it
        else:
            size = [max(1, int(round(sz * sp / BSPLINE_SPACING_MM)))
                    for sz, sp in zip(f_img.GetSize(), f_img.GetSpacing())]
            bspline = sitk.BSplineTransformInitializer(f_img, size, order=3)
            r.SetMovingInitialTransform(rigid)
            r.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5,
                                   numberOfIterations=max(20, iterations // 2),
                                   maximumNumberOfCorrections=5,
                                   maximumNumberOfFunctionEvaluations=1000,
                                   costFunctionConvergenceFactor=1e7)
            r.SetInitialTransform(bspline, inPlace=True)
        try:
            r.Execute(f_img, m_img)
        except RuntimeError as exc:
            if reporter.cancel.cancelled:
                raise Cancelled() from exc
            raise RegistrationError(f"the {stage} stage failed: {str(exc).strip().splitlines()[-1]}"
                                    ) from exc
        if reporter.cancel.cancelled:
            raise Cancelled()
        value, why = float(r.GetMetricValue()), r.GetOptimizerStopConditionDescription()
        if stage == "deformable":
            current = sitk.CompositeTransform([rigid, bspline])
        else:
            current = sitk.CompositeTransform(3)
            current.AddTransform(rigid)
        reporter((i + 1) * levels, total, f"{stage.capitalize()} done")
    seconds = time.perf_counter() - t0
    prov = {"kind": kind, "metric": "Mattes mutual information (50 bins)",
            "metric_value": value, "iterations": counter[0], "levels": levels,
            "shrink": list(SHRINK[-levels:]), "smoothing_mm": list(SMOOTH_MM[-levels:]),
            "samples_per_level": SAMPLES, "seconds": round(seconds, 2),
            "fixed": _describe(fixed), "moving": _describe(moving),
            "direction": "fixed LPS mm -> moving LPS mm (ITK convention)",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    return RegistrationResult(current, kind, value, counter[0], seconds, why, prov)


def _describe(volume: Volume) -> dict:
    """What a series is, without who it belongs to (provenance is shared; no patient data)."""
    g = volume.geometry
    return {"uid": volume.uid or None, "modality": volume.modality or None,
            "shape_zyx": [int(v) for v in volume.shape[:3]],
            "spacing_xyz": [round(float(v), 4) for v in g.spacing]}


def resample_volume(moving: Volume, fixed: Geometry, transform, fill: Optional[float] = None,
                    description: str = "") -> Volume:
    """``moving`` resampled (linear) onto the ``fixed`` grid through ``transform``: the
    registered series, a new Volume (the original is not changed). ``fill`` outside the
    moving image: default its minimum (air for CT, 0 for MR)."""
    import SimpleITK as sitk

    img = _image(moving)
    value = float(np.min(moving.array)) if fill is None else float(fill)
    out = sitk.Resample(img, sitk_reference(fixed, sitk.sitkFloat32), transform, sitk.sitkLinear,
                        value, sitk.sitkFloat32)
    arr = sitk.GetArrayFromImage(out)
    if moving.array.dtype.kind in "iu":
        info = np.iinfo(moving.array.dtype)
        arr = np.clip(np.rint(arr), info.min, info.max).astype(moving.array.dtype)
    return Volume(arr, fixed, modality=moving.modality,
                  description=description or f"{moving.description} (registered)".strip(),
                  units=moving.units, invert=moving.invert, window=moving.window,
                  meta=dict(moving.meta or {}), uid="")


def resample_labels(labels: np.ndarray, moving: Geometry, fixed: Geometry,
                    transform) -> np.ndarray:
    """A label map of the moving image following the registration: nearest neighbour onto
    the fixed grid (values never blended), 0 outside."""
    import SimpleITK as sitk

    if tuple(labels.shape) != tuple(moving.shape):
        raise RegistrationError(f"the label map {tuple(labels.shape)} is not on the moving "
                                f"image's grid {tuple(moving.shape)}")
    img = sitk_image(labels, moving)
    out = sitk.Resample(img, sitk_reference(fixed, img.GetPixelID()), transform,
                        sitk.sitkNearestNeighbor, 0, img.GetPixelID())
    return sitk.GetArrayFromImage(out).astype(labels.dtype, copy=False)


def save_transform(result: RegistrationResult, path) -> Path:
    """The transform as an ITK transform file (``.tfm``/``.txt``/``.h5``), written atomically,
    and its provenance beside it (``PATH.json``). Returns the transform's path."""
    import SimpleITK as sitk

    out = Path(path)
    if out.suffix.lower() not in (".tfm", ".txt", ".h5", ".hdf5"):
        raise RegistrationError(f"{out.name}: a transform file ends in .tfm, .txt or .h5")
    with atomic_path(out, out.suffix) as tmp:
        sitk.WriteTransform(result.transform, str(tmp))
    atomic_write_text(out.with_name(out.name + ".json"),
                      json.dumps(result.provenance, indent=2, sort_keys=True))
    return out


def load_transform(path):
    """A transform saved by :func:`save_transform` (or any ITK transform file)."""
    import SimpleITK as sitk

    p = Path(path)
    if not p.is_file():
        raise RegistrationError(f"{p}: no such transform file")
    return sitk.ReadTransform(str(p))


def displacement_mm(transform, reference, geometry: Geometry, step: int = 8,
                    mask: Optional[np.ndarray] = None) -> np.ndarray:
    """How far ``transform`` moves points from where ``reference`` puts them (mm), at every
    ``step``-th voxel of ``geometry`` (inside ``mask`` when given): the error of a recovered
    transform against a known one."""
    nz, ny, nx = geometry.shape
    zz, yy, xx = np.mgrid[0:nz:step, 0:ny:step, 0:nx:step]
    pts = np.stack([xx.ravel(), yy.ravel(), zz.ravel()], 1).astype(float)
    if mask is not None:
        keep = mask[::step, ::step, ::step].ravel().astype(bool)
        pts = pts[keep]
    d = np.asarray(geometry.direction, float).reshape(3, 3)
    world = np.asarray(geometry.origin, float) + (pts * np.asarray(geometry.spacing)) @ d.T
    a = np.array([transform.TransformPoint(tuple(p)) for p in world])
    b = np.array([reference.TransformPoint(tuple(p)) for p in world])
    return np.linalg.norm(a - b, axis=1)


# ---------------------------------------------------------------------------- files
def open_series(path) -> Volume:
    """The first image series at ``path`` (a file, a DICOM folder), as the app opens it."""
    from .studies import load, scan

    cat = scan([str(path)])
    if not cat.series:
        raise RegistrationError(f"{path}: no image series found")
    return load(cat.series[0])


def write_series(volume: Volume, path) -> Path:
    """A registered series as NIfTI (.nii/.nii.gz), written atomically; patient details
    left out."""
    from medviewer.io.nifti_writer import write_nifti

    return write_nifti(volume, path, anonymise=True)


def write_labels(labels: np.ndarray, geometry: Geometry, path) -> Path:
    """A label map that followed the registration (.nii/.nii.gz/.nrrd), written atomically."""
    from medviewer.io.labels_io import write_labelmap

    return write_labelmap(labels, geometry, path)
