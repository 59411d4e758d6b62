"""Stroke journal: fsync'ed strokes survive SIGKILL, torn tails are ignored, replay is exact."""
import shutil

import numpy as np
import pytest
from _storage_data import make_stroke, real_seg, reference, run_and_kill, stroke_plan

from medviewer.storage.journal import (JournalMismatch, StrokeJournal, pending, purge_stale,
                                       read_journal)
from medviewer.storage.store import Effort, LabelStore, Source

GRID = (100, 512, 512)  # (z, y, x)


def _write_strokes(journal, labels, plan):
    flat = labels.reshape(-1)
    for step in plan:
        idx, old, new, value, tool = make_stroke(labels, step)
        flat[idx] = new
        journal.append(idx, old, new, value, tool, Effort(1.5, 1, idx.size))


def _copy_unlocked(journal, dest_dir, name="copy.mvj"):
    """A byte copy of a live journal, as the file a killed writer leaves behind."""
    dest = dest_dir / "journal" / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(journal.path, dest)
    return dest


def test_sigkill_mid_stream_recovers_every_finished_stroke(tmp_path):
    n_seen = run_and_kill(tmp_path, "img-a", None, GRID, n_total=4000, kill_after=12)
    found = pending(tmp_path)
    assert len(found) == 1
    pj = found[0]
    assert (pj.image_hash, pj.base_record_id, pj.shape, pj.dtype) == ("img-a", None, GRID,
                                                                       "uint8")
    k = len(pj.edits)
    assert k in (n_seen, n_seen + 1)
    plan = stroke_plan(4000, GRID)
    zeros = np.zeros(GRID, np.uint8)
    recovered = pj.replay(None, strict=True)
    assert np.array_equal(recovered, reference(zeros, plan, k))
    assert not np.array_equal(recovered, reference(zeros, plan, k - 1))
    assert pj.effort.strokes == k and pj.effort.seconds == pytest.approx(0.5 * k)
    assert pj.effort.voxels == sum(e.indices.size for e in pj.edits)
    assert pj.table == {"1": "liver"}


def test_sigkill_recovery_onto_a_store_record(tmp_path):
    seg, affine = real_seg()
    with LabelStore(tmp_path) as store:
        base = store.add_labelmap("img-seg", seg, affine, {"1": "spleen"}, "predicted",
                                  Source("model", "TotalSegmentator", "2.4"))
    n_seen = run_and_kill(tmp_path, "img-seg", base.id, seg.shape, n_total=20000, kill_after=8)
    assert pending(tmp_path, image_hash="other") == []
    (pj,) = pending(tmp_path, image_hash="img-seg")
    assert pj.base_record_id == base.id and len(pj.edits) in (n_seen, n_seen + 1)
    with LabelStore(tmp_path) as store:
        start = store.load_labels(store.get(pj.base_record_id))
        recovered = pj.replay(start, strict=True)
        assert np.array_equal(recovered, reference(seg, stroke_plan(20000, seg.shape),
                                                   len(pj.edits)))
        fixed = store.add_labelmap("img-seg", recovered, affine, pj.table, "corrected",
                                   Source("person", "reader1"), parent_id=base.id,
                                   effort=pj.effort)
        pj.discard()
        assert pending(tmp_path) == []
        assert [c.id for c in store.children(base.id)] == [fixed.id]
        assert fixed.effort.strokes == len(pj.edits)
        assert np.array_equal(store.load_labels(fixed), recovered)
        # the base does not fit a journal written against another array
        with pytest.raises(JournalMismatch):
            pj.replay(np.zeros_like(seg), strict=True)


def test_clean_close_removes_the_journal_and_live_ones_are_not_pending(tmp_path):
    labels = np.zeros(GRID, np.uint8)
    journal = StrokeJournal.open(tmp_path, "img", None, GRID, np.uint8, {})
    _write_strokes(journal, labels, stroke_plan(5, GRID))
    assert journal.path.is_file() and journal.n_strokes == 5
    assert journal.effort == Effort(7.5, 5, journal.effort.voxels)
    assert pending(tmp_path) == []  # held by a live writer (flock)
    journal.close(committed_record_id="abc")
    assert not journal.path.exists()
    assert pending(tmp_path, include_empty=True) == []
    with pytest.raises(ValueError):
        journal.append(np.array([1]), np.array([0], np.uint8), np.array([1], np.uint8), 1, "b")


def test_torn_tail_is_ignored_at_every_cut(tmp_path):
    labels = np.zeros((4, 64, 64), np.uint8)
    journal = StrokeJournal.open(tmp_path / "live", "img", None, labels.shape, np.uint8, {})
    plan = stroke_plan(6, labels.shape)
    ends = [journal.path.stat().st_size]
    flat = labels.reshape(-1)
    for step in plan:
        idx, old, new, value, tool = make_stroke(labels, step)
        flat[idx] = new
        journal.append(idx, old, new, value, tool)
        ends.append(journal.path.stat().st_size)
    data = journal.path.read_bytes()
    journal.close()
    torn = tmp_path / "torn.mvj"
    zeros = np.zeros(labels.shape, np.uint8)
    for cut in list(range(ends[0] - 3, len(data) + 1, 7)) + ends:
        torn.write_bytes(data[:cut])
        pj = read_journal(torn)
        complete = sum(1 for e in ends[1:] if e <= cut)
        if cut < ends[0]:
            assert pj is None  # header itself torn: nothing to recover
            continue
        assert len(pj.edits) == complete, cut
        assert np.array_equal(pj.replay(), reference(zeros, plan, complete))
    # a changed byte inside the last record (still valid JSON: the tool name) fails its
    # CRC: the record is dropped
    bad = bytearray(data)
    pos = data.index(b'"tool": "', ends[-2]) + len(b'"tool": "')
    bad[pos] = ord("X")
    torn.write_bytes(bytes(bad))
    assert len(read_journal(torn).edits) == len(plan) - 1
    # garbage appended after complete records is ignored too
    torn.write_bytes(data + b"\x10\x00\x00\x00garbage")
    assert len(read_journal(torn).edits) == len(plan)


def test_undo_table_changes_widening_and_compression(tmp_path):
    labels = np.zeros(GRID, np.uint8)
    journal = StrokeJournal.open(tmp_path / "src", "img", None, GRID, np.uint8, {"1": "a"})
    _write_strokes(journal, labels, stroke_plan(3, GRID))
    after3 = labels.copy()

    class Edit:  # duck-typed like core.edits.Edit
        pass

    idx, old, new, value, tool = make_stroke(labels, (50, 256.0, 256.0, 30.0, 4))
    edit = Edit()
    edit.indices, edit.old, edit.new, edit.label, edit.tool = idx, old, new, value, tool
    journal.append_edit(edit)
    journal.append_edit(edit, reverse=True)  # the user pressed Ctrl+Z
    journal.append_table({"1": "a", "300": "wide"})
    wide_idx = np.arange(1000, 1100, dtype=np.int64)
    journal.append(wide_idx, np.zeros(100, np.uint16), np.full(100, 300, np.uint16), 300,
                   "brush")
    raw_bytes = sum(8 * make_stroke(np.zeros(GRID, np.uint8), s)[0].size
                    for s in stroke_plan(3, GRID))
    copy = _copy_unlocked(journal, tmp_path / "ws")
    assert copy.stat().st_size < raw_bytes / 4  # diff+zlib packs the brush indices
    (pj,) = pending(tmp_path / "ws")
    assert [e.tool for e in pj.edits][-3:] == ["brush", "undo:brush", "brush"]
    assert pj.table == {"1": "a", "300": "wide"}
    out = pj.replay(None, strict=True)
    assert out.dtype == np.uint16
    expected = after3.astype(np.uint16)
    expected.reshape(-1)[wide_idx] = 300
    assert np.array_equal(out, expected)
    journal.close()


def test_pending_skips_empty_and_purge_removes_stale(tmp_path):
    j = StrokeJournal.open(tmp_path / "src", "img", "rec1", (2, 3, 4), np.uint8, {})
    empty = _copy_unlocked(j, tmp_path, "empty.mvj")
    j.append(np.array([5]), np.array([0], np.uint8), np.array([2], np.uint8), 2, "brush")
    one = _copy_unlocked(j, tmp_path, "one.mvj")
    j.close("rec2")
    headerless = tmp_path / "journal" / "dead.mvj"
    headerless.write_bytes(b"MVJOUR")  # killed while creating the file
    foreign = tmp_path / "journal" / "other.mvj"
    foreign.write_bytes(b"something else entirely")
    assert [p.path for p in pending(tmp_path)] == [one]
    assert len(pending(tmp_path, include_empty=True)) == 2
    assert purge_stale(tmp_path) == 2
    assert not empty.exists() and not headerless.exists()
    assert one.exists() and foreign.exists()
    assert pending(tmp_path)[0].replay().reshape(-1)[5] == 2


def test_append_validates_its_input(tmp_path):
    j = StrokeJournal.open(tmp_path, "img", None, (2, 3, 4), np.uint8, {})
    with pytest.raises(ValueError):
        j.append(np.array([1, 2]), np.array([0], np.uint8), np.array([1], np.uint8), 1, "b")
    with pytest.raises(ValueError):
        j.append(np.array([24]), np.array([0], np.uint8), np.array([1], np.uint8), 1, "b")
    j.close()


def test_detach_leaves_the_journal_for_recovery(tmp_path):
    """Closing the app unsaved: the journal stays and is offered by pending() next time."""
    import numpy as np

    from medviewer.storage.journal import StrokeJournal, pending

    j = StrokeJournal.open(tmp_path, "img", None, (4, 5, 6), "uint8", {})
    idx = np.array([1, 2, 3], dtype=np.int64)
    j.append(idx, np.zeros(3, np.uint8), np.ones(3, np.uint8), 1, "brush", None)
    j.detach()
    found = pending(tmp_path, "img")
    assert len(found) == 1
    out = found[0].replay(np.zeros((4, 5, 6), np.uint8))
    assert out.reshape(-1)[[1, 2, 3]].tolist() == [1, 1, 1] and int(out.sum()) == 3


def test_arrays_compressed_beforehand_journal_the_same_stroke(tmp_path):
    """A large accept compresses its arrays on a worker (encode_arrays): the journal holds
    the same record, byte for byte, as when append compresses them itself, and a mismatch is
    refused."""
    from medviewer.storage.journal import encode_arrays

    labels = np.zeros(GRID, np.uint8)
    idx, old, new, value, tool = make_stroke(labels, (50, 256.0, 256.0, 60.0, 3))
    bodies = []
    for pre in (False, True):
        j = StrokeJournal.open(tmp_path / str(pre), "img", None, GRID, np.uint8, {})
        start = j.path.stat().st_size
        j.append(idx, old, new, value, tool, Effort(0, 0, 0),
                 encoded=encode_arrays(idx, old, new) if pre else None)
        bodies.append(j.path.read_bytes()[start:])
        pj = read_journal(j.path)
        assert np.array_equal(pj.edits[0].indices, idx) and np.array_equal(pj.edits[0].new, new)
        with pytest.raises(ValueError):
            j.append(idx[:-1], old[:-1], new[:-1], value, tool,
                     encoded=encode_arrays(idx, old, new))
        j.close()
    assert bodies[0] == bodies[1] and len(bodies[0]) > 0
