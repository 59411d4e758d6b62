"""Saving to the label store (label maps, case labels) and shutdown, for AnnotationController.

Saving copies the labels on the GUI thread and writes on the bridge; the journal of the
saved strokes is closed (and removed) only after the record exists. A save without any change
since the last one stores nothing (and says so)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional

import numpy as np

from medviewer.services.annotations import store_case_labels, store_labelmap

if TYPE_CHECKING:
    from .controller import AnnotState


class SavingMixin:
    """Part of AnnotationController (uses its state, store, submit and signals)."""

    # ------------------------------------------------------------------ saving
    def save(self, tag: str = "corrected", on_done: Optional[Callable] = None,
             extra: Optional[dict] = None, force: bool = False, st: Optional[AnnotState] = None,
             quiet: bool = False):
        """Store the label map (of ``st``, default the active image) as a new record (parent
        = the record it came from), with the effort spent; runs on the bridge. Returns the
        job, or None when there is nothing to store: no label map, or (unless ``force``) no
        change since the record it is based on (said unless ``quiet``)."""
        st = st or self.state
        if st is None or st.labelmap is None:
            if not quiet:
                self.sig_message.emit("No label map to save")
            return None
        if st is self.state:
            self.ensure_ready()
        lm = st.labelmap
        table = lm.table.to_dict()
        if not force and self.unchanged(st, tag, table):
            if not quiet:
                self.sig_message.emit("No changes since the last save: nothing stored")
            return None
        snapshot = lm.labels.copy()
        effort = (st.effort.total.seconds, st.effort.total.strokes, st.effort.total.voxels)
        seq, h, parent = st.edit_seq, st.image_hash, st.base_record_id
        source, store, vol = self.source(), self.store, st.volume
        extra = dict(extra or {})
        if st.merged is not None and parent != st.merged:
            extra.setdefault("accepted_proposal", parent)
            extra.setdefault("merged_into", st.merged)

        def work(reporter):
            return store_labelmap(store, vol, h, snapshot, table, tag, source, parent, effort,
                                  extra or None)

        def done(rec):
            self._after_save(st, rec, snapshot, seq)
            if on_done:
                on_done(rec)

        return self.submit(work, "save-labels", done, f"Saving label map ({tag})…")

    def unchanged(self, st: AnnotState, tag: str, table: dict) -> bool:
        """True when storing ``st``'s label map as ``tag`` would add nothing: no edit since
        the record it is based on, the same label table, and not a new decision (marking a
        record 'final' is one)."""
        if st.dirty:
            return False
        if st.base_record_id is None:
            return not st.labelmap.labels.any()
        base = self.store.get(st.base_record_id)
        if base is None or (tag == "final" and base.tag != "final"):
            return False
        return base.payload.get("table") == table

    def _after_save(self, st: AnnotState, rec, snapshot: np.ndarray, seq: int) -> None:
        old = st.journal
        st.journal, st.base_record_id, st.merged = None, rec.id, None
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
        if st is self.state:
            self.sig_base_changed.emit(rec.id)
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

    def save_case_labels(self, tag: str = "corrected", on_done: Optional[Callable] = None,
                         quiet: bool = False):
        st = self.state
        if st is None or st.case_labels is None:
            self.sig_message.emit("No case labels to save")
            return None
        self.ensure_ready()
        payload = st.case_labels.to_dict()
        if st.case_record_id is not None:
            base = self.store.get(st.case_record_id)
            if base is not None and base.tag == tag and base.payload == payload:
                if not quiet:
                    self.sig_message.emit("Case labels unchanged since the last save: nothing stored")
                return None
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

