"""Opening an image for annotation: hash + recovery check on the bridge, then restore the
unsaved strokes of a killed session (or a person's latest saved label map) and offer a model
prediction nobody took up yet as a proposal, for AnnotationController."""
from __future__ import annotations

from typing import TYPE_CHECKING

from medviewer.services.annotations import check_on_open

if TYPE_CHECKING:
    from .controller import AnnotState


class OpeningMixin:
    """Part of AnnotationController (uses its state, submit, _watch, _show)."""

    def _check_on_open(self, st: AnnotState) -> None:
        ws, vol = self.workspace, st.volume
        self.submit(lambda rep: check_on_open(vol, ws, rep), "annotation-open",
                    lambda res: self._on_checked(st, res), "Checking for unsaved annotations…",
                    on_error=lambda msg: self._on_check_failed(st, msg))

    def _on_check_failed(self, st: AnnotState, msg: str) -> None:
        st.ready = True
        self.sig_error.emit("Could not check for unsaved annotations", msg)
        self.sig_ready.emit(st.volume)

    def _on_checked(self, st: AnnotState, res) -> None:
        st.image_hash = res.image_hash
        st.ready = True
        twin = next((o for o in self._states.values() if o is not st and o.image_hash == st.image_hash
                     and o.labelmap is not None), None)
        if twin is not None and st.labelmap is None:  # the same image opened again: same work
            st.paint, st.case_labels = twin.paint, twin.case_labels
        elif st.labelmap is None and res.labels is not None:
            self._restore(st, res)
        elif st.labelmap is None:
            st.paint.base_seq = res.seen_seq
        problem = self.ws.problem()
        if problem is not None:  # said at once; a dialog follows when painting is at risk
            self._on_problem(problem)
        if st.case_labels is None and res.case_payload is not None:
            from medviewer.core.case_labels import CaseLabels

            st.case_labels = CaseLabels.from_dict(res.case_payload)
            st.case_record_id = res.case_record_id
        for note in res.notes:
            self.sig_message.emit(note)
        if res.proposal is not None and st.proposal is None:
            labels, table, rec = res.proposal
            self.propose(st.volume, labels, table, rec, (rec.preprocessing or {}).get("slice"))
        self._show(st)
        self.sig_ready.emit(st.volume)

    def _restore(self, st: AnnotState, res) -> None:
        n = st.paint.restore(res, st.volume.geometry)
        self._watch(st)
        if not n:
            self.sig_message.emit(f"Loaded the saved label map ({res.base_tag})")
            return
        text = f"Recovered {n} stroke{'s' if n != 1 else ''} from an unsaved session"
        self.sig_notice.emit(text)
        self.sig_message.emit(text)
