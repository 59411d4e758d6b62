"""Strokes are atomic with respect to saves and the journal; saves keep a linear parent chain;
a read-only or removed workspace is said at once, painting goes on in memory, and Save as…
rescues the work with its history. Real CT (TotalSegmentator's small example, opened with the
app's loader), real brush strokes (core.painting), real store and journal; no mocks."""
from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest

from _paint_data import load_ct, reference, stroke_plan
from read_only import make_read_only, make_writable
from medviewer.core.hashing import image_hash
from medviewer.core.labelmap import LabelMap
from medviewer.services.annotations import check_on_open
from medviewer.services.painting import PaintSession, save_as
from medviewer.services.workspace import Workspace, WorkspaceUnavailable
from medviewer.storage.journal import read_journal


@pytest.fixture(scope="module")
def ct():
    return load_ct()


def _session(ct, folder):
    ws = Workspace(folder=folder)
    ps = PaintSession(ws, image_hash(ct))
    ps.labelmap = LabelMap(ct.geometry)
    ps.base_record_id = None
    return ps, ws


def _paint(ps, step, tool="brush"):
    value, _, segs = step
    ps.begin_stroke(value, tool)
    for seg in segs:
        ps.stroke_add(seg)
    return ps.end_stroke()


def _save(ps, ws, ct, force=False):
    return ps.save(ws.store, ct, "corrected", ws.person(), force=force)


def _recovered(ct, folder):
    """What the app shows when it opens the CT in ``folder`` (after a kill)."""
    res = check_on_open(ct, folder)
    ps = PaintSession(Workspace(folder=folder), res.image_hash)
    ps.restore(res, ct.geometry)
    return ps.labelmap.labels, res


def test_saves_racing_a_stroke_store_none_of_it(ct, tmp_path):
    ps, ws = _session(ct, tmp_path / "ws")
    plan = stroke_plan(ct.geometry, 2, seed=1, cancel_every=99)
    _paint(ps, plan[0])
    before = ps.labelmap.labels.copy()
    value, _, segs = plan[1]
    saved, want = [], threading.Semaphore(0)
    done = threading.Semaphore(0)

    def saver():  # another thread: each save starts while the stroke is half painted
        while True:
            want.acquire()
            if len(saved) == len(segs):
                return
            saved.append(_save(ps, ws, ct, force=True))
            done.release()

    thread = threading.Thread(target=saver)
    thread.start()
    ps.begin_stroke(value, "brush")
    for seg in segs:
        ps.stroke_add(seg)  # the stroke grows...
        want.release()  # ...a save runs now, the stroke still open
        done.acquire()
    want.release()
    thread.join()
    assert not np.array_equal(ps.labelmap.labels, before)  # the stroke is on screen
    for rec in saved:  # and in no record
        np.testing.assert_array_equal(ws.store.load_labels(rec), before)
    ps.end_stroke()
    last = _save(ps, ws, ct)
    np.testing.assert_array_equal(ws.store.load_labels(last), reference(ct.shape, plan, [0, 1]))
    chain = saved + [last]  # one linear chain: each save the child of the one before
    assert chain[0].parent_id is None
    assert [r.parent_id for r in chain[1:]] == [r.id for r in chain[:-1]]
    assert last.effort.strokes == 1  # stroke 1 went with the first save, stroke 2 with this


def test_a_cancelled_stroke_never_reaches_a_record_or_the_journal(ct, tmp_path):
    folder = tmp_path / "ws"
    ps, ws = _session(ct, folder)
    plan = stroke_plan(ct.geometry, 3, seed=2, cancel_every=99)
    _paint(ps, plan[0])
    first = _save(ps, ws, ct)
    _paint(ps, plan[1])
    ps.begin_stroke(9, "brush")  # label 9: painted by the cancelled stroke only
    for seg in plan[2][2]:
        ps.stroke_add(seg)
    assert (ps.labelmap.labels == 9).sum() > 50
    mid = _save(ps, ws, ct, force=True)  # Ctrl+S while the mouse is still down
    ps.cancel_stroke()  # then Esc
    assert not (ps.labelmap.labels == 9).any()
    _paint(ps, (3,) + plan[2][1:])  # a finished stroke after it
    journal = ps.journal.path
    ps.detach_journal()  # the app is killed here: the journal stays for recovery
    for rec in ws.store.records(image_hash(ct)):
        assert not (ws.store.load_labels(rec) == 9).any(), rec.id
    edits = read_journal(journal).edits
    assert edits and not any((e.new == 9).any() for e in edits)
    labels, res = _recovered(ct, folder)
    assert res.base_record_id == mid.id and mid.parent_id == first.id
    expect = reference(ct.shape, plan, [0, 1])
    expect.reshape(-1)[np.unique(np.concatenate(plan[2][2]))] = 3
    np.testing.assert_array_equal(labels, expect)


def test_two_racing_saves_give_a_linear_chain(ct, tmp_path):
    ps, ws = _session(ct, tmp_path / "ws")
    plan = stroke_plan(ct.geometry, 4, seed=3, cancel_every=99)
    _paint(ps, plan[0])
    out, gate = [], threading.Barrier(2)

    def save():
        gate.wait()
        out.append(_save(ps, ws, ct, force=True))

    threads = [threading.Thread(target=save) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    a, b = sorted(out, key=lambda r: r.seq)
    assert a.parent_id is None and b.parent_id == a.id
    assert ps.base_record_id == b.id

    # two sessions (two app windows or processes: own store connections) on one base race
    # too; the store's check of the head, inside the insert's transaction, chains them
    others = []
    for i in (1, 2):
        other, ows = _session(ct, tmp_path / "ws")
        other.labelmap.labels = ws.store.load_labels(b)
        other.base_record_id = b.id
        _paint(other, plan[i + 1])
        others.append((other, ows))
    out.clear()

    def save_other(other, ows):
        gate.wait()
        out.append(other.save(ows.store, ct, "corrected", ows.person()))

    threads = [threading.Thread(target=save_other, args=o) for o in others]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    c, d = sorted(out, key=lambda r: r.seq)
    assert c.parent_id == b.id and d.parent_id == c.id
    assert d.payload["extra"]["raced_parent"] == b.id
    records = ws.store.records(image_hash(ct), kind="labelmap")
    assert [r.parent_id for r in records] == [None, a.id, b.id, c.id]


def _saved_then_painting(ct, folder, n: int, seed: int):
    """A session that saved one stroke and painted a second (its journal open)."""
    ps, ws = _session(ct, folder)
    problems = []
    ps.on_problem = problems.append
    plan = stroke_plan(ct.geometry, n, seed=seed, cancel_every=99)
    _paint(ps, plan[0])
    first = _save(ps, ws, ct)
    _paint(ps, plan[1])
    return ps, ws, plan, first, problems


def test_read_only_workspace_painting_goes_on_and_save_as_keeps_everything(ct, tmp_path):
    folder, rescue = tmp_path / "ws", tmp_path / "rescue"
    ps, ws, plan, first, problems = _saved_then_painting(ct, folder, 4, seed=4)
    locked = make_read_only(folder)
    try:
        _paint(ps, plan[2])
        assert problems == [f"The workspace {folder} is read-only"]  # said at once, once
        with pytest.raises(WorkspaceUnavailable) as err:
            _save(ps, ws, ct)
        assert str(err.value) == f"The workspace {folder} is read-only"
        _paint(ps, plan[3])  # painting goes on
        np.testing.assert_array_equal(ps.labelmap.labels, reference(ct.shape, plan, range(4)))
        res = save_as(ws, rescue, [(ps, ct)], "corrected", ws.person())
    finally:
        make_writable(folder, locked)
    assert ws.folder == rescue and res.copied == 1 and res.left_out == 0
    store = ws.store
    copied, new = store.records(image_hash(ct), kind="labelmap")
    assert copied.id == first.id and copied.effort == first.effort  # the history came along
    np.testing.assert_array_equal(store.load_labels(copied), reference(ct.shape, plan, [0]))
    assert new.id == res.records[0].id and new.parent_id == first.id
    np.testing.assert_array_equal(store.load_labels(new), reference(ct.shape, plan, range(4)))
    assert new.effort.strokes == 3  # the strokes since the last good save
    assert ps.problem is None and not ps.dirty
    _paint(ps, (9, False, plan[3][2]))  # the journal lives in the new folder now
    assert ps.journal.path.parent == rescue / "journal"


def test_removed_workspace_is_never_made_again_and_save_as_rescues(ct, tmp_path):
    folder, rescue = tmp_path / "ws", tmp_path / "rescue"
    ps, ws, plan, first, problems = _saved_then_painting(ct, folder, 3, seed=5)
    shutil.rmtree(folder)
    _paint(ps, plan[2])  # its journal write went nowhere: said at once
    assert len(problems) == 1 and problems[0].startswith(f"The workspace {folder} no longer "
                                                         "exists")
    with pytest.raises(WorkspaceUnavailable, match="no longer exists"):
        _save(ps, ws, ct)
    assert not folder.exists()  # never made again behind the person's back
    np.testing.assert_array_equal(ps.labelmap.labels, reference(ct.shape, plan, range(3)))
    res = save_as(ws, rescue, [(ps, ct)], "corrected", ws.person())
    assert not folder.exists()
    new = res.records[0]
    assert res.left_out == 1  # the first record's array went with the folder
    assert new.parent_id is None and new.payload["extra"]["parent_not_copied"] == first.id
    np.testing.assert_array_equal(ws.store.load_labels(new), reference(ct.shape, plan, range(3)))


def test_save_as_into_the_workspace_in_use_or_an_unwritable_folder_changes_nothing(ct, tmp_path):
    ps, ws = _session(ct, tmp_path / "ws")
    _paint(ps, stroke_plan(ct.geometry, 1, seed=6)[0])
    with pytest.raises(WorkspaceUnavailable, match="in use"):
        save_as(ws, tmp_path / "ws", [(ps, ct)], "corrected", ws.person())
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    locked = make_read_only(blocked)
    try:
        with pytest.raises(WorkspaceUnavailable, match="cannot be created"):
            save_as(ws, blocked / "inside", [(ps, ct)], "corrected", ws.person())
    finally:
        make_writable(blocked, locked)
    assert ws.folder == tmp_path / "ws" and ps.dirty


class _Killed(BaseException):
    """The process dies here (nothing after this point runs)."""


def test_a_kill_between_the_record_and_the_journal_clean_mark_resumes_from_the_record(
        ct, tmp_path, monkeypatch):
    folder = tmp_path / "ws"
    ps, ws = _session(ct, folder)
    plan = stroke_plan(ct.geometry, 3, seed=7, cancel_every=99)
    _paint(ps, plan[0])
    _paint(ps, plan[1])
    journal = ps.journal

    def dies_after_the_record(self, rec, snap, seq):  # the instant the kill test rarely hits
        _paint(self, plan[2])  # a stroke that ended while the record was being written
        raise _Killed

    monkeypatch.setattr(PaintSession, "_saved", dies_after_the_record)
    with pytest.raises(_Killed):
        _save(ps, ws, ct)
    monkeypatch.undo()
    journal.detach()  # its lock goes with the dead process
    rec = ws.store.latest(image_hash(ct), "labelmap")
    assert rec.payload["extra"]["journal"] == {"id": journal.path.stem, "edits": 2}
    res = check_on_open(ct, folder)
    again = PaintSession(Workspace(folder=folder), res.image_hash)
    again.restore(res, ct.geometry)
    assert res.base_record_id == rec.id and len(res.recovered) == 1  # only the stroke after it
    np.testing.assert_array_equal(again.labelmap.labels, reference(ct.shape, plan, range(3)))
    nxt = again.save(again.ws.store, ct, "corrected", again.ws.person())
    assert nxt.parent_id == rec.id and nxt.effort.strokes == 1  # the chain goes on, no sibling


def test_a_save_once_the_workspace_is_writable_again_leaves_no_stale_journal(ct, tmp_path):
    folder = tmp_path / "ws"
    ps, ws, plan, first, problems = _saved_then_painting(ct, folder, 3, seed=8)
    locked = make_read_only(folder)
    try:
        _paint(ps, plan[2])  # its journal gave up (memory only from here)
    finally:
        make_writable(folder, locked)
    assert problems
    rec = _save(ps, ws, ct)  # Ctrl+S after the folder was fixed
    assert rec.parent_id == first.id and ps.problem is None
    labels, res = _recovered(ct, folder)  # reopened: the record, no old strokes over it
    assert res.base_record_id == rec.id and not res.recovered
    np.testing.assert_array_equal(labels, reference(ct.shape, plan, range(3)))


def test_saves_run_in_the_order_they_were_asked_for_whatever_thread_starts_first(ct, tmp_path):
    """Ctrl+S, then Mark final at once: two pool workers may start them in either order.
    Here the 'final' save's thread starts first and must wait for the earlier ticket; both
    are stored, the 'final' one the child of the 'corrected' one."""
    ps, ws = _session(ct, tmp_path / "ws")
    _paint(ps, stroke_plan(ct.geometry, 1, seed=3, cancel_every=99)[0])
    first, second = ps.save_turns.ticket(), ps.save_turns.ticket()
    out = {}

    def run(tag, ticket):
        out[tag] = ps.save(ws.store, ct, tag, ws.person(), ticket=ticket)

    late = threading.Thread(target=run, args=("final", second))
    late.start()
    late.join(0.5)
    assert late.is_alive() and "final" not in out  # waiting for its turn, nothing stored
    run("corrected", first)
    late.join(30)
    assert not late.is_alive()
    assert out["corrected"] is not None and out["final"] is not None
    assert out["final"].parent_id == out["corrected"].id
    assert [r.tag for r in ws.store.records(ps.image_hash)] == ["corrected", "final"]
