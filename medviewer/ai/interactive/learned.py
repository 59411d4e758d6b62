"""The learned interactive engine: the promptable 2D network (``interactive-promptable``) behind
the same functions as the classical engine (``segment_2d``, ``slice_step``).

One prompt update runs the network on a focus window (:mod:`.encoding`): with no previous
result, first on a wide window centred on the clicks, then again zoomed on what it found; with
a previous result, on a window around it and the prompts. When the object touches the window's
edge the window grows and the network runs again. The prompts are then obeyed exactly: positive
points are in the mask, the connected region a negative point lands in is removed, only regions
holding a positive prompt (or inside a box) are kept."""
from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
from medviewer.core.lazy_import import LazyModule

ndimage = LazyModule("scipy.ndimage")  # imported on first use: this module loads at start-up

from medviewer.ai.interactive.encoding import (SlicePrompts, Window, encode,
                                               fit_window, from_window, window_around)

__all__ = ["MODEL_NAME", "load", "set_model", "segment_2d", "slice_step",
           "predict_window", "unavailable_reason", "use_version", "current_ref", "using_model",
           "forget_implicit"]

MODEL_NAME = "interactive-promptable"
FIRST_SIDE_MM = 160.0  # the first click's window (then zoomed on what it found)
ZOOM_MARGIN = 3.5  # the window around the previous result and the prompts, times its size
# (tuned on training structures: 1.5, 2.5, 3.5 -> mean NoC@85 8.1, 7.3, 6.2)
_lock = threading.Lock()
_state = {"model": None, "card": None, "error": None, "explicit": False}


def _find_card(ref: Optional[str] = None):
    """The card of ``ref`` ("name:version"), else the active version of the model."""
    from medviewer.ai.registry import ModelRegistry
    from medviewer.ai.versions import active_version

    reg = ModelRegistry()
    if ref:
        return reg.get(ref)
    version = active_version(reg, MODEL_NAME)
    return reg.get(f"{MODEL_NAME}:{version}" if version else MODEL_NAME)


def use_version(ref: Optional[str] = None) -> str:
    """Load model version ``ref`` (None: the active one) for every later prompt; its ref."""
    from medviewer.ai.weights import load_model

    card = _find_card(ref)
    model = load_model(card).eval()
    with _lock:
        _state.update(model=model, card=card, error=None, explicit=ref is not None)
    return card.ref


def current_ref() -> Optional[str]:
    card = _state.get("card")
    return None if card is None else card.ref


def set_model(model, card=None) -> None:
    """Use ``model`` (a torch module in eval mode) as the engine's network (a fine-tuned
    version, a test's model); ``None`` goes back to the registry's active version."""
    with _lock:
        _state.update(model=model, card=card, error=None, explicit=model is not None)


def forget_implicit() -> bool:
    """Drop a network loaded implicitly (the active version at the time), so the next prompt
    loads the model's active version again; one chosen with :func:`use_version` or
    :func:`set_model` stays. True when one was dropped."""
    with _lock:
        if _state["explicit"]:
            return False
        dropped = _state["model"] is not None
        _state.update(model=None, card=None, error=None)
        return dropped


@contextlib.contextmanager
def using_model(model, card=None) -> Iterator[None]:
    """Use ``model`` for the prompts inside the block, then go back to what was loaded (a
    fine-tune measuring parent and candidate in the app's or the CLI's process)."""
    with _lock:
        saved = dict(_state)
        _state.update(model=model, card=card, error=None, explicit=True)
    try:
        yield
    finally:
        with _lock:
            _state.clear()
            _state.update(saved)


def load():
    """The network (loaded once, from the model registry's default version)."""
    with _lock:
        if _state["model"] is not None:
            return _state["model"]
        from medviewer.ai.weights import load_model

        try:
            card = _find_card()
            model = load_model(card)
        except Exception as exc:  # no weights shipped / unreadable: say why
            _state["error"] = str(exc)
            raise
        model.eval()
        _state.update(model=model, card=card, error=None)
        return model


def unavailable_reason() -> Optional[str]:
    """None when the engine can run, else why not. Cheap (reads the model card, checks its
    weights file is there; no torch import): the network loads on first use, on a worker."""
    if _state["model"] is not None:
        return None
    try:
        card = _find_card()
    except Exception as exc:
        return str(exc)
    weights = Path(card.folder or ".") / str(card.weights.get("file", "weights.safetensors"))
    if not weights.is_file():
        return f"{card.ref}: its weights file {weights.name} is missing"
    import importlib.util

    missing = [m for m in ("torch", "monai") if importlib.util.find_spec(m) is None]
    if missing:
        return f"the learned engine needs {' and '.join(missing)}, not installed here"
    return None



def predict_window(image2d, prompts: SlicePrompts, spacing_yx, window: Window,
                   prev_mask=None) -> np.ndarray:
    """Foreground probability on the window grid."""
    model = load()  # first: it imports torch/MONAI under the one import lock
    import torch

    x = encode(image2d, prompts, spacing_yx, window, prev_mask)
    with torch.inference_mode():
        logits = model(torch.from_numpy(x)[None])
        prob = torch.softmax(logits.float(), dim=1)[0, 1].numpy()
    return prob


def _touches_edge(prob: np.ndarray) -> bool:
    m = prob > 0.5
    return bool(m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())


def _run(image2d, sp: SlicePrompts, spacing_yx, window: Window, prev, shape, extent):
    for _ in range(3):
        prob = predict_window(image2d, sp, spacing_yx, window, prev)
        if not _touches_edge(prob) or window.side >= extent:
            break
        window = Window(window.cy, window.cx, min(window.side * 1.6, extent * 1.05))
    return from_window(prob, window, shape, spacing_yx) > 0.5


def segment_2d(image2d: np.ndarray, prompts, spacing: Sequence[float] = (1.0, 1.0),
               z: Optional[int] = None, prev_mask: Optional[np.ndarray] = None) -> np.ndarray:
    """A boolean mask of one slice from the prompts on it (only slice ``z``'s when given) and
    the previous mask being corrected, if any."""
    image = np.asarray(image2d, np.float32)
    if image.ndim != 2:
        raise ValueError(f"segment_2d needs a 2D image, got shape {image.shape}")
    sp = SlicePrompts.from_prompts(prompts, z) if not isinstance(prompts, SlicePrompts) \
        else prompts
    shape = image.shape
    sp = SlicePrompts(_clip(sp.positive, shape), _clip(sp.negative, shape), list(sp.boxes))
    spacing_yx = tuple(float(s) for s in tuple(spacing)[-2:])
    prev = None if prev_mask is None or not np.any(prev_mask) else np.asarray(prev_mask, bool)
    if not sp.positive and not sp.boxes and prev is None:
        return np.zeros(shape, bool)
    extent = max(shape[0] * spacing_yx[0], shape[1] * spacing_yx[1])
    if prev is None and not sp.boxes:
        first = window_around(sp.positive, spacing_yx, min(FIRST_SIDE_MM, extent * 1.05))
        coarse = _run(image, sp, spacing_yx, first, None, shape, extent)
        if not coarse.any():
            coarse = None
        window = fit_window(coarse, sp.positive, spacing_yx, margin=ZOOM_MARGIN)
        mask = _run(image, sp, spacing_yx, window, coarse, shape, extent)
    else:
        pts = list(sp.positive) + list(sp.negative) if prev is not None else list(sp.positive)
        window = fit_window(prev, pts or [(shape[0] // 2, shape[1] // 2)], spacing_yx,
                            margin=ZOOM_MARGIN, boxes=sp.boxes)
        mask = _run(image, sp, spacing_yx, window, prev, shape, extent)
    return obey(mask, sp, prev)


def _clip(points, shape):
    return [(int(np.clip(p[0], 0, shape[0] - 1)), int(np.clip(p[1], 0, shape[1] - 1)))
            for p in points]


def obey(mask: np.ndarray, sp: SlicePrompts, prev=None) -> np.ndarray:
    """Make the mask obey the prompts: positives in, negatives' regions out, only regions
    with a positive prompt, inside a box or overlapping the previous mask kept."""
    mask = np.asarray(mask, bool).copy()
    split = None
    for y, x in sp.negative:
        if mask[y, x]:
            lab, _ = ndimage.label(mask)
            region = lab == lab[y, x]
            if not any(region[py, px] for py, px in sp.positive):
                mask &= ~region
            else:  # the region also holds a positive prompt: it goes to the nearer prompt
                if split is None:
                    split = _nearer_negative(mask.shape, sp.positive, sp.negative)
                mask &= ~(region & split)
    if sp.boxes:
        inside = np.zeros(mask.shape, bool)
        for y0, x0, y1, x1 in sp.boxes:
            inside[max(y0, 0):y1 + 1, max(x0, 0):x1 + 1] = True
        mask &= inside
    lab, n = ndimage.label(mask)
    if n:
        keep = {int(lab[y, x]) for y, x in sp.positive} - {0}
        if sp.boxes:
            keep |= set(np.unique(lab[lab > 0]).tolist())
        if prev is not None:
            keep |= set(np.unique(lab[prev & (lab > 0)]).tolist())
        mask = np.isin(lab, sorted(keep))
    for y, x in sp.positive:
        mask[y, x] = True
    for y, x in sp.negative:
        mask[y, x] = False
    return mask


BAND_MM = 10.0  # the object moves less than this from one slice to the next
MAX_GROWTH = 3.0  # propagation stops where the object exceeds this times its start area


def _band(mask: np.ndarray, spacing_yx) -> np.ndarray:
    """Pixels within BAND_MM of the mask (computed on the mask's bounding box plus the band)."""
    ys, xs = np.nonzero(mask)
    out = np.zeros(mask.shape, bool)
    if not len(ys):
        return out
    py, px = (int(np.ceil(BAND_MM / s)) + 1 for s in spacing_yx)
    y0, y1 = max(ys.min() - py, 0), min(ys.max() + py + 1, mask.shape[0])
    x0, x1 = max(xs.min() - px, 0), min(xs.max() + px + 1, mask.shape[1])
    dist = ndimage.distance_transform_edt(~mask[y0:y1, x0:x1], sampling=spacing_yx)
    out[y0:y1, x0:x1] = dist <= BAND_MM
    return out


def _nearer_negative(shape, positive, negative) -> np.ndarray:
    """Pixels nearer to a negative prompt than to any positive one."""
    def dist(points):
        seeds = np.ones(shape, bool)
        for y, x in points:
            seeds[y, x] = False
        return ndimage.distance_transform_edt(seeds)

    return dist(negative) < dist(positive)


def slice_step(volume: np.ndarray, start_mask2d, z: int, prompts, spacing_zyx):
    """``step(k, prev_mask2d) -> mask2d``: slice k segmented from the neighbouring slice's mask
    (the network's propagation mode) and any prompts on slice k."""
    vol = np.asarray(volume)
    spacing_yx = tuple(float(s) for s in tuple(spacing_zyx)[-2:])
    start = np.asarray(start_mask2d, bool)
    ref_value, tolerance = _intensity_band(np.asarray(vol[z], np.float32), start)
    start_area = max(int(start.sum()), 1)

    def step(k: int, prev: np.ndarray) -> np.ndarray:
        sp = SlicePrompts.from_prompts(prompts, k) if prompts is not None else SlicePrompts()
        image = np.asarray(vol[k], np.float32)
        shape = image.shape
        extent = max(shape[0] * spacing_yx[0], shape[1] * spacing_yx[1])
        window = fit_window(prev, list(sp.positive) or np.argwhere(prev)[:1], spacing_yx,
                            margin=ZOOM_MARGIN, boxes=sp.boxes)
        mask = _run(image, sp, spacing_yx, window, prev, shape, extent)
        if not sp.positive:  # the object moves less than BAND_MM from one slice to the next
            mask &= _band(prev, spacing_yx)
        lab, n = ndimage.label(mask)
        if n > 1:  # keep what continues the neighbouring slice's object
            keep = set(np.unique(lab[prev & (lab > 0)]).tolist())
            keep |= {int(lab[y, x]) for y, x in sp.positive} - {0}
            mask = np.isin(lab, sorted(keep))
        if sp.positive or sp.negative:
            return obey(mask, sp, prev)
        if mask.any() and (abs(float(np.median(image[mask])) - ref_value) > tolerance
                           or mask.sum() > MAX_GROWTH * start_area):
            return np.zeros_like(mask)  # it has run into other tissue: the object ended
        return mask

    return step


def _intensity_band(image: np.ndarray, mask: np.ndarray) -> tuple:
    """The start slice object's median intensity and how far a propagated slice's median may
    drift from it: 3 robust spreads of the object, at least 10 % of the slice's range."""
    if not mask.any():
        return 0.0, np.inf
    vals = image[mask]
    med = float(np.median(vals))
    mad = float(np.median(np.abs(vals - med))) * 1.4826
    lo, hi = np.percentile(image, (1, 99))
    return med, max(3.0 * mad, 0.1 * float(hi - lo))

