"""SurfaceMesher: keeps the label surfaces of the shown label map up to date, meshing on the
job bridge (never on the GUI thread). A new label map is meshed whole; an edit re-meshes
only the labels it changed, within their bounding box (``services.surfaces.remesh_plan``)."""
from __future__ import annotations

import time
from typing import Dict, Optional

from PySide6.QtCore import QObject, Signal

from medviewer.core.session import Session
from medviewer.services import surfaces as sf


class SurfaceMesher(QObject):
    """Follows ``session.overlay`` (a LabelMap or LabelOverlay) and its ``edited`` signal.

    ``sig_surfaces(dict, bool)``: value -> LabelSurface, and whether they replace all surfaces
    (a whole new mesh) or only those values. ``sig_colours(dict)``: value -> (r, g, b) or None
    (hidden). ``sig_status(str)``. Works only while ``enabled`` (the 3D pane is shown): until
    then it just remembers that the surfaces are stale."""

    sig_surfaces = Signal(object, bool)
    sig_colours = Signal(object)
    sig_status = Signal(str)
    sig_remeshed = Signal(object)  # tuple of the values meshed again (tests wait on it)
    _sig_edited = Signal(object)  # an Edit, queued here from whichever thread emitted it

    def __init__(self, session: Session, bridge, parent=None):
        super().__init__(parent)
        self.session, self.bridge = session, bridge
        self.enabled = False
        self.overlay = None
        self.version = None
        self.geometry = None  # of the image the surfaces were meshed on
        self.boxes: Dict[int, sf.Box] = {}
        self._full_gen = 0  # whole meshes asked for
        self._gens: Dict[int, int] = {}  # value -> re-meshes asked for
        self._stale = True  # a whole mesh is needed once enabled
        self._full_running = False
        self.last_full_s: Optional[float] = None
        self.last_remesh_s: Optional[float] = None
        self.triangles: Dict[int, int] = {}
        self._sig_edited.connect(self._on_edited)
        self._forward = lambda edit: self._sig_edited.emit(edit)  # one callable: disconnectable
        session.overlay_changed.connect(self._on_overlay)
        session.active_changed.connect(lambda v: self._on_overlay(session.overlay))

    # ------------------------------------------------------------------ state
    def set_enabled(self, on: bool) -> None:
        self.enabled = bool(on)
        if self.enabled and self._stale:
            self.remesh_all()

    def _on_overlay(self, overlay) -> None:
        vol = self.session.active
        geo = None if vol is None else vol.geometry
        if overlay is self.overlay and getattr(overlay, "version", None) == self.version \
                and geo == self.geometry:
            self.sig_colours.emit(self.colours())  # the same labels: colours or visibility
            return
        old = self.overlay
        if old is not None and hasattr(old, "edited"):
            old.edited.disconnect(self._forward)
        self.overlay = overlay
        if overlay is not None and hasattr(overlay, "edited"):
            overlay.edited.connect(self._forward)
        self.remesh_all()

    def colours(self) -> dict:
        ov = self.overlay
        if ov is None:
            return {}
        table = getattr(ov, "table", None)
        if table is not None:
            return {lab.value: (tuple(int(c) for c in lab.color) if lab.visible else None)
                    for lab in table}
        lut = ov.lut()
        return {v: tuple(int(c) for c in lut[v, :3]) for v in range(1, len(lut))}

    # ------------------------------------------------------------------ whole mesh
    def remesh_all(self) -> None:
        """Mesh every label of the current label map again (on the bridge)."""
        self._full_gen += 1
        self._gens.clear()
        ov, vol = self.overlay, self.session.active
        if ov is None or vol is None or not self.enabled:
            self.geometry = None if vol is None else vol.geometry
            self._stale = ov is not None
            self.boxes = {}
            self.triangles = {}
            self.sig_surfaces.emit({}, True)
            if ov is None:
                self.sig_status.emit("No label map: surfaces appear when one is opened or painted.")
            return
        self._stale = False
        gen, geo = self._full_gen, vol.geometry
        self.geometry = geo
        labels = ov.snapshot() if hasattr(ov, "snapshot") else ov.labels.copy()
        self.version = getattr(ov, "version", None)
        self._full_running = True
        self.sig_status.emit("Meshing the labels…")

        def work(reporter):
            t0 = time.perf_counter()
            surfaces = sf.mesh_labels(labels, geo)
            boxes = sf.label_boxes(labels)
            return surfaces, boxes, time.perf_counter() - t0

        self.bridge.submit(work, "mesh-labels", on_done=lambda res: self._full_done(gen, res),
                           on_error=lambda msg: self._failed(gen, msg))

    def _full_done(self, gen: int, res) -> None:
        if gen != self._full_gen:
            return
        self._full_running = False
        surfaces, boxes, seconds = res
        self.boxes = boxes
        self.last_full_s = seconds
        self.triangles = {v: s.n_triangles for v, s in surfaces.items()}
        self.sig_colours.emit(self.colours())
        self.sig_surfaces.emit(surfaces, True)
        self._report(f"meshed in {seconds:.2f} s")
        self.sig_remeshed.emit(tuple(surfaces))

    def _failed(self, gen: int, message: str) -> None:
        if gen == self._full_gen:
            self._full_running = False
            self.sig_status.emit(f"Meshing failed: {message.splitlines()[0] if message else '?'}")

    def _report(self, what: str) -> None:
        n = sum(1 for t in self.triangles.values() if t)
        tris = sum(self.triangles.values())
        self.sig_status.emit(f"{n} label{'s' if n != 1 else ''} · {tris / 1000:.0f}k triangles · {what}")

    # ------------------------------------------------------------------ edits
    def _on_edited(self, edit) -> None:
        ov, vol = self.overlay, self.session.active
        if ov is None or vol is None:
            return
        if not self.enabled or self._stale:
            self._stale = True
            return
        if self._full_running:  # the running whole mesh read the labels before this edit
            self.remesh_all()
            return
        plan = sf.remesh_plan(edit.indices, edit.old, edit.new, ov.labels.shape, self.boxes)
        self.version = getattr(ov, "version", None)
        if plan is None:
            return
        with ov.lock:
            crops = plan.crops(ov.labels)
        gens = {}
        for v in plan.values:
            self._gens[v] = gens[v] = self._gens.get(v, 0) + 1
        full_gen, geo = self._full_gen, vol.geometry

        def work(reporter):
            t0 = time.perf_counter()
            return sf.mesh_crops(crops, geo), time.perf_counter() - t0

        self.bridge.submit(work, "remesh-label",
                           on_done=lambda res: self._edit_done(full_gen, gens, res),
                           on_error=lambda msg: self._failed(full_gen, msg))

    def _edit_done(self, full_gen: int, gens: dict, res) -> None:
        if full_gen != self._full_gen:
            return
        surfaces, seconds = res
        fresh = {v: s for v, s in surfaces.items() if self._gens.get(v) == gens.get(v)}
        if not fresh:
            return
        self.last_remesh_s = seconds
        for v, s in fresh.items():
            self.triangles[v] = s.n_triangles
        self.sig_colours.emit(self.colours())
        self.sig_surfaces.emit(fresh, False)
        names = ", ".join(str(v) for v in fresh)
        self._report(f"label {names} re-meshed in {1000 * seconds:.0f} ms")
        self.sig_remeshed.emit(tuple(fresh))
