"""Saving to the label store (label maps, case labels) and shutdown, for AnnotationController.

Saving copies the labels on the GUI thread and writes on the bridge; the journal of the
saved strokes is closed (and removed) only after the record exists."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional

import numpy as np

from medviewer.services.annotations import store_case_labels, store_labelmap

if TYPE_CHECKING:
    from .controller import AnnotState


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
        source, store, vol = self.source(), self.store, st.volume

        def work(reporter):
            return store_labelmap(store, vol, h, snapshot, table, tag, source, parent, effort)

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
            return store_case_labels(store, vol, h, payload, tag, source, parent, effort)

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
        self.ws.close()

