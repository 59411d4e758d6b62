"""Saving to the label store (label maps, case labels), "Save as…" another workspace, and
shutdown, for AnnotationController.

A label-map save runs entirely on the bridge (``PaintSession.save``): the snapshot leaves out a
stroke being painted, saves of one image run one at a time and chain (the second is the
child of the first), and the journal of the saved strokes is closed only after the record
exists. A save without any change since the last one stores nothing (and says so). A
workspace that cannot be written is said in one sentence, with the way out (Save as…)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional

from medviewer.services.annotations import store_case_labels
from medviewer.services.painting import save_as as save_as_service

if TYPE_CHECKING:
    from .controller import AnnotState

RESCUE = "Labels \u25b8 Save labels as\u2026 (Ctrl+Alt+S) saves your work in another folder."


def _reason(message: str) -> str:
    """A job's error message without the exception's class name."""
    head, sep, rest = message.partition(": ")
    return rest if sep and head.isidentifier() else message


class SavingMixin:
    """Part of AnnotationController (uses its state, store, submit and signals)."""

    # ------------------------------------------------------------------ saving
    def save(self, tag: str = "corrected", on_done: Optional[Callable] = None,
             extra: Optional[dict] = None, force: bool = False, st: Optional[AnnotState] = None,
             quiet: bool = False):
        """Store the label map (of ``st``, default the active image) as a new record (parent
        = the record it came from, or the one a save still running stores), with the effort
        spent; runs on the bridge. Returns the job, or None when there is nothing to store:
        no label map, or (unless ``force``) no change since the record it is based on (said
        unless ``quiet``)."""
        st = st or self.state
        if st is None or st.labelmap is None:
            if not quiet:
                self.sig_message.emit("No label map to save")
            return None
        if st is self.state:
            self.ensure_ready()
        try:
            same = not force and st.paint.unchanged(self.store, tag)
        except OSError:
            same = False  # the save says what is wrong with the workspace
        if same:
            if not quiet:
                self.sig_message.emit("No changes since the last save: nothing stored")
            return None
        paint, ws, source, vol = st.paint, self.ws, self.source(), st.volume
        ticket = paint.save_turns.ticket()  # saves run in the order they were asked for

        def work(reporter):
            return paint.save(ws.store, vol, tag, source, extra, force, ticket)

        def done(rec):
            if rec is None:
                if not quiet:
                    self.sig_message.emit("No changes since the last save: nothing stored")
                return
            self._after_save(st, rec)
            if on_done:
                on_done(rec)

        return self.submit(work, "save-labels", done, f"Saving label map ({tag})…",
                           on_error=lambda msg: self._save_failed("Saving the label map failed",
                                                                  msg))

    def _save_failed(self, title: str, message: str) -> None:
        text = _reason(message)
        problem = self.ws.problem()
        if problem is not None or "workspace" in text.lower():
            self._on_problem(problem or text, told=True)
            text += "\n\nYour edits are kept in memory. " + RESCUE
        self.sig_error.emit(title, text)

    def _after_save(self, st: AnnotState, rec) -> None:
        self.sig_message.emit(f"Saved label map as '{rec.tag}' ({rec.effort.strokes} strokes, "
                              f"{rec.effort.seconds:.0f} s)")
        if st is self.state:
            self.sig_base_changed.emit(rec.id)
        self.sig_saved.emit(rec)

    def save_as(self, folder, on_done: Optional[Callable] = None):
        """Rescue the work into another workspace ``folder``: each open image's history is
        copied there as far as the current workspace can still be read, its label map
        stored there (unless the copy already holds it), and the app works in ``folder``
        from then on. Runs on the bridge; returns the job."""
        self.cancel_stroke()
        states, seen = [], set()
        for st in self._states.values():
            if st.labelmap is not None and st.image_hash is not None and id(st.paint) not in seen:
                seen.add(id(st.paint))
                states.append(st)
        sessions = [(st.paint, st.volume) for st in states]
        ws, source = self.ws, self.source()

        def work(reporter):
            return save_as_service(ws, folder, sessions, "corrected", source)

        def done(res):
            for st, rec in zip(states, res.records):
                if rec is not None:
                    self._after_save(st, rec)
            self._on_problem("")  # solved: the badge goes
            self.sig_base_changed.emit(self.state.base_record_id if self.state else None)
            self.sig_message.emit(
                f"Saved to the workspace {folder}: {sum(r is not None for r in res.records)} "
                f"new record(s), {res.copied} earlier record(s) copied"
                + (f", {res.left_out} could not be read" if res.left_out else ""))
            if on_done:
                on_done(res)

        return self.submit(work, "save-as", done, f"Saving to {folder}…",
                           on_error=lambda msg: self.sig_error.emit(
                               "Save as… failed", _reason(msg) + "\n\nNothing was changed: "
                               "choose another folder."))

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
        if st.case_record_id is not None and self.ws.problem() is None:
            base = self.store.get(st.case_record_id)
            if base is not None and base.tag == tag and base.payload == payload:
                if not quiet:
                    self.sig_message.emit("Case labels unchanged since the last save: nothing stored")
                return None
        t = st.case_effort.total
        effort, h, parent = (t.seconds, t.strokes, t.voxels), st.image_hash, st.case_record_id
        source, ws, vol = self.source(), self.ws, st.volume

        def work(reporter):
            return store_case_labels(ws.store, vol, h, payload, tag, source, parent, effort)

        def done(rec):
            st.case_record_id = rec.id
            st.case_effort.reset()
            self.sig_message.emit(f"Saved case labels as '{rec.tag}'")
            self.sig_saved.emit(rec)
            if on_done:
                on_done(rec)

        return self.submit(work, "save-case", done, "Saving case labels…",
                           on_error=lambda msg: self._save_failed("Saving case labels failed",
                                                                  msg))

    # ------------------------------------------------------------------ shutdown
    def shutdown(self) -> None:
        """Window closing: clean journals are removed; unsaved ones stay for recovery."""
        self.cancel_stroke()
        for st in self._states.values():
            if st.dirty:
                st.paint.detach_journal()  # unsaved strokes stay in the journal for recovery
            else:
                st.paint.discard_journal()
        self.ws.close()
