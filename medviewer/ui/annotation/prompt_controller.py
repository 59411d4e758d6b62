"""PromptController: interactive segmentation of one object from prompts (clicks, boxes,
scribbles) on the active image. Every change of the prompts runs the engine on a worker (one
run at a time; a result made from an older set of prompts is dropped and the newest set runs)
and shows the result as the annotation proposal; Accept merges it into the active label
through the controller's proposal path (one undoable step) and keeps a record of the prompts.
The Qt-free part is :mod:`medviewer.services.prompt_session`."""
from __future__ import annotations

from typing import List, Optional

import numpy as np
from PySide6.QtCore import QObject, Signal

from medviewer.core.proposal import Proposal
from medviewer.services.interactive import engine_spacing
from medviewer.services.prompt_records import store_prompt_record
from medviewer.services.prompt_session import (PromptEntry, PromptSession, available_engines,
                                                run_snapshot)

MODES = ("positive", "negative", "box", "scribble")


def _make_proposal(volume, snap, value: int, table: dict, previous):
    """Worker side: the engine's mask as a read-only Proposal of ``value``."""
    mask = run_snapshot(volume, snap, previous)
    labels = np.where(mask, value, 0).astype(np.uint8 if value < 256 else np.uint16)
    labels.flags.writeable = False
    src = f"Prompts ({snap.engine}{', 3D' if snap.three_d else ''})"
    z = snap.index if snap.axis == 0 and not snap.three_d else None
    return mask, Proposal.make(labels, table, "", src, z)


class PromptController(QObject):
    sig_prompts_changed = Signal()  # the history, the mode, 3D or the engine changed
    sig_running = Signal(bool)
    sig_result = Signal(object)  # the shown Proposal (or None)

    def __init__(self, annotation_controller, parent=None):
        super().__init__(parent)
        self.ctl = annotation_controller
        self.session = PromptSession()
        self.mode = "positive"
        self.records: List[dict] = []  # accepted results: engine, plane, slice, prompts …
        self.proposal: Optional[Proposal] = None  # the one this controller showed last
        self.mask: Optional[np.ndarray] = None
        self._job = None
        self._ran = -1  # the generation of the prompts the last finished job ran
        self._volume = None
        self.ctl.session.active_changed.connect(self._on_active_changed)

    # ------------------------------------------------------------------ state
    @property
    def entries(self) -> List[PromptEntry]:
        return self.session.entries

    @property
    def running(self) -> bool:
        return self._job is not None

    @staticmethod
    def engines():
        return available_engines()

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown prompt mode {mode!r}")
        self.mode = mode
        self.sig_prompts_changed.emit()

    def set_engine(self, name: str) -> None:
        info = {e.name: e for e in available_engines()}.get(name)
        if info is None or not info.available:
            self.ctl.sig_message.emit(f"Engine {name!r} is not available"
                                      + (f": {info.reason}" if info else ""))
            return
        self.session.set_engine(name)
        self._changed()

    def _on_active_changed(self, volume) -> None:
        if volume is not self._volume and self._volume is not None:
            self.session.clear()
            self.proposal = self.mask = None
            self._volume = None
            self.sig_prompts_changed.emit()

    # ------------------------------------------------------------------ prompts
    def add(self, entry: PromptEntry) -> bool:
        vol = self.ctl.volume
        if vol is None:
            return False
        shape = vol.array.shape[:3]
        if any(not 0 <= c < n for v in entry.voxels for c, n in zip(v, shape)):
            self.ctl.sig_message.emit("The prompt is outside the image")
            return False
        if self._volume is not vol or (self.proposal is not None and not self.owns_proposal()):
            # another image, or the result was accepted / rejected elsewhere: a new object
            self.session.clear()
            self.proposal, self._volume = None, vol
        why = self.session.check(entry)
        if why:
            self.ctl.sig_message.emit(why)
            return False
        self.session.add(entry)
        self._changed()
        return True

    def undo(self) -> Optional[PromptEntry]:
        entry = self.session.undo()
        if entry is not None:
            self.ctl.sig_message.emit(f"Prompt undone: {entry.label()}")
            self._changed()
        return entry

    def remove(self, i: int) -> None:
        self.session.remove(i)
        self._changed()

    def clear(self) -> None:
        if not len(self.session):
            return
        self.session.clear()
        self._changed()

    def propagate(self) -> bool:
        """Carry the 2D result through the neighbouring slices until the object ends."""
        vol = self.ctl.volume
        if not len(self.session):
            self.ctl.sig_message.emit("Give a prompt first, then propagate it in 3D")
            return False
        if vol is None or vol.array.shape[self.session.axis or 0] < 2:
            self.ctl.sig_message.emit("3D needs more than one slice")
            return False
        self.session.set_three_d(True)
        self._changed()
        return True

    # ------------------------------------------------------------------ running
    def _changed(self) -> None:
        self.sig_prompts_changed.emit()
        if not len(self.session):
            self._show(None, None)
            return
        if self._job is None:
            self._start()
        # else: the running job's result is stale when it arrives; the newest prompts run then

    def _start(self) -> None:
        vol, snap = self._volume, self.session.snapshot()
        value = int(self.ctl.active_label) or 1
        lm = self.ctl.labelmap
        lab = lm.table.get(value) if lm is not None else None
        table = {"labels": [lab.to_dict() if lab is not None else
                            {"value": value, "name": f"Label {value}"}]}
        previous = self.session.cache
        what = "Propagating in 3D…" if snap.three_d else "Segmenting from the prompts…"
        self._job = self.ctl.submit(lambda rep: _make_proposal(vol, snap, value, table, previous),
                                    "prompt", lambda res: self._done(snap, res), what,
                                    on_error=self._failed)
        self.sig_running.emit(True)

    def _finish(self) -> bool:
        """The job ended: True if its result is current (else the newest prompts run now)."""
        self._job = None
        if self.session.generation != self._ran or not len(self.session):
            if len(self.session):
                self._start()
            else:
                self.sig_running.emit(False)
            return False
        self.sig_running.emit(False)
        return True

    def _done(self, snap, res) -> None:
        self._ran = snap.generation
        if not self._finish():
            return
        mask, prop = res
        self._show(mask, prop)
        n = int(mask.sum())
        vol = self._volume or self.ctl.volume
        note = engine_spacing(vol).note if vol is not None else ""
        self.ctl.sig_message.emit(
            (f"Proposal from {len(snap.entries)} prompt{'s' if len(snap.entries) != 1 else ''}"
             f": {n} voxels{' in 3D' if snap.three_d else ''} (Enter accepts, Esc rejects)"
             if n else "The prompts give an empty region: add a positive click inside the object")
            + (f" — {note}" if note else ""))

    def _failed(self, message: str) -> None:
        self._ran = self.session.generation
        self._finish()
        self.ctl.sig_error.emit("Interactive segmentation failed", message)

    def _show(self, mask, prop) -> None:
        self.mask = mask
        self.proposal = None if prop is None or prop.empty else prop
        vol = self._volume or self.ctl.volume
        if vol is not None and (self.proposal is not None or self._ours_shown()):
            self.ctl.show_proposal(vol, self.proposal)
        self.sig_result.emit(self.proposal)

    def _ours_shown(self) -> bool:
        p = self.ctl.proposal
        return p is not None and p.record_id == "" and p.source.startswith("Prompts")

    # ------------------------------------------------------------------ accept / reject
    def owns_proposal(self) -> bool:
        return self.proposal is not None and self.ctl.proposal is self.proposal

    def accept(self, replace: bool = False) -> bool:
        """Merge the prompt result into the active label (one undo step; a large 3D result is
        planned on a worker first) and keep its record. False when nothing was accepted."""
        if self.running:
            self.ctl.sig_message.emit("The segmentation is still running: accept when it shows")
            return False
        if not self.owns_proposal():
            self.ctl.sig_message.emit("No prompt result to accept")
            return False
        record = self.session.record()
        record["label"] = int(self.ctl.active_label)
        record["voxels"] = sum(self.proposal.counts.values())  # the mask's voxels, counted
        stored = dict(record, prompts=self.session.stored_prompts())
        mask, vol, st = self.mask, self._volume or self.ctl.volume, self.ctl.state

        def accepted(edit):
            if edit is not None:
                record["image_hash"] = st.image_hash if st is not None else None
                self.records.append(record)
                self._store_record(record, stored, mask, vol)

        started = self.ctl.accept_proposal_in_background(replace=replace, on_done=accepted)
        if started:
            self.session.clear()
            self.proposal = self.mask = None
            self.sig_prompts_changed.emit()
        return started

    def _store_record(self, record: dict, stored: dict, mask, vol) -> None:
        """Keep the accepted result with its prompts in the label store (on the worker): the
        fine-tune of the promptable model learns from these records."""
        store = getattr(self.ctl, "store", None)
        if store is None or mask is None or vol is None:
            return

        def work(rep):
            return store_prompt_record(store, record["image_hash"], stored, mask, volume=vol)

        def done(rid):
            record["record_id"] = rid
            self.ctl.sig_message.emit("Prompt result stored for fine-tuning the promptable "
                                      "model")

        self.ctl.submit(work, "prompt-record", done, "Storing the prompt result…",
                        on_error=lambda msg: self.ctl.sig_error.emit(
                            "The prompt result could not be stored", msg))

    def reject(self) -> bool:
        ours = self.owns_proposal()
        had = len(self.session) > 0
        self.session.clear()
        self.proposal = self.mask = None
        self.sig_prompts_changed.emit()
        if ours:
            return self.ctl.reject_proposal()
        if had:
            self.ctl.sig_message.emit("Prompts cleared")
        return had
