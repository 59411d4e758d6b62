"""SlabPlanes: the planes of a view's last oblique slab, kept so that the next slab (the cursor
a step or a few along the normal, a new mode, a thinner slab) samples only the planes it does
not share. One oblique plane at 512² costs ~16 ms of trilinear sampling and a 40 mm slab of
the chest CT has 21 of them; scrolling through it needs one new plane per step.

The slow part, :meth:`SlabRequest.compute`, touches no shared state, so it may run on a worker
thread; :meth:`SlabPlanes.store` and :meth:`SlabPlanes.image` run where the cache lives."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from .reformat import PlaneStack, _finish, reduce_planes

# a slab that needs more new planes than this (~16 ms each at 512², ~25 ms with the other core
# busy) is computed off the GUI thread (SliceView: on its worker, the last picture shown till then)
SYNC_SLAB_PLANES = 2


@dataclass(frozen=True)
class SlabRequest:
    """One slab to show: ``mode`` over the planes of ``stack`` at ``ks`` whole steps."""

    stack: PlaneStack
    array: np.ndarray
    ks: Tuple[int, ...]
    mode: str
    fill: float
    key: tuple  # the grid and the data: planes of equal keys and ks are equal

    def compute(self, ks: Sequence[int], check: Optional[Callable[[], None]] = None) -> Dict[int, np.ndarray]:
        """The planes at ``ks`` (a subset of this slab's), each its own float32 picture;
        ``check()`` runs before each plane (a cancel check that raises)."""
        out = {}
        for k in ks:
            if check is not None:
                check()
            out[k] = self.stack.plane(self.array, k * self.stack.step, self.fill)
        return out


    def reduced(self, check: Optional[Callable[[], None]] = None) -> np.ndarray:
        """The slab sampled plane by plane with nothing kept (two pictures in memory): for
        slabs of more planes than a SlabPlanes keeps. The same numbers as ObliqueFrame.image."""
        acc = None
        for k in self.ks:
            if check is not None:
                check()
            p = self.stack.plane(self.array, k * self.stack.step, self.fill)
            acc = p if acc is None else reduce_planes([acc, p], self.mode, out=acc)
        return _finish(acc, self.mode, len(self.ks)) if len(self.ks) > 1 else acc


class SlabPlanes:
    """Per-plane pictures of one view's oblique slabs (those of the last grid only)."""

    def __init__(self, keep: int = 64):
        self.keep = int(keep)  # pictures kept at most (1 MB each at 512²)
        self._key = None
        self._array = None  # held so that id(array) in the key cannot be reused
        self._planes: Dict[int, np.ndarray] = {}

    def request(self, stack: PlaneStack, array: np.ndarray, depths: Sequence[float], mode: str,
                fill: float) -> SlabRequest:
        """The slab of ``depths`` (whole steps of ``stack.step``, as ObliqueFrame.slab_depths gives)."""
        ks = tuple(int(round(d / stack.step)) for d in depths)
        if any(abs(d - k * stack.step) > 1e-6 for d, k in zip(depths, ks)):
            raise ValueError("slab depths must be whole steps along the normal (ObliqueFrame.slab_depths)")
        return SlabRequest(stack, array, ks, mode, float(fill), (stack.key(), id(array), float(fill)))

    def streams(self, req: SlabRequest) -> bool:
        """True for a slab of more planes than are kept: sampled whole each time
        (:meth:`SlabRequest.reduced`, off the GUI thread), its planes not kept."""
        return len(req.ks) > self.keep

    def holds(self, req: SlabRequest) -> bool:
        """True when the planes kept now are of ``req``'s grid (or none are kept)."""
        return self._key is None or self._key == req.key

    def missing(self, req: SlabRequest) -> Tuple[int, ...]:
        """The planes of ``req`` that are not kept."""
        if req.key != self._key:
            return req.ks
        return tuple(k for k in req.ks if k not in self._planes)

    def store(self, req: SlabRequest, planes: Dict[int, np.ndarray]) -> None:
        """Keep ``planes`` (computed for ``req``); a new grid drops the old grid's planes."""
        if req.key != self._key:
            self._key, self._array, self._planes = req.key, req.array, {}
        self._planes.update(planes)
        keep = max(self.keep, len(req.ks))  # never a plane of this slab
        if len(self._planes) > keep:  # drop those farthest from this slab
            mid = 0.5 * (req.ks[0] + req.ks[-1])
            for k in sorted(self._planes, key=lambda k: abs(k - mid))[keep:]:
                del self._planes[k]

    def image(self, req: SlabRequest) -> np.ndarray:
        """``req``'s slab, computing the planes not kept (here, now)."""
        if self.streams(req):
            return req.reduced()
        todo = self.missing(req)
        if todo:
            self.store(req, req.compute(todo))
        planes = [self._planes[k] for k in req.ks]
        if len(planes) == 1:
            return planes[0]
        return _finish(reduce_planes(planes, req.mode), req.mode, len(planes))

    def clear(self) -> None:
        self._key = self._array = None
        self._planes = {}
