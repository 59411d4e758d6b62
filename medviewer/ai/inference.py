"""Inference generators (classification, 2D/3D segmentation) with progress, cancel and a model cache.

Every job is a generator: it yields :class:`Step` ``(done, total, message)`` between batches
(2D models: a few slices at a time; 3D models: a slab of sliding windows) and returns its
result as the generator's return value; ``medviewer.jobs.drive`` runs one to the end. Cancellation is
checked between batches *and* between sliding windows: pass ``cancel=`` a ``CancelToken``
(anything with ``raise_if_cancelled()``, whose own exception is raised) or a zero-argument
callable that returns True to stop (then :class:`Cancelled` is raised). Driving the generator
with a jobs ``Reporter`` (``jobs.drive(gen, reporter)``) checks the token at every step as well.

torch and MONAI are imported inside the functions (the app starts without them).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Optional

import numpy as np

from .device import autocast, release_freed_memory
from .model_cache import ModelCache
from .seg_outputs import SegOutputs
from .preprocess import (ResampleInfo, card_ref, card_value, empty_array, input_spec,
                         model_to_volume_tensor,
                         plan_resample, prepare_image_2d_info, to_model_tensor)

__all__ = ["Step", "Cancelled", "ClassResult", "SegResult", "classify", "segment",
           "ModelCache", "default_batch_size"]


class Step(NamedTuple):
    done: int
    total: int
    message: str = ""


class Cancelled(Exception):
    """Raised inside an AI job when its plain-callable cancel check returned True."""


@dataclass
class ClassResult:
    probs: dict  # label -> probability (sums to 1)
    label: str  # the most probable label
    model_ref: str = ""
    input_info: object = None  # preprocess.ImageInfo (for maps back onto the image)

    def to_dict(self) -> dict:
        return {"class": self.label, "probabilities": {k: float(v) for k, v in self.probs.items()},
                "model": self.model_ref}


@dataclass
class SegResult:
    """Labels ``(z, y, x)`` uint8 on the volume grid (zeros outside ``z_range``); for the slices
    ``z_range = (z0, z1)``: probabilities ``(C, z1 - z0, y, x)``, normalised entropy and
    variance ``(z1 - z0, y, x)``, all float16 (each None unless asked for)."""

    labels: np.ndarray
    probs: Optional[np.ndarray]
    label_names: list
    z_range: tuple
    model_ref: str = ""
    preprocessing: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    variance: Optional[np.ndarray] = None  # (z1 - z0, y, x) float16 when asked for
    entropy: Optional[np.ndarray] = None  # (z1 - z0, y, x) float16 in [0, 1] when asked for


def _check_fn(cancel) -> Callable[[], None]:
    if cancel is None:
        return lambda: None
    if hasattr(cancel, "raise_if_cancelled"):
        return cancel.raise_if_cancelled

    def check() -> None:
        if cancel():
            raise Cancelled()

    return check


BATCH_SECONDS = 0.25  # CPU batches are sized to about this, so a cancel lands well within 1 s
# CPU batches also stay under this many model-grid pixels (four 256x256 slices): bigger
# batches are no faster on a CPU and their activations would dominate predict's peak memory
CPU_BATCH_PIXELS = 4 * 256 * 256


def default_batch_size(device: str, pixels_per_slice: int) -> int:
    """Slices per forward pass for a fixed batch size (the CPU path adapts to measured time)."""
    if str(device).startswith("cpu"):
        return max(1, min(4, 200_000 // max(1, pixels_per_slice)))
    return max(1, min(64, 8_000_000 // max(1, pixels_per_slice)))


def _labels_of(card) -> list:
    labels = list(card_value(card, "labels", []) or [])
    if not labels:
        raise ValueError("the model card lists no labels")
    return labels


def _ref(card) -> str:
    return card_ref(card)


# ---------------------------------------------------------------------------- classification
def classify(model, card, image2d: np.ndarray, device: str = "cpu", invert: bool = False,
             window: Optional[tuple] = None, cancel=None, precision: Optional[str] = None):
    """Generator -> :class:`ClassResult` for one 2D image (any size; see preprocess).
    ``precision``: "fp32", "bf16" or "fp16" autocast (None: :func:`device.autocast`'s default;
    :func:`medviewer.ai.precision.choose` decides per model and machine)."""
    import torch

    check = _check_fn(cancel)
    labels = _labels_of(card)
    check()
    yield Step(0, 1, "Preparing image")
    x, info = prepare_image_2d_info(image2d, card, invert=invert, window=window)
    check()
    t = torch.from_numpy(x)[None].to(device)
    with torch.inference_mode(), autocast(device, precision):
        logits = model(t)
    probs = torch.softmax(logits.float(), dim=1)[0].cpu().numpy().astype(np.float64)
    if probs.shape[0] != len(labels):
        raise ValueError(f"the model gives {probs.shape[0]} outputs but its card lists "
                         f"{len(labels)} labels")
    yield Step(1, 1, "Classified")
    best = int(np.argmax(probs))
    return ClassResult({lab: float(p) for lab, p in zip(labels, probs)}, labels[best],
                       _ref(card), info)


# ---------------------------------------------------------------------------- segmentation
def _round_up(n: int, m: int = 16) -> int:
    return int(-(-int(n) // m) * m)


def _divisor(card) -> int:
    """What a window's sides must be a multiple of: the product of a U-Net's strides (16
    for other networks)."""
    params = (card_value(card, "architecture", {}) or {}).get("params", {}) or {}
    strides = params.get("strides")
    if isinstance(strides, (list, tuple)) and strides:
        return int(np.prod([int(v) for v in strides]))
    return 16


def _roi(spec: dict, model_shape: tuple, dims: int, divisor: int = 16) -> tuple:
    """The window: the card's ``patch``; for a 2D model whose card allows whole-slice windows
    up to ``max_patch`` (a fully convolutional network validated at that size), one window of
    the slice rounded up to ``divisor`` when the slice is larger than the patch but fits."""
    patch = spec.get("patch")
    if patch:
        patch = [int(v) for v in patch]
        if len(patch) != dims:
            raise ValueError(f"the card's patch has {len(patch)} values; a {dims}D model needs {dims}")
        most = spec.get("max_patch")
        if dims == 2 and most:
            need = [_round_up(n, divisor) for n in model_shape[1:]]
            if (all(n <= int(m) for n, m in zip(need, most))
                    and any(n > p for n, p in zip(need, patch))):
                return tuple(max(n, p) for n, p in zip(need, patch))
        return tuple(patch)
    return tuple(_round_up(n, divisor) for n in model_shape[3 - dims:])


def _predictor(model, device: str, check: Callable, counter: list,
               variance: Optional[str] = None, n_samples: int = 8,
               precision: Optional[str] = None):
    """Window -> softmax probabilities (plus one variance channel in an uncertainty mode)."""
    import torch

    from .uncertainty import dropout_enabled

    def forward(x):
        with autocast(device, precision):
            return torch.softmax(model(x).float(), dim=1)

    def run(x):
        check()  # between sliding windows
        counter[0] += 1
        if variance is None:
            return forward(x)
        if variance == "mc_dropout":
            with dropout_enabled(model):
                samples = [forward(x) for _ in range(max(2, n_samples))]
        else:  # tta: flips of the spatial axes, flipped back
            spatial = list(range(2, x.ndim))
            flips = [()] + [(d,) for d in spatial]
            samples = [torch.flip(forward(torch.flip(x, f)), f) if f else forward(x)
                       for f in flips]
        stack = torch.stack(samples)
        return torch.cat([stack.mean(0), stack.var(0, unbiased=False).mean(1, keepdim=True)], 1)

    return run


def segment(model, card, volume_array: np.ndarray, spacing_zyx, device: str = "cpu",
            slice_index: Optional[int] = None, want_probs: bool = False, cancel=None,
            slice_offsets=None, batch_size: Optional[int] = None,
            variance: Optional[str] = None, n_samples: int = 8, want_entropy: bool = True,
            precision: Optional[str] = None, entropy_sink: Optional[Callable] = None,
            postprocess: bool = True):
    """Generator -> :class:`SegResult` on the volume grid.

    2D models run slice by slice in batches (all slices, or only ``slice_index``); 3D models
    run MONAI's sliding-window inference over the card's patch, a slab at a time.
    ``variance="mc_dropout"`` (``n_samples`` passes with dropout on) or ``"tta"`` (flips) also
    returns a variance map (mean over classes of the probability variance).
    ``want_entropy``: the normalised softmax entropy (computed on the model grid for 2D
    models, then resampled); ``want_probs``: every class probability on the volume grid.
    ``entropy_sink(a, entropy, labels)``: called in slice order with each batch's entropy
    ``(B, y, x)`` float16 (writable: a view of ``SegResult.entropy`` when ``want_entropy``,
    else a temporary) and its labels, e.g. to score uncertainty without keeping the volume.
    ``precision``: autocast as in :func:`classify`. ``postprocess=False``: the network's
    labels without the card's whole-volume clean-up (benchmarks, comparisons). On CUDA the volume is moved to the GPU
    once; each batch's labels and maps come back, computed on the GPU."""
    if variance not in (None, "mc_dropout", "tta"):
        raise ValueError(f"variance must be None, 'mc_dropout' or 'tta', got {variance!r}")
    check = _check_fn(cancel)
    labels = _labels_of(card)
    spec = input_spec(card)
    vol = np.asarray(volume_array)
    if vol.ndim == 2:
        vol = vol[None]
    nz = vol.shape[0]
    if slice_index is not None and not 0 <= int(slice_index) < nz:
        raise ValueError(f"slice {slice_index} is outside the volume (0..{nz - 1})")
    check()
    info = plan_resample(vol, spacing_zyx, card, slice_offsets)
    z0, z1 = (int(slice_index), int(slice_index) + 1) if slice_index is not None else (0, nz)
    # empty: every slice in z0..z1 is written (huge pages: first writes fault 4x faster)
    out_labels = empty_array(vol.shape[:3], np.uint8)
    out_labels[:z0] = 0
    out_labels[z1:] = 0
    plane = (z1 - z0,) + tuple(vol.shape[1:3])
    out = SegOutputs(out_labels, empty_array((len(labels),) + plane, np.float16) if want_probs
                     else None, empty_array(plane, np.float16) if variance else None, z0,
                     len(labels), empty_array(plane, np.float16) if want_entropy else None,
                     entropy_sink)
    runner = _segment_2d if info.dims == 2 else _segment_3d
    counter = [0]
    predict = _predictor(model, device, check, counter, variance, n_samples, precision)
    yield from runner(predict, counter, spec, vol, info, device, (z0, z1), out, check,
                      batch_size, _divisor(card))
    release_freed_memory()  # the network's freed activations, before post-processing
    if postprocess and spec.get("postprocess"):  # one slice: the per-slice steps only
        from .postprocess import clean_labels

        yield Step(z1 - z0, z1 - z0, "Cleaning up the labels")
        clean_labels(out_labels[z0:z1], info.spacing_zyx, labels, spec["postprocess"], check,
                     image=vol[z0:z1])
    return SegResult(out_labels, out.probs, labels, (z0, z1), _ref(card), info.to_dict(),
                     list(info.warnings), out.variance, out.entropy)


def _single_window(x, roi, predict):
    """Whole-slice windows: pad to the patch, one forward, crop (what sliding-window
    inference does for a single window, without its bookkeeping)."""
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    padded = F.pad(x, (0, roi[1] - w, 0, roi[0] - h))
    return predict(padded)[..., :h, :w]


WINDOWS_PER_CALL = 16  # sliding windows stacked into one forward pass (at most)


def _window_starts(n: int, r: int, overlap: float) -> list:
    """Window starts along one axis of ``n`` pixels (``n >= r``): every ``r * (1 - overlap)``,
    the last one moved back to end at the edge (MONAI's dense patch slices)."""
    if n == r:
        return [0]
    step = max(1, int(r * (1 - overlap)))
    starts, s = [], 0
    while s + r < n:
        starts.append(s)
        s += step
    return starts + [n - r]


def sliding_window_2d(x, roi: tuple, predict, overlap: float = 0.25):
    """Windows of ``roi`` over ``x`` (B, C, h, w) with ``overlap``, their outputs averaged
    (constant weights) -> (B, K, h, w). The same result as MONAI's ``sliding_window_inference``
    with ``mode="constant"`` (sides smaller than the window are padded evenly on both sides),
    without importing MONAI; the windows of all B slices go through the network together."""
    import torch
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    ph, pw = max(0, roi[0] - h), max(0, roi[1] - w)
    if ph or pw:
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
    H, W = x.shape[-2:]
    spots = [(y, z) for y in _window_starts(H, roi[0], overlap)
             for z in _window_starts(W, roi[1], overlap)]
    jobs = [(b, y, z) for b in range(x.shape[0]) for y, z in spots]
    out = count = None
    for i in range(0, len(jobs), WINDOWS_PER_CALL):
        part = jobs[i:i + WINDOWS_PER_CALL]
        p = predict(torch.stack([x[b, :, y:y + roi[0], z:z + roi[1]] for b, y, z in part]))
        if out is None:
            out = torch.zeros((x.shape[0], p.shape[1], H, W), dtype=p.dtype, device=p.device)
        for (b, y, z), pj in zip(part, p):
            out[b, :, y:y + roi[0], z:z + roi[1]] += pj
    count = torch.zeros((H, W), dtype=out.dtype, device=out.device)
    for y, z in spots:
        count[y:y + roi[0], z:z + roi[1]] += 1
    out /= count
    return out[..., ph // 2:ph // 2 + h, pw // 2:pw // 2 + w]


MAX_LANES = 4  # CPU lanes of one segmentation; more threads go inside each lane's forward


def cpu_lanes(threads: int, slices: int) -> int:
    """How many independent lanes (Python threads, each running whole batches: input,
    forward, output) a CPU segmentation of ``slices`` slices uses with ``threads`` torch
    threads. Lanes rather than intra-op threads: the network's many small kernels keep an
    OpenMP team of 2 waiting at every barrier, and when another process takes a core, the
    team waits for a time slice at each one (measured on 2 cores with the machine loaded:
    100-430 ms per slice for one 2-thread forward against 21-43 ms for two 1-thread lanes).
    ``MEDVIEWER_AI_LANES`` overrides (1: the former one forward with every thread)."""
    import os

    env = os.environ.get("MEDVIEWER_AI_LANES", "").strip()
    if env.isdigit() and int(env) > 0:
        return max(1, min(int(env), threads, slices))
    return max(1, min(threads, MAX_LANES, slices))


def _batch_forward(predict, spec, src, info: ResampleInfo, roi, a: int, b: int, on_cpu: bool):
    """Slices a..b on the model grid through the network -> (K [+1], B, y', x') float."""
    import torch

    x = to_model_tensor(src, info, (a - src.z0, b - src.z0) if not on_cpu else (a, b))
    x = x.transpose(0, 1)  # (B, C, y', x')
    with torch.inference_mode():
        if x.shape[-2] <= roi[0] and x.shape[-1] <= roi[1]:
            p = _single_window(x, roi, predict)
        else:
            p = sliding_window_2d(x, roi, predict, float(spec.get("overlap", 0.25)))
    return p.float().transpose(0, 1)


def _segment_2d(predict, counter, spec, vol, info: ResampleInfo, device, zr, out: SegOutputs,
                check, batch_size, divisor: int = 16):
    import torch

    z0, z1 = zr
    roi = _roi(spec, info.model_shape, 2, divisor)
    on_cpu = str(device).startswith("cpu")
    adaptive = batch_size is None and on_cpu  # CPU: batches of ~BATCH_SECONDS each
    bs = 1 if adaptive else (batch_size or default_batch_size(device, int(np.prod(roi))))
    most = max(1, CPU_BATCH_PIXELS // max(1, int(np.prod(roi))))
    total = z1 - z0
    size = tuple(info.original_shape[1:])
    lanes = cpu_lanes(torch.get_num_threads(), total) if on_cpu else 1
    if lanes > 1:
        run = lambda a, b: _batch_forward(predict, spec, vol, info, roi, a, b, True)  # noqa: E731
        yield from _lanes_2d(run, out, size, zr, lanes, None if adaptive else bs, most, check,
                             vol.shape[0])
        return
    yield Step(0, total, "Segmenting")
    behind = _OneBehind() if total > 1 else None
    src = vol if on_cpu else _to_device(vol, (z0, z1), device)  # a GPU gets the volume once
    a = z0
    try:
        while a < z1:
            b = min(z1, a + bs)
            check()
            t0 = time.perf_counter()
            p = _batch_forward(predict, spec, src, info, roi, a, b, on_cpu)  # on the device
            out.check_channels(p.shape[0])
            if behind is None:
                out.store_2d(p, size, a)
            else:
                behind.submit(out.store_2d, p, size, a)
            if adaptive:
                per_slice = (time.perf_counter() - t0) / (b - a)
                bs = max(1, min(16, most, int(BATCH_SECONDS / max(per_slice, 1e-6))))
            a = b
            yield Step(b - z0, total, f"Slice {b} of {vol.shape[0]}" if total > 1 else "Slice done")
    finally:
        if behind is not None:
            behind.close()


def _lanes_2d(run, out: SegOutputs, size: tuple, zr: tuple, lanes: int,
              batch_size: Optional[int], most: int, check, nz: int):
    """CPU segmentation in ``lanes`` threads, each taking the next batch of slices and doing
    all of its work (input, forward, volume-grid outputs); torch's threads are shared out
    among the lanes for the job. Batches finish in any order; the entropy sink still hears
    them in slice order (here, on the generator's thread), and progress counts the slices
    handed over. The first error (a cancel included) stops every lane and is raised here."""
    import queue
    import threading

    import torch

    z0, z1 = zr
    total = z1 - z0
    lock = threading.Lock()
    state = {"next": z0, "bs": batch_size or 1, "stop": False}
    finished: queue.Queue = queue.Queue()

    def take():
        with lock:
            if state["stop"] or state["next"] >= z1:
                return None
            a = state["next"]
            b = min(z1, a + state["bs"])
            state["next"] = b
            return a, b

    def lane():
        try:
            while (ab := take()) is not None:
                a, b = ab
                check()
                t0 = time.perf_counter()
                p = run(a, b)
                out.check_channels(p.shape[0])
                ent = out.store_2d(p, size, a, hand_over=False)
                if batch_size is None:  # each lane's batches last about BATCH_SECONDS
                    per_slice = (time.perf_counter() - t0) / (b - a)
                    with lock:
                        state["bs"] = max(1, min(16, most,
                                                 int(BATCH_SECONDS / max(per_slice, 1e-6))))
                finished.put((a, b, ent, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the generator's thread
            with lock:
                state["stop"] = True
            finished.put((None, None, None, exc))

    threads_before = torch.get_num_threads()
    # a thread takes torch's thread count at its first parallel kernel: the lanes get theirs
    torch.set_num_threads(max(1, threads_before // lanes))
    workers = [threading.Thread(target=lane, name=f"seg-lane-{i}", daemon=True)
               for i in range(lanes)]
    try:
        for w in workers:
            w.start()
        yield Step(0, total, "Segmenting")
        ready, handed = {}, z0
        while handed < z1:
            a, b, ent, exc = finished.get()
            if exc is not None:
                raise exc
            ready[a] = (b, ent)
            before = handed
            while handed in ready:
                b, ent = ready.pop(handed)
                out.hand_over(handed, ent)
                handed = b
            if handed == before:
                continue
            yield Step(handed - z0, total,
                       f"Slice {handed} of {nz}" if total > 1 else "Slice done")
    finally:
        with lock:
            state["stop"] = True
        for w in workers:
            w.join()
        torch.set_num_threads(threads_before)


def _to_device(vol: np.ndarray, zr: tuple, device):
    """Slices ``zr`` of the volume as one tensor on ``device`` (its ``z0`` attribute says
    where it starts), moved in one copy from pinned memory."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(vol[zr[0]:zr[1]]))
    try:
        t = t.pin_memory()
    except RuntimeError:  # no pinned memory (no CUDA context): a plain copy
        pass
    dev = t.to(device, non_blocking=True)
    dev.z0 = zr[0]
    return dev


class _OneBehind:
    """Runs the volume-grid storing of a batch on a helper thread while the network works on
    the next batch (torch releases the GIL in its kernels, so the two overlap on two cores).
    At most one batch waits; its errors surface at the next submit or at close."""

    def __init__(self):
        from concurrent.futures import ThreadPoolExecutor

        self.pool = ThreadPoolExecutor(1, thread_name_prefix="seg-store")
        self.pending = None

    def wait(self) -> None:
        future, self.pending = self.pending, None
        if future is not None:
            future.result()

    def submit(self, fn, *args) -> None:
        self.wait()
        self.pending = self.pool.submit(fn, *args)

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self.pool.shutdown(wait=True)


def _segment_3d(predict, counter, spec, vol, info: ResampleInfo, device, zr, out: SegOutputs,
                check, batch_size, divisor: int = 16):
    import torch

    from .preload import import_monai
    from .preprocess import _z_index

    import_monai()  # one thread at a time (it imports all of MONAI)
    from monai.inferers import sliding_window_inference

    z0, z1 = zr
    roi = _roi(spec, info.model_shape, 3, divisor)
    nzm = info.model_shape[0]
    margin = max(1, roi[0] // 2)
    # the model-grid slices the requested original slices need
    (j0, _), _w = _z_index(nzm, info.original_shape[0], torch.tensor([z0]), True)
    (_, j1), _w = _z_index(nzm, info.original_shape[0], torch.tensor([z1 - 1]), True)
    need = (int(j0[0]), int(j1[0]) + 1)
    chunk = max(roi[0], 2 * roi[0] if str(device).startswith("cpu") else 4 * roi[0])
    starts = list(range(need[0], need[1], chunk))
    back_step = 8
    back_starts = list(range(z0, z1, back_step))
    total = len(starts) + len(back_starts)
    yield Step(0, total, "Resampling to the model grid")
    check()
    x = to_model_tensor(vol, info)  # (C, Z', Y', X')
    probs = torch.zeros((out.channels,) + tuple(info.model_shape), dtype=torch.float32)
    sw_batch = 1 if str(device).startswith("cpu") else 4
    for i, a in enumerate(starts):
        b = min(need[1], a + chunk)
        lo, hi = max(0, a - margin), min(nzm, b + margin)
        check()
        with torch.inference_mode():
            p = sliding_window_inference(x[None, :, lo:hi].to(device), roi, sw_batch, predict,
                                         overlap=float(spec.get("overlap", 0.25)),
                                         mode="gaussian")
        p = p[0].float().cpu()
        out.check_channels(p.shape[0])
        probs[:, a:b] = p[:, a - lo:b - lo]
        yield Step(i + 1, total, f"Windows: {counter[0]} done")
    del x
    for k, a in enumerate(back_starts):
        b = min(z1, a + back_step)
        check()
        out.store(model_to_volume_tensor(probs, info, "linear", (a, b)), a, b)
        yield Step(len(starts) + k + 1, total, f"Slice {b} of {vol.shape[0]} on the volume grid")
