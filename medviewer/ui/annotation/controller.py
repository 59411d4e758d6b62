"""AnnotationController: the one place label edits go through (strokes, undo, journal, store).

It owns, per opened image, a :class:`~medviewer.services.painting.PaintSession` (the LabelMap,
its UndoStack, the StrokeJournal — every finished stroke is on disk before ``end_stroke``
returns, a cancelled one never —, the effort clock, the record it is based on), the case
labels and the model proposal shown over the labels (accepted only through the edit path);
and it stores through the shared :class:`~medviewer.services.workspace.Workspace`. Views and
panels only call its methods and follow its signals. Slow work (hashing, recovery, saving,
3D fills, interpolation) runs on the QtJobBridge; the Qt-free parts are in
:mod:`medviewer.services.painting` and :mod:`medviewer.services.annotations`. A workspace
that cannot be written is reported at once (``sig_workspace_problem``); painting goes on in
memory until "Save as…" moves the work to another folder."""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np
from PySide6.QtCore import QObject, Signal

from medviewer.core.edits import Edit
from medviewer.core.effort import EffortClock
from medviewer.core.labelmap import LabelMap
from medviewer.core.labels import LabelTable
from medviewer.core.session import Session
from medviewer.core.volume import Volume
from medviewer.services.painting import PaintSession
from medviewer.services.workspace import Workspace

from ..qt_jobs import QtJobBridge
from .opening import OpeningMixin
from .proposals import ProposalMixin
from .records import RecordsMixin
from .saving import RESCUE, SavingMixin


@dataclass
class AnnotState:
    """Everything annotated on one opened image. The label map and its edit state live in
    ``paint`` (shared by two opened copies of one image); ``image_hash``, ``labelmap``,
    ``undo``, ``journal``, ``base_record_id``, ``effort``, ``dirty``, ``edit_seq`` and
    ``merged`` read and write it."""

    volume: Volume
    paint: PaintSession
    case_labels: object = None  # CaseLabels
    case_record_id: Optional[str] = None
    case_effort: EffortClock = field(default_factory=EffortClock)
    ready: bool = False  # hash known and recovery checked
    removed: dict = field(default_factory=dict)  # value -> Label, for undo of 'remove label'
    proposal: object = None  # core.proposal.Proposal shown over the labels, or None
    steps: dict = field(default_factory=weakref.WeakKeyDictionary)  # Edit -> proposals.Step
    accepting: bool = False  # an accept is being planned on a worker


def _forward(name: str) -> property:
    return property(lambda st: getattr(st.paint, name),
                    lambda st, value: setattr(st.paint, name, value))


for _name in ("image_hash", "labelmap", "undo", "journal", "base_record_id", "effort", "dirty",
              "edit_seq", "merged"):
    setattr(AnnotState, _name, _forward(_name))


class AnnotationController(OpeningMixin, SavingMixin, ProposalMixin, RecordsMixin, QObject):
    sig_labelmap_changed = Signal(object)  # LabelMap or None
    sig_voxels_changed = Signal(object)  # flat int64 indices that changed
    sig_table_changed = Signal()
    sig_undo_changed = Signal()
    sig_stroke_finished = Signal(object)  # Edit
    sig_message = Signal(str)  # status bar
    sig_notice = Signal(str)  # banner (recovery)
    sig_ready = Signal(object)  # volume: hash known, recovery done
    sig_saved = Signal(object)  # store Record
    sig_case_changed = Signal(object)  # CaseLabels or None
    sig_busy = Signal(str, int, int)  # message, done, total (total 0 = unknown)
    sig_idle = Signal()
    sig_error = Signal(str, str)
    sig_proposal_changed = Signal(object)  # Proposal or None (of the active image)
    sig_base_changed = Signal(object)  # the record id the label map is based on, or None
    sig_workspace_problem = Signal(str)  # the workspace cannot be written ("" once it can)
    _sig_problem = Signal(str)  # from PaintSession, on any thread: queued to the GUI thread

    def __init__(self, session: Session, bridge: QtJobBridge, workspace: Workspace, parent=None,
                 clock: Optional[Callable[[], float]] = None):
        super().__init__(parent)
        self.session, self.bridge, self.ws = session, bridge, workspace
        self._clock = clock
        self.state: Optional[AnnotState] = None
        self._states: Dict[int, AnnotState] = {}
        self.active_label = 1
        self._jobs = []
        self._problems_told: set = set()  # workspace problems already shown in a dialog
        self._sig_problem.connect(self._on_problem)
        session.active_changed.connect(self._on_active_changed)

    # ------------------------------------------------------------------ basics
    @property
    def workspace(self) -> Path:
        return self.ws.folder

    @property
    def store(self):
        return self.ws.store

    @property
    def labelmap(self) -> Optional[LabelMap]:
        return None if self.state is None else self.state.labelmap

    @property
    def undo_stack(self):
        return None if self.state is None else self.state.undo

    @property
    def volume(self) -> Optional[Volume]:
        return None if self.state is None else self.state.volume

    def source(self):
        return self.ws.person()

    def _new_clock(self) -> EffortClock:
        return EffortClock(self._clock) if self._clock else EffortClock()

    def _new_paint(self) -> PaintSession:
        paint = PaintSession(self.ws, clock=self._clock)
        paint.on_problem = self._sig_problem.emit  # queued to the GUI thread
        return paint

    def _on_problem(self, message: str, told: bool = False) -> None:
        """The workspace cannot be written: always the banner (``sig_workspace_problem``);
        a dialog too the first time unsaved work is at risk (or ``told``: one was shown)."""
        self.sig_workspace_problem.emit(message)
        if not message:
            self._problems_told.clear()
            return
        st = self.state
        if message not in self._problems_told and (told or (st is not None and st.dirty)):
            self._problems_told.add(message)
            if not told:
                self.sig_error.emit("The workspace cannot be written",
                                    f"{message}.\n\nYour strokes are kept in memory, not on "
                                    "disk. " + RESCUE)

    def submit(self, fn, name: str, on_done, message: str = "", on_error=None):
        """Run ``fn(reporter)`` on the bridge with progress (sig_busy) and errors reported."""
        holder = []

        def finish(job):
            if job in self._jobs:
                self._jobs.remove(job)
            if not self._jobs:
                self.sig_idle.emit()

        def done(result):
            finish(holder[0])
            on_done(result)

        def failed(msg):
            finish(holder[0])
            (on_error or (lambda m: self.sig_error.emit(f"{message or name} failed", m)))(msg)

        def progress(p):
            self.sig_busy.emit(p.message or message or name, p.done, p.total)

        if message:
            self.sig_busy.emit(message, 0, 0)
        job = self.bridge.submit(fn, name, on_done=done, on_error=failed, on_progress=progress,
                                 on_cancelled=lambda: (finish(holder[0]),
                                                       self.sig_message.emit(f"{message or name}: cancelled")))
        holder.append(job)
        self._jobs.append(job)
        return job

    @property
    def busy(self) -> bool:
        return bool(self._jobs)

    def cancel_jobs(self) -> None:
        for job in list(self._jobs):
            job.cancel()

    # ------------------------------------------------------------------ opening
    def _on_active_changed(self, volume: Optional[Volume]) -> None:
        self.cancel_stroke()
        if volume is None:
            self.state = None
            self.sig_labelmap_changed.emit(None)
            self.sig_case_changed.emit(None)
            self.sig_undo_changed.emit()
            return
        st = self._states.get(id(volume))
        if st is None or st.volume is not volume:
            st = AnnotState(volume, self._new_paint(), case_effort=self._new_clock())
            self._states[id(volume)] = st
            self.state = st
            self._check_on_open(st)
        self.state = st
        self._show(st)

    def _show(self, st: AnnotState) -> None:
        if st is not self.state:
            return
        ours = any(o.labelmap is self.session.overlay for o in self._states.values())
        if st.labelmap is not None or ours:  # never hide an overlay somebody else showed
            if self.session.overlay is not st.labelmap or st.labelmap is not None:
                self.session.set_overlay(st.labelmap)
        self.sig_labelmap_changed.emit(st.labelmap)
        self.sig_case_changed.emit(st.case_labels)
        self.sig_proposal_changed.emit(st.proposal)
        self.sig_base_changed.emit(st.base_record_id)
        self.sig_undo_changed.emit()

    def open_volume(self, image_hash: str) -> Optional[Volume]:
        """An open volume of the session whose image hash is ``image_hash`` (None: none)."""
        for st in list(self._states.values()):
            if st.image_hash == image_hash and any(v is st.volume for v in self.session.volumes):
                return st.volume
        return None

    def labelmap_of(self, volume: Volume) -> Optional[LabelMap]:
        """The label map open on ``volume`` (active or not), or None."""
        st = next((s for s in self._states.values() if s.volume is volume), None)
        return None if st is None else st.labelmap

    def ensure_ready(self) -> AnnotState:
        """The active state with its image hash (computed here if the check is still running)."""
        st = self.state
        if st is None:
            raise RuntimeError("open an image first")
        if st.image_hash is None:
            from medviewer.core.hashing import image_hash

            st.image_hash = image_hash(st.volume)
        return st

    # ------------------------------------------------------------------ label maps
    def _watch(self, st: AnnotState) -> None:
        lm = st.labelmap
        lm.edited.connect(lambda edit, st=st: self._on_edited(st, edit))
        lm.table.changed.connect(lambda st=st: self._on_table_changed(st))
        if lm.table.get(self.active_label) is None and len(lm.table):
            self.active_label = next(iter(lm.table)).value

    def _on_edited(self, st: AnnotState, edit: Edit) -> None:
        if st is self.state:
            self.sig_voxels_changed.emit(edit.indices)

    def _on_table_changed(self, st: AnnotState) -> None:
        st.paint.record_table(st.labelmap.table.to_dict())
        if st is self.state:
            self.session.set_overlay(st.labelmap)  # new colours / visibility
            self.sig_table_changed.emit()

    def new_labelmap(self, table: Optional[LabelTable] = None) -> LabelMap:
        """An empty label map on the active image (replaces the current one)."""
        st = self.ensure_ready()
        self.cancel_stroke()
        self._discard_journal(st)
        with st.paint.lock:
            st.labelmap = LabelMap(st.volume.geometry, table or LabelTable.default())
            st.undo.clear()
            st.base_record_id, st.dirty = None, False
            st.effort.reset()
        self._watch(st)
        self._show(st)
        return st.labelmap

    def import_table(self, table: LabelTable) -> None:
        """Merge a label list into the active table (a new label map when there is none)."""
        if self.state is None:
            return
        lm = self.labelmap
        if lm is None:
            self.new_labelmap(table)
            return
        merged = lm.table.copy()
        for lab in table:
            if lab.value in merged:
                merged.labels[lab.value].name, merged.labels[lab.value].color = lab.name, lab.color
            else:
                merged.add(lab.name, lab.color, value=lab.value)
        lm.table.replace(merged)

    def ensure_labelmap(self) -> LabelMap:
        return self.labelmap if self.labelmap is not None else self.new_labelmap()

    def refresh_display(self) -> None:
        """Opacity / outline / visibility changed: redraw the overlay."""
        if self.labelmap is not None:
            self.session.set_overlay(self.labelmap)

    # ------------------------------------------------------------------ journal
    def _discard_journal(self, st: AnnotState) -> None:
        st.paint.discard_journal()

    def _record(self, st: AnnotState, edit: Edit, reverse: bool = False, stroke: bool = True,
                encoded=None) -> None:
        """Journal a change that already happened (see ``PaintSession.record``)."""
        st.paint.record(edit, reverse=reverse, stroke=stroke, encoded=encoded)

    # ------------------------------------------------------------------ strokes
    def begin_stroke(self, tool: str, value: Optional[int] = None) -> bool:
        """Start a stroke of ``value`` (default: the active label; 0 erases)."""
        self.cancel_stroke()
        if self.state is None:
            return False
        st = self.ensure_ready()
        lm = self.ensure_labelmap()
        value = self.active_label if value is None else int(value)
        if value and lm.table.get(value) is None:
            lm.table.add(f"Label {value}", value=value)
        st.paint.begin_stroke(value, tool)
        return True

    @property
    def in_stroke(self) -> bool:
        return self.state is not None and self.state.paint.in_stroke

    def stroke_add(self, indices) -> np.ndarray:
        """Paint flat indices into the running stroke; views of touched slices redraw."""
        if not self.in_stroke:
            return np.zeros(0, dtype=np.int64)
        changed = self.state.paint.stroke_add(indices)
        if changed.size:
            self.sig_voxels_changed.emit(changed)
        return changed

    def end_stroke(self) -> Optional[Edit]:
        """Finish the stroke: it goes on the undo stack and (fsync'ed) into the journal."""
        st = self.state
        if st is None or not st.paint.in_stroke:
            return None
        edit = st.paint.end_stroke()  # emits labelmap.edited: views redraw once more
        if edit is not None:
            self.sig_stroke_finished.emit(edit)
        self.sig_undo_changed.emit()
        return edit

    def cancel_stroke(self) -> bool:
        """Drop the running stroke (Esc): its voxels are put back; it never reaches the
        journal or a saved record."""
        st = self.state
        if st is None or not st.paint.cancel_stroke():
            return False
        self.refresh_display()
        return True

    def apply_voxels(self, indices, value: Optional[int], tool: str) -> Optional[Edit]:
        """A one-shot edit (fill, polygon, interpolation) through the same stroke path."""
        if not self.begin_stroke(tool, value):
            return None
        self.stroke_add(indices)
        return self.end_stroke()

    def undo(self) -> Optional[Edit]:
        st = self.state
        if st is None or st.labelmap is None or self.in_stroke:
            return None
        edit = st.paint.undo_edit()
        if edit is not None:
            if edit.tool == "remove" and edit.label not in st.labelmap.table:
                lab = st.removed.get(edit.label)
                st.labelmap.table.add(lab.name if lab else f"Label {edit.label}",
                                      lab.color if lab else None, value=edit.label)
            self._restore_step(st, edit, undo=True)
        self.sig_undo_changed.emit()
        return edit

    def redo(self) -> Optional[Edit]:
        st = self.state
        if st is None or st.labelmap is None or self.in_stroke:
            return None
        edit = st.paint.redo_edit()
        if edit is not None:
            self._restore_step(st, edit, undo=False)
        self.sig_undo_changed.emit()
        return edit

    def remove_label(self, value: int) -> Optional[Edit]:
        """Erase every voxel of a label (undoable) and take it out of the table."""
        st = self.state
        if st is None or st.labelmap is None or st.labelmap.table.get(value) is None:
            return None
        lm = st.labelmap
        edit = st.paint.change(lambda: lm.clear_label(int(value), respect_locks=False))
        st.removed[int(value)] = lm.table.get(value)
        lm.table.remove(value)
        if self.active_label == value and len(lm.table):
            self.active_label = next(iter(lm.table)).value
        self.sig_undo_changed.emit()
        return edit
