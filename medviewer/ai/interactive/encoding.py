"""The learned interactive engine's view of a slice: a square focus window in millimetres,
resampled to a fixed grid, and the network input built from the image and the prompts in it.
numpy/scipy only, shared by training and inference so both see exactly the same encoding.

Channels of the network input (``CHANNELS``):

0. the image, robustly scaled within the window (0.5th..99.5th percentile to 0..1);
1. and 2. the image relative to the object: ``tanh((I - m) / s)`` with ``m`` the median
   intensity at the positive prompts and ``s`` a fine (3 %) and a coarse (12 %) fraction of the
   window's intensity range, so that "the same as what I clicked" reads the same on CT, MR,
   radiographs and ultrasound, and soft-tissue contrast survives a window holding air and bone;
3. positive guidance: a Gaussian of the distance to the nearest positive click/scribble point;
4. negative guidance: the same for negative prompts;
5. the previous mask (the result being corrected, or the neighbouring slice's mask when
   propagating), 0 when there is none;
6. the boxes, 1 inside.

A window is ``(cy, cx, side)`` in millimetres of the slice (row, column from the slice's
origin pixel centre): the network always sees ``side`` mm square on ``GRID`` pixels, whatever
the pixel spacing (anisotropic coronal/sagittal slices included)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
from medviewer.core.lazy_import import LazyModule

ndimage = LazyModule("scipy.ndimage")  # imported on first use: this module loads at start-up

__all__ = ["GRID", "CHANNELS", "SIGMA_PX", "Window", "add_guidance", "SlicePrompts", "encode", "to_window",
           "from_window", "window_around", "fit_window"]

GRID = 128
CHANNELS = ("image", "rel_fine", "rel_coarse", "positive", "negative", "previous", "box")
SIGMA_PX = 3.0  # guidance Gaussian width on the window grid
_REL_SCALES = (0.03, 0.12)  # s = these fractions of the window's robust intensity range


@dataclass(frozen=True)
class Window:
    """A square of ``side`` mm centred at (cy, cx) mm on a slice."""

    cy: float
    cx: float
    side: float

    def coords(self, spacing_yx) -> Tuple[np.ndarray, np.ndarray]:
        """Pixel (row, col) coordinates of the GRID x GRID window samples on the slice."""
        t = (np.arange(GRID, dtype=np.float64) + 0.5) / GRID - 0.5
        ys = (self.cy + t * self.side) / float(spacing_yx[0])
        xs = (self.cx + t * self.side) / float(spacing_yx[1])
        return ys, xs

    def to_grid(self, yx, spacing_yx) -> Tuple[float, float]:
        """A slice pixel (row, col) in window-grid coordinates."""
        gy = ((yx[0] * spacing_yx[0] - self.cy) / self.side + 0.5) * GRID - 0.5
        gx = ((yx[1] * spacing_yx[1] - self.cx) / self.side + 0.5) * GRID - 0.5
        return gy, gx


@dataclass
class SlicePrompts:
    """The prompts on one slice, in slice pixels: points/scribble points and boxes."""

    positive: Sequence[Tuple[int, int]] = ()
    negative: Sequence[Tuple[int, int]] = ()
    boxes: Sequence[Tuple[int, int, int, int]] = ()  # (y0, x0, y1, x1) inclusive

    @classmethod
    def from_prompts(cls, prompts, z: Optional[int]) -> "SlicePrompts":
        """From :class:`medviewer.core.prompts.Prompts` (those on slice ``z``; all if None)."""
        boxes = prompts.boxes if z is None else prompts.boxes_on(z)
        return cls([tuple(v[-2:]) for v in prompts.seeds(True, z)],
                   [tuple(v[-2:]) for v in prompts.seeds(False, z)],
                   [(b.y0, b.x0, b.y1, b.x1) for b in boxes])


def to_window(image2d: np.ndarray, window: Window, spacing_yx, order: int = 1,
              outside: Optional[float] = None) -> np.ndarray:
    """The slice resampled on the window grid; outside the slice ``outside`` (default: the
    slice's minimum, so masks read 0 and images their background)."""
    img = np.asarray(image2d, np.float32)
    ys, xs = window.coords(spacing_yx)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    cval = float(img.min()) if outside is None else float(outside)
    return ndimage.map_coordinates(img, [yy, xx], order=order, mode="constant", cval=cval)


def from_window(values: np.ndarray, window: Window, shape, spacing_yx) -> np.ndarray:
    """Window-grid values back on the slice (bilinear); 0 outside the window."""
    out = np.zeros(shape, np.float32)
    sy, sx = float(spacing_yx[0]), float(spacing_yx[1])
    y0 = max(int(np.floor((window.cy - window.side / 2) / sy)), 0)
    y1 = min(int(np.ceil((window.cy + window.side / 2) / sy)) + 1, shape[0])
    x0 = max(int(np.floor((window.cx - window.side / 2) / sx)), 0)
    x1 = min(int(np.ceil((window.cx + window.side / 2) / sx)) + 1, shape[1])
    if y1 <= y0 or x1 <= x0:
        return out
    gy = window.to_grid((np.arange(y0, y1, dtype=np.float64), 0), (sy, sx))[0]
    gx = window.to_grid((0, np.arange(x0, x1, dtype=np.float64)), (sy, sx))[1]
    yy, xx = np.meshgrid(gy, gx, indexing="ij")
    inside = (yy >= -0.5) & (yy <= GRID - 0.5) & (xx >= -0.5) & (xx <= GRID - 0.5)
    vals = ndimage.map_coordinates(np.asarray(values, np.float32), [yy, xx], order=1,
                                   mode="nearest")
    out[y0:y1, x0:x1] = np.where(inside, vals, 0.0)
    return out


def _guidance(points_grid, sigma: float = SIGMA_PX) -> np.ndarray:
    out = np.zeros((GRID, GRID), np.float32)
    for gy, gx in points_grid:
        add_guidance(out, gy, gx, sigma)
    return out


def add_guidance(channel: np.ndarray, gy: float, gx: float, sigma: float = SIGMA_PX) -> None:
    """Add one click at grid (gy, gx) to a guidance channel, in place."""
    if -3 * sigma <= gy <= GRID + 3 * sigma and -3 * sigma <= gx <= GRID + 3 * sigma:
        g = np.arange(GRID, dtype=np.float32)
        d2 = (g[:, None] - gy) ** 2 + (g[None, :] - gx) ** 2
        np.maximum(channel, np.exp(-d2 / (2 * sigma * sigma)), out=channel)


def _thin(points, limit: int = 64):
    points = list(points)
    return points[:: max(len(points) // limit, 1)]


def encode(image2d: np.ndarray, prompts: SlicePrompts, spacing_yx, window: Window,
           prev_mask: Optional[np.ndarray] = None, image_win: Optional[np.ndarray] = None
           ) -> np.ndarray:
    """The network input (len(CHANNELS), GRID, GRID) float32 for one slice and window.
    ``image_win``: the slice already resampled on the window (saves a resampling)."""
    img = to_window(image2d, window, spacing_yx) if image_win is None else image_win
    lo, hi = np.percentile(img, (0.5, 99.5))
    span = max(float(hi - lo), 1e-6)
    x = np.empty((len(CHANNELS), GRID, GRID), np.float32)
    x[0] = np.clip((img - lo) / span, -0.25, 1.25)
    pos = [window.to_grid(p, spacing_yx) for p in _thin(prompts.positive)]
    neg = [window.to_grid(p, spacing_yx) for p in _thin(prompts.negative)]
    box = np.zeros((GRID, GRID), np.float32)
    for y0, x0, y1, x1 in prompts.boxes:
        gy0, gx0 = window.to_grid((y0 - 0.5, x0 - 0.5), spacing_yx)
        gy1, gx1 = window.to_grid((y1 + 0.5, x1 + 0.5), spacing_yx)
        box[max(int(round(gy0)), 0):max(int(round(gy1)), 0),
            max(int(round(gx0)), 0):max(int(round(gx1)), 0)] = 1.0
    prev = CHANNELS.index("previous")
    if prev_mask is not None and np.any(prev_mask):
        x[prev] = to_window(np.asarray(prev_mask, np.float32), window, spacing_yx,
                            outside=0.0) > 0.5
    else:
        x[prev] = 0.0
    ref = _reference_value(img, pos, box, x[prev])
    for i, scale in enumerate(_REL_SCALES, start=1):
        x[i] = np.tanh((img - ref) / (scale * span))
    x[CHANNELS.index("positive")] = _guidance(pos)
    x[CHANNELS.index("negative")] = _guidance(neg)
    x[CHANNELS.index("box")] = box
    return x


def _reference_value(img: np.ndarray, pos_grid, box: np.ndarray, prev: np.ndarray) -> float:
    """The object's typical value: at the positive prompts, else inside the previous mask,
    else in the box's core, else the window's median."""
    vals = []
    for gy, gx in pos_grid:
        y, x = int(round(gy)), int(round(gx))
        if 0 <= y < GRID and 0 <= x < GRID:
            vals.append(img[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2].ravel())
    if vals:
        return float(np.median(np.concatenate(vals)))
    if prev.any():
        core = ndimage.binary_erosion(prev > 0.5, iterations=2)
        return float(np.median(img[core if core.any() else prev > 0.5]))
    if box.any():
        core = ndimage.binary_erosion(box, iterations=max(int(box.sum() ** 0.5 / 6), 1))
        return float(np.median(img[core if core.any() else box > 0]))
    return float(np.median(img))


def window_around(points_yx, spacing_yx, side_mm: float) -> Window:
    """A window of ``side_mm`` centred on the mean of the points (slice pixels)."""
    p = np.asarray(points_yx, np.float64).reshape(-1, 2)
    c = p.mean(axis=0)
    return Window(float(c[0] * spacing_yx[0]), float(c[1] * spacing_yx[1]), float(side_mm))


def fit_window(mask: Optional[np.ndarray], points_yx, spacing_yx, margin: float = 1.4,
               min_side_mm: float = 24.0, boxes=()) -> Window:
    """The window that holds the mask, the points and the boxes with ``margin`` around."""
    pts = [np.asarray(points_yx, np.float64).reshape(-1, 2)]
    if mask is not None and np.any(mask):
        ys, xs = np.nonzero(mask)
        pts.append(np.array([[ys.min(), xs.min()], [ys.max(), xs.max()]], np.float64))
    for y0, x0, y1, x1 in boxes:
        pts.append(np.array([[y0, x0], [y1, x1]], np.float64))
    p = np.concatenate(pts) * np.asarray(spacing_yx, np.float64)
    lo, hi = p.min(axis=0), p.max(axis=0)
    side = max(float((hi - lo).max()) * margin + 2 * max(spacing_yx), min_side_mm)
    c = (lo + hi) / 2
    return Window(float(c[0]), float(c[1]), side)
