"""Saliency maps for classifiers (captum): Grad-CAM and Integrated Gradients, at image size.

Both take the image as given to :func:`medviewer.ai.inference.classify` (any size, grey or
RGB) and return a float32 heat map ``(h, w)`` in [0, 1] on the ORIGINAL image (a 1024x1024
radiograph gets a 1024x1024 map; outside the centre crop the model saw, the map is 0).
``target`` is a class index or label name (default: the predicted class).
"""
from __future__ import annotations

from typing import Optional, Union

import numpy as np

from .preprocess import card_value, map_to_image, prepare_image_2d_info

__all__ = ["last_conv_layer", "cam_layer", "grad_cam", "integrated_gradients", "normalise_map"]


def last_conv_layer(model):
    """The last ``nn.Conv2d`` in the network (module registration order) for Grad-CAM."""
    import torch.nn as nn

    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("the network has no 2D convolution layer for Grad-CAM")
    return convs[-1]


def cam_layer(model, x, min_size: Optional[int] = None):
    """The layer Grad-CAM reads: the last ``nn.Conv2d`` whose output is still at least
    ``min_size`` pixels on each side (default: 1/8 of the input, at least 4). At 28x28 a
    ResNet's last stage is 2x2, too coarse to localise anything; its previous stage is 4x4."""
    import torch
    import torch.nn as nn

    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("the network has no 2D convolution layer for Grad-CAM")
    limit = min_size or max(4, min(x.shape[-2:]) // 8)
    sizes = {}
    hooks = [m.register_forward_hook(lambda mod, i, o: sizes.__setitem__(id(mod), o.shape[-2:]))
             for m in convs]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    big = [m for m in convs if id(m) in sizes and min(sizes[id(m)]) >= limit]
    return big[-1] if big else convs[-1]


def normalise_map(heat: np.ndarray, upper_percentile: Optional[float] = None) -> np.ndarray:
    """Scale a non-negative map to [0, 1] (by its max, or a high percentile, clipped)."""
    h = np.nan_to_num(np.asarray(heat, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    h = np.maximum(h, 0.0)
    top = float(np.percentile(h, upper_percentile)) if upper_percentile else float(h.max())
    if top <= 0:
        top = float(h.max())
    if top <= 0:
        return np.zeros_like(h)
    return np.clip(h / top, 0.0, 1.0).astype(np.float32)


def _target_index(model, card, x, target: Union[int, str, None]) -> int:
    import torch

    labels = list(card_value(card, "labels", []) or [])
    if isinstance(target, str):
        if target not in labels:
            raise ValueError(f"unknown class {target!r}; the model has {labels}")
        return labels.index(target)
    if target is not None:
        return int(target)
    with torch.no_grad():
        return int(model(x).argmax(dim=1)[0])


def _input(model, card, image2d, invert, window, device):
    import torch

    arr, info = prepare_image_2d_info(image2d, card, invert=invert, window=window)
    x = torch.from_numpy(arr)[None].to(device)
    return x, info


def grad_cam(model, card, image2d: np.ndarray, target: Union[int, str, None] = None,
             device: str = "cpu", invert: bool = False,
             window: Optional[tuple] = None) -> np.ndarray:
    """Grad-CAM (captum ``LayerGradCam``) on :func:`cam_layer` -> (h, w) float32 in [0, 1].

    The layer's coarse map (a few cells across) is upsampled bicubically and then blurred by
    a Gaussian of a quarter cell on the image grid, so no cell edges or interpolation ridges
    show on the radiograph."""
    import torch
    import torch.nn.functional as F
    from captum.attr import LayerGradCam
    from scipy.ndimage import gaussian_filter

    was_training = model.training
    model.eval()
    try:
        x, info = _input(model, card, image2d, invert, window, device)
        idx = _target_index(model, card, x, target)
        layer = cam_layer(model, x)
        with torch.enable_grad():
            cam = LayerGradCam(model, layer).attribute(x, target=idx, relu_attributions=True)
        coarse = cam.detach().float().sum(1, keepdim=True).cpu()
        cells = max(1, int(coarse.shape[-1]))
        up = F.interpolate(coarse, size=tuple(x.shape[-2:]), mode="bicubic", align_corners=False)
        small = up[0, 0].clamp_min(0).numpy()
    finally:
        model.train(was_training)
    heat = map_to_image(normalise_map(small), info, mode="bicubic")
    y0, y1, x0, x1 = info.crop
    sigma = 0.25 * max(y1 - y0, x1 - x0) / cells  # a quarter of one CAM cell, in image pixels
    heat[y0:y1, x0:x1] = gaussian_filter(heat[y0:y1, x0:x1], sigma)
    return normalise_map(np.clip(heat, 0.0, None))


def integrated_gradients(model, card, image2d: np.ndarray, target: Union[int, str, None] = None,
                         device: str = "cpu", invert: bool = False,
                         window: Optional[tuple] = None, n_steps: int = 32,
                         smooth_sigma: float = 1.0) -> np.ndarray:
    """Integrated Gradients (captum) from a black baseline: |attribution| summed over channels,
    Gaussian-smoothed (``smooth_sigma`` model pixels), scaled by its 99.5th percentile."""
    import torch
    from captum.attr import IntegratedGradients
    from scipy.ndimage import gaussian_filter

    was_training = model.training
    model.eval()
    try:
        x, info = _input(model, card, image2d, invert, window, device)
        idx = _target_index(model, card, x, target)
        with torch.enable_grad():
            attr = IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x),
                                                        target=idx, n_steps=int(n_steps),
                                                        internal_batch_size=int(n_steps))
        small = attr.detach().float().abs()[0].sum(0).cpu().numpy()
    finally:
        model.train(was_training)
    if smooth_sigma > 0:
        small = gaussian_filter(small, float(smooth_sigma))
    return normalise_map(map_to_image(normalise_map(small, 99.5), info))
