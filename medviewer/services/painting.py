"""PaintSession: one image's label map under edit, without Qt — strokes painted as they
happen, undo/redo, the fsync'ed stroke journal, and saves to the label store. The app's
annotation controller drives it from the GUI thread; saves run on a worker; the crash tests
drive the same code in a child process they kill.

Strokes are atomic with respect to saves and the journal:

- a stroke's voxels are in the label map while it is painted, but it reaches the journal
  only when it ends (a cancelled stroke never), and a snapshot taken meanwhile — by a save,
  from any thread — is the label map as it was before the stroke began;
- the saves of one session run one at a time; each is the child of the record the save
  before it stored, and the store checks the head of that chain inside its transaction
  (so saves racing from other sessions or processes chain too);
- after a save the journal starts again from the new record, holding the edits finished
  meanwhile. The record names the journal and how many of its edits it holds, so a kill
  between the record and the journal's clean mark recovers from the record, never twice.

When the workspace cannot be written (read-only, removed) painting goes on in memory: the
problem is kept in :attr:`PaintSession.problem` and reported once through ``on_problem``
(called on the thread that met it); :func:`save_as` rescues the work into another folder.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np

from medviewer.core.edits import Edit, StrokeRecorder, UndoStack
from medviewer.core.effort import EffortClock
from medviewer.core.labelmap import LabelMap
from medviewer.core.labels import LabelTable

from .annotations import store_labelmap
from .workspace import Workspace, WorkspaceUnavailable

__all__ = ["PaintSession", "SaveAsResult", "SaveSnapshot", "save_as"]


@dataclass(frozen=True)
class SaveSnapshot:
    """What one save stores, taken at one instant (never part of a stroke)."""

    labels: np.ndarray  # read-only copy
    table: dict
    seq: int  # edits journaled up to this instant
    dirty: bool
    parent_id: Optional[str]
    seen_seq: Optional[int]  # store position when the session took its base
    merged: Optional[str]
    effort: tuple  # (seconds, strokes, voxels) since the last save
    journal: Optional[dict]  # {"id", "edits"}: the journal holding these edits, and how many


@dataclass(frozen=True)
class SaveAsResult:
    records: list  # the new record of each session (None: nothing new to store)
    copied: int  # records of the images' history copied into the new workspace
    left_out: int  # records that could not be read from the old one


class SaveTurns:
    """One save at a time, in the order they were asked for: :meth:`ticket` is taken on the
    thread that asks (the GUI's), :meth:`turn` waits on the worker until every earlier
    ticket is done. Two pool workers may start two saves in either order; a plain lock
    then let 'Mark final' run before the Ctrl+S asked just before it, and the Ctrl+S
    found nothing left to store. A FIFO pool starts the earliest ticket first, so the one
    waited for is always running."""

    def __init__(self):
        self._cond = threading.Condition()
        self._next = 0  # the next ticket handed out
        self._serving = 0  # the ticket whose turn it is

    def ticket(self) -> int:
        with self._cond:
            self._next += 1
            return self._next - 1

    @contextmanager
    def turn(self, ticket: Optional[int] = None):
        """Hold the turn of ``ticket`` (None: a new ticket, i.e. after every save asked
        so far)."""
        ticket = self.ticket() if ticket is None else ticket
        with self._cond:
            while self._serving != ticket:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._serving += 1
                self._cond.notify_all()


class PaintSession:
    """The label map of one image under edit, with its undo stack, effort clock, journal and
    the record it is based on. Painting and undo happen on one thread; :meth:`snapshot`,
    :meth:`save` and :meth:`save_as` may be called from any thread."""

    def __init__(self, workspace: Workspace, image_hash: Optional[str] = None,
                 clock: Optional[Callable[[], float]] = None):
        self.ws = workspace
        self.image_hash = image_hash
        self.labelmap: Optional[LabelMap] = None
        self.undo = UndoStack()
        self.effort = EffortClock(clock) if clock else EffortClock()
        self.journal = None  # StrokeJournal, opened at the first edit
        self.merged: Optional[str] = None  # the record an accepted proposal was merged into
        self.edit_seq = 0  # journaled changes so far
        self.dirty = False  # label edits since the last save
        self.problem: Optional[str] = None  # why the workspace cannot be written, once seen
        self.on_problem: Optional[Callable[[str], None]] = None
        self.lock = threading.RLock()  # edits, journal and snapshots: one at a time
        self.save_turns = SaveTurns()  # saves: one at a time, in the order asked for
        self._stroke: Optional[StrokeRecorder] = None
        self._memory_only = False  # the journal failed: edits stay in memory until a save
        self._stale: list = []  # journals let go of when they failed: removed after a save
        self._base: Optional[str] = None
        self.base_seq: Optional[int] = None

    # ------------------------------------------------------------------ base record
    @property
    def base_record_id(self) -> Optional[str]:
        """The record the label map is based on (the next save's parent)."""
        return self._base

    @base_record_id.setter
    def base_record_id(self, record_id: Optional[str]) -> None:
        """A base from outside a save (a record opened, a proposal accepted, undo of that):
        its chain starts at the store's position now."""
        self._base = record_id
        self.base_seq = self._store_seq()

    def _store_seq(self) -> Optional[int]:
        try:
            return self.ws.store.last_seq() if self.ws.has_store() else 0
        except (OSError, ValueError):
            return None  # unreadable: that save cannot check its chain

    # ------------------------------------------------------------------ strokes
    @property
    def in_stroke(self) -> bool:
        return self._stroke is not None

    def begin_stroke(self, value: int, tool: str) -> None:
        """Start a stroke of ``value`` (0 erases) on the label map (cancels an open one)."""
        with self.lock:
            self.cancel_stroke()
            self.effort.touch()
            self._stroke = StrokeRecorder(self.labelmap, int(value), tool)

    def stroke_add(self, indices) -> np.ndarray:
        """Paint flat indices into the open stroke; returns those that changed."""
        with self.lock:
            if self._stroke is None:
                return np.zeros(0, dtype=np.int64)
            return self._stroke.add(indices)

    def end_stroke(self) -> Optional[Edit]:
        """Finish the stroke: it is on the undo stack and (fsync'ed) in the journal when
        this returns; then ``labelmap.edited`` is emitted. None when nothing changed."""
        with self.lock:
            rec, self._stroke = self._stroke, None
            if rec is None:
                return None
            edit = rec.finish(emit=False)
            if edit is not None:
                self.undo.push(edit)
                self.record(edit)
        if edit is not None:
            self.labelmap.edited.emit(edit)
        return edit

    def cancel_stroke(self) -> bool:
        """Put back the voxels of the open stroke; nothing reaches the journal."""
        with self.lock:
            rec, self._stroke = self._stroke, None
            if rec is None:
                return False
            rec.cancel()
            return True

    def change(self, make: Callable[[], Optional[Edit]], stroke: bool = True,
               encoded=None) -> Optional[Edit]:
        """Run ``make()`` — it changes the label map and returns the applied Edit (or None) —
        then push and journal that edit, all at once for a snapshot (fills, imports, an
        accepted proposal, a removed label). ``encoded``: see :meth:`record`."""
        with self.lock:
            edit = make()
            if edit is not None:
                self.undo.push(edit)
                self.record(edit, stroke=stroke, encoded=encoded)
        return edit

    def undo_edit(self) -> Optional[Edit]:
        """Undo the newest edit (journaled as its reverse); None when there is none."""
        return self._step(self.undo.undo, reverse=True)

    def redo_edit(self) -> Optional[Edit]:
        return self._step(self.undo.redo, reverse=False)

    def _step(self, move, reverse: bool) -> Optional[Edit]:
        with self.lock:
            if self.labelmap is None or self._stroke is not None:
                return None
            edit = move(self.labelmap)
            if edit is not None:
                self.record(edit, reverse=reverse, stroke=False)  # time, not a new stroke
        return edit

    # ------------------------------------------------------------------ journal
    def record(self, edit: Edit, reverse: bool = False, stroke: bool = True,
               encoded=None) -> None:
        """Journal a change that already happened in the label map; a ``stroke`` counts as
        annotation effort, other changes as time. ``encoded``: the edit's arrays already
        compressed for the journal (on a worker). Kept in memory only (and reported once)
        when the journal cannot be written."""
        with self.lock:
            if not reverse and stroke:
                self.effort.stroke(edit.voxels)
            else:
                self.effort.touch()
            delta = self.effort.take().__dict__
            self.edit_seq += 1
            self.dirty = True
            self._journaled(lambda j: j.append_edit(edit, reverse=reverse, effort_delta=delta,
                                                    encoded=encoded))

    def record_table(self, table: dict) -> None:
        """The label table changed (a journal opened later carries it in its header)."""
        with self.lock:
            if self.journal is not None:
                self._journaled(lambda j: j.append_table(table))

    def _journaled(self, write) -> bool:
        """``write(journal)`` into the open journal (opened here when needed). False when
        the edit stays in memory only: the journal failed now or earlier."""
        if self._memory_only:
            return False
        try:
            if self.journal is None:
                lm = self.labelmap
                self.journal = self.ws.open_journal(self.image_hash, self._base,
                                                    lm.labels.shape, lm.labels.dtype,
                                                    lm.table.to_dict())
            write(self.journal)
        except OSError as exc:
            self._memory_only = True  # the journal so far stays: its strokes are finished
            if self.journal is not None:
                self.journal.detach()
                self._stale.append(self.journal.path)
            self._report(str(exc) if isinstance(exc, WorkspaceUnavailable) else
                         f"The stroke journal in {self.ws.folder} cannot be written: {exc}")
            return False
        why = self.ws.problem()  # e.g. made read-only since: this journal still takes strokes
        if why is not None:
            self._report(why)
        return True

    def _report(self, message: str) -> None:
        if message != self.problem:
            self.problem = message
            if self.on_problem is not None:
                self.on_problem(message)

    def discard_journal(self) -> None:
        """The label map now equals its base (opened, discarded, replaced): close the
        journal (removed; nothing is offered for recovery)."""
        with self.lock:
            journal, self.journal, self._memory_only = self.journal, None, False
        if journal is not None:
            try:
                journal.close()
            except OSError:
                pass  # it stays behind, unmarked, in a workspace that cannot be written

    def detach_journal(self) -> None:
        """Let go of the journal WITHOUT marking it clean (closing with unsaved edits)."""
        with self.lock:
            if self.journal is not None:
                self.journal.detach()

    # ------------------------------------------------------------------ saving
    def snapshot(self) -> SaveSnapshot:
        """The label map (without the open stroke) and what a save needs, at one instant."""
        with self.lock:
            lm, t, j = self.labelmap, self.effort.total, self.journal
            labels = lm.snapshot()
            labels.flags.writeable = False
            mark = None if j is None or self._memory_only or j.closed else \
                {"id": j.path.stem, "edits": int(j.n_strokes)}
            return SaveSnapshot(labels, lm.table.to_dict(), self.edit_seq, self.dirty,
                                self._base, self.base_seq, self.merged,
                                (float(t.seconds), int(t.strokes), int(t.voxels)), mark)

    def unchanged(self, store, tag: str, snap: Optional[SaveSnapshot] = None) -> bool:
        """True when storing the label map as ``tag`` would add nothing: no edit since the
        record it is based on, the same label table, and not a new decision (marking a
        record 'final' is one)."""
        if snap is None:
            with self.lock:
                dirty, base, table = self.dirty, self._base, self.labelmap.table.to_dict()
                empty = base is None and not self.labelmap.labels.any()
        else:
            dirty, base, table = snap.dirty, snap.parent_id, snap.table
            empty = base is None and not snap.labels.any()
        if dirty:
            return False
        if base is None:
            return empty
        rec = store.get(base)
        if rec is None or (tag == "final" and rec.tag != "final"):
            return False
        return rec.payload.get("table") == table

    def save(self, store, volume, tag: str, source, extra: Optional[dict] = None,
             force: bool = False, ticket: Optional[int] = None):
        """Store the label map as a new record (parent: the record it is based on; the
        effort since the last save); returns it, or None when nothing changed (unless
        ``force``). From any thread; one save of this session at a time, in the order of
        their ``ticket`` (:meth:`SaveTurns.ticket`, taken when the save was asked for)."""
        with self.save_turns.turn(ticket):
            snap = self.snapshot()
            if not force and self.unchanged(store, tag, snap):
                return None
            extra = dict(extra or {})
            if snap.merged is not None and snap.parent_id != snap.merged:
                extra.setdefault("accepted_proposal", snap.parent_id)
                extra.setdefault("merged_into", snap.merged)
            if snap.journal is not None:
                extra["journal"] = snap.journal
            rec = store_labelmap(store, volume, self.image_hash, snap.labels, snap.table, tag,
                                 source, snap.parent_id, snap.effort, extra or None,
                                 seen_seq=snap.seen_seq)
            self._saved(rec, snap, rec.seq)
            return rec

    def _saved(self, rec, snap: SaveSnapshot, seq: Optional[int]) -> None:
        """``rec`` (None: nothing new) holds ``snap``: base on it, and start the journal
        again with the edits finished since the snapshot; the old journal is marked clean."""
        with self.lock:
            old, self.journal, self._memory_only = self.journal, None, False
            if rec is not None:
                self._base, self.merged = rec.id, None
            self.base_seq, self.problem = seq, None
            self.effort.saved(*snap.effort)
            if self.edit_seq == snap.seq:
                self.dirty = False
            elif self.labelmap is not None:  # edits finished while saving: journal them
                before, now = snap.labels.reshape(-1), self.labelmap.snapshot().reshape(-1)
                diff = np.flatnonzero(before != now)
                if diff.size:
                    self._journaled(lambda j: j.append(diff, before[diff], now[diff], 0,
                                                       "after-save"))
        if old is not None:
            try:
                old.close(committed_record_id=None if rec is None else rec.id)
            except OSError:
                pass  # the record names this journal: recovery starts from the record
        stale, self._stale = self._stale, []
        for path in stale:  # older than the record: never to be replayed over it
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass  # in a workspace left behind (Save as…): its own unsaved strokes

    def save_as(self, dst, src, volume, tag: str, source) -> Optional[object]:
        """Into another store ``dst``: copy this image's history from ``src`` (the old
        store, None when unreadable), then store the label map as a record there (the copy
        of its base as parent) unless the copied base already holds it. The journal starts
        again in the (already switched) workspace. Returns the new record or None."""
        with self.save_turns.turn():
            snap = self.snapshot()
            here, _ = dst.copy_history(src, self.image_hash) if src is not None else ([], [])
            parent = snap.parent_id if snap.parent_id in here else None
            rec = None
            if snap.dirty or parent != snap.parent_id or (parent is None and snap.labels.any()):
                extra = {"saved_as": True}
                if parent != snap.parent_id:
                    extra["parent_not_copied"] = snap.parent_id
                rec = store_labelmap(dst, volume, self.image_hash, snap.labels, snap.table, tag,
                                     source, parent, snap.effort, extra)
            self._saved(rec, snap, dst.last_seq())
            return rec

    # ------------------------------------------------------------------ opening
    def restore(self, res, geometry) -> int:
        """Take what :func:`~medviewer.services.annotations.check_on_open` found: the base
        labels, and the finished strokes of a killed session replayed on them (one undo
        step each) into a fresh journal; the old journals are removed once it holds them
        (an empty label map when nothing was found). Returns how many strokes came back."""
        table = LabelTable.from_dict(res.table) if res.table else None
        with self.lock:
            lm = LabelMap(geometry, table, None if res.labels is None else
                          np.array(res.labels, copy=True))
            self.labelmap = lm
            self._base, self.base_seq = res.base_record_id, res.seen_seq
            if not res.recovered:
                return 0
            base = lm.labels.reshape(-1).copy()
            for je in res.recovered:
                self.undo.push(lm.apply(Edit(je.indices, je.old, je.new, je.label, je.tool)))
            s, n, v = res.effort
            self.effort.add(s, n, v)
            now = lm.labels.reshape(-1)
            diff = np.flatnonzero(base != now)
            self.dirty, self.edit_seq = True, self.edit_seq + 1
            kept = True
            if diff.size:
                kept = self._journaled(lambda j: j.append(diff, base[diff], now[diff], 0,
                                                          "recovered", (s, n, v)))
        if kept:
            for j in res.journals:
                try:
                    j.discard()
                except OSError:
                    break  # a workspace that cannot be written keeps them
        return len(res.recovered)


def save_as(workspace: Workspace, folder, sessions: List[tuple], tag: str,
            source) -> SaveAsResult:
    """Rescue the work into ``folder`` (a workspace, created when missing): every image's
    history copied from the current workspace as far as it can still be read, each
    ``(PaintSession, volume)``'s label map stored there when the copy does not hold it
    already; the app works in ``folder`` from then on. Raises
    :class:`WorkspaceUnavailable` (nothing changed) when ``folder`` cannot be written."""
    folder = Path(folder).expanduser()
    if folder.resolve() == workspace.folder.resolve():
        raise WorkspaceUnavailable(17, f"{folder} is the workspace in use: choose another folder")
    Workspace(folder=folder).store.close()  # can it be written? (raises clearly if not)
    src = workspace.take_store() or workspace.read_only_store()
    workspace.use_folder(folder)
    try:
        dst = workspace.store
        before = dst.last_seq()
        records = [paint.save_as(dst, src, volume, tag, source) for paint, volume in sessions]
        new = {r.id for r in records if r is not None}
        copied = sum(1 for r in dst.records() if r.seq > before and r.id not in new)
        left = 0
        if src is not None:
            hashes = {paint.image_hash for paint, _ in sessions}
            have = {r.id for r in dst.records()}
            left = sum(1 for h in hashes for r in src.records(h) if r.id not in have)
    finally:
        if src is not None:
            src.close()
    return SaveAsResult(records, copied, left)
