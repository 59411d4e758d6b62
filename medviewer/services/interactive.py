"""Interactive segmentation as a use case: pick an engine, turn millimetre prompts into voxel
prompts, segment one slice (2D) or carry it through the volume (3D), correct a 3D result from a
prompt on any slice, and run the click protocol against a reference mask (2D or 3D). Shared by
the CLI and (later) the app.

Every engine is a module with ``segment_2d(image2d, prompts, spacing_yx, z=None,
prev_mask=None) -> bool mask`` and ``slice_step(volume, start_mask2d, z, prompts, spacing_zyx)
-> step(k, prev_mask2d)``; the walk through the slices (and where it stops) is the engine-free
:func:`medviewer.core.propagation.propagate`."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

from medviewer.core.click_sim import MAX_CLICKS, dice, next_click, noc
from medviewer.core.propagation import propagate
from medviewer.core.prompts import Point, Prompts, box_from_mm, point_from_mm

__all__ = ["ENGINES", "NoLearnedModel", "available_engines", "default_engine",
           "resolve_engine", "engine_spacing", "EngineSpacing",
           "use_model_version", "prompts_from_mm", "segment", "correct_3d", "simulate",
           "SimulationResult", "load_volume", "reference_mask"]

ENGINES = ("classical", "learned")


class NoLearnedModel(RuntimeError):
    """No learned promptable model is available yet."""


def _engine(name: str):
    if name == "auto":
        name = default_engine()
    if name == "classical":
        from medviewer.ai.interactive import classical

        return classical
    if name == "learned":
        from medviewer.ai.interactive import learned

        reason = learned.unavailable_reason()
        if reason is not None:
            raise NoLearnedModel(f"the learned promptable model cannot be used: {reason} "
                                 f"(use the classical engine)")
        return learned
    raise ValueError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)} or auto")


def available_engines() -> dict:
    """``{engine: None if usable else the reason it is not}`` (the learned engine needs its
    weights; the classical one always works)."""
    from medviewer.ai.interactive import learned

    return {"classical": None, "learned": learned.unavailable_reason()}


def resolve_engine(name: str) -> str:
    """The engine ``name`` stands for ("auto" -> the default); NoLearnedModel when "learned"
    cannot be used, ValueError for an unknown name."""
    name = default_engine() if name == "auto" else name
    _engine(name)
    return name


def default_engine() -> str:
    """The learned engine where its model is there, else the classical one."""
    return "learned" if available_engines()["learned"] is None else "classical"


def use_model_version(ref: Optional[str]) -> str:
    """Make the learned engine use model version ``ref`` ("name:version"; None: the active
    version) from now on; returns the ref in use."""
    from medviewer.ai.interactive import learned

    return learned.use_version(ref)


def active_version_changed(name: str) -> bool:
    """Model ``name``'s active version moved (promoted, rolled back, or a fine-tune promoted
    it in its child process): when it is the promptable model, the learned engine lets go of
    the version it loaded on its own, so the next prompt uses the new active one (a version
    chosen with :func:`use_model_version` stays). True when a loaded network was dropped."""
    from medviewer.ai.interactive import learned

    return str(name).split(":", 1)[0] == learned.MODEL_NAME and learned.forget_implicit()


def load_volume(path, reporter=None):
    """The one image volume at ``path`` (a NIfTI/NRRD/MHA file or a DICOM series)."""
    from medviewer.services.cases import find_cases, load_case

    cases, skipped = find_cases([str(path)], reporter)
    series = [c for c in cases if c.entry is not None]
    if len(series) != 1:
        why = "; ".join(r for _, r in skipped) or f"{len(series)} image series found"
        raise ValueError(f"{path}: expected one image volume ({why})")
    return load_case(series[0], reporter)


def reference_mask(path, geometry, label: Optional[int] = None) -> np.ndarray:
    """A boolean reference mask from a label file on ``geometry`` (label > 0, or == label)."""
    from medviewer.services.annotations import read_label_file

    got = read_label_file(path, geometry)
    if isinstance(got, Exception):
        raise ValueError(f"{path}: {got}")
    labels = np.asarray(got[0])
    return labels > 0 if label is None else labels == int(label)


def prompts_from_mm(geometry, points: Sequence[Tuple[Sequence[float], bool]] = (),
                    boxes: Sequence[Tuple[Sequence[float], Sequence[float]]] = ()) -> Prompts:
    """Voxel prompts from LPS-millimetre points ``(xyz, positive)`` and boxes (two corners)."""
    out = Prompts()
    for xyz, positive in points:
        out = out.add(point_from_mm(geometry, xyz, positive))
    for c0, c1 in boxes:
        out = out.add(box_from_mm(geometry, c0, c1))
    return out


# The field a projection radiograph covers when its pixel spacing is unknown: the longer side
# of the usual detectors and cassettes (35x43 and 43x43 cm for chest and abdomen, 35x35 cm
# and smaller for limbs; 24x30 cm for mammography and panoramic dental images; about 4 cm for
# an intraoral sensor), so that millimetre sizes (the learned engine's 160 mm first window,
# the classical engine's bands) are about right instead of reading each pixel as 1 mm.
FIELD_MM = {"MG": 300.0, "PX": 300.0, "IO": 40.0}
DEFAULT_FIELD_MM = 400.0


@dataclass(frozen=True)
class EngineSpacing:
    """The (z, y, x) spacing in mm the engines work with, and ``note`` (one line, '' unless
    the spacing was estimated) to show and return with the result."""

    zyx: Tuple[float, float, float]
    note: str = ""


def engine_spacing(volume) -> EngineSpacing:
    """The volume's own spacing; for a one-image projection radiograph whose reader found no
    pixel spacing (``meta['spacing_unknown']``: 1 mm was assumed), the spacing at which the
    image's longer side spans a typical detector field (:data:`FIELD_MM`). CT, MR and any
    image with a pixel spacing keep theirs. The one place the prompt engines get a spacing."""
    sx, sy, sz = (float(v) for v in volume.geometry.spacing)
    meta = getattr(volume, "meta", None) or {}
    if not meta.get("spacing_unknown"):
        return EngineSpacing((sz, sy, sx))
    from medviewer.ai.domain import ImageFacts

    facts = ImageFacts.from_volume(volume)
    if facts.image_type != "projection" or facts.n_slices != 1:
        return EngineSpacing((sz, sy, sx))
    field_mm = FIELD_MM.get(facts.modality, DEFAULT_FIELD_MM)
    ps = field_mm / max(volume.array.shape[1:3])
    return EngineSpacing((sz, ps, ps), f"pixel spacing unknown: prompts assume {ps:.2f} mm "
                                      f"({field_mm:.0f} mm across the image)")


def _spacing_zyx(volume) -> tuple:
    return engine_spacing(volume).zyx


def segment(volume, prompts: Prompts, three_d: bool = False, engine: str = "classical",
            z: Optional[int] = None, prev_mask: Optional[np.ndarray] = None) -> np.ndarray:
    """A boolean mask on the volume's grid: slice ``z`` (the first prompted slice by default),
    carried through the neighbouring slices when ``three_d``. ``prev_mask``: the slice's
    current result (2D, slice ``z``) that the prompts correct, if any."""
    eng = _engine(engine)
    if not len(prompts):
        raise ValueError("give at least one prompt")
    zs = prompts.slices()
    z = zs[0] if z is None else int(z)
    arr = np.asarray(volume.array)
    spacing = _spacing_zyx(volume)
    out = np.zeros(arr.shape[:3], bool)
    kw = {} if prev_mask is None or not np.any(prev_mask) else {"prev_mask": prev_mask}
    out[z] = eng.segment_2d(arr[z], prompts, spacing[1:], z=z, **kw)
    if three_d:
        step = eng.slice_step(arr, out[z], z, prompts, spacing)
        out = propagate(out.shape, out[z], z, step)
    return out


def correct_3d(volume, mask3d: np.ndarray, prompts: Prompts, k: int,
               engine: str = "classical") -> np.ndarray:
    """``mask3d`` (a 3D result) corrected by the prompts on slice ``k``: slice ``k`` is
    re-segmented from every prompt on it with ``mask3d[k]`` as its previous mask, then carried
    outward again, rewriting only the slices that change (the walk stops where it agrees with
    ``mask3d``) and never a slice that carries prompts of its own (an anchor)."""
    eng = _engine(engine)
    arr = np.asarray(volume.array)
    mask3d = np.asarray(mask3d, bool)
    if mask3d.shape != tuple(arr.shape[:3]):
        raise ValueError(f"mask {mask3d.shape} is not on the image grid {arr.shape[:3]}")
    k = int(k)
    if not 0 <= k < mask3d.shape[0]:
        raise ValueError(f"slice {k} is outside 0..{mask3d.shape[0] - 1}")
    spacing = _spacing_zyx(volume)
    start = np.asarray(eng.segment_2d(arr[k], prompts, spacing[1:], z=k, prev_mask=mask3d[k]),
                       bool)
    step = eng.slice_step(arr, start, k, prompts, spacing)
    anchors = [s for s in prompts.slices() if s != k]
    return propagate(mask3d.shape, start, k, step, existing=mask3d, anchors=anchors)


@dataclass
class SimulationResult:
    """Dice after each simulated click, with the clicks and per-click times."""

    z: int
    clicks: List[Point] = field(default_factory=list)
    dices: List[float] = field(default_factory=list)
    seconds: List[float] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)

    def noc(self, target: float) -> int:
        return noc(self.dices, target, max(len(self.dices), MAX_CLICKS))

    def to_dict(self) -> dict:
        return {"slice": self.z, "dice": [round(d, 4) for d in self.dices],
                "clicks": [{"voxel_zyx": list(c.voxel), "positive": c.positive}
                           for c in self.clicks],
                "noc85": self.noc(0.85), "noc90": self.noc(0.90),
                "seconds_per_click": round(float(np.mean(self.seconds)), 4)
                if self.seconds else None, "warnings": list(self.warnings)}


def simulate(volume, reference: np.ndarray, max_clicks: int = MAX_CLICKS,
             z: Optional[int] = None, three_d: bool = False, engine: str = "classical",
             stop_at: Optional[float] = None) -> SimulationResult:
    """Run the click protocol against ``reference`` (boolean, the volume's grid): on slice
    ``z`` (the one with the largest reference area by default), or in 3D. ``stop_at``: stop
    early once the Dice reaches it.

    3D: the first click goes to slice ``z`` (as in 2D) and its mask is propagated; every next
    click goes to the centre of the largest 3D error region (in mm), on whatever slice that is,
    and corrects the 3D result there (:func:`correct_3d`). Dice is then the 3D Dice."""
    ref = np.asarray(reference, bool)
    if ref.shape != tuple(volume.array.shape[:3]):
        raise ValueError(f"reference {ref.shape} is not on the image grid {volume.array.shape}")
    if not ref.any():
        raise ValueError("the reference mask is empty")
    if z is None:
        z = int(np.argmax(ref.reshape(ref.shape[0], -1).sum(axis=1)))
    used = engine_spacing(volume)
    spacing = used.zyx
    res = SimulationResult(z, warnings=[used.note] if used.note else [])
    prompts, mask = Prompts(), np.zeros(ref.shape, bool)
    for n in range(int(max_clicks)):
        if three_d and n:
            click = next_click(mask, ref, spacing)
            point = None if click is None else Point(click.index, click.positive)
        else:
            click = next_click(mask[z], ref[z], spacing[1:])
            point = None if click is None else Point((z,) + click.index, click.positive)
        if point is None:
            break
        prompts = prompts.add(point)
        t0 = time.perf_counter()
        if three_d and n:
            mask = correct_3d(volume, mask, prompts, point.voxel[0], engine)
        else:
            mask = segment(volume, prompts, three_d=three_d, engine=engine, z=z,
                           prev_mask=None if three_d else mask[z])
        res.seconds.append(time.perf_counter() - t0)
        res.clicks.append(point)
        res.dices.append(dice(mask, ref) if three_d else dice(mask[z], ref[z]))
        if stop_at is not None and res.dices[-1] >= stop_at:
            break
    return res
