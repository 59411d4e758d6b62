"""Model proposals over the label map, for AnnotationController: show a proposal, accept all
of it, one label or one slice in ONE undoable, journaled edit (a person's painted voxels are
kept unless asked to replace them), or reject it (the label map is untouched)."""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Optional

from medviewer.core.edits import Edit
from medviewer.core.labels import LabelTable
from medviewer.core.proposal import Proposal, accept_selection, label_mapping

if TYPE_CHECKING:
    from .controller import AnnotState


class Snapshot(NamedTuple):
    """What an accept (or opening a record) changes besides voxels: undo puts it back."""

    base: Optional[str]  # the record the next save is a child of
    proposal: object  # Proposal or None
    merged: Optional[str]  # the person's record the accepted proposal was merged into


class Step(NamedTuple):
    before: Snapshot
    after: Snapshot


class ProposalMixin:
    """Part of AnnotationController (uses its states, signals, _record and label maps)."""

    # ------------------------------------------------------------------ snapshots for undo
    @staticmethod
    def _snapshot(st: AnnotState) -> Snapshot:
        return Snapshot(st.base_record_id, st.proposal, st.merged)

    def _set_snapshot(self, st: AnnotState, snap: Snapshot) -> None:
        st.base_record_id, st.proposal, st.merged = snap
        if st is self.state:
            self.sig_proposal_changed.emit(st.proposal)
            self.sig_base_changed.emit(st.base_record_id)

    def _push_step(self, st: AnnotState, edit: Edit, before: Snapshot) -> None:
        """Remember what ``edit`` changed besides voxels (weakly: dropped with the edit)."""
        st.steps[edit] = Step(before, self._snapshot(st))

    def _restore_step(self, st: AnnotState, edit: Edit, undo: bool) -> None:
        step = st.steps.get(edit)
        if step is not None:
            self._set_snapshot(st, step.before if undo else step.after)

    # ------------------------------------------------------------------ proposals
    @property
    def proposal(self) -> Optional[Proposal]:
        return None if self.state is None else self.state.proposal

    def propose(self, volume, labels, table: dict, record, z: Optional[int] = None) -> Optional[Proposal]:
        """A model's labels (stored as ``record``, tag 'predicted') become the proposal of
        ``volume``'s image: drawn over its label map, which stays as it is. ``labels``: an
        array, or a Proposal already made off the GUI thread (then ``table``/``z`` are its)."""
        st = next((s for s in self._states.values() if s.volume is volume), None)
        if st is None:
            return None
        if st.image_hash is not None and record.image_hash != st.image_hash:
            raise ValueError("the proposal belongs to another image")
        prop = labels if isinstance(labels, Proposal) else \
            Proposal.make(labels, table, record.id, record.source.label(), z)
        st.proposal = None if prop.empty else prop
        if st is self.state:
            self.sig_proposal_changed.emit(st.proposal)
        where = "the volume" if z is None else f"slice {int(z) + 1}"
        if prop.empty:
            self.sig_message.emit(f"{prop.source} proposes no labels on {where}")
        else:
            self.sig_message.emit(f"Proposal of {prop.source} on {where}: Accept or Reject it "
                                  "(the label map is unchanged until you accept)")
        return st.proposal

    def show_proposal(self, volume, proposal: Optional[Proposal]) -> None:
        """Show a proposal made here, not stored (interactive prompts: ``record_id`` ''), over
        ``volume``'s label map; None takes it away."""
        st = next((s for s in self._states.values() if s.volume is volume), None)
        if st is None:
            return
        st.proposal = proposal
        if st is self.state:
            self.sig_proposal_changed.emit(proposal)

    def reject_proposal(self) -> bool:
        """Drop the proposal; the label map is untouched (the 'predicted' record stays)."""
        st = self.state
        if st is None or st.proposal is None:
            self.sig_message.emit("No proposal to reject")
            return False
        st.proposal = None
        self.sig_proposal_changed.emit(None)
        self.sig_message.emit("Proposal rejected: the label map is unchanged")
        return True

    def accept_proposal(self, value: Optional[int] = None, axis: Optional[int] = None,
                        index: Optional[int] = None, replace: bool = False) -> Optional[Edit]:
        """Merge the proposal (only label ``value`` / only slice ``index`` along ``axis``
        when given) into the label map as one undoable, journaled edit. Voxels a person
        labelled are kept unless ``replace``; locked labels are never changed. The accepted
        part leaves the proposal; the next save is a child of the 'predicted' record."""
        st = self.state
        if st is None or st.proposal is None:
            self.sig_message.emit("No proposal to accept")
            return None
        self.cancel_stroke()
        prop = st.proposal
        if st.labelmap is None:
            self.new_labelmap(LabelTable.from_dict(prop.table))
        lm = st.labelmap
        present = lm.voxel_counts()
        values = [int(value)] if value is not None else list(prop.counts)
        mapping, changes = label_mapping(prop.table, values, lm.table, present)
        idx, new, kept = accept_selection(lm.labels, prop.labels, mapping, value, axis, index,
                                          replace)
        used = set(int(v) for v in set(new.tolist()))
        for v, name, colour, rename in changes:
            if v not in used:
                continue
            if rename:
                lm.table.rename(v, name)
            else:
                lm.table.add(name, colour, value=v)
        before = self._snapshot(st)
        edit = lm.set_voxels(idx, new, int(value or 0), "proposal") if idx.size else None
        rest = None if value is None and axis is None else prop.without(value, axis, index)
        st.proposal = None if rest is None or rest.empty else rest
        if edit is not None:
            st.undo.push(edit)
            self._record(st, edit, stroke=False)
            if prop.record_id and st.base_record_id != prop.record_id:
                st.merged = st.base_record_id
            if prop.record_id:  # a stored 'predicted' record: the next save is its child
                st.base_record_id = prop.record_id
            self._push_step(st, edit, before)
        self._set_snapshot(st, self._snapshot(st))
        self.sig_undo_changed.emit()
        what = "the proposal" if value is None else f"label '{prop.names().get(value, value)}'"
        if axis is not None:
            what += f" on slice {int(index) + 1}"
        n = 0 if edit is None else edit.voxels
        note = f"; kept {kept} voxels you painted" if kept else ""
        self.sig_message.emit(f"Accepted {what}: {n} voxels changed{note} (Ctrl+Z undoes it)"
                              if n else f"Accepted {what}: nothing changed{note}")
        return edit
