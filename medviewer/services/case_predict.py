"""One case through a model, as ``medviewer predict`` runs it (one file and batch alike): read
the image or volume, check it against the model's domain before anything slow, run the app's
code path (:mod:`medviewer.services.ai_runs`), and write a segmentation's label map and its
sidecar atomically. Each step is timed; no printing here (the command line reports)."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from .cases import Case, load_case, read_image
from .exports import sidecar_path
from .model_fit import ImageFacts, check_domain, require_fit

__all__ = ["CasePrediction", "classify_case", "segment_case", "write_segmentation",
           "sidecar_path"]


@dataclass
class CasePrediction:
    run: object  # ai_runs.ClassificationRun or SegmentationRun
    volume: object = None  # the Volume segmented (evenly spaced; None for classification)
    notes: list = field(default_factory=list)  # what was done to the input (resampling)
    timings: dict = field(default_factory=dict)  # load_s, predict_s (write_s when written)


def _context(lane, reporter):
    from .ai_runs import InferenceContext

    return InferenceContext(lane, reporter)


def _check_fit(card, facts, force: bool) -> None:
    """DomainMismatch before anything slow when the case is outside the model's domain."""
    require_fit(card, check_domain(card, facts), force)


def _nothing() -> None:
    return None


def classify_case(case: Case, card, lane, *, z: Optional[int] = None, force: bool = False,
                  reporter=None, done: Callable[[], None] = _nothing) -> CasePrediction:
    """Classify an image file, or slice ``z`` of a volume (a one-slice volume needs none).
    DomainMismatch outside the model's domain (unless ``force``); ValueError for a volume
    without ``z`` or a ``z`` out of range. ``done()`` ends each step's progress display."""
    from .ai_runs import classify_image, volume_window

    t0 = time.perf_counter()
    invert, window, zi = False, None, 0
    if case.image_path is not None:
        image = read_image(case.image_path)
        facts = ImageFacts.from_image_file(image)
    else:
        try:
            vol = load_case(case, reporter)
        finally:
            done()
        nz = vol.shape[0]
        facts = ImageFacts.from_volume(vol)
        _check_fit(card, facts, force)
        if nz > 1 and z is None:
            raise ValueError(f"a volume of {nz} slices; {card.ref} classifies 2D images "
                             f"(give --slice N to classify one slice)")
        zi = 0 if z is None else z
        if not 0 <= zi < nz:
            raise ValueError(f"--slice {zi} is outside 0..{nz - 1}")
        image, invert, window = vol.array[zi], bool(vol.invert), volume_window(vol)
    t1 = time.perf_counter()
    try:
        run = classify_image(_context(lane, reporter), card, image, zi, invert=invert,
                             window=window, facts=facts, force=force)
    finally:
        done()
    return CasePrediction(run, timings={"load_s": t1 - t0, "predict_s": time.perf_counter() - t1})


def _even_volume(vol, notes: list):
    if not vol.geometry.is_uneven:
        return vol
    from medviewer.core.resample import resample_even

    vol = resample_even(vol)
    notes.append(f"uneven slice spacing: the volume was resampled to even "
                 f"{vol.geometry.spacing[2]:g} mm slices first (a NIfTI label map cannot "
                 f"store uneven spacing); the label map is on that grid")
    return vol


def segment_case(case: Case, card, lane, *, z: Optional[int] = None, force: bool = False,
                 reporter=None, done: Callable[[], None] = _nothing) -> CasePrediction:
    """Segment a volume (or only its slice ``z``). DomainMismatch outside the model's domain
    (unless ``force``); ValueError for a plain image file, a colour image or a bad ``z``."""
    from .ai_runs import segment_volume

    t0 = time.perf_counter()
    if case.image_path is not None:
        _check_fit(card, ImageFacts.from_image_file(read_image(case.image_path)), force)
        raise ValueError(f"{card.ref} segments volumes with known voxel spacing; "
                         f"{case.image_path.suffix} images have none")
    notes: list = []
    try:
        vol = load_case(case, reporter)
    finally:
        done()
    _check_fit(card, ImageFacts.from_volume(vol), force)
    vol = _even_volume(vol, notes)
    if vol.is_rgb:
        raise ValueError("a colour image; the segmentation model expects grey CT/MR data")
    if z is not None and not 0 <= z < vol.shape[0]:
        raise ValueError(f"--slice {z} is outside 0..{vol.shape[0] - 1}")
    t1 = time.perf_counter()
    try:
        run = segment_volume(_context(lane, reporter), card, vol, z, force=force,
                             keep_entropy=False)  # only the case score: streamed
    finally:
        done()
    return CasePrediction(run, vol, notes,
                          {"load_s": t1 - t0, "predict_s": time.perf_counter() - t1})


def write_segmentation(pred: CasePrediction, out_path: Path, case_label: str, *,
                       anonymise: bool = True, key_folder=None) -> dict:
    """Write the label map NIfTI and its ``.labels.json`` sidecar (each atomically); the
    sidecar's content. ``case_label`` names the case in the sidecar (a path, never patient
    identity); its ``subject`` says whose image it is (:func:`.exports.subject_for`: a
    pseudonym unless ``anonymise`` is off). Adds ``write_s`` to ``pred.timings``."""
    from medviewer.core.atomic import atomic_write_text

    from .annotations import write_label_file
    from .exports import subject_for

    t0 = time.perf_counter()
    run, vol = pred.run, pred.volume
    z0, z1 = run.z_range
    table = {"labels": [{"value": i, "name": n} for i, n in enumerate(run.label_names) if i > 0]}
    write_label_file(run.labels, vol.geometry, out_path, table)
    sidecar = {"case": case_label, "model": run.ref, "labels": [
        {"value": i, "name": n} for i, n in enumerate(run.label_names)],
        "slices": [z0, z1], "uncertainty": run.uncertainty,
        "warnings": pred.notes + run.warnings,
        "preprocessing": run.preprocessing, "in_domain": run.ood.get("in_domain"),
        "ood_score": run.ood.get("ood_score"), "ood": run.ood, "forced": run.forced,
        "precision": run.precision,
        "subject": subject_for(getattr(vol, "meta", None), anonymise, key_folder)}
    if run.forced:
        sidecar["domain_mismatch"] = run.domain_reason
    atomic_write_text(sidecar_path(out_path), json.dumps(sidecar, indent=2) + "\n")
    pred.timings["write_s"] = time.perf_counter() - t0
    return sidecar
