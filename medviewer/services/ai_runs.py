"""Running a model on a case, the one code path of the app and of ``medviewer predict``:
classification (with saliency), segmentation (with uncertainty), and the 'predicted' records
they leave in the label store when one is given.

Jobs get an :class:`InferenceContext` (progress, cancel, device, the cached model) and run on
the AI worker thread (the app) or the main thread (the command line); no Qt here. Inputs are
copied or read-only arrays; results are plain dataclasses."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

import numpy as np

from medviewer.core.foreground import foreground_slice, mask_to_foreground
from medviewer.core.orientation import AxisFlips
from medviewer.core.volume import Volume
from medviewer.jobs import Reporter, drive

from .annotations import snapshot_image
from .model_fit import ImageFacts, check_domain, ood_of_image, ood_of_volume, require_fit

SALIENCY_METHODS = (("grad_cam", "Grad-CAM"), ("integrated_gradients", "Integrated gradients"))
UNCERTAINTY_METHODS = (("entropy", "Entropy"), ("mc_dropout", "MC-dropout variance"),
                       ("tta", "TTA variance"))
VARIANCE_SAMPLES = 8  # MC-dropout passes
VARIANCE_PERCENTILE = 99.5  # a variance map is shown divided by this percentile of its run


class ModelLane:
    """The device and the one cached model of an inference lane (the app's AI worker, or a
    ``predict`` run). ``device()`` and ``model()`` are called on the lane's own thread;
    ``on_device(device, label)`` hears the device chosen (first use, preference changed)."""

    def __init__(self, preference: str = "auto",
                 on_device: Optional[Callable[[str, str], None]] = None, strict: bool = False,
                 threads: Optional[int] = None, precision: str = "auto", process=None):
        self.preference = preference
        # an InferenceProcess (services.ai_process): whole-volume segmentations run there,
        # out of this interpreter (the app: the GUI never waits for the GIL); None: here
        self.process = process
        self.strict = strict  # an unusable forced device is an error (the CLI), not a fallback
        self.threads = threads  # CPU threads for torch (None: all cores but one, for a GUI)
        self.precision_preference = precision  # "auto" (per model and machine) or "fp32"
        self._on_device = on_device
        self._device_for: Optional[tuple] = None  # (preference, device)
        self._cache = None

    def device(self) -> str:
        preload_ai_libraries()  # one thread at a time imports torch/MONAI (the preload, a job)
        from medviewer.ai.device import choose_device, configure_threads, device_label

        pref = self.preference
        if self._device_for is None or self._device_for[0] != pref:
            configure_threads(self.threads)
            dev = choose_device(pref, strict=self.strict)
            self._device_for = (pref, dev)
            if self._on_device is not None:
                self._on_device(dev, device_label(dev))
        return self._device_for[1]

    def reconfigure(self, preference: str, threads: Optional[int], precision: str) -> None:
        """Take another lane's settings (the inference process serving the app's lane): the
        device and threads are chosen again at the next :meth:`device` when they changed."""
        if (preference, threads) != (self.preference, self.threads):
            self._device_for = None
        self.preference, self.threads, self.precision_preference = preference, threads, precision

    def announce(self, device: str, label: str) -> None:
        """Tell ``on_device`` about a device chosen elsewhere (the inference process)."""
        if self._on_device is not None:
            self._on_device(device, label)

    def precision(self, card, device: Optional[str] = None) -> str:
        """The autocast of ``card``'s forward passes: "fp32", "bf16" or "fp16"
        (:func:`medviewer.ai.precision.choose`)."""
        from medviewer.ai.precision import choose

        return choose(card, device or self.device(), self.precision_preference)

    def model(self, card, device: Optional[str] = None):
        """The card's model on ``device`` (default: the lane's), cached until another is used.
        ModelError for a model that does not run automatically (the promptable one)."""
        from medviewer.services.models import require_automatic

        require_automatic(card)
        if self._cache is None:
            from medviewer.ai.model_cache import ModelCache

            self._cache = ModelCache()
        return self._cache.get(card, device or self.device())


class InferenceContext:
    """What a job gets: progress that raises ``Cancelled`` once the job is cancelled, the
    device and the cached model of its lane, and the generator driver."""

    def __init__(self, lane: ModelLane, reporter: Optional[Reporter] = None):
        self.lane, self.reporter = lane, reporter or Reporter()

    @property
    def cancel_token(self):
        return self.reporter.cancel

    def cancelled(self) -> bool:
        return self.reporter.cancel.cancelled

    def check(self) -> None:
        """Raise ``Cancelled`` when the job was cancelled."""
        self.reporter.cancel.raise_if_cancelled()

    def progress(self, done: int, total: int, message: str = "") -> None:
        self.reporter(done, total, message)

    def device(self) -> str:
        return self.lane.device()

    def model(self, card):
        return self.lane.model(card, self.device())

    def precision(self, card) -> str:
        return self.lane.precision(card, self.device())

    def drive(self, gen, message: str = ""):
        """Run an ai generator to its end with this job's progress and cancel."""
        return drive(gen, self.reporter, message)


def uncertainty_available(card, method: str) -> bool:
    """Whether ``card``'s model allows ``method``, from its card alone (no torch): MC-dropout
    needs Dropout layers in the network, test-time flips need a 2D model."""
    if card is None:
        return False
    if method == "entropy":
        return True
    if method == "tta":
        return int(card.input.get("dims", 2)) == 2
    if method == "mc_dropout":
        from medviewer.ai.architectures import ModelError, has_dropout

        arch = card.architecture or {}
        try:
            return bool(has_dropout(arch.get("name"), arch.get("params", {})))
        except (ModelError, KeyError, TypeError):
            return False
    return False


def slice_image(volume: Volume, z: int) -> np.ndarray:
    """The stored 2D image of slice ``z`` (a radiograph: its only slice), as it is stored."""
    return np.array(volume.array[int(z)], copy=True)


def spacing_zyx(volume: Volume) -> tuple:
    sx, sy, sz = volume.geometry.spacing
    return (float(sz), float(sy), float(sx))


def volume_window(volume: Volume) -> Optional[tuple]:
    """The series' own (centre, width), which the classifier's input is windowed through."""
    w = getattr(volume, "window", None)
    return None if w is None else (float(w.center), float(w.width))


# ---------------------------------------------------------------------------- classification
@dataclass
class ClassificationRun:
    ref: str
    z: int
    probs: Dict[str, float]
    label: str
    uncertainty: float  # normalised entropy of ``probs``, 0..1
    device: str
    record: object = None  # the 'predicted' case Record (when a store was given)
    saliency: Optional[np.ndarray] = None  # (h, w) float32 in [0, 1] on the slice
    saliency_method: str = ""
    ood: dict = field(default_factory=dict)  # OodResult.to_dict(): ood_score, in_domain...
    forced: bool = False  # run on an image outside the model's declared domain
    domain_reason: str = ""  # why it does not fit (forced runs)

    def to_dict(self) -> dict:
        """What ``medviewer predict`` writes per case (besides the case name)."""
        return {"class": self.label, "probabilities": dict(self.probs), "model": self.ref,
                "in_domain": self.ood.get("in_domain"), "ood_score": self.ood.get("ood_score"),
                "forced": self.forced}


def saliency_map(ctx: InferenceContext, card, image: np.ndarray, invert: bool, target: int,
                 method: str, window: Optional[tuple] = None) -> np.ndarray:
    """A saliency heat map (h, w) in [0, 1] of ``card``'s class ``target`` on ``image``."""
    from medviewer.ai import saliency

    if method not in dict(SALIENCY_METHODS):
        raise ValueError(f"unknown saliency method {method!r}")
    model = ctx.model(card)
    ctx.check()
    heat = getattr(saliency, method)(model, card, image, target, device=ctx.device(),
                                     invert=invert, window=window)
    heat = np.asarray(heat, dtype=np.float32)
    if heat.shape != image.shape[:2]:
        raise ValueError(f"saliency map {heat.shape} does not match the image {image.shape[:2]}")
    heat = np.clip(np.nan_to_num(heat), 0.0, 1.0)
    heat[~foreground_slice(image, invert)] = 0.0  # drawn on the body / image only
    return heat


def classify_image(ctx: InferenceContext, card, image: np.ndarray, z: int = 0, *,
                   invert: bool = False, window: Optional[tuple] = None,
                   saliency_method: Optional[str] = None, facts: Optional[ImageFacts] = None,
                   force: bool = False) -> ClassificationRun:
    """Classify one 2D image (a radiograph, or slice ``z`` of a volume) and score how far it
    lies from the training data. ``facts`` (the image's metadata) are checked against the
    model's domain first: DomainMismatch unless they fit or ``force``."""
    from medviewer.ai.inference import classify
    from medviewer.ai.uncertainty import class_entropy

    fit = check_domain(card, facts or ImageFacts.from_image_file(image))
    forced = require_fit(card, fit, force)
    device = ctx.device()
    ctx.progress(0, 3, f"Loading {card.ref}…")
    model = ctx.model(card)
    ctx.progress(1, 3, "Classifying…")
    res = ctx.drive(classify(model, card, image, device, invert=invert, window=window,
                             cancel=ctx.cancel_token, precision=ctx.precision(card)),
                    "Classifying…")
    probs = {str(k): float(v) for k, v in dict(res.probs).items()}
    run = ClassificationRun(card.ref, int(z), probs, str(res.label), class_entropy(probs), device,
                            forced=forced, domain_reason=fit.reason)
    run.ood = ood_of_image(ctx, card, image, invert, window).to_dict()
    if saliency_method:
        ctx.progress(2, 3, "Saliency…")
        run.saliency = saliency_map(ctx, card, image, invert, list(card.labels).index(run.label),
                                    saliency_method, window)
        run.saliency_method = saliency_method
    ctx.check()
    ctx.progress(3, 3, "Done")
    return run


def classify_job(ctx: InferenceContext, card, volume: Volume, z: int, store, image_hash: str,
                 saliency_method: Optional[str], force: bool = False) -> ClassificationRun:
    """The app's run: :func:`classify_image` on slice ``z``, stored as a 'predicted' record."""
    from medviewer.storage.store import Source

    run = classify_image(ctx, card, slice_image(volume, z), z, invert=bool(volume.invert),
                         window=volume_window(volume), saliency_method=saliency_method,
                         facts=ImageFacts.from_volume(volume), force=force)
    ctx.check()  # cancelled: nothing is stored
    snapshot_image(store, volume, image_hash)  # the image, for training and the review queue
    payload = prediction_payload(card, volume, z, run.label, run.probs, run.uncertainty)
    payload["prediction"].update(ood=run.ood, forced=run.forced)
    prep = {"model": card.ref, "input": dict(card.input), "device": run.device, "slice": int(z),
            "invert": bool(volume.invert), **_forced_note(run)}
    run.record = store.add_case_labels(image_hash, payload, "predicted",
                                       Source("model", card.name, card.version), preprocessing=prep)
    return run


def prediction_payload(card, volume: Volume, z: int, label: str, probs: dict, unc: float) -> dict:
    """A CaseLabels-shaped payload (series level for a 2D image, slice level for a slice of a
    volume) plus the prediction itself."""
    payload = review_payload(card.labels, volume, z, {label: True})
    payload["prediction"] = {"model": card.ref, "label": label, "probabilities": probs,
                             "slice": int(z), "case_uncertainty": unc}
    return payload


def _forced_note(run) -> dict:
    """What a stored record says about a forced run (nothing for a fitting one)."""
    return {"forced": True, "domain_mismatch": run.domain_reason} if run.forced else {}


def review_payload(classes, volume: Volume, z: int, states: dict) -> dict:
    states = {str(k): bool(v) for k, v in states.items()}
    if volume.shape[0] > 1:
        return {"classes": list(classes), "series": {}, "slices": {str(int(z)): states}}
    return {"classes": list(classes), "series": states, "slices": {}}


# ---------------------------------------------------------------------------- segmentation
@dataclass
class SegmentationRun:
    ref: str
    z: Optional[int]  # the slice that was segmented (None = the whole volume)
    labels: np.ndarray  # (z, y, x) uint8 on the volume grid
    label_names: list
    entropy: Optional[np.ndarray]  # (z, y, x) float16 in [0, 1] (zero outside the run; None
    # when the run kept none)
    uncertainty: float  # case score over the slices run (nan without entropy)
    most_uncertain: Optional[int]
    device: str
    record: object = None  # the 'predicted' label-map Record (when a store was given)
    table: dict = field(default_factory=dict)
    proposal: object = None  # the core Proposal of ``labels`` (the app), built off the GUI
    variance: Optional[np.ndarray] = None  # (z, y, x) float16 in [0, 1]: variance / its p99.5
    uncertainty_method: str = "entropy"
    z_range: tuple = (0, 0)  # the slices run
    variance_scale: Optional[float] = None
    preprocessing: dict = field(default_factory=dict)  # how the model's input was made
    warnings: list = field(default_factory=list)
    ood: dict = field(default_factory=dict)  # OodResult.to_dict() of the slices run
    forced: bool = False  # run on an image outside the model's declared domain
    domain_reason: str = ""
    precision: str = "fp32"  # the forward pass's autocast: fp32, bf16 or fp16


def label_table(label_names) -> dict:
    return {"labels": [{"value": i, "name": str(n)} for i, n in enumerate(label_names) if i]}


def segment_volume(ctx: InferenceContext, card, volume: Volume, z: Optional[int] = None,
                   method: str = "entropy", force: bool = False,
                   keep_entropy: bool = True) -> SegmentationRun:
    """Segment the volume (or only slice ``z``) with entropy, and with the MC-dropout / TTA
    variance when ``method`` asks for it; score how far the input lies from the training
    data. DomainMismatch when the volume is outside the model's domain (unless ``force``).
    The case score and the most uncertain slice are computed batch by batch as the entropy
    arrives; ``keep_entropy=False`` (``medviewer predict``) keeps no entropy volume at all.
    A lane with an inference process runs all of this there (the same function, in it)."""
    if ctx.lane.process is not None:
        return ctx.lane.process.segment(ctx, card, volume, z, method, force, keep_entropy)
    from medviewer.ai import uncertainty
    from medviewer.ai.inference import segment

    if method not in dict(UNCERTAINTY_METHODS):
        raise ValueError(f"unknown uncertainty method {method!r}")
    fit = check_domain(card, ImageFacts.from_volume(volume))
    forced = require_fit(card, fit, force)
    device = ctx.device()
    ctx.progress(0, 1, f"Loading {card.ref}…")
    model = ctx.model(card)
    what = "slice" if z is not None else "volume"
    var_kw = {} if method == "entropy" else {"variance": method, "n_samples": VARIANCE_SAMPLES}
    nz = int(volume.shape[0])
    invert = bool(volume.invert)
    # the model sees the volume in LPS order (x to the left, y back, z up), as it was trained
    flips = AxisFlips.of(volume.geometry)
    arr = flips.view(volume.array)
    zc = None if z is None else flips.z(z, nz)  # slices of the flipped view from here on
    z0, z1 = (zc, zc + 1) if zc is not None else (0, nz)

    def body_only(k: int, ent_slice: np.ndarray) -> None:  # air is not uncertain
        ent_slice[~foreground_slice(arr[k], invert)] = 0

    scorer = uncertainty.StreamingScore((z0, z1), mask=body_only)
    res = ctx.drive(segment(model, card, arr, spacing_zyx(volume), device,
                            slice_index=zc, want_entropy=keep_entropy, cancel=ctx.cancel_token,
                            precision=ctx.precision(card), entropy_sink=scorer.add, **var_kw),
                    f"Segmenting the {what}…")
    ctx.check()
    labels = flips.restore(np.ascontiguousarray(res.labels, dtype=np.uint8))
    names = list(res.label_names or card.labels)
    score, most = scorer.finish()
    zmax = flips.z(z0 + most, nz)
    ent = None
    if keep_entropy:
        ent = res.entropy
        if (z0, z1) != (0, nz):  # zero outside the slices run
            ent = np.zeros(tuple(volume.shape[:3]), dtype=np.float16)
            ent[z0:z1] = res.entropy
        ent = flips.restore(ent)
    var, scale = None, None
    if method != "entropy" and res.variance is not None:
        var, scale = _variance_on_grid(np.asarray(res.variance), volume, (z0, z1))
        mask_to_foreground(var, arr, invert, (z0, z1))
        var = flips.restore(var)
    ctx.progress(1, 2, "Checking the image against the training data…")
    ood = ood_of_volume(ctx, card, arr, spacing_zyx(volume), (z0, z1)).to_dict()
    ctx.progress(2, 2, "Done")
    return SegmentationRun(card.ref, z, labels, names, ent, score, zmax, device,
                           table=label_table(names), variance=var, uncertainty_method=method,
                           z_range=flips.z_range((z0, z1), nz), variance_scale=scale,
                           preprocessing=dict(res.preprocessing), warnings=list(res.warnings),
                           ood=ood, forced=forced, domain_reason=fit.reason,
                           precision=ctx.precision(card))


def segment_job(ctx: InferenceContext, card, volume: Volume, z: Optional[int], store,
                image_hash: str, method: str = "entropy", force: bool = False) -> SegmentationRun:
    """The app's run: :func:`segment_volume`, stored as a 'predicted' label-map record, with
    its Proposal built here (copying and counting a volume's labels would stall the GUI)."""
    from medviewer.core.proposal import Proposal
    from medviewer.storage.store import Source

    run = segment_volume(ctx, card, volume, z, method, force)
    ctx.check()  # cancelled: nothing is stored
    prep = {"model": card.ref, "input": dict(card.input), "device": run.device,
            "slice": None if z is None else int(z),
            "spacing_zyx": list(spacing_zyx(volume)), "uncertainty_method": method,
            "precision": run.precision, **_forced_note(run)}
    if method == "mc_dropout":
        prep["n_samples"] = VARIANCE_SAMPLES
    score = run.uncertainty
    extra = {"case_uncertainty": score if np.isfinite(score) else None, "model": card.ref,
             "most_uncertain_slice": run.most_uncertain, "uncertainty_method": method,
             "variance_scale": run.variance_scale, "ood": run.ood, "forced": run.forced}
    snapshot_image(store, volume, image_hash)  # the image, for training and the review queue
    run.record = store.add_labelmap(image_hash, run.labels, volume.geometry.affine_ras(),
                                    run.table, "predicted", Source("model", card.name, card.version),
                                    preprocessing=prep, extra=extra)
    run.proposal = Proposal.make(run.labels, run.table, run.record.id, run.record.source.label(),
                                 z)
    return run


def _variance_on_grid(var: np.ndarray, volume: Volume, z_range: tuple) -> tuple:
    """(variance (z, y, x) float16 on the volume grid divided by its 99.5th percentile over
    the slices run and clipped to [0, 1], that percentile); zero outside ``z_range``."""
    shape = tuple(volume.shape[:3])
    z0, z1 = (int(v) for v in z_range)
    if var.shape != (z1 - z0,) + shape[1:]:
        raise ValueError(f"variance {var.shape} does not fit slices {z0}..{z1} of {shape}")
    flat = var.reshape(-1)
    sample = flat[::max(1, flat.size // 4_000_000)].astype(np.float32)  # the percentile, cheaply
    scale = float(np.percentile(sample, VARIANCE_PERCENTILE)) if sample.size else 0.0
    if not np.isfinite(scale) or scale <= 0.0:
        scale = float(np.nanmax(sample, initial=0.0))
    out = np.zeros(shape, dtype=np.float16)
    for a in range(0, z1 - z0, 8):
        b = min(z1 - z0, a + 8)
        chunk = var[a:b].astype(np.float32)
        out[z0 + a:z0 + b] = np.clip(chunk / scale, 0.0, 1.0) if scale > 0 else 0.0
    return out, scale


def preload_ai_libraries() -> None:
    """Import torch, MONAI and the inference code now (a background thread at start-up, or
    a warm-up job), so the first run does not pay for it; ImportError if they are missing."""
    from medviewer.ai.preload import import_libraries

    import_libraries()


def cpu_cores() -> int:
    """Every core this process may use: the command line's torch threads (no GUI to spare)."""
    from medviewer.ai.device import cpu_cores as cores

    return cores()


def device_label(device: str) -> str:
    """What the UI shows for a device, e.g. ``"CPU (1 thread)"`` (torch only for CUDA)."""
    from medviewer.ai.device import device_label as label

    return label(device)
