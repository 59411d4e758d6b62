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
from medviewer.jobs import Cancelled, Reporter

KINDS = ("rigid", "affine", "deformable")
SHRINK = (4, 2, 1)  # multi-resolution pyramid (voxels), coarse to fine
SMOOTH_MM = (2.0, 1.0, 0.0)  # Gaussian smoothing per level, physical units
SAMPLING = 0.15  # share of the fixed voxels the metric samples (fixed seed: reproducible)
BSPLINE_SPACING_MM = 50.0  # control-point spacing of the deformable stage
SEED = 7


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


def _image(volume: Volume, dtype=np.float32):
    import SimpleITK as sitk

    if volume.is_rgb:
        raise RegistrationError("colour images cannot be registered; use a greyscale series")
    if min(volume.shape[:3]) < 4:
        raise RegistrationError(
            f"a series of shape {tuple(volume.shape[:3])} is too thin to register in 3D "
            "(at least 4 voxels along every axis)")
    img = sitk.GetImageFromArray(np.ascontiguousarray(volume.array, dtype=dtype))
    g = volume.geometry
    img.SetSpacing(tuple(float(v) for v in g.spacing))
    img.SetOrigin(tuple(float(v) for v in g.origin))
    img.SetDirection(tuple(float(v) for v in g.direction))
    return img


def _reference(g: Geometry, pixel):
    import SimpleITK as sitk

    ref = sitk.Image([int(v) for v in g.size_xyz], pixel)
    ref.SetSpacing(tuple(float(v) for v in g.spacing))
    ref.SetOrigin(tuple(float(v) for v in g.origin))
    ref.SetDirection(tuple(float(v) for v in g.direction))
    return ref


def _method(levels, reporter: Reporter, stage: str, done_before: int, total: int,
            counter: list):
    import SimpleITK as sitk

    r = sitk.ImageRegistrationMethod()
    r.SetMetricAsMattesMutualInformation(numberOfHistogramBins=50)
    r.SetMetricSamplingStrategy(r.RANDOM)
    r.SetMetricSamplingPercentage(SAMPLING, SEED)
    r.SetInterpolator(sitk.sitkLinear)
    r.SetShrinkFactorsPerLevel(list(SHRINK[-levels:]))
    r.SetSmoothingSigmasPerLevel(list(SMOOTH_MM[-levels:]))
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
    f_img, m_img = _image(fixed), _image(moving)
    stages = KINDS[:KINDS.index(kind) + 1]
    total = levels * len(stages)
    counter = [0]
    reporter(0, total, "Initialising")
    rigid = sitk.CenteredTransformInitializer(
        f_img, m_img, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.GEOMETRY)
    current = sitk.CompositeTransform(3)
    current.AddTransform(rigid)
    value, why = float("nan"), ""
    for i, stage in enumerate(stages):
        r = _method(levels, reporter, stage.capitalize(), i * levels, total, counter)
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
                learningRate=1.0, minStep=1e-4, numberOfIterations=iterations,
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
            "sampling": SAMPLING, "seconds": round(seconds, 2),
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
    out = sitk.Resample(img, _reference(fixed, sitk.sitkFloat32), transform, sitk.sitkLinear,
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
    img = sitk.GetImageFromArray(np.ascontiguousarray(labels))
    img.SetSpacing(tuple(float(v) for v in moving.spacing))
    img.SetOrigin(tuple(float(v) for v in moving.origin))
    img.SetDirection(tuple(float(v) for v in moving.direction))
    out = sitk.Resample(img, _reference(fixed, img.GetPixelID()), transform,
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
