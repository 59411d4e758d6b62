"""Whole-map changes and the label history, for AnnotationController: put a label array on
the image (an import, an opened record) as one undoable edit, list the image's records, open
one, compare two, revert to one as a NEW record, and drop unsaved strokes."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional

import numpy as np

from medviewer.core.edits import Edit
from medviewer.core.labels import LabelTable
from medviewer.services.annotations import compare_records, label_history, load_record

if TYPE_CHECKING:
    from .controller import AnnotState


class RecordsMixin:
    """Part of AnnotationController (uses its state, store, submit, _record and signals)."""

    def replace_labels(self, labels: np.ndarray, table: Optional[dict], tool: str = "import",
                       stroke: bool = True) -> Optional[Edit]:
        """Put a whole label array (an import) on the image as one undoable, journaled edit."""
        st = self.ensure_ready()
        lm = self.ensure_labelmap()
        labels = np.asarray(labels)
        if tuple(labels.shape) != tuple(lm.labels.shape):
            raise ValueError(f"label array {labels.shape} does not match the image {lm.labels.shape}")
        if table:
            lm.table.replace(LabelTable.from_dict(table))
        hi = int(labels.max()) if labels.size else 0
        present = np.flatnonzero(np.bincount(labels.reshape(-1).astype(np.int64), minlength=1))
        for v in present:
            if v and int(v) not in lm.table:
                lm.table.add(f"Label {int(v)}", value=int(v))
        lm.ensure_capacity(hi)
        flat_new = labels.reshape(-1)

        def put():
            idx = np.flatnonzero(lm.labels.reshape(-1) != flat_new)
            return lm.set_voxels(idx, flat_new[idx], 0, tool, respect_locks=False)

        edit = st.paint.change(put, stroke=stroke)
        if lm.table.get(self.active_label) is None and len(lm.table):
            self.active_label = next(iter(lm.table)).value
        self._show(st)
        return edit

    # ------------------------------------------------------------------ history
    def history(self) -> list:
        """The active image's label-map records (HistoryEntry), newest first."""
        st = self.state
        if st is None or st.image_hash is None:
            return []
        return label_history(self.store, st.image_hash)

    def open_record(self, record_id: str, on_done: Optional[Callable] = None):
        """Load a stored record as the label map: one undoable edit (Ctrl+Z goes back); the
        next save is its child. Returns the job."""
        st = self.ensure_ready()
        store = self.store

        def work(reporter):
            return load_record(store, record_id)

        def done(res):
            labels, table, rec = res
            if self.state is not st:
                self.sig_message.emit("The image changed: the record was not opened")
                return
            self._open_loaded(st, labels, table, rec)
            if on_done:
                on_done(rec)

        return self.submit(work, "open-record", done, "Opening the record…")

    def _open_loaded(self, st: AnnotState, labels, table, rec) -> None:
        self.cancel_stroke()
        before = self._snapshot(st)
        edit = self.replace_labels(labels, table, "open-record", stroke=False)
        self._discard_journal(st)  # the map now equals a stored record
        st.base_record_id, st.merged, st.dirty = rec.id, None, False
        if edit is not None:
            self._push_step(st, edit, before)
        self._set_snapshot(st, self._snapshot(st))
        self.sig_undo_changed.emit()
        when = rec.created_at[:19].replace("T", " ")
        self.sig_message.emit(f"Opened the '{rec.tag}' record of {rec.source.label()} ({when} UTC)"
                              + ("" if edit is not None else ": the label map already showed it")
                              + (" — Ctrl+Z goes back" if edit is not None else ""))

    def revert_to(self, record_id: str, on_done: Optional[Callable] = None):
        """Open ``record_id`` and store it again as a NEW 'corrected' record (its child):
        history is never edited."""
        def opened(rec):
            self.save("corrected", on_done=on_done, extra={"reverted_to": rec.id}, force=True)

        return self.open_record(record_id, on_done=opened)

    def compare(self, a_id: str, b_id: str, on_done: Callable):
        """Dice per label and voxel difference of two records: ``on_done((comparison, names))``."""
        store = self.store
        return self.submit(lambda rep: compare_records(store, a_id, b_id), "compare-records",
                           on_done, "Comparing records…")

    # ------------------------------------------------------------------ unsaved strokes
    def dirty_states(self, only_active: bool = False) -> list:
        """Open images with unsaved label edits (the active one only, when asked)."""
        if only_active:
            return [self.state] if self.state is not None and self.state.dirty else []
        return [st for st in self._states.values() if st.dirty and st.labelmap is not None]

    def discard_unsaved(self, st: AnnotState, on_done: Optional[Callable] = None):
        """Drop the unsaved strokes of ``st``: its label map goes back to the record it is
        based on (empty without one); undo history and journal are cleared."""
        store, base, shape = self.store, st.base_record_id, st.volume.shape[:3]

        def work(reporter):
            return np.zeros(shape, np.uint8) if base is None else store.load_labels(base)

        def done(labels):
            if st is self.state:
                self.cancel_stroke()
            lm = st.labelmap
            with st.paint.lock:
                if lm is not None:
                    lm.ensure_capacity(int(labels.max(initial=0)))
                    lm.labels = np.array(labels, dtype=lm.labels.dtype)
                st.undo.clear()
                self._discard_journal(st)
                st.dirty = False
                st.effort.reset()
            if st is self.state:
                self.refresh_display()
                self.sig_undo_changed.emit()
            self.sig_message.emit("Unsaved label edits discarded")
            if on_done:
                on_done()

        return self.submit(work, "discard-unsaved", done, "Discarding unsaved edits…")
