"""Model proposals over the label map, for AnnotationController: show a proposal, accept all
of it, one label or one slice in ONE undoable, journaled edit (a person's painted voxels are
kept unless asked to replace them), or reject it (the label map is untouched).

Accepting plans the edit (which voxels change, compressed for the journal) from the
proposal's bounding box, then commits it. From the UI a large accept plans on a worker and
commits on the GUI thread; a label map changed in between is planned again at commit."""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Optional

from medviewer.core.edits import Edit, locked_mask
from medviewer.core.labels import LabelTable
from medviewer.core.proposal import Proposal, label_mapping
from medviewer.services.annotations import plan_proposal_accept
from medviewer.services.workspace import Workspace

BACKGROUND_VOXELS = 1_000_000  # an accept looking at more voxels plans on a worker

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


class AcceptRequest(NamedTuple):
    """An accept as asked for, with the label map's state it was planned against."""

    st: object  # AnnotState
    proposal: Proposal
    labelmap: object
    version: int
    table: dict
    value: Optional[int]
    axis: Optional[int]
    index: Optional[int]
    replace: bool
    mapping: dict
    changes: list
    locked: object  # bool lookup by value, or None

    def plan(self):
        return plan_proposal_accept(self.labelmap.labels, self.proposal, self.mapping,
                                    self.value, self.axis, self.index, self.replace,
                                    self.locked)

    def current(self) -> bool:
        """The label map is as it was when this was asked for (a plan of it still holds)."""
        lm = self.st.labelmap
        return lm is self.labelmap and lm.version == self.version and \
            lm.table.to_dict() == self.table

    def voxels_looked_at(self) -> int:
        shape = self.labelmap.labels.shape
        box = self.proposal.box or tuple(slice(0, 0) for _ in shape)
        n = 1
        for a, sl in enumerate(box):
            lo, hi = sl.start, sl.stop
            if self.axis is not None and a == int(self.axis):
                lo, hi = max(lo, int(self.index)), min(hi, int(self.index) + 1)
            n *= max(0, hi - lo)
        return n


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
        req = self._accept_request(value, axis, index, replace)
        return None if req is None else self._commit_accept(req, *req.plan())

    def accept_proposal_in_background(self, value: Optional[int] = None,
                                      axis: Optional[int] = None, index: Optional[int] = None,
                                      replace: bool = False, on_done=None) -> bool:
        """:meth:`accept_proposal` for the UI: a large accept is planned on a worker (the GUI
        thread only commits the planned edit), a small one here at once. ``on_done(edit)``
        follows on the GUI thread (edit None: nothing accepted). False when nothing starts."""
        req = self._accept_request(value, axis, index, replace)
        if req is None:
            return False
        done = on_done or (lambda edit: None)
        if req.voxels_looked_at() <= BACKGROUND_VOXELS:
            done(self._commit_accept(req, *req.plan()))
            return True
        st = req.st
        st.accepting = True
        opening = None  # the first edit of this label map: its journal is opened there too
        if st.journal is None:
            lm = req.labelmap
            opening = (Workspace(folder=self.ws.folder), st.image_hash, st.base_record_id,
                       lm.labels.shape, lm.labels.dtype, req.table)

        def work(rep):
            plan = req.plan()
            ws, *head = opening or (None,)
            try:
                return plan, (ws.open_journal(*head) if ws is not None else None)
            except OSError:  # said when the edit is journaled; the accept goes on in memory
                return plan, None

        def planned(result):
            st.accepting = False
            plan, journal = result
            if journal is not None:
                if st.journal is None and req.current():
                    st.journal = journal
                else:  # a stroke opened one meanwhile, or the label map was replaced
                    journal.close()
            done(self._commit_accept(req, *plan))

        def failed(message):
            st.accepting = False
            self.sig_error.emit("Accepting the proposal failed", message)
            done(None)

        self.submit(work, "accept", planned, "Accepting the proposal…", on_error=failed)
        return True

    def _accept_request(self, value, axis, index, replace) -> Optional[AcceptRequest]:
        st = self.state
        if st is None or st.proposal is None:
            self.sig_message.emit("No proposal to accept")
            return None
        if st.accepting:
            self.sig_message.emit("Still accepting the proposal")
            return None
        self.cancel_stroke()
        if st.labelmap is None:
            self.new_labelmap(LabelTable.from_dict(st.proposal.table))
        return self._request(st, st.proposal, value, axis, index, replace)

    @staticmethod
    def _request(st, prop, value, axis, index, replace) -> AcceptRequest:
        lm = st.labelmap
        values = [int(value)] if value is not None else list(prop.counts)
        mapping, changes = label_mapping(prop.table, values, lm.table,
                                         lambda v: lm.voxel_counts().get(v, 0))
        return AcceptRequest(st, prop, lm, lm.version, lm.table.to_dict(), value, axis, index,
                             replace, mapping, changes, locked_mask(lm))

    def _commit_accept(self, req: AcceptRequest, plan, encoded) -> Optional[Edit]:
        """Apply a planned accept (planned again here if the label map changed meanwhile)."""
        st, prop, value, axis, index = req.st, req.proposal, req.value, req.axis, req.index
        if not req.current():  # painted, undone or relabelled while it was planned
            if st.labelmap is None:
                return None
            req = self._request(st, prop, value, axis, index, req.replace)
            plan, encoded = req.plan()
        lm = st.labelmap
        used = set(plan.values)
        for v, name, colour, rename in req.changes:
            if v not in used:
                continue
            if rename:
                lm.table.rename(v, name)
            else:
                lm.table.add(name, colour, value=v)
        before = self._snapshot(st)
        edit = None
        if plan.indices.size:
            edit = st.paint.change(
                lambda: lm.apply(Edit(plan.indices, plan.old, plan.new, int(value or 0),
                                      "proposal"), values=plan.values),
                stroke=False, encoded=encoded)
        if st.proposal is prop:  # (another proposal may be shown by now: it stays)
            rest = None if value is None and axis is None else prop.without(value, axis, index)
            st.proposal = None if rest is None or rest.empty else rest
        if edit is not None:
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
        note = f"; kept {plan.kept} voxels you painted" if plan.kept else ""
        if plan.locked:
            note += f"; left {plan.locked} voxels of locked labels"
        self.sig_message.emit(f"Accepted {what}: {n} voxels changed{note} (Ctrl+Z undoes it)"
                              if n else f"Accepted {what}: nothing changed{note}")
        return edit
