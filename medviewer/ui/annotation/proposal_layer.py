"""The proposal layer: a model's proposed labels drawn over every SliceView as their own
ImageItem, outlined and hatched (a person's labels are filled), in all three planes."""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np
from PySide6.QtCore import QObject

from medviewer.core.labels import LabelTable, palette_color
from medviewer.core.proposal import Proposal, proposal_rgba

from ..slice_layer import SliceLayer

PROPOSAL_Z = 5.5  # above the label overlay (5), below heat maps (6) and the crosshair (10)


class ProposalLayer(SliceLayer):
    """The proposal ImageItem of one SliceView (follows its slice)."""

    def __init__(self, view):
        super().__init__(view, "proposalItem", PROPOSAL_Z)
        view.proposal = self
        self.proposal: Optional[Proposal] = None
        self.lut: Optional[np.ndarray] = None

    def set_proposal(self, proposal: Optional[Proposal], lut: Optional[np.ndarray]) -> None:
        self.proposal, self.lut = proposal, lut
        self._shown_key = None
        self.update()

    def update(self) -> None:
        v, prop = self.view, self.proposal
        if prop is None or v.current is None or v.volume is None \
                or tuple(v.volume.shape[:3]) != tuple(prop.labels.shape):
            self._hide()
            return
        index = v.current.index
        key = (id(prop), index)
        if self._is_shown(key):
            return
        img = v.reslicer.extract(prop.labels, v.plane, index).image
        self._show(proposal_rgba(np.ascontiguousarray(img), self.lut), key, (0, 255))


def proposal_lut(prop: Proposal) -> np.ndarray:
    """(max value + 1, 4) RGBA colours of the proposal's values (the model's table, else the
    palette)."""
    table = LabelTable.from_dict(prop.table)
    hi = max([0, table.max_value] + list(prop.counts))
    lut = np.zeros((hi + 1, 4), dtype=np.uint8)
    for v in range(1, hi + 1):
        lab = table.get(v)
        lut[v, :3] = lab.color if lab is not None else palette_color(v)
        lut[v, 3] = 255
    return lut


class ProposalOverlays(QObject):
    """The proposal of the active image in every view; ``visible`` hides it for a moment
    (to look at the labels underneath) without rejecting it."""

    def __init__(self, session, views: Dict[str, object], controller, parent=None):
        super().__init__(parent)
        self.session, self.ctl = session, controller
        self.layers = {plane: ProposalLayer(view) for plane, view in views.items()}
        self.visible = True
        self.proposal: Optional[Proposal] = None
        controller.sig_proposal_changed.connect(self._on_proposal)
        session.active_changed.connect(lambda vol: self._refresh())
        session.cursor_changed.connect(lambda idx: self._refresh())

    def set_visible(self, on: bool) -> None:
        self.visible = bool(on)
        self._apply()

    def _on_proposal(self, proposal: Optional[Proposal]) -> None:
        self.proposal = proposal
        self._apply()

    def _apply(self) -> None:
        prop = self.proposal if self.visible else None
        lut = None if prop is None else proposal_lut(prop)
        for layer in self.layers.values():
            layer.set_proposal(prop, lut)

    def _refresh(self) -> None:
        for layer in self.layers.values():
            layer.update()
