"""Saving to the label store (label maps, case labels) and shutdown, for AnnotationController.

Saving copies the labels on the GUI thread and writes on the bridge; the journal of the
saved strokes is closed (and removed) only after the record exists."""
from __future__ import annotations

import logging
from typing import Callable, Optional

import numpy as np

log = logging.getLogger(__name__)


def snapshot_image(store, volume, image_hash: str) -> None:
    """Keep a copy of the image in the label store before a record about it is stored
    (training reads it once the source files are gone). Idempotent: cheap when the copy
    exists. Worker thread only. A failure is logged and does not stop the labels being
    saved (the manifest builder then skips the case and says why)."""
    try:
        store.add_image(volume, image_hash, [str(p) for p in (volume.source_paths or ())])
    except Exception as exc:  # never the paths or names: they may identify the patient
        log.warning("could not store the image snapshot %s…: %s", str(image_hash)[:12],
                    type(exc).__name__)


class SavingMixin:
    """Part of AnnotationController (uses its state, store, submit and signals)."""

    # ------------------------------------------------------------------ saving
    def save(self, tag: str = "corrected", on_done: Optional[Callable] = None):
        """Store the label map as a new record (parent = the record it came from), with the
        effort spent; runs on the bridge. Returns the job (None when there is nothing)."""
        st = self.state
        if st is None or st.labelmap is None:
            self.sig_message.emit("No label map to save")
            return None
        self.ensure_ready()
        lm = st.labelmap
        snapshot, table = lm.labels.copy(), lm.table.to_dict()
        effort = (st.effort.total.seconds, st.effort.total.strokes, st.effort.total.voxels)
        seq, h, parent = st.edit_seq, st.image_hash, st.base_record_id
        affine, source, store, vol = lm.geometry.affine_ras(), self.source(), self.store, st.volume

        def work(reporter):
            snapshot_image(store, vol, h)
            return store.add_labelmap(h, snapshot, affine, table, tag, source, parent_id=parent,
                                      effort=effort)

        def done(rec):
            self._after_save(st, rec, snapshot, seq)
            if on_done:
                on_done(rec)

        return self.submit(work, "save-labels", done, f"Saving label map ({tag})…")

    def _after_save(self, st: AnnotState, rec, snapshot: np.ndarray, seq: int) -> None:
        old = st.journal
        st.journal, st.base_record_id = None, rec.id
        st.effort.reset()
        if st.edit_seq != seq and st.labelmap is not None:  # painted while saving
            cur = st.labelmap.labels.reshape(-1)
            diff = np.flatnonzero(snapshot.reshape(-1) != cur)
            if diff.size:
                self._journal(st).append(diff, snapshot.reshape(-1)[diff], cur[diff], 0, "after-save")
        else:
            st.dirty = False
        if old is not None:
            old.close(committed_record_id=rec.id)
        self.sig_message.emit(f"Saved label map as '{rec.tag}' ({rec.effort.strokes} strokes, "
                              f"{rec.effort.seconds:.0f} s)")
        self.sig_saved.emit(rec)

    # ------------------------------------------------------------------ case labels
    def case_labels(self):
        """The active image's CaseLabels (created from the default class list if needed)."""
        st = self.state
        if st is None:
            return None
        if st.case_labels is None:
            from medviewer.core.case_labels import CaseLabels, ClassList

            st.case_labels = CaseLabels(ClassList.default())
            self.sig_case_changed.emit(st.case_labels)
        return st.case_labels

    def set_case_labels(self, case_labels) -> None:
        if self.state is not None:
            self.state.case_labels = case_labels
            self.sig_case_changed.emit(case_labels)

    def touch_case(self) -> None:
        if self.state is not None:
            self.state.case_effort.stroke(0)

    def save_case_labels(self, tag: str = "corrected", on_done: Optional[Callable] = None):
        st = self.state
        if st is None or st.case_labels is None:
            self.sig_message.emit("No case labels to save")
            return None
        self.ensure_ready()
        payload = st.case_labels.to_dict()
        t = st.case_effort.total
        effort, h, parent = (t.seconds, t.strokes, t.voxels), st.image_hash, st.case_record_id
        source, store, vol = self.source(), self.store, st.volume

        def work(reporter):
            snapshot_image(store, vol, h)
            return store.add_case_labels(h, payload, tag, source, parent_id=parent, effort=effort)

        def done(rec):
            st.case_record_id = rec.id
            st.case_effort.reset()
            self.sig_message.emit(f"Saved case labels as '{rec.tag}'")
            self.sig_saved.emit(rec)
            if on_done:
                on_done(rec)

        return self.submit(work, "save-case", done, "Saving case labels…")

    # ------------------------------------------------------------------ shutdown
    def shutdown(self) -> None:
        """Window closing: clean journals are removed; unsaved ones stay for recovery."""
        self.cancel_stroke()
        for st in self._states.values():
            j = st.journal
            if j is None or getattr(j, "closed", False):
                continue
            if not st.dirty:
                j.close()
            else:
                j.detach()  # unsaved strokes stay in the journal for recovery
        if self._store is not None:
            self._store.close()
            self._store = None

